"""A stand-in for graph.facebook.com: the Conversions API contract, recording and fault injection.

`POST /{version}/{pixel_id}/events` authenticates like the Graph API (access token in the query
string, the body or an `Authorization: Bearer|OAuth` header, plus `appsecret_proof` when an app
secret is registered for the pixel), validates the request with `worker.capi.contract` and
answers with Meta's response shapes. One invalid event rejects the whole request.

Test hooks live under `/_emulator/`: queue faults (`POST`/`DELETE /_emulator/faults`), inspect
what was accepted (`GET /_emulator/events`), start over (`POST /_emulator/reset`) and change the
token a pixel accepts (`POST /_emulator/tokens {"pixel_id": "token"}`: a rotation on Meta's
side; from then on the old token is refused with code 190).

Every accepted request is stamped with its acceptance time (wall clock, Unix seconds): each
stored event carries it as `accepted_at`, and `GET /_emulator/events?acceptances=1` lists
`{"accepted_at", "event_ids"}` per accepted request (what `capi-worker bench` measures latency
with). `POST /_emulator/settings {"store_events": false}` keeps only counts, event ids and
acceptance times instead of every event (long benchmarks: the full record is ~3.4 KB per event).

The access token is never logged: aiohttp's access log (which prints the query string) is off,
and the emulator's own log line names only the pixel, the number of events and the status.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NoReturn

import orjson
from aiohttp import web

from worker.capi.contract import ContractViolation, validate_request

logger = logging.getLogger(__name__)

# Meta documents no body limit; 1000 events with rich custom_data can pass aiohttp's 1 MiB default.
MAX_BODY_BYTES = 16 * 1024 * 1024
_FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_FALSE_VALUES = frozenset({"0", "false", "no"})

_FAULT_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    100: "Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    341: "(#341) Application limit reached",
    368: "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
    613: "(#613) Calls to this api have exceeded the rate limit.",
}
_TRANSIENT_CODES = frozenset({1, 2})


# --------------------------------------------------------------------------- recording


@dataclass
class PixelRecord:
    """Everything one pixel accepted or refused. Dedup counts follow Meta's event_name+event_id."""

    requests: int = 0
    rejected_requests: int = 0
    faulted_requests: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    events_received: int = 0
    events_without_id: int = 0
    count_by_name_and_id: dict[tuple[str, str], int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # One (acceptance time, event ids) per accepted request, kept even when events are not.
    acceptances: list[tuple[float, list[str | None]]] = field(default_factory=list)

    def record_batch(
        self,
        events: list[dict[str, Any]],
        test_event_code: str | None,
        accepted_at: float | None = None,
        store_events: bool = True,
    ) -> None:
        accepted_at = time.time() if accepted_at is None else accepted_at
        self.requests += 1
        self.batch_sizes.append(len(events))
        self.events_received += len(events)
        counts = self.count_by_name_and_id
        event_ids: list[str | None] = []
        for event in events:
            event_id = event.get("event_id")
            if event_id is None:
                self.events_without_id += 1
                event_ids.append(None)
            else:
                text_id = str(event_id)
                key = (event["event_name"], text_id)
                counts[key] = counts.get(key, 0) + 1
                event_ids.append(text_id)
            if store_events:
                self.events.append(
                    {"test_event_code": test_event_code, "event": event, "accepted_at": accepted_at}
                )
        self.acceptances.append((accepted_at, event_ids))

    def summary(self, include_events: bool, include_acceptances: bool = False) -> dict[str, Any]:
        duplicates = {
            f"{name}|{event_id}": count
            for (name, event_id), count in self.count_by_name_and_id.items()
            if count > 1
        }
        summary: dict[str, Any] = {
            "requests": self.requests,
            "rejected_requests": self.rejected_requests,
            "faulted_requests": self.faulted_requests,
            "batch_sizes": self.batch_sizes,
            "events_received": self.events_received,
            "unique_events": len(self.count_by_name_and_id) + self.events_without_id,
            "duplicates": duplicates,
        }
        if include_events:
            summary["events"] = self.events
        if include_acceptances:
            summary["acceptances"] = [
                {"accepted_at": accepted_at, "event_ids": event_ids}
                for accepted_at, event_ids in self.acceptances
            ]
        return summary


# --------------------------------------------------------------------------- faults


FaultKind = Literal["drop", "error", "latency"]


@dataclass
class Fault:
    """What the next `remaining` matching requests get instead of normal processing."""

    remaining: int
    status: int | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    is_transient: bool | None = None
    retry_after: float | None = None
    latency_ms: int | None = None
    drop_connection: bool = False
    pixel_id: str | None = None

    @property
    def kind(self) -> FaultKind:
        if self.drop_connection:
            return "drop"
        if self.error_code is not None or (self.status is not None and self.status >= 400):
            return "error"
        return "latency"

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.remaining,
            "status": self.status,
            "error_code": self.error_code,
            "error_subcode": self.error_subcode,
            "is_transient": self.is_transient,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "drop_connection": self.drop_connection,
            "pixel_id": self.pixel_id,
        }


