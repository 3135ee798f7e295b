"""Deliver one batch of Conversions API events for one pixel to the Graph API.

`GraphDelivery.deliver` sends the batch as one request (at most 1000 events each) and answers
with a `DeliveryReport`: how many events Meta accepted and, for every event it could not
deliver, an `EventFailure` that says why and what to fix (the caller dead-letters those).

- Throttling and transient failures (5xx, timeouts, dropped connections, `is_transient`) are
  retried with exponential backoff and full jitter, never sooner than `Retry-After`, for at
  most `graph.max_retry_seconds`; then every event of that request fails `retries_exhausted`.
  While a pixel is throttled, every request for that pixel waits at a shared gate.
- An invalid token or a missing permission fails every event at once, without a retry.
- Invalid parameter (code 100): one bad event makes Meta reject the whole request, so the
  batch is split in halves, recursively, until the bad events are alone; the rest is delivered.

Events are serialised once, back to back in one buffer (`EncodedEvents`); a request body is
that buffer's span between a prefix and a suffix, and a split only re-joins the bytes of each
half. The worker serialises each event as it maps it (`deliver_encoded`), so no batch keeps its
events as Python objects. The access token travels in the Authorization header (never the URL)
and is never logged; log lines carry no event content.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import aiohttp
import orjson
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from worker import reasons
from worker.capi.graph_errors import (
    APPSECRET_PROOF_MARKER,
    ErrorKind,
    GraphError,
    parse_graph_error,
    transport_error,
)
from worker.capi.rules import MAX_EVENTS_PER_REQUEST
from worker.telemetry import metrics

log = logging.getLogger(__name__)

_BODY_PREFIX = b'{"data":['
_MAX_EXPONENT = 30  # 2**30 * any sane initial backoff is far past any max_backoff_seconds


class DestinationSettings(Protocol):
    """What the client reads of a destination (`worker.config.DestinationSettings`): capi sits
    below the settings layer, so it names the fields it needs instead of importing them."""

    @property
    def name(self) -> str: ...
    @property
    def pixel_id(self) -> str: ...
    @property
    def access_token(self) -> SecretStr: ...
    @property
    def app_secret(self) -> SecretStr | None: ...
    @property
    def api_version(self) -> str | None: ...
    @property
    def test_event_code(self) -> str | None: ...


class GraphSettings(Protocol):
    """What the client reads of `graph.*` (`worker.config.GraphSettings`)."""

    @property
    def url(self) -> str: ...
    @property
    def api_version(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def max_retry_seconds(self) -> float: ...
    @property
    def initial_backoff_seconds(self) -> float: ...
    @property
    def max_backoff_seconds(self) -> float: ...
    @property
    def max_concurrent_requests(self) -> int: ...


Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]


class EncodedEvents:
    """Serialised events, back to back in one buffer, each followed by a comma.

    One buffer and one array of end offsets per batch instead of a Python object per event:
    a batch of 1000 events is a few hundred kilobytes and no garbage-collector work. A request
    body for events `[start, stop)` is one copy of their span (`body`). The batcher appends to
    `buffer` and `ends` directly (its hot path).
    """

    __slots__ = ("buffer", "ends")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ends = array("q")  # ends[i]: offset just past the comma after event i

    @classmethod
    def of(cls, events: Iterable[bytes]) -> EncodedEvents:
        encoded = cls()
        for event in events:
            encoded.append(event)
        return encoded

    def append(self, event: bytes) -> None:
        buffer = self.buffer
        buffer += event
        buffer += b","
        self.ends.append(len(buffer))

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def nbytes(self) -> int:
        """Bytes of the events and the commas after them."""
        return len(self.buffer)

    def event(self, index: int) -> bytes:
        start = self.ends[index - 1] if index else 0
        return bytes(self.buffer[start : self.ends[index] - 1])

    def body(self, start: int, stop: int, suffix: bytes) -> bytes:
        """`{"data":[` + events start..stop-1 joined by commas + `suffix`, in one copy."""
        begin = self.ends[start - 1] if start else 0
        end = self.ends[stop - 1] - 1  # without the last comma
        with memoryview(self.buffer) as view:
            return b"".join((_BODY_PREFIX, view[begin:end], suffix))


@dataclass(frozen=True, slots=True)
class EventFailure:
    """One event that could not be delivered."""

    index: int  # position in the batch passed to deliver()
    reason: str  # a deliver-stage code of `worker.reasons`
    message: str  # what went wrong and what to fix; never the token
    graph_code: int | None
    graph_subcode: int | None
    fbtrace_id: str | None
    attempts: int  # requests that carried this event

    @classmethod
    def internal_error(cls, index: int, message: str) -> EventFailure:
        """The delivery code itself failed (a bug of ours): no request is blamed."""
        return cls(
            index=index,
            reason=reasons.INTERNAL_ERROR,
            message=message,
            graph_code=None,
            graph_subcode=None,
            fbtrace_id=None,
            attempts=0,
        )


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int  # events accepted by Meta
    failures: list[EventFailure]  # sorted by index
    requests: int  # HTTP requests made (retries and bisection included)
    retries: int = 0  # requests that repeated an earlier, failed one
    events_received: int = 0  # sum of Meta's `events_received` over accepted requests
    # True when an accepted request's `events_received` differed from the events it carried:
    # they count as delivered, but the caller should notice (metric, warning).
    mismatch: bool = False


@dataclass(frozen=True, slots=True)
class _Target:
    """A destination, ready to post to: computed once per destination and cached."""

    name: str
    pixel_id: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    body_suffix: bytes  # closes the data array, plus test_event_code when configured
    secret_values: tuple[str, ...]  # redacted from any message we build
    metric_label: str  # the `destination` label of its series (see metrics.destination_label)


@dataclass(frozen=True, slots=True)
class _Accepted:
    events_received: int


@dataclass(frozen=True, slots=True)
class _Sent:
    """How one (sub)batch fared after its retries."""

    error: GraphError | None  # None: accepted
    events_received: int
    attempts: int
    elapsed: float
    exhausted: bool  # still retryable when the time budget ran out


@dataclass(slots=True)
class _Tally:
    delivered: int = 0
    requests: int = 0
    retries: int = 0
    events_received: int = 0
    mismatch: bool = False
    failures: list[EventFailure] = field(default_factory=list)

    def report(self) -> DeliveryReport:
        failures = sorted(self.failures, key=lambda f: f.index)
        return DeliveryReport(
            delivered=self.delivered,
            failures=failures,
            requests=self.requests,
            retries=self.retries,
            events_received=self.events_received,
            mismatch=self.mismatch,
        )


class _RetryableError(Exception):
    def __init__(self, error: GraphError) -> None:
        super().__init__(error.describe())
        self.error = error


class GraphDelivery:
    """Posts batches to `{graph.url}/{version}/{pixel_id}/events`. One per worker process."""

    def __init__(
        self,
        graph: GraphSettings,
        session: aiohttp.ClientSession,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._graph = graph
        self._session = session
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._timeout = aiohttp.ClientTimeout(total=graph.timeout_seconds)
        self._in_flight = asyncio.Semaphore(graph.max_concurrent_requests)
        # Only pixels throttled right now: an entry goes once its time has passed.
        self._throttled_until: dict[str, float] = {}
        # Destination name -> (the settings it was built from, the target).
        self._targets: dict[str, tuple[DestinationSettings, _Target]] = {}

    async def deliver(
        self,
        destination: DestinationSettings,
        events: Sequence[dict[str, Any]],
        test_event_code: str | None = None,
    ) -> DeliveryReport:
        return await self.deliver_encoded(
            destination,
            EncodedEvents.of(orjson.dumps(event) for event in events),
            test_event_code,
        )

    async def deliver_encoded(
        self,
        destination: DestinationSettings,
        encoded: EncodedEvents,
        test_event_code: str | None = None,
    ) -> DeliveryReport:
        """`deliver` for events already serialised (failure indexes are positions in it).

        `test_event_code`, when given, is sent instead of the destination's own.
        """
        target = self._target(destination)
        if test_event_code is not None:
            target = replace(target, body_suffix=_body_suffix(test_event_code))
        tally = _Tally()
        for start in range(0, len(encoded), MAX_EVENTS_PER_REQUEST):
            stop = min(start + MAX_EVENTS_PER_REQUEST, len(encoded))
            await self._deliver_slice(target, encoded, start, stop, 0, tally)
        return tally.report()

    # -- one (sub)batch: send, then accept, fail or split --------------------------------------

    async def _deliver_slice(
        self,
        target: _Target,
        encoded: EncodedEvents,
        start: int,
        stop: int,
        prior_attempts: int,
        tally: _Tally,
    ) -> None:
        size = stop - start
        sent = await self._send_with_retries(
            target, lambda: encoded.body(start, stop, target.body_suffix), size, tally
        )
        attempts = prior_attempts + sent.attempts
        if sent.error is None:
            tally.delivered += size
            tally.events_received += sent.events_received
            tally.mismatch = tally.mismatch or sent.events_received != size
            return
        split = sent.error.kind is ErrorKind.INVALID_PARAMETER and size > 1
        action = "split" if split else "give_up" if sent.exhausted else "fail"
        _log_failed_request(target, size, sent.error, sent.attempts, action, 0.0)
        if split:
            middle = start + size // 2
            await self._deliver_slice(target, encoded, start, middle, attempts, tally)
            await self._deliver_slice(target, encoded, middle, stop, attempts, tally)
            return
        reason, message = self._explain(target, sent)
        tally.failures.extend(
            EventFailure(
                index=index,
                reason=reason,
                message=message,
                graph_code=sent.error.code,
                graph_subcode=sent.error.subcode,
                fbtrace_id=sent.error.fbtrace_id,
                attempts=attempts,
            )
            for index in range(start, stop)
        )

    async def _send_with_retries(
        self, target: _Target, body: Callable[[], bytes], size: int, tally: _Tally
    ) -> _Sent:
        started = self._clock()
        attempts = 0

        async def attempt() -> _Accepted | GraphError:
            nonlocal attempts
            attempts += 1
            tally.requests += 1
            return await self._attempt(target, body)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RetryableError),
            wait=self._wait_strategy(started),
            stop=self._stop_strategy(started),
            sleep=self._sleep,
            before_sleep=self._before_sleep(target, size),
            reraise=True,
        )
        outcome: _Accepted | GraphError
        exhausted = False
        try:
            outcome = await retrying(attempt)
        except _RetryableError as exc:
            outcome, exhausted = exc.error, True
        finally:
            tally.retries += max(attempts - 1, 0)
        elapsed = self._clock() - started
        if isinstance(outcome, _Accepted):
            return _Sent(None, outcome.events_received, attempts, elapsed, exhausted)
        return _Sent(outcome, 0, attempts, elapsed, exhausted)

    # -- one HTTP request ----------------------------------------------------------------------

    async def _attempt(self, target: _Target, body: Callable[[], bytes]) -> _Accepted | GraphError:
        """Accepted, or a permanent GraphError; raises _RetryableError for the rest.

        The body is built once a request slot is free: batches waiting for one hold only their
        encoded events, not a second copy of them."""
        await self._wait_until_unthrottled(target.pixel_id)
        started = time.perf_counter()
        result: _Accepted | GraphError | None = None  # None: no response (timeout, dropped)
        try:
            async with (
                self._in_flight,
                self._session.post(
                    target.url,
                    data=body(),  # evaluated once the slot is ours
                    params=target.params,
                    headers=target.headers,
                    timeout=self._timeout,
                ) as response,
            ):
                payload = await response.read()
                result = _interpret(response.status, payload, response.headers)
        except TimeoutError:
            error = transport_error(
                f"no response within graph.timeout_seconds={self._graph.timeout_seconds:g}"
            )
            raise _RetryableError(error) from None
        except aiohttp.ClientError as exc:
            raise _RetryableError(transport_error(_describe_client_error(exc))) from None
        finally:
            outcome = "transient" if result is None else _outcome_label(result)
            metrics.GRAPH_REQUEST_SECONDS.labels(target.metric_label, outcome).observe(
                time.perf_counter() - started
            )
            if not isinstance(result, _Accepted):
                metrics.GRAPH_ERRORS.labels(target.metric_label, _error_code_label(result)).inc()
        if isinstance(result, GraphError) and result.is_retryable:
            if result.kind is ErrorKind.THROTTLED:
                self._throttle(target.pixel_id, result.retry_after or 0.0)
            raise _RetryableError(result)
        return result

    # -- the per-pixel throttle gate -----------------------------------------------------------

    async def _wait_until_unthrottled(self, pixel_id: str) -> None:
        throttled = self._throttled_until
        waited_for = 0.0
        while (until := throttled.get(pixel_id, 0.0)) > waited_for:
            delay = until - self._clock()
            if delay <= 0:
                break
            waited_for = until
            await self._sleep(delay)
        if throttled.get(pixel_id, float("inf")) <= self._clock():
            del throttled[pixel_id]

    def _throttle(self, pixel_id: str, seconds: float) -> None:
        """No request for this pixel before `seconds` from now (bounded by the retry budget)."""
        if seconds <= 0:
            return
        until = self._clock() + min(seconds, self._graph.max_retry_seconds)
        if until > self._throttled_until.get(pixel_id, 0.0):
            self._throttled_until[pixel_id] = until

    # -- tenacity strategies -------------------------------------------------------------------

    def _remaining(self, started: float) -> float:
        return self._graph.max_retry_seconds - (self._clock() - started)

    def _wait_strategy(self, started: float) -> Callable[[RetryCallState], float]:
        graph = self._graph

        def wait(state: RetryCallState) -> float:
            exponent = min(state.attempt_number - 1, _MAX_EXPONENT)
            ceiling = min(graph.max_backoff_seconds, graph.initial_backoff_seconds * 2**exponent)
            delay = min(self._rng.uniform(0.0, ceiling), max(self._remaining(started), 0.0))
            retry_after = _error_of(state).retry_after
            return max(delay, retry_after) if retry_after is not None else delay

        return wait

    def _stop_strategy(self, started: float) -> Callable[[RetryCallState], bool]:
        def stop(state: RetryCallState) -> bool:
            remaining = self._remaining(started)
            return remaining <= 0 or state.upcoming_sleep > remaining

        return stop

    def _before_sleep(self, target: _Target, size: int) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            error = _error_of(state)
            metrics.GRAPH_RETRIES.labels(target.metric_label, error.kind.name.lower()).inc()
            if error.kind is ErrorKind.THROTTLED:
                self._throttle(target.pixel_id, state.upcoming_sleep)
            _log_failed_request(
                target, size, error, state.attempt_number, "retry", state.upcoming_sleep
            )

        return before_sleep

    # -- destinations and messages -------------------------------------------------------------

    def _target(self, destination: DestinationSettings) -> _Target:
        """Built once per destination, again when its settings change (a reload: a rotated
        token, another api_version or test_event_code)."""
        known = self._targets.get(destination.name)
        if known is not None and (known[0] is destination or known[0] == destination):
            return known[1]
        token = destination.access_token.get_secret_value()
        secret = destination.app_secret.get_secret_value() if destination.app_secret else None
        target = _build_target(self._graph, destination, token, secret)
        self._targets[destination.name] = (destination, target)
        return target

    def _explain(self, target: _Target, sent: _Sent) -> tuple[str, str]:
        assert sent.error is not None
        error = _redacted(sent.error, target.secret_values)
        where = f"pixel {target.pixel_id} (destination {target.name})"
        settings = f"destinations.{target.name}"
        if sent.exhausted:
            reason = reasons.RETRIES_EXHAUSTED
            message = (
                f"{where}: gave up after {_attempts(sent.attempts)} in {sent.elapsed:.1f}s "
                f"(graph.max_retry_seconds={self._graph.max_retry_seconds:g}); "
                f"last error: {error.describe()}; redrive the dead letters once Meta recovers"
            )
        elif error.kind is ErrorKind.INVALID_TOKEN:
            reason = reasons.INVALID_TOKEN
            fix = (
                f"check {settings}.app_secret (it must belong to the app that issued the token)"
                if APPSECRET_PROOF_MARKER in error.message
                else f"renew {settings}.access_token"
            )
            message = (
                f"access token for {where} was rejected by Meta ({_codes(error)}): "
                f"{error.message}; {fix}"
            )
        elif error.kind is ErrorKind.PERMISSION:
            reason = reasons.PERMISSION_DENIED
            message = (
                f"access token for {where} may not send events to it ({_codes(error)}): "
                f"{error.message}; check {settings}.pixel_id and give the token's system user "
                "access to that pixel (dataset)"
            )
        elif error.kind is ErrorKind.INVALID_PARAMETER:
            reason = reasons.INVALID_PARAMETER
            message = (
                f"Meta rejected this event for {where} ({_codes(error)}): {_user_detail(error)}; "
                "fix the event at its source or the destination's mapping settings"
            )
        else:
            reason = reasons.GRAPH_REJECTED
            message = f"Meta rejected the request for {where}: {error.describe()}"
        return reason, message


def _build_target(
    graph: GraphSettings, destination: DestinationSettings, token: str, secret: str | None
) -> _Target:
    version = destination.api_version or graph.api_version
    params: dict[str, str] = {}
    if secret is not None:
        params["appsecret_proof"] = appsecret_proof(token, secret)
    return _Target(
        metric_label=metrics.destination_label(destination.name),
        name=destination.name,
        pixel_id=destination.pixel_id,
        url=f"{graph.url.rstrip('/')}/{version}/{destination.pixel_id}/events",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        params=params,
        body_suffix=_body_suffix(destination.test_event_code),
        secret_values=tuple(v for v in (token, secret) if v),
    )


def _body_suffix(test_event_code: str | None) -> bytes:
    """What closes a request body after its events: `]`, the test_event_code if any, `}`."""
    if not test_event_code:
        return b"]}"
    return b'],"test_event_code":' + orjson.dumps(test_event_code) + b"}"


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """HMAC-SHA256 of the access token, keyed with the app secret, as lowercase hex."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def _outcome_label(result: _Accepted | GraphError) -> str:
    if isinstance(result, _Accepted):
        return "ok"
    if result.kind is ErrorKind.THROTTLED:
        return "throttled"
    return "transient" if result.is_retryable else "error"


