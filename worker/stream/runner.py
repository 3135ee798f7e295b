"""The worker loop: consume, map, batch per pixel, deliver, dead-letter, commit.

Threading model: one asyncio loop owns every piece of state (ledger, batcher, stats). The
confluent-kafka consumer is only ever called from one dedicated thread (`kafka`), so `poll` never
waits on HTTP and consumer calls never race each other. Rebalance callbacks run inside `consume`
on that thread; they hand their work to the loop and wait for it.

Commit rule: a partition's offset moves only past records that are done, see watermark.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from worker.capi.delivery import EventFailure, GraphDelivery
from worker.capi.match_quality import count_keys, user_data_signature
from worker.config import ConfigError, DestinationSettings, Settings
from worker.decode import DecodeError, build_decoder, read_headers
from worker.destination_set import DestinationSet
from worker.kafka_config import consumer_config, kafka_error_text, producer_config
from worker.mapping.result import Invalid, Mapped, Skipped
from worker.pipeline import NOT_ROUTED, map_routed
from worker.stream.batcher import Batch, PixelBatcher
from worker.stream.breaker import CircuitOpen, FailureBreaker
from worker.stream.dead_letter import DeadLetterReason, DeadLetterWriter
from worker.stream.gate import RecordGate
from worker.stream.stats import WorkerStats
from worker.stream.watermark import (
    InFlightRecord,
    OffsetLedger,
    PartitionWatermark,
    TopicPartitionKey,
)
from worker.telemetry import metrics
from worker.telemetry.health import HealthChecks, heartbeat_check, start_health_server

log = logging.getLogger(__name__)

T = TypeVar("T")

CONSUME_BATCH = 500
CONSUME_TIMEOUT_SECONDS = 0.1
PROGRESS_EVERY_SECONDS = 10.0
DECODE_RETRY_MAX_SECONDS = 30.0


def settle_garbage_collector() -> None:
    """For a long-running worker process, once everything is imported and configured: collect,
    then freeze what survived (modules, settings, clients) so that later collections of the
    oldest generation no longer walk it. Records are mostly freed by reference counting; what
    the collector still has to look at are the records and batches in flight."""
    gc.collect()
    gc.freeze()


class Worker:
    """One consumer-group member. `await run(stop)` until `stop` is set, then drain and commit."""

    def __init__(
        self,
        settings: Settings,
        gate: RecordGate | None = None,
        *,
        on_health_port: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self._gate = gate
        self._on_health_port = on_health_port  # told the bound port (the supervisor's children)
        self._breaker = FailureBreaker(settings.circuit_breaker)
        self._tripped: str | None = None  # why the circuit breaker stopped the worker
        self.stats = WorkerStats()
        self._destinations = DestinationSet.from_settings(settings)
        self.stats.expect(self._destinations)
        self._decoder = build_decoder(settings.decoding)
        self._ledger = OffsetLedger()
        batching = settings.batching
        self._batcher = PixelBatcher(
            batching.max_events, batching.max_bytes, batching.linger_ms / 1000, time.monotonic
        )
        self._kafka_thread = ThreadPoolExecutor(1, thread_name_prefix="kafka")
        self._tasks: set[asyncio.Task[None]] = set()
        self._outstanding_events = 0  # batched, in flight, or waiting for a dead-letter ack
        self._paused = False
        self._paused_partitions: set[TopicPartitionKey] = set()
        self._stopping = asyncio.Event()
        self._shutdown_deadline: float | None = None
        self._last_turn = time.monotonic()
        self._joined_group = False
        self._brokers_down = False
        self.health_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self._dead_letters: DeadLetterWriter | None = None
        self._delivery: GraphDelivery | None = None

    @property
    def outstanding_events(self) -> int:
        """Events batched, in flight or waiting for a dead-letter acknowledgement."""
        return self._outstanding_events

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        librdkafka_log = logging.getLogger("librdkafka")
        try:
            self._consumer = Consumer(
                {
                    **consumer_config(self.settings),
                    "stats_cb": _record_consumer_lag,
                    "error_cb": self._on_kafka_error,
                    "logger": librdkafka_log,
                    **(self._gate.consumer_settings() if self._gate else {}),
                }
            )
            self._dead_letters = DeadLetterWriter(
                {**producer_config(self.settings), "logger": librdkafka_log},
                self.settings.kafka.dead_letter_topic,
                self._loop,
            )
        except KafkaException as error:  # an unknown or invalid librdkafka setting
            if self._consumer is not None:
                self._consumer.close()
            raise ConfigError(
                f"kafka.client / kafka.consumer / kafka.producer: librdkafka refused the "
                f"settings: {kafka_error_text(error)}"
            ) from None
        health = await self._start_health_server()
        timeout = aiohttp.ClientTimeout(total=self.settings.graph.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._delivery = GraphDelivery(self.settings.graph, session)
            await self._kafka(
                self._consumer.subscribe,
                self.settings.kafka.topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            log.info(
                "Worker started; group=%s topics=%s destinations=%d",
                self.settings.kafka.group_id,
                ",".join(self.settings.kafka.topics),
                len(self._destinations),
            )
            background = [
                asyncio.create_task(self._commit_periodically()),
                asyncio.create_task(self._log_progress()),
            ]
            consuming = asyncio.create_task(self._consume_loop())
            stopped = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
                self._stopping.set()
                await consuming  # re-raises a fatal consumer error
            finally:
                self._stopping.set()
                stopped.cancel()
                await self._shutdown(background)
                if health is not None:
                    await health.cleanup()
        if self._tripped is not None:
            raise CircuitOpen(self._tripped)

    async def _start_health_server(self) -> Any:
        settings = self.settings.metrics
        if not settings.enabled:
            return None
        checks = HealthChecks(
            live=heartbeat_check(lambda: self._last_turn, settings.liveness_timeout_seconds),
            ready=self._readiness,
        )
        runner, self.health_port = await start_health_server(checks, settings.host, settings.port)
        log.info("Health and metrics port open; port=%d", self.health_port)
        if self._on_health_port is not None:
            self._on_health_port(self.health_port)
        return runner

    def _readiness(self) -> tuple[bool, str]:
        if self._brokers_down:
            return False, "all brokers are down"
        if not self._joined_group:
            return False, "not in the consumer group yet"
        return True, f"in the group with {len(self._ledger.owned())} partitions"

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down = True
        log.warning("Kafka client error; error=%s", error)

    async def _shutdown(self, background: list[asyncio.Task[None]]) -> None:
        """Stop fetching, flush every batch, wait for deliveries, commit, close."""
        deadline = time.monotonic() + self.settings.runtime.shutdown_timeout_seconds
        self._shutdown_deadline = deadline
        for batch in self._batcher.drain():
            self._send(batch)
        await self._wait_for_tasks(deadline - time.monotonic())
        for task in background:
            task.cancel()
        await self._commit()
        assert self._consumer is not None and self._dead_letters is not None
        await self._kafka(self._consumer.close)  # revokes: the callback commits what is done
        for task in list(self._tasks):  # only what missed the deadline is left: not committed
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._dead_letters.close()
        self._kafka_thread.shutdown(wait=True)
        log.info("Worker stopped; %s", self.stats.summary())

    async def _wait_for_tasks(self, budget: float) -> None:
        if self._tasks and budget > 0:
            await asyncio.wait(set(self._tasks), timeout=budget)
        if self._tasks:
            log.warning("Shutdown budget spent; unfinished=%d (not committed)", len(self._tasks))

    def _kafka(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        assert self._loop is not None
        return self._loop.run_in_executor(
            self._kafka_thread, functools.partial(fn, *args, **kwargs)
        )

    # ---- consuming and mapping ---------------------------------------------------------

    async def _consume_loop(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            self._heartbeat()
            await self._apply_backpressure()
            messages = await self._kafka(
                self._consumer.consume, CONSUME_BATCH, CONSUME_TIMEOUT_SECONDS
            )
            if messages:
                self._brokers_down = False
                await self._handle(messages)
            for batch in self._batcher.due():
                self._send(batch)
            if self._gate is not None and self._gate.finished(self._ledger.owned()):
                log.info("Every partition read to its end; stopping")
                return

    def _heartbeat(self) -> None:
        self._last_turn = time.monotonic()
        metrics.POLL_LOOP_TIMESTAMP.set(time.time())
        metrics.EVENTS_IN_FLIGHT.set(self._outstanding_events)
        metrics.PARTITIONS_PAUSED.set(len(self._paused_partitions))

    async def _handle(self, messages: list[Any]) -> None:
        now = time.time()
        consumed: dict[str, int] = {}  # by topic, counted once per fetch (not per record)
        ledger, gate, decoder = self._ledger, self._gate, self._decoder
        last_topic: str | None = None
        last_partition = -1
        last_watermark: PartitionWatermark | None = None
        try:
            for message in messages:
                if self._tripped is not None:
                    return
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
                    last_topic, last_partition = topic, partition
                    last_watermark = ledger.get((topic, partition))
                watermark = last_watermark
                if watermark is None:  # revoked while this fetch was on its way
                    continue
                offset = message.offset()
                if not watermark.is_new(offset):
                    self.stats.count_refetched(topic)
                    continue
                consumed[topic] = consumed.get(topic, 0) + 1
                if gate is not None and not gate.admit(message):
                    watermark.track(offset, done=True)
                    self.stats.count_skipped("", "outside_replay_window")
                    continue
                decoded: dict[str, Any] | Invalid | None
                try:
                    decoded = decoder(message.value())
                except DecodeError as failure:
                    decoded = await self._decode_failed(message, failure)
                    if decoded is None:  # stopping while the schema registry was unreachable
                        return
                    last_partition = -1  # look the partition up again after waiting
                if isinstance(decoded, Invalid):
                    watermark.track(offset)
                    record = InFlightRecord(message, watermark, 1, offset)
                    self._outstanding_events += 1
                    self._dead_letter(record, _reason(decoded, None))
                    continue
                self._route_and_map(message, decoded, watermark, now)
        finally:
            for topic, count in consumed.items():
                self.stats.count_consumed(topic, count)

    async def _decode_failed(
        self, message: Any, error: DecodeError
    ) -> dict[str, Any] | Invalid | None:
        """After a failed decode: the reason to dead-letter, or, for an infrastructure fault
        (schema registry down), decode again until it works instead of dead-lettering every
        record while the fault lasts. None when the worker stops meanwhile."""
        delay = 0.5
        while True:
            if not getattr(error, "retryable", False):
                return Invalid(error.reason, error.message, stage="decode")
            log.warning("Decoding waits; reason=%s retry_in=%.1fs", error.reason, delay)
            if self._stopping.is_set():
                return None
            await asyncio.sleep(delay)
            delay = min(DECODE_RETRY_MAX_SECONDS, delay * 2)
            try:
                return self._decoder(message.value())
            except DecodeError as again:
                error = again

    def _route_and_map(
        self, message: Any, decoded: dict[str, Any], watermark: Any, now: float
    ) -> None:
        results = map_routed(decoded, read_headers(message), self._destinations, now)
        offset = message.offset()
        # `remaining` counts up as events are handed on: nothing can complete before this
        # method returns (deliveries and dead-letter writes run as tasks, later).
        record = InFlightRecord(message, watermark, 0, offset)
        if isinstance(results, Invalid):  # routing itself failed: one dead letter, no pixel
            record.remaining += 1
            self._dead_letter(record, _reason(results, None))
            results = []
        elif not results:  # counted once per record, not once per destination
            self.stats.count_skipped("", NOT_ROUTED.reason)
        for destination, result in results:
            if isinstance(result, Mapped):
                # Serialised here, once: batches hold bytes, not the mapped dicts. orjson's
                # result is copied into the batch at once (it occupies a few kilobytes
                # whatever the length of the JSON, so it must not be kept).
                try:
                    encoded = orjson.dumps(result.event)
                except (TypeError, orjson.JSONEncodeError) as error:
                    # The mapping should never produce such an event; if it does, that
                    # record is dead-lettered, not the worker.
                    invalid = Invalid(
                        "unserializable_event", f"the mapped event cannot be sent: {error}"
                    )
                else:
                    record.remaining += 1
                    for batch in self._batcher.add(
                        destination,
                        encoded,
                        record,
                        result.test_event_code,
                        user_data_signature(result.event),
                    ):
                        self._send(batch)
                    continue
            elif isinstance(result, Skipped):
                self.stats.count_skipped(destination.name, result.reason)
                self._breaker.succeeded()
                continue
            else:
                invalid = result
            record.remaining += 1
            self._dead_letter(record, _reason(invalid, destination))
        watermark.track(offset, done=not record.remaining)
        self._outstanding_events += record.remaining

    async def _apply_backpressure(self) -> None:
        assert self._consumer is not None
        limit = self.settings.batching.max_pending_events
        if not self._paused and self._outstanding_events >= limit:
            self._paused = True
            log.info("Backpressure: pausing; outstanding_events=%d", self._outstanding_events)
        elif self._paused and self._outstanding_events <= limit // 2:
            self._paused = False
            await self._kafka(self._resume_all)
            log.info("Backpressure: resumed; outstanding_events=%d", self._outstanding_events)
        if self._paused:
            # Again on every turn: partitions assigned by a rebalance start unpaused.
            await self._kafka(self._pause_all)

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

    # ---- delivering and dead-lettering -------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, batch: Batch) -> None:
        self.stats.count_batch(batch.destination.name, len(batch))
        self._spawn(self._deliver(batch))

    async def _deliver(self, batch: Batch) -> None:
        assert self._delivery is not None
        destination = batch.destination
        records = batch.records
        started = time.monotonic()
        requests = 0
        try:
            report = await self._delivery.deliver_encoded(
                destination, batch.encoded, batch.test_event_code
            )
            failures, requests = report.failures, report.requests
            self.stats.requests += requests
        except Exception as error:  # a bug of ours: keep the records, never lose them silently
            log.exception(
                "Delivery crashed; destination=%s events=%d", destination.name, len(records)
            )
            failures = [
                EventFailure(
                    i, "internal_error", f"delivery failed: {error!r}", None, None, None, 0
                )
                for i in range(len(records))
            ]
        failed_at = {failure.index: failure for failure in failures}
        writes = []
        complete = self._complete
        for index, record in enumerate(records):
            failure = failed_at.get(index) if failed_at else None
            if failure is None:
                complete(record)
            else:
                why = _failure_reason(failure, destination)
                if self._may_dead_letter(why):
                    writes.append(self._dead_letter_now(record, why))
        delivered = len(records) - len(failed_at)
        keys = count_keys(batch.user_data_keys, failed_at)
        self.stats.count_delivered(destination.name, destination.pixel_id, delivered, keys)
        self._breaker.succeeded(delivered)
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

    def _dead_letter(self, record: InFlightRecord, why: DeadLetterReason) -> None:
        if self._may_dead_letter(why):
            self._spawn(self._dead_letter_now(record, why))

    def _may_dead_letter(self, why: DeadLetterReason) -> bool:
        """Ask the circuit breaker. Once it is open nothing more is dead-lettered: those records
        stay not done, so they are not committed and are read again after the fix."""
        if self._tripped is None:
            verdict = self._breaker.failed(why.stage, why.reason)
            if verdict is not None:
                self._tripped = verdict
                self._stopping.set()
                log.critical(
                    "Circuit breaker open, stopping instead of dead-lettering the stream; %s. "
                    "Fix the cause (deploy, configuration) and restart; see circuit_breaker.*",
                    verdict,
                )
        return self._tripped is None

    async def _dead_letter_now(self, record: InFlightRecord, why: DeadLetterReason) -> None:
        assert self._dead_letters is not None
        await self._dead_letters.write(record.message, why)
        self.stats.count_dead_lettered(why.destination, why.stage, why.reason)
        self._complete(record)

    def _complete(self, record: InFlightRecord) -> None:
        self._outstanding_events -= 1
        record.complete_one()

    # ---- committing --------------------------------------------------------------------

    async def _commit_periodically(self) -> None:
        interval = self.settings.kafka.commit_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self._commit()

    async def _commit(self, keys: list[TopicPartitionKey] | None = None) -> None:
        positions = self._ledger.positions_to_commit(keys)
        if not positions:
            return
        try:
            committed = await self._kafka(self._commit_owned, positions)
        except KafkaException as error:
            log.warning("Commit failed, will retry; error=%s", error)
            return
        self._ledger.confirm_committed(committed)

    def _commit_owned(
        self, positions: dict[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, int]:
        """Runs on the kafka thread. Commits only partitions still assigned to us; returns the
        positions the broker accepted."""
        assert self._consumer is not None
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        mine = {key: offset for key, offset in positions.items() if key in owned}
        return self._commit_positions(self._consumer, mine) if mine else {}

    def _commit_positions(
        self, consumer: Consumer, positions: dict[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, int]:
        """A synchronous commit; a partition the broker refused is logged and left out."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        answered = consumer.commit(offsets=offsets, asynchronous=False) or []
        refused = {(tp.topic, tp.partition): tp.error for tp in answered if tp.error}
        for (topic, partition), error in refused.items():
            log.warning("Commit refused; partition=%s[%d] error=%s", topic, partition, error)
        accepted = {key: offset for key, offset in positions.items() if key not in refused}
        self.stats.commits += 1
        metrics.LAST_COMMIT_TIMESTAMP.set(time.time())
        log.debug("Committed; offsets=%s", accepted)
        return accepted

    # ---- rebalance callbacks (run on the kafka thread, inside consume/close) -------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self._call_on_loop(self._assign, keys)
        if self._gate is not None:
            self._gate.start_positions(consumer, partitions)
            consumer.incremental_assign(partitions)
        log.info("Partitions assigned; partitions=%s", _describe(keys))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        budget = self.settings.runtime.revoke_timeout_seconds
        assert self._loop is not None
        released = asyncio.run_coroutine_threadsafe(self._release(keys, budget), self._loop)
        positions = released.result()
        if positions:
            try:
                positions = self._commit_positions(consumer, positions)
            except KafkaException as error:
                log.warning("Commit on revoke failed; error=%s", error)
                positions = {}
        log.info("Partitions revoked; partitions=%s committed=%s", _describe(keys), positions)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self._call_on_loop(self._forget, keys)
        log.warning("Partitions lost, nothing committed; partitions=%s", _describe(keys))

    def _assign(self, keys: list[TopicPartitionKey]) -> None:
        self._ledger.assign(keys)
        self._joined_group = True
        metrics.PARTITIONS_ASSIGNED.set(len(self._ledger.owned()))

    def _forget(self, keys: list[TopicPartitionKey]) -> None:
        self._ledger.forget(keys)
        self._paused_partitions.difference_update(keys)
        metrics.PARTITIONS_ASSIGNED.set(len(self._ledger.owned()))

    async def _release(
        self, keys: list[TopicPartitionKey], budget: float
    ) -> dict[TopicPartitionKey, int]:
        """Flush what was read from `keys`, wait (within budget) until it is done, forget them."""
        for batch in self._batcher.drain():
            self._send(batch)
        deadline = time.monotonic() + budget
        if self._shutdown_deadline is not None:  # revoked by close(): the SIGTERM budget rules
            deadline = min(deadline, self._shutdown_deadline)
        # Records finish only through running deliveries and dead-letter writes: with none
        # left (say, the circuit breaker held a record back), waiting longer cannot help.
        while (
            self._tasks
            and time.monotonic() < deadline
            and any((w := self._ledger.get(key)) is not None and w.pending for key in keys)
        ):
            await asyncio.sleep(0.02)
        positions = self._ledger.positions_to_commit(keys)
        self._forget(keys)
        return positions

    def _call_on_loop(
        self, fn: Callable[[list[TopicPartitionKey]], None], keys: list[TopicPartitionKey]
    ) -> None:
        assert self._loop is not None

        async def call() -> None:
            fn(keys)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result()

    async def _log_progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            log.info(
                "Progress; %s outstanding=%d paused=%s",
                self.stats.summary(),
                self._outstanding_events,
                self._paused,
            )


