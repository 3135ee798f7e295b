"""Reloading the destinations: all or nothing, one log line either way, batches of replaced
destinations cut before the swap, interval checks that read nothing when nothing moved."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config import load_settings
from worker.destination_set import DestinationSet
from worker.stream.destination_reload import (
    DestinationChanges,
    DestinationReloader,
    ReloadSource,
    compare,
)
from worker.telemetry import metrics

KAFKA = {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"}
SECRET = "EAAB-rotated-secret"


def _shop(name: str, pixel: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "pixel_id": pixel, "access_token": "t", **more}


class Files:
    """A configuration file with a destinations_dir, and a reloader over them."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "shops"
        self.dir.mkdir()
        self.config = tmp_path / "worker.yaml"
        self.config.write_text(yaml.safe_dump({"kafka": KAFKA, "destinations_dir": "shops"}))
        self.token = tmp_path / "a.token"
        self.token.write_text("first-token\n")
        self.write("a.yaml", [{"name": "a", "pixel_id": "1", "access_token_file": str(self.token)}])
        self.write("b.yaml", [_shop("b", "2")])
        self.applied: list[tuple[DestinationSet, DestinationChanges]] = []
        settings = load_settings(self.config)
        self.reloader = DestinationReloader(
            ReloadSource(self.config, settings),
            DestinationSet(settings.destinations),
            30.0,
            lambda new, changes: self.applied.append((new, changes)),
        )

    def write(self, name: str, content: Any) -> None:
        path = self.dir / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        _touch_later(path)

    def reload(self, forced: bool = True) -> str:
        return asyncio.run(self.reloader.reload(forced))

    def names(self) -> list[str]:
        return [d.name for d in self.reloader.current]


def _touch_later(path: Path) -> None:
    """Move the modification time on, so a rewrite within one clock tick is still seen."""
    later = time.time_ns() + 10_000_000_000
    os.utime(path, ns=(later, later))


def _sample(counter: Any, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get()) if labels else counter._value.get()


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def test_compare_counts_added_removed_and_changed_by_name() -> None:
    old = DestinationSet(load_fixture([_shop("a", "1"), _shop("b", "2"), _shop("c", "3")]))
    new = DestinationSet(
        load_fixture([_shop("a", "1"), _shop("c", "3", access_token="rotated"), _shop("d", "4")])
    )
    assert compare(old, new) == DestinationChanges(added=("d",), removed=("b",), changed=("c",))
    assert compare(old, new).replaced == ("b", "c")


def load_fixture(destinations: list[dict[str, Any]]) -> Any:
    from worker.config import parse_settings

    return parse_settings({"kafka": KAFKA, "destinations": destinations}).destinations


def test_a_good_reload_swaps_the_whole_set_and_logs_the_counts(
    files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    files.write("c.yaml", [_shop("c", "3")])
    (files.dir / "b.yaml").unlink()
    applied_before = _sample(metrics.CONFIG_RELOADS, result="applied")
    with caplog.at_level(logging.INFO):
        assert files.reload() == "applied"
    [(new, changes)] = files.applied
    assert new is files.reloader.current
    assert files.names() == ["a", "c"]
    assert changes == DestinationChanges(added=("c",), removed=("b",), changed=())
    [line] = [r.getMessage() for r in caplog.records if "Destinations reloaded" in r.getMessage()]
    assert line == "Destinations reloaded; added=1 removed=1 changed=0 destinations=2"
    assert _sample(metrics.CONFIG_RELOADS, result="applied") == applied_before + 1
    assert _sample(metrics.DESTINATIONS) == 2


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("c.yaml", [{**_shop("c", "3"), "pixle": "9"}], "0.pixle: unknown key"),
        ("c.yaml", [_shop("b", "3")], "'b' is already used in b.yaml"),
        ("c.yaml", "- name: [broken\n", "is not valid YAML"),
        (
            "c.yaml",
            [{"name": "c", "pixel_id": "3", "access_token_file": "/nowhere/c.token"}],
            "access_token_file /nowhere/c.token: cannot read the file",
        ),
    ],
)
def test_one_bad_file_refuses_the_whole_reload_and_the_running_set_stays(
    files: Files, caplog: pytest.LogCaptureFixture, name: str, content: Any, problem: str
) -> None:
    files.write("d.yaml", [_shop("d", "4")])  # a good change in the same reload: not applied
    files.write(name, content)
    before = files.reloader.current
    refused_before = _sample(metrics.CONFIG_RELOADS, result="refused")
    with caplog.at_level(logging.INFO):
        assert files.reload() == "refused"
    assert files.applied == [] and files.reloader.current is before
    assert files.names() == ["a", "b"]
    [line] = [r.getMessage() for r in caplog.records if "reload" in r.getMessage()]
    assert line.startswith("Destinations reload refused, the running destinations stay;")
    assert str(files.dir / name) in line and problem in line
    assert "\n" not in line
    assert _sample(metrics.CONFIG_RELOADS, result="refused") == refused_before + 1


