"""`capi-worker run --processes 2`: two supervised consumer processes in one group, against the
real broker and the Graph API emulator."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka_helpers import produce
from tests.support.http import local_get
from tests.support.rig import WorkerRig
from tests.support.worker import (
    BLOG_PIXEL,
    SHOP_PIXEL,
    WorkerProcess,
    delivered_to_both,
    unique_at,
    valid_events,
    wait_until,
)
from worker.sandbox.broker import free_port
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator

PIXELS = (SHOP_PIXEL, BLOG_PIXEL)
PARTITIONS = 4


class Run(WorkerRig):
    """Topics, config and the supervised worker of one test."""

    def __init__(self, broker: Any, emulator: RunningEmulator, tmp_path: Path) -> None:
        super().__init__(broker, emulator.url, tmp_path, partitions=PARTITIONS)
        self.port = free_port()
        self.config_path = self.config(batching={"max_events": 200}, metrics_port=self.port)
        self.log_path = tmp_path / "worker.log"
        self.worker: WorkerProcess | None = None

    def start(self, processes: int = 2) -> WorkerProcess:
        self.worker = WorkerProcess(
            self.config_path, self.log_path, ["--processes", str(processes)]
        )
        return self.worker

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self) -> list[dict[str, Any]]:
        parsed = []
        for line in self.log().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                parsed.append(entry)
        return parsed

    def children(self) -> dict[str, list[int]]:
        """process tag (1/2) -> pids it was started with, in order."""
        started: dict[str, list[int]] = {}
        for entry in self.lines():
            found = re.match(r"Process started; process=(\S+) pid=(\d+)", entry["message"])
            if found:
                started.setdefault(found.group(1), []).append(int(found.group(2)))
        return started

    def assigned(self) -> dict[str, set[str]]:
        """process tag -> partitions it was ever assigned."""
        partitions: dict[str, set[str]] = {}
        for entry in self.lines():
            if entry["message"].startswith("Partitions assigned") and "process" in entry:
                listed = entry["message"].split("partitions=", 1)[1]
                partitions.setdefault(entry["process"], set()).update(listed.split(","))
        return partitions

    def get(self, path: str) -> tuple[int, str]:
        return local_get(self.port, path)


@pytest.fixture
def run(kafka_broker: Any, emulator: RunningEmulator, tmp_path: Path) -> Iterator[Run]:
    running = Run(kafka_broker, emulator, tmp_path)
    yield running
    if running.worker is not None:
        running.worker.stop_quietly()


def test_two_processes_share_the_partitions_and_deliver_every_event_exactly_once(
    run: Run, graph: EmulatorClient
) -> None:
    produce(run.bootstrap, run.source, valid_events(4000, "processes"))
    worker = run.start()

    wait_until(
        lambda: delivered_to_both(graph, 4000), 120, "4000 unique events at both pixels", run.log
    )
    wait_until(run.all_committed, 60, "offsets committed to the end", run.log)
    # Both children took part: each was assigned partitions, between them all four.
    wait_until(lambda: len(run.assigned()) == 2, 60, "both processes assigned", run.log)
    assigned = run.assigned()
    assert set(assigned) == {"1/2", "2/2"}
    assert all(assigned.values())
    assert len(set().union(*assigned.values())) == PARTITIONS
    received = graph.received(events=False)["pixels"]
    for pixel in PIXELS:
        assert received[pixel]["duplicates"] == {}, "an event was sent twice"

    # One health and metrics port for the pod: the parent answers for both children.
    wait_until(lambda: run.get("/readyz")[0] == 200, 60, "/readyz", run.log)
    status, text = run.get("/livez")
    assert status == 200 and "process 1/2" in text and "process 2/2" in text
    status, metrics = run.get("/metrics")
    assert status == 200
    consumed = [
        float(value)
        for process, value in re.findall(
            r'capi_records_consumed_total\{process="(\d)",topic="[^"]+"\} (\S+)', metrics
        )
    ]
    assert len(consumed) == 2 and sum(consumed) == 4000

    assert worker.terminate() == 0, run.log()[-3000:]
    assert run.all_committed()
    stops = [e for e in run.lines() if e["message"].startswith("Worker stopped")]
    assert sorted(e["process"] for e in stops) == ["1/2", "2/2"]
    assert "Supervisor stopped; exit_code=0" in run.log()


def test_a_process_killed_with_sigkill_is_restarted_and_the_stream_completes(
    run: Run, graph: EmulatorClient
) -> None:
    graph.inject_fault(count=40, latency_ms=200)  # batches are in flight when the kill lands
    produce(run.bootstrap, run.source, valid_events(4000, "respawn"))
    worker = run.start()
    wait_until(lambda: len(run.assigned()) == 2, 60, "both processes assigned", run.log)
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) >= 400,
        60,
        "the first deliveries",
        run.log,
    )
    [victim] = run.children()["1/2"]
    os.kill(victim, signal.SIGKILL)

    wait_until(lambda: len(run.children()["1/2"]) == 2, 60, "process 1/2 restarted", run.log)
    assert "Process exited unexpectedly, restarting; process=1/2 exit_code=-9" in run.log()
    wait_until(
        lambda: delivered_to_both(graph, 4000), 120, "every event after the restart", run.log
    )
    wait_until(run.all_committed, 60, "offsets committed to the end", run.log)
    assert worker.terminate() == 0, run.log()[-3000:]
    assert run.all_committed()
