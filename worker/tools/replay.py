"""`capi-worker replay`: backfill a time window through the normal pipeline, in its own group.

The replay group never touches the live group's offsets. Each partition starts at `--from`
(offsets_for_times, and records older than `--from` are skipped, because some brokers answer it
coarsely) and is complete when it is read dry at or past the end offset snapshotted at start,
when a record is newer than `--to`, or when a record past the snapshot was written after the
replay began (live traffic). Some brokers report end offsets too low, so the snapshot alone is
never trusted: reading a partition dry also completes it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from worker import reasons
from worker.config import Settings
from worker.decode import build_decoder, read_headers
from worker.destination_set import DestinationSet
from worker.kafka_config import consumer_config
from worker.mapping.result import Invalid, Mapped, Skipped
from worker.pipeline import NOT_ROUTED, decode_record, map_routed
from worker.stream.runner import Worker

PartitionKey = tuple[str, int]


@dataclass
class ReplayGate:
    """The replay's window and end conditions; a `RecordGate` for the worker."""

    start_ms: int
    end_ms: int | None
    began_ms: int  # when the replay started: records written later are live traffic
    end_offsets: dict[PartitionKey, int]  # snapshot at start
    complete: set[PartitionKey] = field(default_factory=set)
    skip_reason: str = reasons.OUTSIDE_REPLAY_WINDOW

    def consumer_settings(self) -> dict[str, Any]:
        return {"enable.partition.eof": True}

    def start_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Resume from the replay group's own commits; otherwise seek to `--from`."""
        committed = consumer.committed(partitions, timeout=10)
        by_time = consumer.offsets_for_times(
            [TopicPartition(p.topic, p.partition, self.start_ms) for p in partitions], timeout=10
        )
        for partition, done, found in zip(partitions, committed, by_time, strict=True):
            if done.offset >= 0:
                partition.offset = done.offset
            else:
                partition.offset = found.offset if found.offset >= 0 else 0

    def admit(self, message: Any) -> bool:
        key = (message.topic(), message.partition())
        timestamp = message.timestamp()[1]
        if timestamp < self.start_ms:
            return False
        if self.end_ms is not None and timestamp > self.end_ms:
            self.complete.add(key)
            return False
        if message.offset() >= self.end_offsets.get(key, 0) and timestamp >= self.began_ms:
            self.complete.add(key)
            return False
        return True

    def reached_end(self, eof: Any) -> None:
        key = (eof.topic(), eof.partition())
        if eof.offset() >= self.end_offsets.get(key, 0):
            self.complete.add(key)

    def finished(self, assigned: list[PartitionKey]) -> bool:
        return bool(assigned) and all(key in self.complete for key in assigned)


def snapshot_end_offsets(settings: Settings, topics: list[str]) -> dict[PartitionKey, int]:
    consumer = Consumer(
        {**consumer_config(settings), "group.id": f"{settings.kafka.group_id}-peek"}
    )
    try:
        ends: dict[PartitionKey, int] = {}
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                raise SystemExit(f"capi-worker: topic {topic}: {metadata.error}")
            for partition in metadata.partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10, cached=False
                )
                ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


def replay_settings(
    settings: Settings, group: str | None, topics: list[str] | None, start: float
) -> Settings:
    kafka = settings.kafka.model_copy(
        update={
            "group_id": group or f"{settings.kafka.group_id}-replay-{int(start)}",
            "topics": topics or settings.kafka.topics,
        }
    )
    # A replay runs beside the live worker: no metrics port to collide with. Backfills often
    # hold many events past Meta's window, so the circuit breaker would stop them: off.
    metrics = settings.metrics.model_copy(update={"enabled": False})
    breaker = settings.circuit_breaker.model_copy(update={"enabled": False})
    return settings.model_copy(
        update={"kafka": kafka, "metrics": metrics, "circuit_breaker": breaker}
    )


