"""The emulator's acceptance times and lean recording (what `capi-worker bench` relies on)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from worker.bench.stack import BenchEmulatorClient
from worker.sandbox.emulator_client import EmulatorClientError
from worker.sandbox.graph_emulator import RunningEmulator, start_in_thread

PIXEL = "1111111111"
TOKEN = "token-1"


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with start_in_thread({PIXEL: TOKEN}) as running:
        yield running


def event(event_id: str) -> dict[str, Any]:
    return {
        "event_name": "Lead",
        "event_time": int(time.time()) - 5,
        "event_id": event_id,
        "action_source": "system_generated",
        "user_data": {"external_id": ["a" * 64]},
    }


def post(emulator: RunningEmulator, ids: list[str]) -> None:
    body = orjson.dumps({"data": [event(i) for i in ids], "access_token": TOKEN})
    request = urllib.request.Request(
        f"{emulator.url}/v25.0/{PIXEL}/events",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_each_accepted_event_carries_its_acceptance_time(emulator: RunningEmulator) -> None:
    client = BenchEmulatorClient(emulator.url)
    before = time.time()
    post(emulator, ["a", "b"])
    post(emulator, ["c"])
    after = time.time()

    stored = client.received(PIXEL)["pixels"][PIXEL]["events"]
    accepted = client.acceptances(PIXEL)

    assert [e["event"]["event_id"] for e in stored] == ["a", "b", "c"]
    assert all(before <= e["accepted_at"] <= after for e in stored)
    assert set(accepted) == {"a", "b", "c"}
    assert accepted["a"] == accepted["b"] <= accepted["c"]
    # The plain summary is unchanged unless acceptances are asked for.
    assert "acceptances" not in client.received(PIXEL, events=False)["pixels"][PIXEL]


def test_lean_recording_keeps_counts_and_acceptances_not_events(
    emulator: RunningEmulator,
) -> None:
    client = BenchEmulatorClient(emulator.url)
    client.store_events(False)
    post(emulator, ["a", "b"])
    post(emulator, ["a"])
    client.reset()  # forgets what was recorded, keeps the setting
    post(emulator, ["x", "y"])
    post(emulator, ["x"])

    summary = client.received(PIXEL)["pixels"][PIXEL]
    assert summary["events"] == []
    assert (summary["events_received"], summary["unique_events"]) == (3, 2)
    assert summary["duplicates"] == {"Lead|x": 2}
    assert set(client.acceptances(PIXEL)) == {"x", "y"}

    client.store_events(True)
    post(emulator, ["z"])
    stored = client.received(PIXEL)["pixels"][PIXEL]["events"]
    assert [e["event"]["event_id"] for e in stored] == ["z"]


def test_a_bad_settings_body_is_refused(emulator: RunningEmulator) -> None:
    client = BenchEmulatorClient(emulator.url)
    with pytest.raises(EmulatorClientError, match="400"):
        client._call("POST", "/_emulator/settings", {"store_events": "no"})
    with pytest.raises(EmulatorClientError, match="400"):
        client._call("POST", "/_emulator/settings", {"keep": True})
