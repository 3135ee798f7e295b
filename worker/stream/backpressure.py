"""Pausing the assigned partitions while polling goes on (rebalances and the group's
`max.poll.interval.ms` are served, no record is fetched):

- backpressure: past `batching.max_pending_events` events not done; resumed below half of it;
- holding: while the hot path waits (the schema registry), `poll_while_held` keeps the consumer
  polled; resumed once the wait is over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from worker.stream.kafka_thread import KafkaThread
from worker.stream.watermark import TopicPartitionKey

log = logging.getLogger(__name__)


class PartitionPauser:
    def __init__(self, kafka: KafkaThread, limit: int) -> None:
        self._kafka = kafka
        self._limit = limit
        self._consumer: Consumer | None = None
        self._on_eof: Callable[[Any], None] | None = None
        self.paused = False  # by backpressure
        self._held = False
        self._paused_partitions: set[TopicPartitionKey] = set()

    def bind(self, consumer: Consumer, on_eof: Callable[[Any], None] | None = None) -> None:
        """`on_eof` hears of partition-EOF events polled while held (a replay's gate)."""
        self._consumer, self._on_eof = consumer, on_eof

    @property
    def paused_partitions(self) -> int:
        return len(self._paused_partitions)

    async def apply(self, outstanding_events: int) -> None:
        """Once per turn of the poll loop, before fetching."""
        if not self.paused and outstanding_events >= self._limit:
            self.paused = True
            log.info("Backpressure: pausing; outstanding_events=%d", outstanding_events)
        elif self.paused and outstanding_events <= self._limit // 2:
            self.paused = False
            log.info("Backpressure: resumed; outstanding_events=%d", outstanding_events)
        await self._sync()

    async def poll_while_held(self) -> None:
        """The hot path is waiting: pause everything assigned, then poll once without waiting
        (a rebalance is served, the poll interval reset). A record that still comes (fetched
        before the pause) is not handled now: its partition is rewound to it, so it is fetched
        again once resumed. A partition-EOF event goes to `on_eof` (a replay's gate)."""
        assert self._consumer is not None
        self._held = True
        await self._sync()
        early = await self._kafka.call(self._poll_paused)
        for message in early:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and self._on_eof is not None:
                    self._on_eof(message)
                continue
        rewind: dict[TopicPartitionKey, int] = {}
        for message in early:
            if message.error() is None:
                key = (message.topic(), message.partition())
                rewind[key] = min(rewind.get(key, message.offset()), message.offset())
        if rewind:
            await self._kafka.call(self._rewind, rewind)
            log.info("Polled while waiting; rewound to %s", rewind)

    def release(self) -> None:
        """The wait is over: the next `apply` resumes unless backpressure says otherwise."""
        self._held = False

    async def _sync(self) -> None:
        if self.paused or self._held:
            # Again on every turn: partitions assigned by a rebalance start unpaused.
            await self._kafka.call(self._pause_all)
        elif self._paused_partitions:
            await self._kafka.call(self._resume_all)

    def _poll_paused(self) -> list[Any]:
        assert self._consumer is not None
        self._pause_all()  # a rebalance may have assigned more since the pause
        return self._consumer.consume(100, 0)

    def _rewind(self, positions: dict[TopicPartitionKey, int]) -> None:
        assert self._consumer is not None
        for (topic, partition), offset in positions.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as error:  # revoked meanwhile: its next owner reads it
                log.warning("Rewind failed; partition=%s[%d] error=%s", topic, partition, error)

    def forget(self, keys: list[TopicPartitionKey]) -> None:
        """Partitions revoked or lost are no longer paused by us."""
        self._paused_partitions.difference_update(keys)

    def _pause_all(self) -> None:
        """Pause what is assigned and not paused yet: pausing the same partition again and again
        only churns librdkafka's fetch state."""
        assert self._consumer is not None
        unpaused = [
            tp
            for tp in self._consumer.assignment()
            if (tp.topic, tp.partition) not in self._paused_partitions
        ]
        if unpaused:
            self._consumer.pause(unpaused)
            self._paused_partitions.update((tp.topic, tp.partition) for tp in unpaused)

    def _resume_all(self) -> None:
        assert self._consumer is not None
        self._consumer.resume(self._consumer.assignment())
        self._paused_partitions.clear()