def _error_code_label(error: GraphError | None) -> str:
    if error is None:
        return "no_response"
    if error.code is not None:
        return str(error.code)
    return f"http_{error.http_status}"


def _interpret(status: int, payload: bytes, headers: Any) -> _Accepted | GraphError:
    if 200 <= status < 300:
        decoded = _loads(payload)
        if not (isinstance(decoded, dict) and "error" in decoded):
            received = decoded.get("events_received") if isinstance(decoded, dict) else None
            return _Accepted(received if isinstance(received, int) else 0)
    return parse_graph_error(status, payload, headers, now=time.time())


def _loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None


def _error_of(state: RetryCallState) -> GraphError:
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, _RetryableError):
        return exc.error
    return transport_error(repr(exc))


def _describe_client_error(exc: aiohttp.ClientError) -> str:
    # Not str(exc) for response errors: their text carries the URL with appsecret_proof.
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__} (HTTP {exc.status})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def _codes(error: GraphError) -> str:
    parts = [f"code {error.code}" if error.code is not None else f"HTTP {error.http_status}"]
    if error.subcode is not None:
        parts.append(f"subcode {error.subcode}")
    return ", ".join(parts)


def _user_detail(error: GraphError) -> str:
    """Meta's explanation for people (title: message), then its technical message."""
    detail = ": ".join(p for p in (error.user_title, error.user_msg) if p)
    if not detail:
        return error.message
    return f"{detail} [{error.message}]" if error.message else detail


def _redacted(error: GraphError, secrets: tuple[str, ...]) -> GraphError:
    """Meta's texts, minus any credential they might echo: they end up in dead-letter headers."""

    def clean(text: str | None) -> str | None:
        for secret in secrets:
            text = text.replace(secret, "[redacted]") if text else text
        return text

    return replace(
        error,
        message=clean(error.message) or "",
        user_title=clean(error.user_title),
        user_msg=clean(error.user_msg),
    )


def _log_failed_request(
    target: _Target, size: int, error: GraphError, attempt: int, action: str, wait: float
) -> None:
    log.warning(
        "graph request failed pixel=%s destination=%s events=%d status=%s code=%s subcode=%s "
        "kind=%s fbtrace_id=%s attempt=%d action=%s wait=%.2f",
        target.pixel_id,
        target.name,
        size,
        error.http_status,
        error.code,
        error.subcode,
        error.kind.value,
        error.fbtrace_id,
        attempt,
        action,
        wait,
    )
