"""The schema registry goes away for longer than the consumer's `max.poll.interval.ms`: the
worker waits for it instead of dead-lettering, keeps its partitions (it polls, paused, while it
waits: no eviction, no rebalance) and, once the registry is back, delivers every record once
and commits to the end."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson

from tests.kafka_helpers import produce, read_all
from tests.support.avro import encode_confluent
from tests.support.rig import WorkerRig
from tests.support.schema_registry import Registry
from tests.support.worker import BLOG_PIXEL, SHOP_PIXEL, unique_events
from worker.config import DEFAULT_AVRO_SCHEMA
from worker.decode import load_avro_schema
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator
from worker.sandbox.sample_events import sample_event

SCHEMA_ID = 5
EVENTS = 40
MAX_POLL_INTERVAL_MS = 7000  # librdkafka evicts a member that does not poll for this long


def test_a_registry_outage_longer_than_the_poll_interval_costs_no_partition_and_no_record(
    kafka_broker: Any, emulator: RunningEmulator, graph: EmulatorClient, tmp_path: Path
) -> None:
    schema = load_avro_schema(DEFAULT_AVRO_SCHEMA)
    rng = random.Random(5)
    now = time.time()
    records = [
        encode_confluent(sample_event(i, now, rng, prefix="outage"), SCHEMA_ID, schema)
        for i in range(EVENTS)
    ]
    rig = WorkerRig(kafka_broker, emulator.url, tmp_path, partitions=2)
    produce(rig.bootstrap, rig.source, records[: EVENTS // 2], partition=0)
    produce(rig.bootstrap, rig.source, records[EVENTS // 2 :], partition=1)
    with Registry({SCHEMA_ID: orjson.loads(DEFAULT_AVRO_SCHEMA.read_bytes())}) as registry:
        registry.fail_with = 503
        config = rig.config(
            decoding={"format": "avro-confluent", "schema_registry_url": registry.url},
            extra={"kafka": {"consumer": {"max.poll.interval.ms": MAX_POLL_INTERVAL_MS}}},
        )
        worker = rig.start_worker(config)
        try:
            # Down for well over the poll interval: the first attempt, then retries after
            # 0.5, 1, 2, 4 and 8 s of backoff.
            rig.wait_until(
                lambda: (
                    len(registry.asked_at) >= 2
                    and registry.asked_at[-1] - registry.asked_at[0]
                    > 2 * MAX_POLL_INTERVAL_MS / 1000
                ),
                120,
                "the registry to stay down for twice the poll interval",
            )
            assert unique_events(graph.received(events=False), SHOP_PIXEL) == 0
            assert read_all(rig.bootstrap, rig.dead_letters, timeout=1) == []
            registry.fail_with = None

            def delivered() -> bool:
                received = graph.received(events=False)
                return all(unique_events(received, p) == EVENTS for p in (SHOP_PIXEL, BLOG_PIXEL))

            rig.wait_until(delivered, 120, "every event at both pixels")
            rig.wait_until(rig.all_committed, 60, "offsets committed to the end")
            log = worker.log()
            assert "Decoding waits; reason=schema_registry_unavailable" in log
            assert "maximum poll interval" not in log.lower(), log[-3000:]
            assert "Partitions lost" not in log and "Partitions revoked" not in log, log[-3000:]
            assert log.count("Partitions assigned") == 1
            assert read_all(rig.bootstrap, rig.dead_letters, timeout=1) == []
            assert worker.terminate() == 0
        finally:
            rig.stop()
    received = graph.received(events=False)
    assert unique_events(received, SHOP_PIXEL) == unique_events(received, BLOG_PIXEL) == EVENTS