async def _replay_with_worker(
    settings: Settings, gate: ReplayGate, total: int, console: Console
) -> Worker:
    worker = Worker(settings, gate=gate)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    columns = (
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records · {task.fields[rate]:,.0f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("replay", total=max(total, 1), rate=0.0)
        while not running.done():
            consumed = worker.stats.consumed
            rate = consumed / max(time.monotonic() - started, 1e-6)
            # The snapshot may be too low: let the total grow instead of overflowing the bar.
            progress.update(task, completed=consumed, total=max(total, consumed), rate=rate)
            await asyncio.sleep(0.2)
    await running
    return worker


def dry_run(settings: Settings, gate: ReplayGate, console: Console) -> Counter[str]:
    """Read the window without a group and count what would happen, per pixel and reason."""
    consumer = Consumer(
        {
            **consumer_config(settings),
            **gate.consumer_settings(),
            "group.id": f"{settings.kafka.group_id}-dry-run",
        }
    )
    partitions = [TopicPartition(t, p) for t, p in gate.end_offsets]
    gate.start_positions(consumer, partitions)
    consumer.assign(partitions)
    decoder = build_decoder(settings.decoding)
    destinations = DestinationSet.from_settings(settings)
    counts: Counter[str] = Counter()
    now = time.time()
    keys = list(gate.end_offsets)
    try:
        while not gate.finished(keys):
            for message in consumer.consume(500, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        gate.reached_end(message)
                    continue
                counts["records"] += 1
                if not gate.admit(message):
                    counts[f"skipped · {reasons.OUTSIDE_REPLAY_WINDOW}"] += 1
                    continue
                _count_outcomes(counts, destinations, decoder, message, now)
    finally:
        consumer.close()
    return counts


def _count_outcomes(
    counts: Counter[str], destinations: DestinationSet, decoder: Any, message: Any, now: float
) -> None:
    decoded = decode_record(decoder, message.value())
    if isinstance(decoded, Invalid):
        counts[f"dead-letter · decode/{decoded.reason}"] += 1
        return
    routed = map_routed(decoded, read_headers(message), destinations, now)
    if isinstance(routed, Invalid):
        counts[f"dead-letter · {routed.stage}/{routed.reason}"] += 1
        return
    if not routed:
        counts[f"skip · {NOT_ROUTED.reason}"] += 1
    for destination, result in routed:
        if isinstance(result, Mapped):
            counts[f"send · {destination.name}"] += 1
        elif isinstance(result, Skipped):
            counts[f"skip · {destination.name} · {result.reason}"] += 1
        else:
            counts[f"dead-letter · {destination.name} · {result.stage}/{result.reason}"] += 1


def run_replay(
    settings: Settings,
    start: float,
    end: float | None,
    group: str | None,
    topics: list[str] | None,
    dry: bool,
) -> int:
    console = Console(stderr=True)
    settings = replay_settings(settings, group, topics, start)
    ends = snapshot_end_offsets(settings, settings.kafka.topics)
    gate = ReplayGate(
        start_ms=int(start * 1000),
        end_ms=None if end is None else int(end * 1000),
        began_ms=int(time.time() * 1000),
        end_offsets=ends,
    )
    window = f"from {start:.0f}" + ("" if end is None else f" to {end:.0f}")
    console.print(
        f"replay {window} · topics {', '.join(settings.kafka.topics)} · "
        f"group {settings.kafka.group_id}" + (" · dry run: nothing is sent" if dry else "")
    )
    table = Table(title="replay" + (" (dry run)" if dry else ""))
    table.add_column("what")
    table.add_column("count", justify="right")
    if dry:
        for what, count in sorted(dry_run(settings, gate, console).items()):
            table.add_row(what, str(count))
    else:
        total = sum(ends.values())
        worker = asyncio.run(_replay_with_worker(settings, gate, total, console))
        stats = worker.stats
        table.add_row("records read", str(stats.consumed))
        for name, count in sorted(stats.delivered.items()):
            table.add_row(f"delivered · {name}", str(count))
        for reason, count in sorted(stats.skipped.items()):
            table.add_row(f"skipped · {reason}", str(count))
        for reason, count in sorted(stats.dead_lettered.items()):
            table.add_row(f"dead-lettered · {reason}", str(count))
    Console().print(table)
    return 0
