"""Figure 3: latency under a steady produce rate, from the record's timestamp to Meta's answer.

One worker runs on a fresh topic; a few warm-up records prove it has joined its group and
reached the emulator. Then the bench produces the corpus at a steady rate (`rate` records per
second for `seconds`), setting each record's Kafka timestamp to the wall-clock millisecond it
hands the record to the producer. The emulator stamps every request it accepts with its own
wall-clock time (same machine, same clock). Per valid event, event_id = messageId:
latency = acceptance time - record timestamp. It includes the producer's linger, the broker,
the consumer's fetch, mapping, the batcher's linger (`batching.linger_ms`) and the POST.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .corpus import CorpusRecord
from .end_to_end import DEAD_LETTER_TOPIC
from .kafka_io import CommitWatcher, Produced, bulk_producer
from .report import log, percentile
from .stack import BENCH_PIXEL, Stack, start_worker, stop_workers, worker_mapping_build

TICK_SECONDS = 0.002


@dataclass
class LatencyRun:
    rate: int
    seconds: float
    produced: int = 0
    produce_seconds: float = 0.0
    valid: int = 0
    measured: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    drain_seconds: float | None = None  # end of producing -> every offset committed
    problems: list[str] = field(default_factory=list)
    mapping_build: str | None = None  # what the worker logged at start-up

    @property
    def achieved_rate(self) -> float | None:
        return self.produced / self.produce_seconds if self.produce_seconds else None

    def as_dict(self) -> dict[str, Any]:
        rate = self.achieved_rate
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "produced": self.produced,
            "achieved_rate": None if rate is None else round(rate, 1),
            "valid_events": self.valid,
            "measured_events": self.measured,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
            "drain_seconds": None if self.drain_seconds is None else round(self.drain_seconds, 2),
            "problems": self.problems,
        }


def _wait_for(predicate: Any, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def latency_run(
    stack: Stack,
    records: Sequence[CorpusRecord],
    warmup: Sequence[CorpusRecord],
    *,
    rate: int,
    seconds: float,
    partitions: int,
    workdir: Path,
    label: str,
    batching: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
) -> LatencyRun:
    """Produce `rate` records/s of `records` for `seconds` into a new topic that one worker
    consumes; answer the latency percentiles of the valid events."""
    run = LatencyRun(rate=rate, seconds=seconds)
    topic = f"bench.latency-{label}-{uuid.uuid4().hex[:6]}"
    stack.create_topics({topic: partitions, DEAD_LETTER_TOPIC: 1})
    group, config = stack.new_run(
        label, topic, DEAD_LETTER_TOPIC, batching=batching, consumer=consumer
    )
    client = stack.client()
    produced = Produced()
    steady: dict[str, Any] = {"linger.ms": 5}  # records go out as produced, not in bulk
    producer = bulk_producer(stack.bootstrap, **steady)
    worker = start_worker(config, workdir, f"{label}-worker")
    watcher = CommitWatcher(stack.bootstrap, group, topic, partitions)
    try:
        # Warm up: the worker has joined and delivers once these arrive at the emulator.
        for record in warmup:
            producer.produce(
                topic, value=record.value, key=record.key, on_delivery=produced.on_delivery
            )
        producer.flush(30)
        valid_warmup = sum(record.invalid is None for record in warmup)

        def warmed_up() -> bool:
            seen = client.received(BENCH_PIXEL, events=False)["pixels"][BENCH_PIXEL]
            return int(seen["unique_events"]) >= valid_warmup or worker.poll() is not None

        if not _wait_for(warmed_up, timeout=90) or worker.poll() is not None:
            run.problems.append("the worker did not deliver the warm-up records within 90 s")
            return run
        client.reset()

        # Steady rate: every tick, produce what is due by now.
        total = min(len(records), int(rate * seconds))
        timestamps: dict[str, int] = {}
        sent = 0
        started = time.monotonic()
        while sent < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            if due > sent:
                stamp = int(time.time() * 1000)
                for record in records[sent:due]:
                    while True:
                        try:
                            producer.produce(
                                topic,
                                value=record.value,
                                key=record.key,
                                timestamp=stamp,
                                on_delivery=produced.on_delivery,
                            )
                            break
                        except BufferError:
                            producer.poll(0.01)
                    if record.invalid is None:
                        timestamps[record.event_id] = stamp
                sent = due
            producer.poll(0)
            time.sleep(TICK_SECONDS)
        run.produce_seconds = time.monotonic() - started
        run.produced = sent
        remaining = producer.flush(60)
        if remaining or produced.errors:
            run.problems.append(f"producing failed: {remaining} unacknowledged, {produced.errors}")
            return run
        flushed = time.monotonic()
        if not _wait_for(lambda: watcher.reached(produced.ends), timeout=max(120.0, seconds)):
            run.problems.append("the committed offsets did not reach the end offsets in time")
        else:
            run.drain_seconds = time.monotonic() - flushed
    finally:
        exit_codes = stop_workers([worker], log=log)
        watcher.close()
    run.mapping_build = worker_mapping_build(workdir, f"{label}-worker")
    if exit_codes != [0]:
        run.problems.append(f"worker exit code after SIGTERM: {exit_codes}")
    accepted = client.acceptances(BENCH_PIXEL)
    run.valid = len(timestamps)
    latencies = sorted(
        (accepted[event_id] - stamp / 1000) * 1000
        for event_id, stamp in timestamps.items()
        if event_id in accepted
    )
    run.measured = len(latencies)
    if run.measured != run.valid:
        run.problems.append(f"{run.valid - run.measured:,} valid events never accepted")
    if latencies:
        run.p50_ms = round(percentile(latencies, 0.50), 1)
        run.p99_ms = round(percentile(latencies, 0.99), 1)
        run.max_ms = round(latencies[-1], 1)
        run.mean_ms = round(sum(latencies) / len(latencies), 1)
    return run


def describe(run: LatencyRun) -> str:
    text = (
        f"p50 {run.p50_ms} ms, p99 {run.p99_ms} ms, max {run.max_ms} ms over {run.measured:,} "
        f"events; produced {run.achieved_rate or 0:,.0f}/s"
    )
    return text + (f" [red]{'; '.join(run.problems)}[/]" if run.problems else "")


def section(runs: list[LatencyRun]) -> dict[str, Any]:
    """The report's `latency` section: percentiles summarised over the runs."""
    from .end_to_end import build_of
    from .report import summarise

    return {
        "rate": runs[0].rate,
        "mapping_build": build_of(runs),
        "seconds": runs[0].seconds,
        "p50_ms": summarise([run.p50_ms for run in runs], 1),
        "p99_ms": summarise([run.p99_ms for run in runs], 1),
        "max_ms": summarise([run.max_ms for run in runs], 1),
        "achieved_rate": summarise([run.achieved_rate for run in runs], 0),
        "drain_seconds": summarise([run.drain_seconds for run in runs], 2),
        "run_details": [run.as_dict() for run in runs],
    }
