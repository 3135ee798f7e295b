"""Reading the dead-letter topic for `capi-worker dlq`: every partition, from the beginning.

The reader uses `assign()` with a throw-away group id: it joins no consumer group, never
commits, and leaves the worker's offsets alone. Each partition is read until it is dry (the
consumer reported its end and nothing arrived for a short settle time) rather than up to the
high watermark the broker announces, because some brokers answer that too low. Partitions are
read one after the other, so records come in (partition, offset) order and `--limit` is
deterministic and stops reading early.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from worker.config import Settings
from worker.kafka_config import inspection_consumer_config
from worker.stream.dead_letter import HEADER_PREFIX

Header = tuple[str, bytes | None]

REDRIVE_COUNT_HEADER = "capi.redrive.count"


class DeadLetterReadError(RuntimeError):
    """The dead-letter topic could not be read (absent, unreachable, broker error)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter record, detached from librdkafka."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None  # the original record's timestamp, kept by the dead-letter writer
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(default_factory=list)

    @classmethod
    def from_message(cls, message: Any) -> DeadLetter:
        kind, stamp = message.timestamp()
        raw = message.headers() or []
        items = raw.items() if isinstance(raw, dict) else raw
        headers: list[Header] = [
            (str(name), value.encode() if isinstance(value, str) else value)
            for name, value in items
        ]
        return cls(
            topic=str(message.topic()),
            partition=int(message.partition() or 0),
            offset=int(message.offset() or 0),
            timestamp_ms=None if kind == 0 else int(stamp),
            key=message.key(),
            value=message.value(),
            headers=headers,
        )

    # -- the capi.dlq.* headers ----------------------------------------------------------------

    def dlq(self, name: str) -> str | None:
        """The last `capi.dlq.<name>` header as text (None when absent)."""
        wanted = HEADER_PREFIX + name
        for key, value in reversed(self.headers):
            if key == wanted:
                return None if value is None else value.decode("utf-8", errors="replace")
        return None

    def dlq_int(self, name: str) -> int | None:
        text = self.dlq(name)
        try:
            return int(text) if text is not None else None
        except ValueError:
            return None

    @property
    def stage(self) -> str | None:
        return self.dlq("stage")

    @property
    def reason(self) -> str | None:
        return self.dlq("reason")

    @property
    def message(self) -> str | None:
        return self.dlq("message")

    @property
    def destination(self) -> str | None:
        return self.dlq("destination")

    @property
    def pixel_id(self) -> str | None:
        return self.dlq("pixel_id")

    @property
    def source_topic(self) -> str | None:
        return self.dlq("source_topic")

    @property
    def source_partition(self) -> int | None:
        return self.dlq_int("source_partition")

    @property
    def source_offset(self) -> int | None:
        return self.dlq_int("source_offset")

    @property
    def attempts(self) -> int | None:
        return self.dlq_int("attempts")

    @property
    def time(self) -> float | None:
        """When the record was dead-lettered (Unix seconds), from `capi.dlq.time`."""
        text = self.dlq("time")
        try:
            return float(text) if text is not None else None
        except ValueError:
            return None

    def original_headers(self) -> list[Header]:
        """The source record's own headers: everything but `capi.dlq.*`, in order."""
        return [(k, v) for k, v in self.headers if not k.startswith(HEADER_PREFIX)]

    def original_header(self, name: str) -> bytes | None:
        for key, value in reversed(self.original_headers()):
            if key == name:
                return value
        return None

    def position(self) -> str:
        """`topic[partition]@offset` of this dead letter."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def source_position(self) -> str:
        partition, offset = self.source_partition, self.source_offset
        where = "?" if partition is None else str(partition)
        at = "?" if offset is None else str(offset)
        return f"{self.source_topic or '?'}[{where}]@{at}"


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters a command works on. Empty sets mean "any"."""

    reasons: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    pixels: frozenset[str] = frozenset()  # pixel ids or destination names
    since: float | None = None  # on capi.dlq.time, inclusive
    until: float | None = None  # on capi.dlq.time, inclusive

    def matches(self, record: DeadLetter) -> bool:
        if self.reasons and record.reason not in self.reasons:
            return False
        if self.stages and record.stage not in self.stages:
            return False
        if self.pixels and not (
            record.pixel_id in self.pixels or record.destination in self.pixels
        ):
            return False
        if self.since is not None or self.until is not None:
            moment = record.time
            if moment is None:
                return False
            if self.since is not None and moment < self.since:
                return False
            if self.until is not None and moment > self.until:
                return False
        return True


