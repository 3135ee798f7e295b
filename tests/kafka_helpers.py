"""Helpers for tests that talk to a real Kafka-protocol broker (the embedded Tansu broker).

Tansu's ListOffsets answer (``get_watermark_offsets``) is the base offset of the last record
batch + 1, too low whenever that batch held several records, so nothing here trusts it:
partitions are read until the consumer reports their end (fetch responses carry the right
high watermark) and no record has arrived for a short settle time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

Headers = list[tuple[str, bytes | None]]
HeadersIn = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None
KeyOrValue = bytes | str | None
RecordIn = bytes | tuple[KeyOrValue, KeyOrValue] | tuple[KeyOrValue, KeyOrValue, HeadersIn]


@dataclass(frozen=True)
class Record:
    """A consumed record, detached from librdkafka (safe to keep after the consumer closed)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp: int = -1  # milliseconds since the epoch, -1 when the broker gave none

    def header(self, name: str) -> bytes | None:
        """The last value of header `name` (None when absent)."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return None


def unique_topic(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(headers: HeadersIn) -> Headers | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, _as_bytes(value)) for name, value in items]


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[RecordIn],
    partition: int | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    timeout: float = 15.0,
) -> list[tuple[int, int]]:
    """Produce `records` (values, or (key, value[, headers]) tuples), flush, assert delivery.

    Returns the (partition, offset) of each record, in order.
    """
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **(config or {})}
    )
    results: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def delivered(index: int) -> Any:
        def callback(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(f"record {index}: {error}")
            else:
                results[index] = (int(message.partition() or 0), int(message.offset() or 0))

        return callback

    for index, record in enumerate(records):
        key: bytes | str | None = None
        value: bytes | str | None
        headers: HeadersIn = None
        if isinstance(record, bytes | str):
            value = record
        elif len(record) == 2:
            key, value = record[0], record[1]
        else:
            key, value, headers = record[0], record[1], record[2]
        kwargs: dict[str, Any] = {"on_delivery": delivered(index)}
        if partition is not None:
            kwargs["partition"] = partition
        hdrs = _headers(headers)
        if hdrs is not None:
            kwargs["headers"] = hdrs
        producer.produce(topic, value=_as_bytes(value), key=_as_bytes(key), **kwargs)
        producer.poll(0)
    remaining = producer.flush(timeout)
    assert not errors, f"produce to {topic} failed: {errors}"
    assert remaining == 0, f"{remaining} records to {topic} not delivered within {timeout}s"
    missing = [i for i, result in enumerate(results) if result is None]
    assert not missing, f"no delivery report for records {missing}"
    return [result for result in results if result is not None]


def _received_headers(message: Message) -> Headers:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(name), _as_bytes(value)) for name, value in items]


def _consumer(bootstrap: str, group: str | None = None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            # librdkafka wants a group id even for assign(); nothing is joined or committed.
            "group.id": group or f"kafka-helpers-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            # Answer fetches at the end of a partition quickly: EOF comes sooner.
            "fetch.wait.max.ms": 50,
        }
    )


def partitions_of(bootstrap: str, topic: str, timeout: float = 10.0) -> list[int]:
    consumer = _consumer(bootstrap)
    try:
        return _partitions(consumer, topic, timeout)
    finally:
        consumer.close()


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is not None and metadata.error is None and metadata.partitions:
            return sorted(metadata.partitions)
        if time.monotonic() > deadline:
            error = metadata.error if metadata is not None else "absent"
            raise AssertionError(f"topic {topic} has no partitions: {error}")
        time.sleep(0.1)


def _drain(
    consumer: Consumer,
    topic: str,
    start: Mapping[int, int],
    timeout: float,
    settle: float,
) -> tuple[list[Record], dict[int, int]]:
    """Read each partition from its start offset until dry; return records and end offsets.

    A partition is dry once the consumer reported its end (EOF) with nothing read after it;
    the whole read ends when every partition is dry and nothing arrived for `settle` seconds.
    """
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])
    records: list[Record] = []
    ends: dict[int, int] = {p: max(offset, 0) for p, offset in start.items()}
    dry: set[int] = set()
    deadline = time.monotonic() + timeout
    last_arrival = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if len(dry) == len(start) and now - last_arrival >= settle:
                return records, ends
            if now > deadline:
                raise AssertionError(
                    f"{topic}: partitions {sorted(set(start) - dry)} not read to the end "
                    f"within {timeout}s ({len(records)} records read)"
                )
            message = consumer.poll(0.05)
            if message is None:
                continue
            partition = int(message.partition() or 0)
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    dry.add(partition)
                    ends[partition] = max(ends[partition], int(message.offset() or 0))
                    continue
                raise KafkaException(error)
            dry.discard(partition)
            last_arrival = time.monotonic()
            offset = int(message.offset() or 0)
            ends[partition] = max(ends[partition], offset + 1)
            _, timestamp = message.timestamp()
            records.append(
                Record(
                    topic=str(message.topic()),
                    partition=partition,
                    offset=offset,
                    key=message.key(),
                    value=message.value(),
                    headers=_received_headers(message),
                    timestamp=int(timestamp),
                )
            )
    finally:
        consumer.unassign()


def read_all(
    bootstrap: str, topic: str, timeout: float = 20.0, *, settle: float = 0.2
) -> list[Record]:
    """Every record of every partition of `topic`, from the beginning, ordered by
    (partition, offset). Uses assign(): joins no group, commits nothing."""
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, topic, timeout)
        records, _ = _drain(
            consumer, topic, dict.fromkeys(partitions, OFFSET_BEGINNING), timeout, settle
        )
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def read_values(bootstrap: str, topic: str, timeout: float = 20.0) -> list[bytes | None]:
    return [record.value for record in read_all(bootstrap, topic, timeout)]


def end_offsets(bootstrap: str, topic: str, timeout: float = 20.0) -> dict[int, int]:
    """True end offset (last offset + 1, 0 when empty) of each partition, found by reading.

    Reading starts at the broker's answer to ListOffsets minus one, which Tansu gives as the
    base offset of the last batch (+1): never past the end, so the tail read is short.
    """
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, topic, timeout)
        start: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            start[partition] = max(int(low), int(high) - 1, 0) if high > 0 else OFFSET_BEGINNING
        _, ends = _drain(consumer, topic, start, timeout, settle=0.2)
    finally:
        consumer.close()
    return ends


def committed_offsets(
    bootstrap: str, group: str, topic: str, timeout: float = 10.0
) -> dict[int, int]:
    """Offsets committed by consumer group `group` on `topic`: partition -> next offset to read.

    Partitions without a commit are left out. Does not join the group (no rebalance).
    """
    consumer = _consumer(bootstrap, group)
    try:
        partitions = _partitions(consumer, topic, timeout)
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in partitions], timeout=timeout
        )
    finally:
        consumer.close()
    result: dict[int, int] = {}
    for tp in committed:
        if tp.error is not None:
            raise KafkaException(tp.error)
        if tp.offset >= 0:
            result[tp.partition] = tp.offset
    return result


def all_committed(bootstrap: str, group: str, topic: str) -> bool:
    """Group `group` committed every partition of `topic` up to its true end."""
    committed = committed_offsets(bootstrap, group, topic)
    return all(committed.get(p, 0) >= end for p, end in end_offsets(bootstrap, topic).items())


def wait_for(
    condition: Any, timeout: float = 30.0, interval: float = 0.1, message: str = ""
) -> Any:
    """Poll `condition()` until it returns a truthy value (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)
