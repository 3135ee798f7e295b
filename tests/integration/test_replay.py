"""`capi-worker replay` on the real broker and the Graph API emulator."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from tests.kafka_helpers import committed_offsets, read_all, unique_topic
from tests.support.worker import (
    EMULATOR_TOKENS,
    SHOP_PIXEL,
    unique_at,
    write_config,
)
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator
from worker.sandbox.sample_events import iso, sample_event


def _produce_at(bootstrap: str, topic: str, events: list[dict[str, Any]], written: float) -> None:
    """Records whose Kafka timestamp is `written` (replay windows go by record time)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for event in events:
        producer.produce(topic, orjson.dumps(event), timestamp=int(written * 1000))
    assert producer.flush(15) == 0


def _events(now: float, prefix: str, count: int) -> list[dict[str, Any]]:
    rng = random.Random(prefix)
    return [sample_event(index, now, rng, prefix=prefix) for index in range(count)]


def _replay(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "replay", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"SHOP_TOKEN": EMULATOR_TOKENS[SHOP_PIXEL], "PATH": "/usr/bin:/bin", "COLUMNS": "160"},
    )


def test_replay_sends_only_the_window_in_its_own_group_and_dry_run_sends_nothing(
    kafka_broker: Any, emulator: RunningEmulator, tmp_path: Path
) -> None:
    graph = EmulatorClient(emulator.url)
    graph.reset()
    source, dead_letters, live_group = (
        unique_topic("events"),
        unique_topic("dlq"),
        unique_topic("live"),
    )
    kafka_broker.create_topics({source: 3, dead_letters: 1})
    now = time.time()
    stale = sample_event(0, now, random.Random(1), prefix="stale")
    stale["timestamp"] = iso(now - 9 * 86_400)  # written recently, but the event is 9 days old
    bootstrap = kafka_broker.bootstrap_servers
    _produce_at(bootstrap, source, _events(now, "old", 200), written=now - 5 * 3600)
    _produce_at(bootstrap, source, [*_events(now, "recent", 300), stale], written=now - 3600)
    config = write_config(
        tmp_path / "worker.yaml",
        bootstrap=kafka_broker.bootstrap_servers,
        graph_url=emulator.url,
        source_topic=source,
        dead_letter_topic=dead_letters,
        group_id=live_group,
        destinations=[{"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"}],
    )

    dry = _replay(config, "--from", "2h", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    [send_row] = [line for line in dry.stdout.splitlines() if "send · shop" in line]
    assert send_row.rstrip(" │|").split()[-1] == "300"
    assert "skipped · outside_replay_window" in dry.stdout
    assert "map/event_time_too_old" in dry.stdout
    assert unique_at(graph, SHOP_PIXEL) == 0

    real = _replay(config, "--from", "2h", "--group", "backfill-1")
    assert real.returncode == 0, real.stderr[-3000:]
    received = graph.received(events=True)["pixels"][SHOP_PIXEL]
    assert received["unique_events"] == 300
    assert {e["event"]["event_id"].split("-")[0] for e in received["events"]} == {"recent"}
    [dead] = read_all(kafka_broker.bootstrap_servers, dead_letters)
    assert dict(dead.headers)["capi.dlq.reason"] == b"event_time_too_old"
    assert committed_offsets(kafka_broker.bootstrap_servers, live_group, source) == {}
    assert (
        sum(committed_offsets(kafka_broker.bootstrap_servers, "backfill-1", source).values()) == 501
    )