Progress = Callable[[int, int | None], None]  # (records read so far, estimated total)


class DeadLetterReader:
    """Reads a dead-letter topic from the beginning; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        topic: str | None = None,
        *,
        settle_seconds: float = 0.25,
        idle_timeout_seconds: float = 30.0,
    ) -> None:
        self._config = inspection_consumer_config(settings)
        self.topic = topic or settings.kafka.dead_letter_topic
        self._settle = settle_seconds
        self._idle_timeout = idle_timeout_seconds
        self.scanned = 0  # records read, matching or not

    def read(
        self,
        matches: Callable[[DeadLetter], bool] = lambda _record: True,
        limit: int | None = None,
        progress: Progress | None = None,
    ) -> Iterator[DeadLetter]:
        """The matching records, in (partition, offset) order; stops after `limit` of them."""
        if limit is not None and limit <= 0:
            return
        consumer = Consumer(self._config)
        try:
            partitions = self._partitions(consumer)
            estimate = self._estimate(consumer, partitions)
            if progress is not None:
                progress(0, estimate)
            found = 0
            for partition in partitions:
                for record in self._read_partition(consumer, partition):
                    self.scanned += 1
                    if progress is not None and self.scanned % 200 == 0:
                        progress(self.scanned, estimate)
                    if not matches(record):
                        continue
                    yield record
                    found += 1
                    if limit is not None and found >= limit:
                        return
            if progress is not None:
                progress(self.scanned, estimate)
        finally:
            consumer.close()

    def _partitions(self, consumer: Consumer) -> list[int]:
        try:
            metadata = consumer.list_topics(self.topic, timeout=15).topics.get(self.topic)
        except KafkaException as error:
            raise DeadLetterReadError(f"cannot reach the brokers: {error}") from None
        if metadata is None or metadata.error is not None or not metadata.partitions:
            detail = metadata.error.str() if metadata and metadata.error else "no partitions"
            raise DeadLetterReadError(f"dead-letter topic {self.topic} cannot be read: {detail}")
        return sorted(metadata.partitions)

    def _estimate(self, consumer: Consumer, partitions: Iterable[int]) -> int | None:
        """Records in the topic as the broker announces them: a progress estimate only."""
        total = 0
        try:
            for partition in partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=5, cached=False
                )
                total += max(int(high) - max(int(low), 0), 0)
        except KafkaException:
            return None
        return total

    def _read_partition(self, consumer: Consumer, partition: int) -> Iterator[DeadLetter]:
        consumer.assign([TopicPartition(self.topic, partition, OFFSET_BEGINNING)])
        try:
            dry_since: float | None = None
            last_sign = time.monotonic()  # last record or end-of-partition report
            while True:
                messages = consumer.consume(500, 0.1)
                now = time.monotonic()
                for message in messages:
                    error = message.error()
                    if error is None:
                        dry_since = None
                        last_sign = now
                        yield DeadLetter.from_message(message)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        dry_since = dry_since or now
                        last_sign = now
                    else:
                        raise DeadLetterReadError(
                            f"reading {self.topic}[{partition}] failed: {error.str()}"
                        )
                if dry_since is not None and now - dry_since >= self._settle:
                    return
                if now - last_sign > self._idle_timeout:
                    raise DeadLetterReadError(
                        f"{self.topic}[{partition}]: no record and no end of partition within "
                        f"{self._idle_timeout:g}s (are the brokers reachable?)"
                    )
        finally:
            consumer.unassign()
