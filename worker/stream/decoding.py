"""The decode stage: record value -> event dict, or the reason to dead-letter it.

Decoding itself is pure and runs on the event loop. The one blocking I/O, fetching a writer
schema from the schema registry (avro-confluent), runs on a thread of its own; while the worker
waits for it, or waits out a registry outage before trying again, it keeps beating its
heartbeat (liveness stays true) and says so in its readiness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from worker.config import DecodingSettings
from worker.decode import (
    DecodeError,
    SchemaNotCached,
    SchemaRegistryClient,
    build_decoder,
    build_registry,
)
from worker.mapping.result import Invalid
from worker.pipeline import decode_failure

log = logging.getLogger(__name__)

DECODE_RETRY_MAX_SECONDS = 30.0
DECODE_RETRY_FIRST_SECONDS = 0.5
HEARTBEAT_WHILE_WAITING_SECONDS = 1.0

Decoded = dict[str, Any] | Invalid


class KeepAlive(Protocol):
    """Keeps the consumer polled (paused) while the hot path waits (`PartitionPauser`)."""

    async def poll_while_held(self) -> None: ...

    def release(self) -> None: ...


class DecodeStage:
    """`decode(value)` on the hot path (raises); `recover(value, error)` after it raised."""

    def __init__(
        self,
        settings: DecodingSettings,
        *,
        heartbeat: Callable[[], None],
        stopping: asyncio.Event,
        registry: SchemaRegistryClient | None = None,
        keep_alive: KeepAlive | None = None,
    ) -> None:
        """While waiting, `heartbeat` is beaten every second and, once a wait lasts that long,
        `keep_alive` polls the consumer with its partitions paused: the group does not evict
        the worker (`max.poll.interval.ms`) however long the registry is away."""
        self._registry = registry if registry is not None else build_registry(settings)
        #: Raises DecodeError, or SchemaNotCached (never does I/O).
        self.decode = build_decoder(settings, registry=self._registry, fetch_missing=False)
        self._heartbeat = heartbeat
        self._stopping = stopping
        self.keep_alive = keep_alive
        self._fetcher: ThreadPoolExecutor | None = None
        self.waiting_for_registry = False

    async def recover(self, value: bytes | None, error: Exception) -> Decoded | None:
        """After `decode(value)` raised `error`: the event, or the reason to dead-letter it.

        A schema not fetched yet is fetched off the loop. An infrastructure fault (schema
        registry down) is waited out and retried instead of dead-lettering every record while
        it lasts. None when the worker stops meanwhile."""
        delay = DECODE_RETRY_FIRST_SECONDS
        while True:
            if isinstance(error, SchemaNotCached):
                try:
                    await self._fetch(error.schema_id)
                    return self.decode(value)
                except DecodeError as again:
                    error = again
                    continue
            if not isinstance(error, DecodeError):
                raise error
            if not error.retryable:
                return decode_failure(error)
            log.warning("Decoding waits; reason=%s retry_in=%.1fs", error.reason, delay)
            if self._stopping.is_set():
                return None
            await self._wait(asyncio.ensure_future(asyncio.sleep(delay)))
            delay = min(DECODE_RETRY_MAX_SECONDS, delay * 2)
            try:
                return self.decode(value)
            except (DecodeError, SchemaNotCached) as again:
                error = again

    async def _fetch(self, schema_id: int) -> None:
        assert self._registry is not None
        if self._fetcher is None:
            self._fetcher = ThreadPoolExecutor(1, thread_name_prefix="schema-registry")
        loop = asyncio.get_running_loop()
        await self._wait(loop.run_in_executor(self._fetcher, self._registry.get, schema_id))

    async def _wait(self, waiting: asyncio.Future[Any]) -> Any:
        """Await `waiting`, beating the heartbeat and polling meanwhile; readiness says why."""
        self.waiting_for_registry = True
        held = False
        try:
            while True:
                self._heartbeat()
                done, _ = await asyncio.wait({waiting}, timeout=HEARTBEAT_WHILE_WAITING_SECONDS)
                if done:
                    return waiting.result()
                if self.keep_alive is not None:
                    held = True
                    await self.keep_alive.poll_while_held()
        finally:
            self.waiting_for_registry = False
            if held and self.keep_alive is not None:
                self.keep_alive.release()

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.shutdown(wait=False, cancel_futures=True)
