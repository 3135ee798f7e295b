"""Producing a benchmark's records and reading back where a consumer group stands.

Tansu quirk: the high watermark that `get_watermark_offsets` answers is too low when the last
batch held several records, so the true end offsets come from the producer's delivery reports
(and `tail_check` confirms them by reading each partition's tail).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

# key, value, partition (None: the producer's partitioner decides by key)
Record = tuple[bytes | None, bytes, int | None]


@dataclass
class Produced:
    """What one producer run wrote: counts and the true end offset of every partition."""

    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    ends: dict[int, int] = field(default_factory=dict)  # partition -> last offset + 1
    per_partition: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """The delivery-report callback: counts per partition and the highest offset seen."""
        if error is not None:
            if len(self.errors) < 20:
                self.errors.append(str(error))
            return
        partition, offset = int(message.partition() or 0), int(message.offset() or 0)
        self.per_partition[partition] += 1
        if offset + 1 > self.ends.get(partition, 0):
            self.ends[partition] = offset + 1


def bulk_producer(bootstrap: str, compression: str = "lz4", **overrides: Any) -> Producer:
    """A producer tuned to write a large pre-made stream fast (big batches, deep queue)."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": compression,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "log.connection.close": False,  # the broker stops before the producer is freed
            **overrides,
        }
    )


def produce_records(
    bootstrap: str,
    topic: str,
    records: Iterable[Record],
    *,
    compression: str = "lz4",
    into: Produced | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 200_000,
    flush_timeout: float = 300.0,
) -> Produced:
    """Produce every record with delivery reports; the answer knows the true end offsets."""
    result = into if into is not None else Produced()
    producer = bulk_producer(bootstrap, compression)
    started = time.monotonic()
    for index, (key, value, partition) in enumerate(records):
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value=value, key=key, on_delivery=result.on_delivery)
                else:
                    producer.produce(
                        topic,
                        value=value,
                        key=key,
                        partition=partition,
                        on_delivery=result.on_delivery,
                    )
                break
            except BufferError:
                producer.poll(0.05)
        result.records += 1
        result.bytes += len(value)
        if index % 2000 == 0:
            producer.poll(0)
        if progress is not None and index and index % progress_every == 0:
            progress(index)
    remaining = producer.flush(flush_timeout)
    result.seconds = time.monotonic() - started
    if remaining:
        result.errors.append(f"{remaining} records not acknowledged by the broker")
    reported = sum(result.per_partition.values())
    if reported != result.records and not remaining:
        result.errors.append(f"{result.records - reported} records without a delivery report")
    return result


def tail_check(
    bootstrap: str, topic: str, partitions: int, ends: dict[int, int], timeout: float = 30.0
) -> dict[int, int]:
    """Read each partition from its last reported offset until EOF: the true end offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            "log.connection.close": False,
        }
    )
    found = dict.fromkeys(range(partitions), 0)
    dry: set[int] = set()
    consumer.assign(
        [TopicPartition(topic, p, max(ends.get(p, 0) - 1, 0)) for p in range(partitions)]
    )
    deadline = time.monotonic() + timeout
    try:
        while len(dry) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            partition = int(message.partition() or 0)
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    dry.add(partition)
                    found[partition] = max(found[partition], int(message.offset() or 0))
                continue
            dry.discard(partition)
            found[partition] = max(found[partition], int(message.offset() or 0) + 1)
    finally:
        consumer.close()
    if len(dry) < partitions:
        raise RuntimeError(f"partitions {sorted(set(found) - dry)} not read to their end")
    return found


class CommitWatcher:
    """Reads a consumer group's committed offsets without joining the group."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "log.connection.close": False,
            }
        )

    def committed(self, timeout: float = 10.0) -> dict[int, int]:
        answer = self._consumer.committed(
            [TopicPartition(self.topic, p) for p in range(self.partitions)], timeout=timeout
        )
        return {tp.partition: int(tp.offset) for tp in answer if tp.error is None}

    def reached(self, ends: dict[int, int], offsets: dict[int, int] | None = None) -> bool:
        """Whether every partition holding records has its end offset committed."""
        offsets = self.committed() if offsets is None else offsets
        return all(offsets.get(p, -1) >= end for p, end in ends.items() if end > 0)

    def close(self) -> None:
        self._consumer.close()