def _record_consumer_lag(statistics_json: str) -> None:
    """librdkafka statistics callback (kafka thread): consumer lag per assigned partition.

    librdkafka keeps reporting a partition after it was revoked (`desired` false) with its last
    lag: that series is removed, or the former owner would show a stale lag next to the new
    owner's (a dashboard taking the max per partition would show it forever)."""
    try:
        statistics = orjson.loads(statistics_json)
        for topic, topic_stats in statistics.get("topics", {}).items():
            for partition, partition_stats in topic_stats.get("partitions", {}).items():
                if partition == "-1":
                    continue
                lag = partition_stats.get("consumer_lag", -1)
                if partition_stats.get("desired", True) and lag >= 0:
                    metrics.CONSUMER_LAG.labels(topic, partition).set(lag)
                else:
                    with contextlib.suppress(KeyError):  # older prometheus_client raises
                        metrics.CONSUMER_LAG.remove(topic, partition)
    except (orjson.JSONDecodeError, AttributeError, TypeError) as error:
        log.debug("Unreadable librdkafka statistics; error=%s", error)


def _reason(invalid: Invalid, destination: DestinationSettings | None) -> DeadLetterReason:
    return DeadLetterReason(
        stage=invalid.stage,
        reason=invalid.reason,
        message=invalid.message,
        destination=destination.name if destination else None,
        pixel_id=destination.pixel_id if destination else None,
    )


def _failure_reason(failure: EventFailure, destination: DestinationSettings) -> DeadLetterReason:
    return DeadLetterReason(
        stage="deliver",
        reason=failure.reason,
        message=failure.message,
        destination=destination.name,
        pixel_id=destination.pixel_id,
        graph_code=failure.graph_code,
        graph_subcode=failure.graph_subcode,
        fbtrace_id=failure.fbtrace_id,
        attempts=failure.attempts,
    )


def _describe(keys: list[TopicPartitionKey]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in keys) or "-"