_FAULT_FIELDS = frozenset(Fault(remaining=1).as_dict())


class FaultSpecError(ValueError):
    """A `POST /_emulator/faults` body that does not describe a fault."""


def parse_fault(spec: Any) -> Fault:
    """Read a fault from its JSON description; raises FaultSpecError naming the bad field."""
    if not isinstance(spec, dict):
        raise FaultSpecError("the body must be a JSON object")
    unknown = set(spec) - _FAULT_FIELDS
    if unknown:
        raise FaultSpecError(f"unknown fields: {sorted(unknown)}")
    fault = Fault(
        remaining=_spec_int(spec, "count", default=1, minimum=1),
        status=_spec_optional_int(spec, "status", minimum=100, maximum=599),
        error_code=_spec_optional_int(spec, "error_code", minimum=0),
        error_subcode=_spec_optional_int(spec, "error_subcode", minimum=0),
        is_transient=_spec_optional_bool(spec, "is_transient"),
        retry_after=_spec_optional_seconds(spec, "retry_after"),
        latency_ms=_spec_optional_int(spec, "latency_ms", minimum=0),
        drop_connection=_spec_optional_bool(spec, "drop_connection") or False,
        pixel_id=_spec_optional_str(spec, "pixel_id"),
    )
    if fault.kind == "latency" and not fault.latency_ms:
        raise FaultSpecError(
            "a fault needs error_code, an HTTP status >= 400, latency_ms or drop_connection"
        )
    return fault


def _spec_int(spec: dict[str, Any], name: str, default: int, minimum: int) -> int:
    value = _spec_optional_int(spec, name, minimum=minimum)
    return default if value is None else value


