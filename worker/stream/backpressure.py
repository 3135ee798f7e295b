"""Backpressure: past `batching.max_pending_events` events not done, pause every assigned
partition and keep polling (rebalances and heartbeats go on); resume below half of it."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer

from worker.stream.kafka_thread import KafkaThread
from worker.stream.watermark import TopicPartitionKey

log = logging.getLogger(__name__)


class PartitionPauser:
    def __init__(self, kafka: KafkaThread, limit: int) -> None:
        self._kafka = kafka
        self._limit = limit
        self._consumer: Consumer | None = None
        self.paused = False
        self._paused_partitions: set[TopicPartitionKey] = set()

    def bind(self, consumer: Consumer) -> None:
        self._consumer = consumer

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
            await self._kafka.call(self._resume_all)
            log.info("Backpressure: resumed; outstanding_events=%d", outstanding_events)
        if self.paused:
            # Again on every turn: partitions assigned by a rebalance start unpaused.
            await self._kafka.call(self._pause_all)

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
