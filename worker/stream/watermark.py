"""What may be committed: a contiguous "done" watermark per partition.

A record is done when every event born from it is delivered, skipped on purpose or written to
the dead-letter topic. Batches for different pixels finish out of order, so the commit position
of a partition is the lowest offset that is not done yet (or one past the last record seen).
"""

from __future__ import annotations

from collections import deque
from typing import Any


class PartitionWatermark:
    """Done-ness of the records of one partition, in the order they were consumed."""

    __slots__ = ("_in_order", "_next_offset", "_not_done", "committed")

    def __init__(self) -> None:
        self._in_order: deque[int] = deque()
        self._not_done: set[int] = set()
        self._next_offset: int | None = None
        self.committed: int | None = None  # the last position handed to a commit

    def is_new(self, offset: int) -> bool:
        """False for a record at or below one already seen. Within one assignment the worker
        never seeks, so such a record is a re-fetch (librdkafka can rewind a partition whose
        start offset was being looked up while it was paused) and was already handled."""
        return self._next_offset is None or offset >= self._next_offset

    def track(self, offset: int, done: bool = False) -> None:
        """Record that `offset` was consumed; offsets of one partition arrive in order."""
        self._next_offset = offset + 1
        if not done:
            self._in_order.append(offset)
            self._not_done.add(offset)

    def mark_done(self, offset: int) -> None:
        self._not_done.discard(offset)

    @property
    def pending(self) -> int:
        return len(self._not_done)

    def commit_position(self) -> int | None:
        """The offset to commit: every record below it is done. None before the first record."""
        in_order, not_done = self._in_order, self._not_done
        while in_order and in_order[0] not in not_done:
            in_order.popleft()
        if in_order:
            return in_order[0]
        return self._next_offset


class InFlightRecord:
    """One consumed record and how many of its events are not done yet.

    `message` is the original confluent-kafka Message, kept for the dead-letter copy (its key,
    value, headers and timestamp, byte for byte). It holds copies of those, not librdkafka's
    fetch buffer.
    """

    __slots__ = ("message", "offset", "remaining", "watermark")

    def __init__(
        self,
        message: Any,
        watermark: PartitionWatermark,
        remaining: int,
        offset: int | None = None,
    ) -> None:
        self.message = message
        self.offset: int = message.offset() if offset is None else offset
        self.watermark = watermark
        self.remaining = remaining

    def complete_one(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.watermark.mark_done(self.offset)


TopicPartitionKey = tuple[str, int]


class OffsetLedger:
    """The watermarks of the partitions this consumer owns right now."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, PartitionWatermark] = {}

    def assign(self, keys: list[TopicPartitionKey]) -> None:
        for key in keys:
            self._partitions[key] = PartitionWatermark()

    def forget(self, keys: list[TopicPartitionKey]) -> None:
        """Stop tracking revoked or lost partitions; records still in flight no longer count."""
        for key in keys:
            self._partitions.pop(key, None)

    def get(self, key: TopicPartitionKey) -> PartitionWatermark | None:
        return self._partitions.get(key)

    def owned(self) -> list[TopicPartitionKey]:
        return list(self._partitions)

    def positions_to_commit(
        self, keys: list[TopicPartitionKey] | None = None
    ) -> dict[TopicPartitionKey, int]:
        """Commit positions that moved since the last commit (all owned partitions by default)."""
        moved: dict[TopicPartitionKey, int] = {}
        for key in self._partitions if keys is None else keys:
            watermark = self._partitions.get(key)
            if watermark is None:
                continue
            position = watermark.commit_position()
            if position is not None and position != watermark.committed:
                moved[key] = position
        return moved

    def confirm_committed(self, positions: dict[TopicPartitionKey, int]) -> None:
        for key, position in positions.items():
            watermark = self._partitions.get(key)
            if watermark is not None:
                watermark.committed = position
