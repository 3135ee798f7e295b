"""The complete stage: an event is done once delivered, skipped on purpose or written to the
dead-letter topic (acknowledged). The circuit breaker decides whether a failed event may be
dead-lettered; once it is open nothing more is, and those records are never committed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from worker.stream.breaker import FailureBreaker
from worker.stream.commit import CommitCoordinator
from worker.stream.dead_letter import DeadLetterReason, DeadLetterWriter
from worker.stream.stats import WorkerStats
from worker.stream.tasks import RunningTasks
from worker.stream.watermark import InFlightRecord

log = logging.getLogger(__name__)


class Completion:
    def __init__(
        self,
        coordinator: CommitCoordinator,
        breaker: FailureBreaker,
        stats: WorkerStats,
        tasks: RunningTasks,
        dead_letters: DeadLetterWriter,
        *,
        on_trip: Callable[[str], None],
    ) -> None:
        self._coordinator = coordinator
        self._breaker = breaker
        self._stats = stats
        self._tasks = tasks
        self._dead_letters = dead_letters
        self._on_trip = on_trip
        self.tripped: str | None = None  # why the circuit breaker stopped the worker

    def done(self, record: InFlightRecord) -> None:
        """One event of `record` was delivered."""
        self._coordinator.complete(record)

    def all_done(self, records: list[InFlightRecord]) -> None:
        """One event of each of `records` was delivered (a batch without failures)."""
        self._coordinator.complete_all(records)

    def succeeded(self, events: int = 1) -> None:
        """Events delivered or skipped on purpose: the breaker counts them as going well."""
        self._breaker.succeeded(events)

    def dead_letter(self, record: InFlightRecord, why: DeadLetterReason) -> None:
        """Dead-letter one event of `record` in the background, if the breaker allows it."""
        if self.may_dead_letter(why):
            self._tasks.spawn(self.dead_letter_now(record, why))

    def may_dead_letter(self, why: DeadLetterReason) -> bool:
        """Ask the circuit breaker. Once it is open nothing more is dead-lettered: those records
        stay not done, so they are not committed and are read again after the fix."""
        if self.tripped is None:
            verdict = self._breaker.failed(why.stage, why.reason)
            if verdict is not None:
                self.tripped = verdict
                log.critical(
                    "Circuit breaker open, stopping instead of dead-lettering the stream; %s. "
                    "Fix the cause (deploy, configuration) and restart; see circuit_breaker.*",
                    verdict,
                )
                self._on_trip(verdict)
        return self.tripped is None

    async def dead_letter_now(self, record: InFlightRecord, why: DeadLetterReason) -> None:
        await self._dead_letters.write(record.message, why)
        self._stats.count_dead_lettered(why.destination, why.stage, why.reason)
        self._coordinator.complete(record)
