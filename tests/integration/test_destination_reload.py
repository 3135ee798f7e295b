"""Destinations reloaded live: a running `capi-worker run` with `destinations_dir`, against the
real broker and the Graph API emulator. One process throughout; exact event-id sets per pixel.

- a destination added by SIGHUP starts receiving, a removed one stops;
- a file with an unknown key is refused whole while delivery goes on for the others;
- a token file rotated between two reloads is used by later requests: the emulator is switched
  to accept only the new token, and the events sent after the reload arrive;
- `--processes 2`: the supervisor forwards SIGHUP to both processes, and a process it restarts
  after a reload maps with the reloaded destinations (not the supervisor's start-up copy).
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.kafka_helpers import all_committed, produce, read_values, unique_topic
from tests.support.worker import WorkerProcess, wait_until, write_config
from worker.sandbox.broker import free_port
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator

PIXELS = {"a": "7000000001", "b": "7000000002", "c": "7000000003"}
TOKENS = {"a": "token-a-first", "b": "token-b", "c": "token-c"}
ROTATED_A = "token-a-rotated"
PARTITIONS = 2


class Tenants:
    """A worker whose destinations live in a folder, one file per shop, each fenced to its own
    source id, tokens in files."""

    def __init__(self, broker: Any, emulator: RunningEmulator, tmp_path: Path) -> None:
        self.bootstrap = broker.bootstrap_servers
        self.source = unique_topic("tenants")
        self.dead_letters = unique_topic("tenants-dlq")
        self.group = unique_topic("tenants-group")
        broker.create_topics({self.source: PARTITIONS, self.dead_letters: 1})
        self.dir = tmp_path / "shops"
        self.dir.mkdir()
        self.tokens = tmp_path / "tokens"
        self.tokens.mkdir()
        self.port = free_port()
        config = write_config(
            tmp_path / "worker.yaml",
            bootstrap=self.bootstrap,
            graph_url=emulator.url,
            source_topic=self.source,
            dead_letter_topic=self.dead_letters,
            group_id=self.group,
            metrics_port=self.port,
            extra={"destinations_dir": str(self.dir), "runtime": {"reload_interval_seconds": 0}},
        )
        settings = yaml.safe_load(config.read_text())
        del settings["destinations"]
        config.write_text(yaml.safe_dump(settings))
        self.config = config
        self.log_path = tmp_path / "worker.log"
        self.worker: WorkerProcess | None = None
        self.produced: dict[str, list[str]] = {shop: [] for shop in PIXELS}

    def add_shop(self, shop: str, **extra: Any) -> None:
        token = self.tokens / f"{shop}.token"
        token.write_text(TOKENS[shop] + "\n")
        destination = {
            "name": f"shop-{shop}",
            "pixel_id": PIXELS[shop],
            "access_token_file": str(token),
            "match": {"source_ids": [f"source-{shop}"]},
            **extra,
        }
        (self.dir / f"{shop}.yaml").write_text(yaml.safe_dump([destination]))

    def start(self, *args: str) -> WorkerProcess:
        self.worker = WorkerProcess(self.config, self.log_path, args)
        wait_until(lambda: "Worker started" in self.log(), 60, "the worker to start", self.log)
        return self.worker

    def sighup(self) -> None:
        assert self.worker is not None
        self.worker.process.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, times: int = 1) -> None:
        wait_until(lambda: self.log().count(text) >= times, 60, repr(text), self.log)

    def produce(
        self, phase: str, shops: str, count: int = 20, partition: int | None = None
    ) -> None:
        now = int(time.time())
        records = []
        for shop in shops:
            for index in range(count):
                event_id = f"{phase}-{shop}-{index}"
                self.produced[shop].append(event_id)
                records.append(orjson.dumps(_event(f"source-{shop}", event_id, now)))
        produce(self.bootstrap, self.source, records, partition)

    def wait_until_received_all(self, graph: EmulatorClient, shops: str) -> None:
        """Every event produced for these shops arrived, exactly once each."""
        for shop in shops:
            wait_until(
                lambda s=shop: received_ids(graph, s) == sorted(self.produced[s]),
                90,
                f"events at {shop}",
                self.log,
            )

    def all_committed(self) -> bool:
        return all_committed(self.bootstrap, self.group, self.source)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as page:
            return str(page.read().decode())


def _event(source_id: str, event_id: str, now: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Added",
        "messageId": event_id,
        "userId": "user-1",
        "timestamp": now - 30,
        "context": {
            "sourceId": source_id,
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0",
            "page": {"url": "https://shop.example/p/1"},
        },
        "properties": {"product_id": "p-1", "price": 5},
    }


def received_ids(graph: EmulatorClient, shop: str) -> list[str]:
    pixel = PIXELS[shop]
    record = graph.received(pixel)["pixels"][pixel]
    return sorted(str(entry["event"]["event_id"]) for entry in record["events"])


@pytest.fixture
def tenants(kafka_broker: Any, emulator: RunningEmulator, tmp_path: Path) -> Iterator[Tenants]:
    client = EmulatorClient(emulator.url)
    client.set_tokens({PIXELS[shop]: token for shop, token in TOKENS.items()})
    running = Tenants(kafka_broker, emulator, tmp_path)
    yield running
    if running.worker is not None:
        running.worker.stop_quietly()


def test_destinations_are_added_removed_refused_and_rotated_live_without_losing_an_event(
    tenants: Tenants, graph: EmulatorClient
) -> None:
    tenants.add_shop("a")
    tenants.add_shop("b")
    worker = tenants.start()
    expected: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    def phase(name: str, produced_for: str, received_by: str) -> None:
        """Produce events of `name` for the shops `produced_for`; wait until exactly the
        expected events have arrived at the shops `received_by`."""
        tenants.produce(name, produced_for)
        for shop in received_by:
            expected[shop] += [i for i in tenants.produced[shop] if i.startswith(f"{name}-")]
        for shop in received_by:
            wait_until(
                lambda s=shop: received_ids(graph, s) == sorted(expected[s]),
                90,
                f"phase {name} at {shop}",
                tenants.log,
            )

    # c has no destination yet: its events go nowhere.
    phase("one", "abc", "ab")

    # c is added and b removed by one SIGHUP.
    tenants.add_shop("c")
    (tenants.dir / "b.yaml").unlink()
    tenants.sighup()
    tenants.wait_for_log("Destinations reloaded; added=1 removed=1 changed=0 destinations=2")
    phase("two", "abc", "ac")

    # A file with an unknown key: the whole reload is refused, a and c keep receiving.
    bad = {"name": "shop-d", "pixel_id": "7000000004", "access_token": "x", "acces_token": "x"}
    (tenants.dir / "d.yaml").write_text(yaml.safe_dump([bad]))
    tenants.sighup()
    tenants.wait_for_log("Destinations reload refused")
    refusal = next(line for line in tenants.log().splitlines() if "reload refused" in line)
    assert "d.yaml" in refusal and "acces_token: unknown key" in refusal
    phase("three", "abc", "ac")

    # The bad file goes, a's token file is rotated: one more reload, a changed. Then Meta's
    # side refuses the first token: later events arrive only if the new one is used.
    (tenants.dir / "d.yaml").unlink()
    (tenants.tokens / "a.token").write_text(ROTATED_A + "\n")
    tenants.sighup()
    tenants.wait_for_log("Destinations reloaded; added=0 removed=0 changed=1 destinations=2")
    graph.set_tokens({PIXELS["a"]: ROTATED_A})
    phase("four", "ac", "ac")

    # Every record done and committed; exactly the expected events per pixel, none twice,
    # nothing dead-lettered; b stopped receiving when it was removed.
    wait_until(tenants.all_committed, 60, "offsets committed to the end", tenants.log)
    for shop in "abc":
        assert received_ids(graph, shop) == sorted(expected[shop]), shop
        assert graph.received(PIXELS[shop])["pixels"][PIXELS[shop]]["rejected_requests"] == 0
    assert expected["b"] == [i for i in tenants.produced["b"] if i.startswith("one-")]
    assert read_values(tenants.bootstrap, tenants.dead_letters) == []
    page = tenants.metrics()
    assert re.search(r"^capi_destinations 2\.0$", page, re.M)
    assert re.search(r'^capi_config_reloads_total\{result="applied"\} 2\.0$', page, re.M)
    assert re.search(r'^capi_config_reloads_total\{result="refused"\} 1\.0$', page, re.M)
    assert TOKENS["a"] not in tenants.log() and ROTATED_A not in tenants.log()
    assert worker.terminate() == 0, tenants.log()[-3000:]


def test_the_supervisor_forwards_sighup_to_every_process(
    tenants: Tenants, graph: EmulatorClient
) -> None:
    tenants.add_shop("a")
    tenants.start("--processes", "2")
    wait_until(
        lambda: tenants.log().count("Worker started") == 2, 60, "both processes", tenants.log
    )
    tenants.add_shop("c")
    tenants.sighup()
    tenants.wait_for_log("Destinations reloaded; added=1 removed=0 changed=0", times=2)
    reloaded = [
        orjson.loads(line)["process"]
        for line in tenants.log().splitlines()
        if "Destinations reloaded" in line
    ]
    assert sorted(reloaded) == ["1/2", "2/2"]
    tenants.produce("after", "ac")
    tenants.wait_until_received_all(graph, "ac")
    wait_until(tenants.all_committed, 60, "offsets committed to the end", tenants.log)


def test_a_process_restarted_after_a_reload_maps_with_the_reloaded_destinations(
    tenants: Tenants, graph: EmulatorClient
) -> None:
    # SIGHUP only (interval 0): nothing but its start can bring a restarted process up to date.
    tenants.add_shop("a")
    worker = tenants.start("--processes", "2")
    wait_until(
        lambda: tenants.log().count("Worker started") == 2, 60, "both processes", tenants.log
    )
    tenants.add_shop("c")
    tenants.sighup()
    tenants.wait_for_log("Destinations reloaded; added=1 removed=0 changed=0", times=2)

    [victim] = [
        int(found.group(1))
        for found in re.finditer(r"Process started; process=1/2 pid=(\d+)", tenants.log())
    ]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: tenants.log().count("Worker started") == 3, 90, "1/2 restarted", tenants.log)

    def restarted_owns_a_partition() -> bool:
        lines = tenants.log().splitlines()
        restart = max(i for i, line in enumerate(lines) if "Worker started" in line)
        return any(
            "Partitions assigned" in line and '"1/2"' in line and "partitions=-" not in line
            for line in lines[restart:]
        )

    wait_until(restarted_owns_a_partition, 90, "the restarted 1/2 assigned", tenants.log)
    for partition in range(PARTITIONS):  # whichever partition 1/2 holds carries shop c events
        tenants.produce(f"restarted-{partition}", "ac", 10, partition)
    tenants.wait_until_received_all(graph, "ac")
    wait_until(tenants.all_committed, 60, "offsets committed to the end", tenants.log)
    assert worker.terminate() == 0, tenants.log()[-3000:]
