"""The commit coordinator: the one owner of "what may be committed now" and of every commit.

A record is done when every event born from it is delivered, skipped on purpose or written to
the dead-letter topic (acknowledged). `PartitionWatermark` turns done-ness into a contiguous
commit position per partition; this module decides when positions are committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from worker.stream.kafka_thread import KafkaThread
from worker.stream.stats import WorkerStats
from worker.stream.watermark import (
    InFlightRecord,
    OffsetLedger,
    PartitionWatermark,
    TopicPartitionKey,
)
from worker.telemetry import metrics

log = logging.getLogger(__name__)

RELEASE_POLL_SECONDS = 0.02


class CommitCoordinator:
    """Owns the offset ledger, the count of events not done yet, and every commit.

    Every commit follows one order:

    1. flush: the open batches are handed to delivery (`flush`), so nothing waits on a linger;
    2. wait: until the records concerned are done, or the budget is spent (revoke, shutdown);
    3. positions: per partition, the lowest offset not done yet (`OffsetLedger`);
    4. ownership: only partitions this consumer still owns are committed;
    5. commit synchronously; the positions the broker accepted are remembered, a partition it
       refused is committed again next time.

    Periodically (`kafka.commit_interval_ms`): 3 to 5. On revoke (kafka thread, inside
    `consume` or `close`): 1 to 5 for the revoked partitions within `runtime.revoke_timeout_seconds`
    (never past the shutdown deadline), then they are forgotten. On lost: forgotten, nothing
    committed. On shutdown (`drain`, then `commit`): 1 and 2 for everything within the SIGTERM
    budget, 3 to 5, then `close()` revokes what is left through the revoke path.
    """

    def __init__(
        self,
        kafka: KafkaThread,
        stats: WorkerStats,
        *,
        commit_interval_seconds: float,
        revoke_timeout_seconds: float,
    ) -> None:
        self._kafka = kafka
        self._stats = stats
        self._interval = commit_interval_seconds
        self._revoke_timeout = revoke_timeout_seconds
        self._ledger = OffsetLedger()
        self._outstanding_events = 0  # batched, in flight, or waiting for a dead-letter ack
        self._consumer: Consumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush: Callable[[], None] = _nothing
        self._working: Callable[[], bool] = _never
        self._on_forget: Callable[[list[TopicPartitionKey]], None] = _ignore
        self.shutdown_deadline: float | None = None  # monotonic; set when shutdown begins
        self.joined_group = False

    def bind(
        self,
        consumer: Consumer,
        loop: asyncio.AbstractEventLoop,
        *,
        flush: Callable[[], None],
        working: Callable[[], bool],
        on_forget: Callable[[list[TopicPartitionKey]], None],
    ) -> None:
        """Attach the running consumer. `flush` hands every open batch to delivery;
        `working` says whether a delivery or dead-letter write is still running (records
        finish only through those); `on_forget` hears of partitions revoked or lost."""
        self._consumer, self._loop = consumer, loop
        self._flush, self._working, self._on_forget = flush, working, on_forget

    # ---- the ledger: what is not done yet -------------------------------------------------

    def watermark(self, key: TopicPartitionKey) -> PartitionWatermark | None:
        """The partition's watermark; None when it is not (or no longer) ours."""
        return self._ledger.get(key)

    def owned(self) -> list[TopicPartitionKey]:
        return self._ledger.owned()

    @property
    def outstanding_events(self) -> int:
        """Events batched, in flight or waiting for a dead-letter acknowledgement."""
        return self._outstanding_events

    def events_born(self, count: int) -> None:
        """`count` events were handed on (to a batch or a dead-letter write)."""
        self._outstanding_events += count

    def complete(self, record: InFlightRecord) -> None:
        """One event of `record` is done."""
        self._outstanding_events -= 1
        record.complete_one()

    def complete_all(self, records: list[InFlightRecord]) -> None:
        """One event of each of `records` is done (a batch delivered whole)."""
        self._outstanding_events -= len(records)
        for record in records:
            record.complete_one()

    def positions(self) -> dict[TopicPartitionKey, int]:
        """Commit positions that moved since the last commit (steps 3, owned partitions)."""
        return self._ledger.positions_to_commit()

    # ---- committing -----------------------------------------------------------------------

    async def commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.commit()

    async def commit(self) -> None:
        """Steps 3 to 5 for every owned partition (periodic and final commits)."""
        positions = self._ledger.positions_to_commit()
        if not positions:
            return
        try:
            committed = await self._kafka.call(self._commit_owned, positions)
        except KafkaException as error:
            log.warning("Commit failed, will retry; error=%s", error)
            return
        self._ledger.confirm_committed(committed)

    async def drain(self, budget: float) -> None:
        """Shutdown, steps 1 and 2: flush, then wait until no delivery or dead-letter write is
        running, within `budget` (the deadline also bounds the revokes of `close()`). The
        final `commit()` follows."""
        self.shutdown_deadline = time.monotonic() + budget
        self._flush()
        await self._wait_until(_always)

    def _commit_owned(
        self, positions: dict[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, int]:
        """Kafka thread. Step 4 then 5: only partitions still assigned to us."""
        assert self._consumer is not None
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        mine = {key: offset for key, offset in positions.items() if key in owned}
        return self._commit_positions(self._consumer, mine) if mine else {}

    def _commit_positions(
        self, consumer: Consumer, positions: dict[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, int]:
        """Step 5: a synchronous commit; a partition the broker refused is logged, left out."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        answered = consumer.commit(offsets=offsets, asynchronous=False) or []
        refused = {(tp.topic, tp.partition): tp.error for tp in answered if tp.error}
        for (topic, partition), error in refused.items():
            log.warning("Commit refused; partition=%s[%d] error=%s", topic, partition, error)
        accepted = {key: offset for key, offset in positions.items() if key not in refused}
        self._stats.commits += 1
        metrics.LAST_COMMIT_TIMESTAMP.set(time.time())
        log.debug("Committed; offsets=%s", accepted)
        return accepted

    # ---- rebalance callbacks (kafka thread, inside consume/close) -------------------------

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self._call_on_loop(self.assign, keys)
        log.info("Partitions assigned; partitions=%s", describe(keys))

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        assert self._loop is not None
        released = asyncio.run_coroutine_threadsafe(self._release(keys), self._loop)
        positions = released.result()
        if positions:
            try:
                positions = self._commit_positions(consumer, positions)
            except KafkaException as error:
                log.warning("Commit on revoke failed; error=%s", error)
                positions = {}
        log.info("Partitions revoked; partitions=%s committed=%s", describe(keys), positions)

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self._call_on_loop(self._forget, keys)
        log.warning("Partitions lost, nothing committed; partitions=%s", describe(keys))

    def assign(self, keys: list[TopicPartitionKey]) -> None:
        """Loop thread: start tracking newly assigned partitions."""
        self._ledger.assign(keys)
        self.joined_group = True
        metrics.PARTITIONS_ASSIGNED.set(len(self._ledger.owned()))

    def _forget(self, keys: list[TopicPartitionKey]) -> None:
        self._ledger.forget(keys)
        self._on_forget(keys)
        metrics.PARTITIONS_ASSIGNED.set(len(self._ledger.owned()))

    async def _release(self, keys: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Steps 1 to 3 for revoked partitions, then forget them."""
        self._flush()
        ledger = self._ledger
        await self._wait_until(
            lambda: any((w := ledger.get(key)) is not None and w.pending for key in keys),
            self._revoke_timeout,
        )
        positions = ledger.positions_to_commit(keys)
        self._forget(keys)
        return positions

    async def _wait_until(self, not_done: Callable[[], bool], budget: float | None = None) -> None:
        """Step 2: wait while `not_done()`, within `budget` and the shutdown deadline. Records
        finish only through running deliveries and dead-letter writes: with none left (say,
        the circuit breaker held a record back), waiting longer cannot help."""
        deadline = time.monotonic() + budget if budget is not None else None
        if self.shutdown_deadline is not None:
            deadline = min(deadline or self.shutdown_deadline, self.shutdown_deadline)
        while self._working() and not_done() and (deadline is None or time.monotonic() < deadline):
            await asyncio.sleep(RELEASE_POLL_SECONDS)

    def _call_on_loop(
        self, fn: Callable[[list[TopicPartitionKey]], None], keys: list[TopicPartitionKey]
    ) -> None:
        assert self._loop is not None

        async def call() -> None:
            fn(keys)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result()


def describe(keys: list[TopicPartitionKey]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in keys) or "-"


def _nothing() -> None:
    return None


def _never() -> bool:
    return False


def _ignore(_keys: list[TopicPartitionKey]) -> None:
    return None


def _always() -> bool:
    return True