def _spec_optional_int(
    spec: dict[str, Any], name: str, minimum: int, maximum: int | None = None
) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultSpecError(f"{name} must be an integer")
    if value < minimum:
        raise FaultSpecError(f"{name} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise FaultSpecError(f"{name} must be <= {maximum}")
    return value


def _spec_optional_bool(spec: dict[str, Any], name: str) -> bool | None:
    value = spec.get(name)
    if value is not None and not isinstance(value, bool):
        raise FaultSpecError(f"{name} must be true or false")
    return value


def _spec_optional_seconds(spec: dict[str, Any], name: str) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultSpecError(f"{name} must be a number of seconds >= 0")
    return float(value)


def _spec_optional_str(spec: dict[str, Any], name: str) -> str | None:
    value = spec.get(name)
    if value is not None and not isinstance(value, str):
        raise FaultSpecError(f"{name} must be a string")
    return value


class FaultQueue:
    """Faults in the order they were queued; the first one matching a pixel applies."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def take(self, pixel_id: str) -> Fault | None:
        for position, fault in enumerate(self._faults):
            if fault.pixel_id is None or fault.pixel_id == pixel_id:
                fault.remaining -= 1
                if fault.remaining == 0:
                    del self._faults[position]
                return fault
        return None

    def clear(self) -> int:
        cleared = len(self._faults)
        self._faults.clear()
        return cleared

    def pending(self) -> list[dict[str, Any]]:
        return [fault.as_dict() for fault in self._faults]


# --------------------------------------------------------------------------- state


@dataclass
class EmulatorState:
    tokens: dict[str, str]
    app_secrets: dict[str, str]
    now: Callable[[], float]
    faults: FaultQueue = field(default_factory=FaultQueue)
    pixels: dict[str, PixelRecord] = field(default_factory=dict)
    # Stands in for Meta's checks that the worker cannot make itself: an event whose event_id
    # is listed here is rejected as an invalid parameter, with this subcode, until reset.
    rejected_event_ids: dict[str, int] = field(default_factory=dict)
    # False: keep counts, event ids and acceptance times only, not the events (benchmarks).
    # A setting, not recorded state: reset() keeps it.
    store_events: bool = True

    def record_for(self, pixel_id: str) -> PixelRecord:
        record = self.pixels.get(pixel_id)
        if record is None:
            record = self.pixels[pixel_id] = PixelRecord()
        return record

    def reset(self) -> None:
        self.faults.clear()
        self.pixels.clear()
        self.rejected_event_ids.clear()

    def rejection(self, data: list[Any]) -> ContractViolation | None:
        if not self.rejected_event_ids:
            return None
        for index, event in enumerate(data):
            subcode = self.rejected_event_ids.get(str(event.get("event_id")))
            if subcode is not None:
                return ContractViolation(
                    code=100,
                    subcode=subcode,
                    message="Invalid parameter",
                    error_user_title="Event Rejected",
                    error_user_msg="This event was rejected by a rule of the emulator.",
                    event_index=index,
                )
        return None


STATE = web.AppKey("graph_emulator_state", EmulatorState)


# --------------------------------------------------------------------------- Graph responses


def new_fbtrace_id() -> str:
    return secrets.token_urlsafe(17)


def graph_error_response(
    status: int,
    *,
    message: str,
    code: int,
    subcode: int | None = None,
    error_type: str = "OAuthException",
    is_transient: bool | None = None,
    user_title: str = "",
    user_msg: str = "",
    error_data: dict[str, Any] | None = None,
    retry_after: float | None = None,
) -> web.Response:
    """A Graph API error: `{"error": {...}}` with only the fields Meta sends for that case."""
    trace_id = new_fbtrace_id()
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    if user_title:
        error["error_user_title"] = user_title
    if user_msg:
        error["error_user_msg"] = user_msg
    if error_data:
        error["error_data"] = error_data
    error["fbtrace_id"] = trace_id
    headers = {"x-fb-trace-id": trace_id}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    return _json_response({"error": error}, status=status, headers=headers)


def _violation_response(violation: ContractViolation) -> web.Response:
    user_msg = violation.error_user_msg
    error_data = None
    if violation.event_index is not None:
        user_msg = f"{user_msg} (event at index {violation.event_index} of data)"
        error_data = {"event_index": violation.event_index}
    return graph_error_response(
        400,
        message=violation.message,
        code=violation.code,
        subcode=violation.subcode,
        is_transient=False,
        user_title=violation.error_user_title,
        user_msg=user_msg,
        error_data=error_data,
    )


def _fault_response(fault: Fault) -> web.Response:
    if fault.error_code is None:
        # A status without a Graph code: what a proxy or load balancer in front of Meta sends.
        status = fault.status or 502
        return web.Response(
            status=status,
            text=f"<html><body><h1>{status} Service Error</h1></body></html>",
            content_type="text/html",
            headers=_retry_after_header(fault.retry_after),
        )
    code = fault.error_code
    return graph_error_response(
        fault.status or 400,
        message=_FAULT_MESSAGES.get(code) or _default_fault_message(code),
        code=code,
        subcode=fault.error_subcode,
        is_transient=fault.is_transient
        if fault.is_transient is not None
        else code in _TRANSIENT_CODES,
        retry_after=fault.retry_after,
    )


def _default_fault_message(code: int) -> str:
    if 80000 <= code <= 80014:
        return (
            f"(#{code}) There have been too many calls from this ad account. "
            "Wait a bit and try again."
        )
    if 200 <= code <= 299:
        return f"(#{code}) Permissions error"
    return "An unknown error has occurred."


def _retry_after_header(retry_after: float | None) -> dict[str, str]:
    return {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}


def _json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(payload),
        content_type="application/json",
        headers=headers,
    )


# --------------------------------------------------------------------------- request reading


class _UnreadableBody(Exception):
    pass


async def _request_params(request: web.Request) -> dict[str, Any]:
    """Query string and body merged, body winning; `data` decoded when it arrives as a string."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type in _FORM_CONTENT_TYPES:
        form = await request.post()
        params.update({name: value for name, value in form.items() if isinstance(value, str)})
    else:
        raw = await request.read()
        if raw:
            params.update(_json_object(raw))
    if isinstance(params.get("data"), str):
        params["data"] = _decode_json_or_keep(params["data"])
    if isinstance(params.get("data"), list):
        # The official SDKs send each event as a JSON-encoded string inside `data`.
        params["data"] = [_decode_json_or_keep(item) for item in params["data"]]
    return params


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _UnreadableBody from None
    if not isinstance(decoded, dict):
        raise _UnreadableBody
    return decoded


def _decode_json_or_keep(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _access_token(request: web.Request, params: Mapping[str, Any]) -> str | None:
    token = params.get("access_token")
    if isinstance(token, str) and token:
        return token
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in {"bearer", "oauth"} and credentials.strip():
        return credentials.strip()
    return None


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """HMAC-SHA256 of the token keyed by the app secret, hex: what Meta expects."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def _auth_error(
    state: EmulatorState, pixel_id: str, token: str | None, proof: Any
) -> web.Response | None:
    if token is None:
        return graph_error_response(
            400, message="An access token is required to request this resource.", code=104
        )
    expected = state.tokens.get(pixel_id)
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        return graph_error_response(
            400, message="Invalid OAuth access token - Cannot parse access token", code=190
        )
    app_secret = state.app_secrets.get(pixel_id)
    if app_secret is None:
        return None
    if not isinstance(proof, str) or not proof:
        return graph_error_response(
            400,
            message="API calls from the server require an appsecret_proof argument",
            code=100,
            error_type="GraphMethodException",
        )
    if not hmac.compare_digest(proof.encode(), appsecret_proof(token, app_secret).encode()):
        return graph_error_response(
            400,
            message="Invalid appsecret_proof provided in the API argument",
            code=100,
            error_type="GraphMethodException",
        )
    return None


# --------------------------------------------------------------------------- handlers


async def _post_events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    pixel_id = request.match_info["pixel_id"]
    fault = state.faults.take(pixel_id)
    if fault is not None:
        state.record_for(pixel_id).faulted_requests += 1
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.kind == "drop":
            _log_request(pixel_id, events=0, status=None, fault=fault.kind)
            _drop_connection(request)
        if fault.kind == "error":
            response = _fault_response(fault)
            _log_request(pixel_id, events=0, status=response.status, fault=fault.kind)
            return response
    response, event_count = await _process_events(request, state, pixel_id)
    _log_request(pixel_id, events=event_count, status=response.status, fault=_kind(fault))
    return response


async def _process_events(
    request: web.Request, state: EmulatorState, pixel_id: str
) -> tuple[web.Response, int]:
    record = state.record_for(pixel_id)
    try:
        params = await _request_params(request)
    except _UnreadableBody:
        record.rejected_requests += 1
        return graph_error_response(
            400, message="(#100) The request body is not a valid JSON object", code=100
        ), 0
    data = params.get("data")
    event_count = len(data) if isinstance(data, list) else 0
    refusal = _auth_error(
        state, pixel_id, _access_token(request, params), params.get("appsecret_proof")
    )
    if refusal is None:
        violation = validate_request(params, state.now()) or state.rejection(data or [])
        refusal = None if violation is None else _violation_response(violation)
    if refusal is not None:
        record.rejected_requests += 1
        return refusal, event_count
    assert isinstance(data, list)  # validate_request accepted it
    record.record_batch(
        data, params.get("test_event_code"), time.time(), store_events=state.store_events
    )
    trace_id = new_fbtrace_id()
    body = {"events_received": len(data), "messages": [], "fbtrace_id": trace_id}
    return _json_response(body, headers={"x-fb-trace-id": trace_id}), event_count


def _drop_connection(request: web.Request) -> NoReturn:
    """Close the socket without an answer; raising stops aiohttp from writing one."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise web.HTTPServiceUnavailable()


def _kind(fault: Fault | None) -> str:
    return "none" if fault is None else fault.kind


def _log_request(pixel_id: str, *, events: int, status: int | None, fault: str) -> None:
    logger.info(
        "graph-emulator pixel=%s events=%d status=%s fault=%s",
        pixel_id,
        events,
        "dropped" if status is None else status,
        fault,
    )


async def _add_fault(request: web.Request) -> web.Response:
    try:
        fault = parse_fault(await request.json())
    except ValueError as error:  # FaultSpecError, or a body that is not JSON
        return _json_response({"error": f"invalid fault: {error}"}, status=400)
    state = request.app[STATE]
    state.faults.add(fault)
    return _json_response({"queued": fault.as_dict(), "pending": state.faults.pending()})


async def _list_faults(request: web.Request) -> web.Response:
    return _json_response({"pending": request.app[STATE].faults.pending()})


async def _clear_faults(request: web.Request) -> web.Response:
    return _json_response({"cleared": request.app[STATE].faults.clear()})


async def _add_rejections(request: web.Request) -> web.Response:
    spec = await request.json()
    event_ids, subcode = spec.get("event_ids"), spec.get("error_subcode", 2804050)
    if not isinstance(event_ids, list) or not isinstance(subcode, int):
        return _json_response({"error": "expected event_ids: [str] and error_subcode: int"}, 400)
    rules = request.app[STATE].rejected_event_ids
    rules.update({str(event_id): subcode for event_id in event_ids})
    return _json_response({"rejected_event_ids": rules})


async def _received_events(request: web.Request) -> web.Response:
    state = request.app[STATE]
    include_events = request.query.get("events", "1").lower() not in _FALSE_VALUES
    include_acceptances = request.query.get("acceptances", "0").lower() not in _FALSE_VALUES
    pixel_id = request.query.get("pixel_id")
    if pixel_id is None:
        records = state.pixels
    else:
        records = {pixel_id: state.pixels.get(pixel_id) or PixelRecord()}
    pixels = {
        pid: record.summary(include_events, include_acceptances) for pid, record in records.items()
    }
    return _json_response({"pixels": pixels})


def _settings(state: EmulatorState) -> dict[str, Any]:
    return {"store_events": state.store_events}


async def _get_settings(request: web.Request) -> web.Response:
    return _json_response(_settings(request.app[STATE]))


async def _update_settings(request: web.Request) -> web.Response:
    """`{"store_events": bool}`: whether accepted events are kept whole (the default) or only
    counted with their ids and acceptance times."""
    try:
        spec = await request.json()
    except ValueError:
        spec = None
    if not isinstance(spec, dict) or set(spec) - {"store_events"}:
        return _json_response({"error": "expected a JSON object with store_events"}, 400)
    store_events = spec.get("store_events", request.app[STATE].store_events)
    if not isinstance(store_events, bool):
        return _json_response({"error": "store_events must be true or false"}, 400)
    request.app[STATE].store_events = store_events
    return _json_response(_settings(request.app[STATE]))


async def _set_tokens(request: web.Request) -> web.Response:
    try:
        spec = await request.json()
    except ValueError:
        spec = None
    if not isinstance(spec, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in spec.items()
    ):
        return _json_response({"error": "expected a JSON object of pixel_id: token"}, 400)
    request.app[STATE].tokens.update(spec)
    return _json_response({"pixels": sorted(request.app[STATE].tokens)})


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return _json_response({"reset": True})


def create_app(
    tokens: dict[str, str],
    app_secrets: dict[str, str] | None = None,
    now: Callable[[], float] = time.time,
    *,
    store_events: bool = True,
) -> web.Application:
    """The emulator app. `tokens` and `app_secrets` map a pixel id to its token / app secret.

    `store_events=False` keeps counts, event ids and acceptance times instead of every event.
    """
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE] = EmulatorState(
        tokens=dict(tokens),
        app_secrets=dict(app_secrets or {}),
        now=now,
        store_events=store_events,
    )
    app.router.add_post(r"/{version:v\d+\.\d+}/{pixel_id:\d+}/events", _post_events)
    app.router.add_post("/_emulator/faults", _add_fault)
    app.router.add_get("/_emulator/faults", _list_faults)
    app.router.add_delete("/_emulator/faults", _clear_faults)
    app.router.add_get("/_emulator/events", _received_events)
    app.router.add_post("/_emulator/rejections", _add_rejections)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_post("/_emulator/tokens", _set_tokens)
    app.router.add_get("/_emulator/settings", _get_settings)
    app.router.add_post("/_emulator/settings", _update_settings)
    return app


# --------------------------------------------------------------------------- running it


class RunningEmulator:
    """The emulator served on a real socket from its own thread and event loop."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="graph-emulator", daemon=True)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self, timeout: float = 10.0) -> RunningEmulator:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the graph emulator did not start in time")
        if self._startup_error is not None:
            raise RuntimeError(f"the graph emulator failed to start: {self._startup_error}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> RunningEmulator:
        return self if self._port is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        try:
            self._port = loop.run_until_complete(self._bind(runner))
        except BaseException as error:  # reported to the thread that called start()
            self._startup_error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _bind(self, runner: web.AppRunner) -> int:
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        await site.start()
        port: int = runner.addresses[0][1]
        return port


def start_in_thread(
    tokens: dict[str, str],
    app_secrets: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    now: Callable[[], float] = time.time,
) -> RunningEmulator:
    """Start the emulator in a background thread; port 0 picks a free port (see `.port`)."""
    return RunningEmulator(create_app(tokens, app_secrets, now), host, port).start()


def serve(host: str, port: int, tokens: dict[str, str], app_secrets: dict[str, str]) -> None:
    """Serve the emulator until interrupted (the `capi-worker graph-emulator` sub-command)."""
    if not logging.getLogger().handlers:  # called outside the CLI, which configures logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logger.info(
        "graph-emulator listening on http://%s:%d pixels=%s app_secret_pixels=%s",
        host,
        port,
        ",".join(sorted(tokens)) or "-",
        ",".join(sorted(app_secrets)) or "-",
    )
    web.run_app(create_app(tokens, app_secrets), host=host, port=port, access_log=None, print=None)