def test_a_refusal_never_quotes_a_token(files: Files, caplog: pytest.LogCaptureFixture) -> None:
    files.write("c.yaml", [{**_shop("c", "3", access_token=SECRET), "test_event_cod": SECRET}])
    with caplog.at_level(logging.INFO):
        assert files.reload() == "refused"
    assert SECRET not in caplog.text


def test_a_rotated_token_file_is_a_changed_destination_with_the_new_token(files: Files) -> None:
    files.token.write_text(SECRET + "\n")
    _touch_later(files.token)
    assert files.reload(forced=False) == "applied"  # the interval check sees the file move
    [(new, changes)] = files.applied
    assert changes.changed == ("a",)
    token = new.get("a")
    assert token is not None and token.access_token.get_secret_value() == SECRET


def test_an_interval_check_reads_nothing_when_no_file_moved(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert files.reload(forced=False) == "unchanged"  # first check: reads, finds no change
    loads: list[int] = []
    original = DestinationReloader._load
    monkeypatch.setattr(
        DestinationReloader, "_load", lambda self: loads.append(1) or original(self)
    )
    assert files.reload(forced=False) == "unchanged"
    assert loads == []
    files.write("c.yaml", [_shop("c", "3")])
    assert files.reload(forced=False) == "applied"
    assert loads == [1]


def test_sighup_reloads_even_when_nothing_moved_and_logs_zero_counts(
    files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert files.reload(forced=True) == "applied"
    assert "added=0 removed=0 changed=0 destinations=2" in caplog.text


def test_the_same_refusal_is_not_logged_again_by_every_interval_check(
    files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    files.write("c.yaml", "not: [a list")
    with caplog.at_level(logging.INFO):
        assert files.reload(forced=False) == "refused"
        assert files.reload(forced=False) == "unchanged"
    assert caplog.text.count("reload refused") == 1


def test_a_token_file_that_appears_after_its_refusal_is_picked_up_by_the_interval_check(
    files: Files, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Kubernetes syncs the destinations ConfigMap and the tokens Secret on their own: a new
    # shop's file may name a token file that is not there yet. Only that token file moves next.
    token = tmp_path / "c.token"
    files.write("c.yaml", [{"name": "c", "pixel_id": "3", "access_token_file": str(token)}])
    with caplog.at_level(logging.INFO):
        assert files.reload(forced=False) == "refused"
        assert files.reload(forced=False) == "unchanged"
        token.write_text(SECRET + "\n")
        assert files.reload(forced=False) == "applied"
    assert caplog.text.count("reload refused") == 1
    assert files.names() == ["a", "b", "c"]
    assert files.applied[-1][1] == DestinationChanges(added=("c",), removed=(), changed=())


def test_other_settings_changed_in_the_file_are_named_as_waiting_for_a_restart(
    files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    files.config.write_text(
        yaml.safe_dump({"kafka": KAFKA, "destinations_dir": "shops", "batching": {"linger_ms": 5}})
    )
    with caplog.at_level(logging.INFO):
        assert files.reload() == "applied"
    assert "not_applied_until_restart=batching" in caplog.text


def test_a_request_wakes_the_reloader_before_its_interval(files: Files) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(files.reloader.run())
        files.write("c.yaml", [_shop("c", "3")])
        files.reloader.request()
        deadline = time.monotonic() + 30
        while not files.applied and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(scenario())
    assert files.names() == ["a", "b", "c"]
