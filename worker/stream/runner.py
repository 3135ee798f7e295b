"""The worker: one consumer-group member, its poll loop and the wiring of its stages.

    consume -> decode -> route and map -> batch -> deliver -> complete -> commit
               (hot_path: decoding, route_and_map, batcher)  (deliver) (completion) (commit)

Threading model: one asyncio loop owns every piece of state (ledger, batcher, stats). The
confluent-kafka consumer is only ever called from one dedicated thread (`KafkaThread`), so
`poll` never waits on HTTP and consumer calls never race each other. Rebalance callbacks run
inside `consume` on that thread; they hand their work to the loop and wait for it.

Commit rule and order: see `CommitCoordinator` (commit.py), the one owner of every commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from worker.capi.delivery import GraphDelivery
from worker.config import ConfigError, Settings
from worker.destination_set import DestinationSet
from worker.kafka_config import consumer_config, kafka_error_text, producer_config
from worker.stream.backpressure import PartitionPauser
from worker.stream.batcher import Batch, PixelBatcher
from worker.stream.breaker import CircuitOpen, FailureBreaker
from worker.stream.commit import CommitCoordinator
from worker.stream.completion import Completion
from worker.stream.dead_letter import DeadLetterWriter
from worker.stream.decoding import DecodeStage
from worker.stream.deliver import DeliverStage
from worker.stream.destination_reload import (
    DestinationChanges,
    DestinationReloader,
    ReloadSource,
    swap_destination_set,
)
from worker.stream.gate import RecordGate
from worker.stream.hot_path import HotPath
from worker.stream.kafka_thread import KafkaThread
from worker.stream.route_and_map import RouteAndMap
from worker.stream.stats import WorkerStats
from worker.stream.tasks import RunningTasks
from worker.telemetry import metrics
from worker.telemetry.health import HealthChecks, heartbeat_check, start_health_server

log = logging.getLogger(__name__)

CONSUME_BATCH = 500
CONSUME_TIMEOUT_SECONDS = 0.1
PROGRESS_EVERY_SECONDS = 10.0


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
        reload_from: ReloadSource | None = None,
    ) -> None:
        self.settings = settings
        self._gate = gate
        self._on_health_port = on_health_port  # told the bound port (the supervisor's children)
        metrics.label_destinations(settings.metrics.destination_labels)
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._kafka = KafkaThread()
        self._tasks = RunningTasks()
        self.coordinator = CommitCoordinator(
            self._kafka,
            self.stats,
            commit_interval_seconds=settings.kafka.commit_interval_ms / 1000,
            revoke_timeout_seconds=settings.runtime.revoke_timeout_seconds,
        )
        self._pauser = PartitionPauser(self._kafka, settings.batching.max_pending_events)
        self._decode = DecodeStage(
            settings.decoding, heartbeat=self._heartbeat, stopping=self._stopping
        )
        #: The route-and-map stage; `route_and_map.replace_destinations` swaps the destination
        #: set between two records (a reload).
        self.route_and_map = RouteAndMap(DestinationSet.from_settings(settings))
        self.stats.expect(self.route_and_map.destinations)
        self._reloader = (
            None
            if reload_from is None
            else DestinationReloader(
                reload_from,
                self.route_and_map.destinations,
                settings.runtime.reload_interval_seconds,
                self._swap_destinations,
            )
        )
        self._send_batch: Callable[[Batch], None] | None = None  # set when the stages are wired
        batching = settings.batching
        self._batcher = PixelBatcher(
            batching.max_events, batching.max_bytes, batching.linger_ms / 1000, time.monotonic
        )
        self._completion: Completion | None = None
        self._last_turn = time.monotonic()
        self._brokers_down = False
        self.health_port: int | None = None

    @property
    def outstanding_events(self) -> int:
        """Events batched, in flight or waiting for a dead-letter acknowledgement."""
        return self.coordinator.outstanding_events

    def request_reload(self) -> None:
        """SIGHUP: reload the destinations (see destination_reload.py)."""
        if self._reloader is None:
            log.warning("Reload requested, but this worker was not started from a file")
        else:
            self._reloader.request()

    def _swap_destinations(self, destinations: DestinationSet, changes: DestinationChanges) -> None:
        swap_destination_set(
            destinations,
            changes,
            batcher=self._batcher,
            send_batch=self._send_batch,
            route_and_map=self.route_and_map,
            stats=self.stats,
        )

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        consumer, dead_letters = self._open_clients()
        health = await self._start_health_server()
        timeout = aiohttp.ClientTimeout(total=self.settings.graph.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            hot_path = self._wire(
                consumer, dead_letters, GraphDelivery(self.settings.graph, session)
            )
            await self._kafka.call(
                consumer.subscribe,
                self.settings.kafka.topics,
                on_assign=self._on_assign,
                on_revoke=self.coordinator.on_revoke,
                on_lost=self.coordinator.on_lost,
            )
            log.info(
                "Worker started; group=%s topics=%s destinations=%d",
                self.settings.kafka.group_id,
                ",".join(self.settings.kafka.topics),
                len(self.route_and_map.destinations),
            )
            background = [
                asyncio.create_task(self.coordinator.commit_periodically()),
                asyncio.create_task(self._log_progress()),
            ]
            metrics.DESTINATIONS.set(len(self.route_and_map.destinations))
            if self._reloader is not None:
                background.append(asyncio.create_task(self._reloader.run()))
            consuming = asyncio.create_task(self._consume_loop(consumer, hot_path))
            stopped = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
                self._stopping.set()
                await consuming  # re-raises a fatal consumer error
            finally:
                self._stopping.set()
                stopped.cancel()
                await self._shutdown(consumer, dead_letters, background)
                if health is not None:
                    await health.cleanup()
        if self._completion is not None and self._completion.tripped is not None:
            raise CircuitOpen(self._completion.tripped)

    def _open_clients(self) -> tuple[Consumer, DeadLetterWriter]:
        librdkafka_log = logging.getLogger("librdkafka")
        consumer: Consumer | None = None
        try:
            consumer = Consumer(
                {
                    **consumer_config(self.settings),
                    "stats_cb": _record_consumer_lag,
                    "error_cb": self._on_kafka_error,
                    "logger": librdkafka_log,
                    **(self._gate.consumer_settings() if self._gate else {}),
                }
            )
            dead_letters = DeadLetterWriter(
                {**producer_config(self.settings), "logger": librdkafka_log},
                self.settings.kafka.dead_letter_topic,
                asyncio.get_running_loop(),
            )
        except KafkaException as error:  # an unknown or invalid librdkafka setting
            if consumer is not None:
                consumer.close()
            raise ConfigError(
                f"kafka.client / kafka.consumer / kafka.producer: librdkafka refused the "
                f"settings: {kafka_error_text(error)}"
            ) from None
        return consumer, dead_letters

    def _wire(
        self, consumer: Consumer, dead_letters: DeadLetterWriter, delivery: GraphDelivery
    ) -> HotPath:
        """Connect the stages: hot path -> deliver -> completion -> commit coordinator."""
        completion = Completion(
            self.coordinator,
            FailureBreaker(self.settings.circuit_breaker),
            self.stats,
            self._tasks,
            dead_letters,
            on_trip=lambda _verdict: self._stopping.set(),
        )
        deliver = DeliverStage(delivery, completion, self.stats, self._tasks)
        self._send_batch = deliver.send
        hot_path = HotPath(
            decode=self._decode,
            route_and_map=self.route_and_map,
            batcher=self._batcher,
            coordinator=self.coordinator,
            stats=self.stats,
            send=deliver.send,
            dead_letter=completion.dead_letter,
            skipped=completion.succeeded,
            halted=lambda: completion.tripped is not None,
            gate=self._gate,
        )
        self.coordinator.bind(
            consumer,
            asyncio.get_running_loop(),
            flush=hot_path.flush,
            working=self._tasks.running,
            on_forget=self._pauser.forget,
        )
        self._pauser.bind(consumer, self._gate.reached_end if self._gate is not None else None)
        self._decode.keep_alive = self._pauser
        self._completion = completion
        return hot_path

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
        if not self.coordinator.joined_group:
            return False, "not in the consumer group yet"
        if self._decode.waiting_for_registry:
            return False, "waiting for the schema registry"
        return True, f"in the group with {len(self.coordinator.owned())} partitions"

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down = True
        log.warning("Kafka client error; error=%s", error)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Kafka thread: the coordinator tracks them; a gate sets where each one starts."""
        self.coordinator.on_assign(consumer, partitions)
        if self._gate is not None:
            self._gate.start_positions(consumer, partitions)
            consumer.incremental_assign(partitions)

    async def _shutdown(
        self,
        consumer: Consumer,
        dead_letters: DeadLetterWriter,
        background: list[asyncio.Task[None]],
    ) -> None:
        """Stop fetching, flush every batch, wait for deliveries, commit, close."""
        await self.coordinator.drain(self.settings.runtime.shutdown_timeout_seconds)
        if self._tasks.running():
            log.warning("Shutdown budget spent; unfinished=%d (not committed)", len(self._tasks))
        for task in background:
            task.cancel()
        await self.coordinator.commit()
        await self._kafka.call(consumer.close)  # revokes: the coordinator commits what is done
        await self._tasks.cancel()  # only what missed the deadline is left: not committed
        dead_letters.close()
        self._decode.close()
        self._kafka.shutdown()
        log.info("Worker stopped; %s", self.stats.summary())

    # ---- the poll loop ---------------------------------------------------------------------

    async def _consume_loop(self, consumer: Consumer, hot_path: HotPath) -> None:
        gate, coordinator = self._gate, self.coordinator
        while not self._stopping.is_set():
            self._heartbeat()
            await self._pauser.apply(coordinator.outstanding_events)
            messages = await self._kafka.call(
                consumer.consume, CONSUME_BATCH, CONSUME_TIMEOUT_SECONDS
            )
            if messages:
                self._brokers_down = False
                await hot_path.handle(messages)
            hot_path.send_due()
            if gate is not None and gate.finished(coordinator.owned()):
                log.info("Every partition read to its end; stopping")
                return

    def _heartbeat(self) -> None:
        self._last_turn = time.monotonic()
        metrics.POLL_LOOP_TIMESTAMP.set(time.time())
        metrics.EVENTS_IN_FLIGHT.set(self.coordinator.outstanding_events)
        metrics.PARTITIONS_PAUSED.set(self._pauser.paused_partitions)

    async def _log_progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            log.info(
                "Progress; %s outstanding=%d paused=%s",
                self.stats.summary(),
                self.coordinator.outstanding_events,
                self._pauser.paused,
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
