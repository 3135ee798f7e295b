"""The dead-letter topic: the original record, untouched, with the reason in headers.

A dead-letter write counts as done only once the broker acknowledged it. A write that fails is
retried until it succeeds or the worker stops, so nothing past that record is ever committed.

One failure is permanent and never retried as is: a copy larger than the dead-letter producer's
`message.max.bytes` (or the broker's limit) fails with MSG_SIZE_TOO_LARGE every time. The copy
is then written again at once without the largest part of the record (its value, its own
headers or its key), and so on until it fits: the value becomes null and
`capi.dlq.value_omitted` (`headers_omitted`, `key_omitted`) holds the size in bytes of what was
left out; `capi.dlq.message` says so. The original stays in the source topic at
`capi.dlq.source_offset` while retention keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from worker import reasons
from worker.capi.delivery import EventFailure
from worker.config import DestinationSettings
from worker.decode import read_record_headers
from worker.mapping.result import Invalid
from worker.telemetry import metrics

log = logging.getLogger(__name__)

HEADER_PREFIX = "capi.dlq."
# Set when the copy had to leave something out; each holds the size in bytes of what was left out.
VALUE_OMITTED_HEADER = HEADER_PREFIX + "value_omitted"
HEADERS_OMITTED_HEADER = HEADER_PREFIX + "headers_omitted"
KEY_OMITTED_HEADER = HEADER_PREFIX + "key_omitted"
# Source headers that could not be read (a key that is not UTF-8): how many, or "all".
HEADERS_DROPPED_HEADER = HEADER_PREFIX + "headers_dropped"

# The parts of a record a copy too large for the dead-letter topic may leave out.
VALUE, HEADERS, KEY = "value", "headers", "key"
_OMITTED_HEADER = {
    VALUE: VALUE_OMITTED_HEADER,
    HEADERS: HEADERS_OMITTED_HEADER,
    KEY: KEY_OMITTED_HEADER,
}
NOTHING_OMITTED: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DeadLetterReason:
    stage: str  # decode | route | map | deliver
    reason: str  # a code of `worker.reasons`
    message: str  # what is wrong and what to fix; never a token or unhashed personal data
    destination: str | None = None
    pixel_id: str | None = None
    graph_code: int | None = None
    graph_subcode: int | None = None
    fbtrace_id: str | None = None
    attempts: int = 0

    @classmethod
    def of_invalid(
        cls, invalid: Invalid, destination: DestinationSettings | None
    ) -> DeadLetterReason:
        """A record that cannot be decoded (no destination), routed or mapped."""
        return cls(
            stage=invalid.stage,
            reason=invalid.reason,
            message=invalid.message,
            destination=destination.name if destination else None,
            pixel_id=destination.pixel_id if destination else None,
        )

    @classmethod
    def of_failure(
        cls, failure: EventFailure, destination: DestinationSettings
    ) -> DeadLetterReason:
        """An event the Graph API did not take."""
        return cls(
            stage=reasons.stage_of(failure.reason),
            reason=failure.reason,
            message=failure.message,
            destination=destination.name,
            pixel_id=destination.pixel_id,
            graph_code=failure.graph_code,
            graph_subcode=failure.graph_subcode,
            fbtrace_id=failure.fbtrace_id,
            attempts=failure.attempts,
        )


Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class DeadLetterCopy:
    """What is copied from a source record into the dead-letter topic, read once."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    source_headers: list[tuple[str, bytes | None]]
    headers_dropped: int  # unreadable source headers left out; -1: none could be read

    @classmethod
    def of(cls, source: Any) -> DeadLetterCopy:
        headers, dropped = read_record_headers(source)
        value = source.value() if hasattr(source, "value") else None
        key = source.key() if hasattr(source, "key") else None
        return cls(
            source.topic(), source.partition(), source.offset(), key, value, headers, dropped
        )

    def sizes(self) -> dict[str, int]:
        """Bytes of each part that could be left out."""
        return {
            VALUE: len(self.value or b""),
            HEADERS: sum(len(k.encode()) + len(v or b"") for k, v in self.source_headers),
            KEY: len(self.key or b""),
        }

    def omit_more(self, omitted: frozenset[str]) -> frozenset[str] | None:
        """`omitted` plus the largest part still in the copy; None when nothing is left."""
        left = {part: size for part, size in self.sizes().items() if part not in omitted and size}
        if not left:
            return None
        return omitted | {max(left, key=lambda part: left[part])}

    def headers(self, why: DeadLetterReason, now: float, omitted: frozenset[str]) -> Headers:
        headers: Headers = [] if HEADERS in omitted else list(self.source_headers)
        sizes = self.sizes()
        left_out = [part for part in (VALUE, HEADERS, KEY) if part in omitted and sizes[part]]
        message = why.message
        if left_out:
            parts = ", ".join(f"{part} ({sizes[part]} bytes)" for part in left_out)
            message = (
                f"{message} [this copy leaves out the record's {parts}: too large for the "
                "dead-letter topic (MSG_SIZE_TOO_LARGE); the original is in the source topic "
                "at capi.dlq.source_offset]"
            )
        fields: list[tuple[str, object]] = [
            ("stage", why.stage),
            ("reason", why.reason),
            ("message", message),
            ("destination", why.destination),
            ("pixel_id", why.pixel_id),
            ("graph_code", why.graph_code),
            ("graph_subcode", why.graph_subcode),
            ("fbtrace_id", why.fbtrace_id),
            ("source_topic", self.topic),
            ("source_partition", self.partition),
            ("source_offset", self.offset),
            ("attempts", why.attempts),
            ("time", f"{now:.3f}"),
        ]
        headers.extend(
            (HEADER_PREFIX + name, str(value).encode())
            for name, value in fields
            if value is not None
        )
        headers.extend((_OMITTED_HEADER[part], str(sizes[part]).encode()) for part in left_out)
        if self.headers_dropped:
            dropped = "all" if self.headers_dropped < 0 else str(self.headers_dropped)
            headers.append((HEADERS_DROPPED_HEADER, dropped.encode()))
        return headers

    def build(
        self, why: DeadLetterReason, now: float, omitted: frozenset[str]
    ) -> tuple[bytes | None, bytes | None, Headers]:
        """Key, value and headers of the dead-letter record without the `omitted` parts."""
        key = None if KEY in omitted else self.key
        value = None if VALUE in omitted else self.value
        return key, value, self.headers(why, now, omitted)


