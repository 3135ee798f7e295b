"""The deliver stage: one batch for one pixel to the Graph API, then each event completes or
is dead-lettered with the reason Meta gave."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from worker.capi.delivery import DeliveryReport, EncodedEvents, EventFailure
from worker.capi.match_quality import count_keys
from worker.config import DestinationSettings
from worker.stream.batcher import Batch
from worker.stream.completion import Completion
from worker.stream.dead_letter import DeadLetterReason
from worker.stream.stats import WorkerStats
from worker.stream.tasks import RunningTasks

log = logging.getLogger(__name__)


class BatchDelivery(Protocol):
    """What the stage needs of the Graph client (`GraphDelivery`)."""

    async def deliver_encoded(
        self,
        destination: DestinationSettings,
        encoded: EncodedEvents,
        test_event_code: str | None = None,
    ) -> DeliveryReport: ...


class DeliverStage:
    def __init__(
        self,
        delivery: BatchDelivery,
        completion: Completion,
        stats: WorkerStats,
        tasks: RunningTasks,
    ) -> None:
        self._delivery = delivery
        self._completion = completion
        self._stats = stats
        self._tasks = tasks

    def send(self, batch: Batch) -> None:
        """Deliver `batch` in the background."""
        self._stats.count_batch(batch.destination.name, len(batch))
        self._tasks.spawn(self.deliver(batch))

    async def deliver(self, batch: Batch) -> None:
        destination = batch.destination
        records = batch.records
        started = time.monotonic()
        requests = 0
        try:
            report = await self._delivery.deliver_encoded(
                destination, batch.encoded, batch.test_event_code
            )
            failures, requests = report.failures, report.requests
            self._stats.requests += requests
        except Exception as error:  # a bug of ours: keep the records, never lose them silently
            log.exception(
                "Delivery crashed; destination=%s events=%d", destination.name, len(records)
            )
            failures = [
                EventFailure.internal_error(i, f"delivery failed: {error!r}")
                for i in range(len(records))
            ]
        completion = self._completion
        failed_at = {failure.index: failure for failure in failures}
        writes = []
        if not failed_at:
            completion.all_done(records)
        else:
            done = completion.done
            for index, record in enumerate(records):
                failure = failed_at.get(index)
                if failure is None:
                    done(record)
                else:
                    why = DeadLetterReason.of_failure(failure, destination)
                    if completion.may_dead_letter(why):
                        writes.append(completion.dead_letter_now(record, why))
        delivered = len(records) - len(failed_at)
        keys = count_keys(batch.user_data_keys, failed_at)
        self._stats.count_delivered(destination.name, destination.pixel_id, delivered, keys)
        completion.succeeded(delivered)
        log.info(
            "Batch done; destination=%s events=%d delivered=%d dead_lettered=%d requests=%d "
            "elapsed=%.3fs",
            destination.name,
            len(records),
            delivered,
            len(failed_at),
            requests,
            time.monotonic() - started,
        )
        if writes:
            await asyncio.gather(*writes)
