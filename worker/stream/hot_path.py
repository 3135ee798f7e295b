"""The hot path for one fetch of records: decode -> route and map -> batch, in that order.

Each record is tracked on its partition's watermark as it is read; its events are then handed
on: a serialised event to its destination's batch (`send` once a batch is cut), a record that
cannot be sent to `dead_letter`, a deliberate skip straight to done. Delivery, completion and
commit happen later, in their own stages (`deliver`, `completion`, `commit`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from worker import reasons
from worker.decode import DecodeError, SchemaNotCached, read_headers
from worker.mapping.result import Invalid, Skipped
from worker.stream.batcher import Batch, PixelBatcher
from worker.stream.commit import CommitCoordinator
from worker.stream.dead_letter import DeadLetterReason
from worker.stream.decoding import DecodeStage
from worker.stream.gate import RecordGate
from worker.stream.route_and_map import RouteAndMap
from worker.stream.stats import WorkerStats
from worker.stream.watermark import InFlightRecord, PartitionWatermark

log = logging.getLogger(__name__)


class HotPath:
    def __init__(
        self,
        *,
        decode: DecodeStage,
        route_and_map: RouteAndMap,
        batcher: PixelBatcher,
        coordinator: CommitCoordinator,
        stats: WorkerStats,
        send: Callable[[Batch], None],
        dead_letter: Callable[[InFlightRecord, DeadLetterReason], None],
        skipped: Callable[[], None],
        halted: Callable[[], bool],
        gate: RecordGate | None = None,
    ) -> None:
        """`send` delivers a cut batch, `dead_letter` writes one event of a record to the
        dead-letter topic, `skipped` tells the breaker an event went well on purpose; while
        `halted()` (the breaker is open) no more records are handled."""
        self._decode = decode
        self.route_and_map = route_and_map
        self._batcher = batcher
        self._coordinator = coordinator
        self._stats = stats
        self._send = send
        self._dead_letter = dead_letter
        self._skipped = skipped
        self._halted = halted
        self._gate = gate

    def send_due(self) -> None:
        """Send the batches whose linger is over."""
        for batch in self._batcher.due():
            self._send(batch)

    def flush(self) -> None:
        """Send every open batch now (revoke, shutdown)."""
        for batch in self._batcher.drain():
            self._send(batch)

    async def handle(self, messages: list[Any]) -> None:
        """One fetch: every record is tracked, then decoded, routed, mapped and handed on.

        `halted()` is asked before the first record and again after whatever can change its
        answer: a dead letter (the breaker counts failures as they are dead-lettered) and a wait
        (deliveries finish meanwhile). Nothing else within a fetch can trip the breaker."""
        now = time.time()
        consumed: dict[str, int] = {}  # by topic, counted once per fetch (not per record)
        coordinator, gate, decode = self._coordinator, self._gate, self._decode.decode
        halted = self._halted
        ask_halted = True
        last_topic = ""  # no topic is named ""
        last_partition = -1
        watermark: PartitionWatermark | None = None
        counted = 0  # records of `last_topic` not yet in `consumed`
        try:
            for message in messages:
                if ask_halted:
                    if halted():
                        return
                    ask_halted = False
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if gate is not None:
                            gate.reached_end(message)
                        continue
                    if error.fatal():
                        raise KafkaException(error)
                    log.warning("Consumer error; error=%s", error)
                    continue
                topic, partition = message.topic(), message.partition()
                if partition != last_partition or topic != last_topic:
                    # A fetch hands over runs of records of one partition: look up on a change.
                    if counted:
                        consumed[last_topic] = consumed.get(last_topic, 0) + counted
                        counted = 0
                    last_topic, last_partition = topic, partition
                    watermark = coordinator.watermark((topic, partition))
                if watermark is None:  # revoked while this fetch was on its way
                    continue
                offset = message.offset()
                if not watermark.is_new(offset):
                    self._stats.count_refetched(topic)
                    continue
                counted += 1
                if gate is not None and not gate.admit(message):
                    watermark.track(offset, True)
                    self._stats.count_skipped("", gate.skip_reason)
                    continue
                decoded: dict[str, Any] | Invalid | None
                try:
                    decoded = decode(message.value())
                except (DecodeError, SchemaNotCached) as failure:
                    decoded = await self._decode.recover(message.value(), failure)
                    if decoded is None:  # stopping while the schema registry was unreachable
                        return
                    ask_halted = True
                    last_partition = -1  # look the partition up again after waiting
                if isinstance(decoded, Invalid):
                    watermark.track(offset)
                    record = InFlightRecord(message, watermark, 1, offset)
                    coordinator.events_born(1)
                    self._dead_letter(record, DeadLetterReason.of_invalid(decoded, None))
                    ask_halted = True
                    continue
                if self._route_and_map(message, offset, decoded, watermark, now):
                    ask_halted = True
        finally:
            if counted:
                consumed[last_topic] = consumed.get(last_topic, 0) + counted
            for topic, count in consumed.items():
                self._stats.count_consumed(topic, count)

    def _route_and_map(
        self,
        message: Any,
        offset: int,
        decoded: dict[str, Any],
        watermark: PartitionWatermark,
        now: float,
    ) -> bool:
        """Hand each event of the record on; True when one of them was dead-lettered."""
        routed = self.route_and_map(decoded, read_headers(message), now)
        # `remaining` is set once every event is handed on: nothing can complete before this
        # method returns (deliveries and dead-letter writes run as tasks, later).
        record = InFlightRecord(message, watermark, 0, offset)
        remaining = 0
        dead_lettered = False
        if isinstance(routed, Invalid):  # routing itself failed: one dead letter, no pixel
            remaining = 1
            self._dead_letter(record, DeadLetterReason.of_invalid(routed, None))
            dead_lettered = True
            routed = []
        elif not routed:  # counted once per record, not once per destination
            self._stats.count_skipped("", reasons.NOT_ROUTED)
        batcher, send = self._batcher, self._send
        for destination, outcome, test_event_code, user_data_keys in routed:
            if type(outcome) is bytes:
                remaining += 1
                ready = batcher.add(destination, outcome, record, test_event_code, user_data_keys)
                if ready:
                    for batch in ready:
                        send(batch)
            elif isinstance(outcome, Skipped):
                self._stats.count_skipped(destination.name, outcome.reason)
                self._skipped()
            else:
                assert isinstance(outcome, Invalid)
                remaining += 1
                self._dead_letter(record, DeadLetterReason.of_invalid(outcome, destination))
                dead_lettered = True
        record.remaining = remaining
        watermark.track(offset, not remaining)
        if remaining:
            self._coordinator.events_born(remaining)
        return dead_lettered
