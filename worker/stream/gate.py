"""A hook that bounds what a worker reads: where each partition starts, which records count,
and when the run is over. The live worker has none; `capi-worker replay` uses one."""

from __future__ import annotations

from typing import Any, Protocol

from confluent_kafka import Consumer, TopicPartition


class RecordGate(Protocol):
    skip_reason: str  # the code a record left out by `admit` is counted as skipped under

    def consumer_settings(self) -> dict[str, Any]:
        """librdkafka settings this gate needs (e.g. partition EOF events)."""
        ...

    def start_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Set `offset` on newly assigned partitions before they are assigned (kafka thread)."""
        ...

    def admit(self, message: Any) -> bool:
        """False: the record is outside the run; it is done without being sent."""
        ...

    def reached_end(self, eof: Any) -> None:
        """A partition-EOF event: its partition was read dry at `eof.offset()`."""
        ...

    def finished(self, assigned: list[tuple[str, int]]) -> bool:
        """True once every assigned partition is complete: the worker drains and stops."""
        ...