def source_timestamp_ms(source: Any) -> int | None:
    kind, value = source.timestamp()
    return None if kind == 0 else int(value)  # 0 is TIMESTAMP_NOT_AVAILABLE


class DeadLetterWriter:
    """Writes dead-letter records and resolves each write when the broker acknowledged it."""

    def __init__(
        self,
        producer_config: dict[str, Any],
        topic: str,
        loop: asyncio.AbstractEventLoop,
        retry_backoff_seconds: float = 1.0,
    ) -> None:
        config = {"acks": "all", "linger.ms": 20, **producer_config}
        self._producer = Producer(config)
        self._topic = topic
        self._loop = loop
        self._retry_backoff = retry_backoff_seconds
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name="dlq-poll", daemon=True)
        self._poller.start()

    async def write(self, source: Any, why: DeadLetterReason) -> None:
        """Copy `source` to the dead-letter topic; returns once acknowledged.

        Retries until acknowledged; raises asyncio.CancelledError only if cancelled (shutdown),
        in which case the record stays not done and is not committed. A copy too large for the
        topic is written again at once with less of the record (see the module's docstring).
        """
        copy = DeadLetterCopy.of(source)
        now = time.time()
        omitted = NOTHING_OMITTED
        attempt = 0
        while True:
            attempt += 1
            key, value, headers = copy.build(why, now, omitted)
            error = await self._produce_once(source, key, value, headers)
            if error is None:
                return
            smaller = copy.omit_more(omitted) if _is_too_large(error) else None
            if smaller is not None:
                omitted = smaller
                log.warning(
                    "Dead-letter copy too large for the topic, writing it without the record's "
                    "%s; topic=%s source=%s/%d/%d sizes=%s error=%s",
                    "+".join(sorted(omitted)),
                    self._topic,
                    copy.topic,
                    copy.partition,
                    copy.offset,
                    copy.sizes(),
                    error,
                )
                continue
            metrics.DEAD_LETTER_WRITE_FAILURES.inc()
            log.error(
                "Dead-letter write failed, nothing past this record commits until it succeeds; "
                "topic=%s source=%s/%d/%d attempt=%d error=%s",
                self._topic,
                copy.topic,
                copy.partition,
                copy.offset,
                attempt,
                error,
            )
            await asyncio.sleep(min(30.0, self._retry_backoff * attempt))

    async def _produce_once(
        self, source: Any, key: bytes | None, value: bytes | None, headers: Headers
    ) -> KafkaError | str | None:
        acknowledged: asyncio.Future[KafkaError | None] = self._loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Any) -> None:
            self._loop.call_soon_threadsafe(_resolve, acknowledged, error)

        kwargs: dict[str, Any] = {}
        timestamp = source_timestamp_ms(source)
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        try:
            self._producer.produce(
                self._topic,
                value=value,
                key=key,
                headers=headers,
                on_delivery=on_delivery,
                **kwargs,
            )
        except BufferError as error:
            return f"local producer queue full: {error}"
        except KafkaException as error:  # unknown topic, message too large, ...
            first = error.args[0] if error.args else None
            return first if isinstance(first, KafkaError) else str(error)
        except Exception as error:
            return str(error)
        return await acknowledged

    def _poll_forever(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._closing.set()
        self._poller.join(timeout=2)
        self._producer.close()


def _is_too_large(error: KafkaError | str) -> bool:
    """MSG_SIZE_TOO_LARGE: from librdkafka before sending (over the producer's
    `message.max.bytes`) or from the broker (over its own or the topic's limit). Permanent."""
    return isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE


def _resolve(future: asyncio.Future[KafkaError | None], outcome: KafkaError | None) -> None:
    if not future.done():
        future.set_result(outcome)
