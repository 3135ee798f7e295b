"""What a failed Graph API call means, and whether it is worth trying again.

Pure: no I/O. `parse_graph_error` reads a response (any body, even an HTML 502 page) into a
`GraphError`; `GraphError.kind` classifies it on Meta's `code`/`error_subcode`, falling back on
the HTTP status only when the body carries no code at all.

Codes follow Meta's "Handling Errors" guide
(https://developers.facebook.com/docs/graph-api/guides/error-handling) unless noted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

import orjson

from worker.capi.rules import INVALID_PARAMETER_CODE


class ErrorKind(Enum):
    THROTTLED = "throttled"  # retry after a pause; the whole pixel should wait
    TRANSIENT = "transient"  # retry with backoff
    INVALID_TOKEN = "invalid_token"  # renew the access token
    PERMISSION = "permission"  # grant the token access to the pixel
    INVALID_PARAMETER = "invalid_parameter"  # something in the request (an event) is wrong
    PERMANENT = "permanent"  # anything else: retrying will not help


# 4 app, 17 user, 32 page, 613 "calls within one hour exceeded". 80000-80014 are the Business
# Use Case rate limits (Marketing API rate-limiting guide; they come back with HTTP 400).
THROTTLING_CODES: frozenset[int] = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# 1 API unknown, 2 API service, 341 application limit reached, 368 temporarily blocked for
# policy violations: the guide's advice for all four is "wait and retry the operation".
TRANSIENT_CODES: frozenset[int] = frozenset({1, 2, 341, 368})
# 190 access token expired/invalid, 102 API session (an OAuthException without subcode means
# the token expired, was revoked or is invalid).
TOKEN_CODES: frozenset[int] = frozenset({190, 102})
# Authentication subcodes that mean "this token can no longer be used" (463 expired,
# 467 invalid access token), whatever code they arrive with.
TOKEN_SUBCODES: frozenset[int] = frozenset({463, 467})
PERMISSION_CODES: frozenset[int] = frozenset({10, *range(200, 300)})
# Code 100 subcode 33, "Unsupported post request. Object with ID ... does not exist, cannot be
# loaded due to missing permissions": for /{pixel}/events this means a wrong pixel id or a
# token without access to it, not a bad event (Marketing API error reference lists it as a
# system-user permission problem). Bisecting the batch would only multiply the requests.
MISSING_OBJECT_SUBCODE = 33
# "Invalid appsecret_proof provided in the API argument" is code 100 without a subcode
# (GraphMethodException; see facebook/facebook-python-business-sdk#528). It is about the
# credentials of the request, not its events, so it must not be bisected either.
APPSECRET_PROOF_MARKER = "appsecret_proof"

_RETRYABLE = frozenset({ErrorKind.THROTTLED, ErrorKind.TRANSIENT})
_MESSAGE_LIMIT = 300
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class GraphError:
    """A Graph API error response, or a transport failure (`http_status` None)."""

    http_status: int | None
    code: int | None
    subcode: int | None
    message: str
    error_type: str | None = None
    is_transient: bool | None = None
    fbtrace_id: str | None = None
    retry_after: float | None = None  # seconds, from the Retry-After header
    user_title: str | None = None
    user_msg: str | None = None

    @property
    def kind(self) -> ErrorKind:
        return classify(self)

    @property
    def is_retryable(self) -> bool:
        return self.kind in _RETRYABLE

    def describe(self) -> str:
        """One line for messages and logs: status, code, subcode, type and Meta's message."""
        parts = [
            f"HTTP {self.http_status}" if self.http_status is not None else "no response",
            f"code {self.code}" if self.code is not None else None,
            f"subcode {self.subcode}" if self.subcode is not None else None,
            self.error_type,
        ]
        head = ", ".join(p for p in parts if p)
        return f"{head}: {self.message}" if self.message else head


def classify(error: GraphError) -> ErrorKind:
    """Meta's code and subcode decide; the HTTP status only matters when there is no code."""
    if error.code is not None:
        return _classify_code(error.code, error.subcode, error)
    if error.is_transient:
        return ErrorKind.TRANSIENT
    return _classify_status(error.http_status)


def _classify_code(code: int, subcode: int | None, error: GraphError) -> ErrorKind:
    if code in THROTTLING_CODES:
        return ErrorKind.THROTTLED
    if code in TOKEN_CODES or subcode in TOKEN_SUBCODES:
        return ErrorKind.INVALID_TOKEN
    if code in PERMISSION_CODES:
        return ErrorKind.PERMISSION
    if code == INVALID_PARAMETER_CODE:
        if subcode == MISSING_OBJECT_SUBCODE:
            return ErrorKind.PERMISSION
        if subcode is None and APPSECRET_PROOF_MARKER in error.message:
            return ErrorKind.INVALID_TOKEN
        return ErrorKind.INVALID_PARAMETER
    if code in TRANSIENT_CODES or error.is_transient:
        return ErrorKind.TRANSIENT
    if error.http_status is None or error.http_status >= 500:
        return ErrorKind.TRANSIENT  # an unknown code on a server error: the server's fault
    return ErrorKind.PERMANENT


def _classify_status(status: int | None) -> ErrorKind:
    if status is None or status >= 500 or status == 408:
        return ErrorKind.TRANSIENT  # timeout, dropped connection, gateway page
    if status == 429:
        return ErrorKind.THROTTLED
    return ErrorKind.PERMANENT


def transport_error(message: str) -> GraphError:
    """A request that got no HTTP response: connection refused or dropped, timeout."""
    return GraphError(http_status=None, code=None, subcode=None, message=message, is_transient=True)


def parse_graph_error(
    status: int | None,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
) -> GraphError:
    """Read an error response. Never raises: a body that is not Graph JSON becomes its text.

    `now` (Unix seconds) is only used to turn a Retry-After HTTP date into seconds.
    """
    headers = headers or {}
    retry_after = parse_retry_after(_header(headers, "Retry-After"), now=now)
    header_trace = _header(headers, "x-fb-trace-id")
    payload = _error_payload(body)
    if payload is None:
        return GraphError(
            http_status=status,
            code=None,
            subcode=None,
            message=_body_text(body),
            fbtrace_id=header_trace,
            retry_after=retry_after,
        )
    return GraphError(
        http_status=status,
        code=_as_int(payload.get("code")),
        subcode=_as_int(payload.get("error_subcode")),
        message=_as_str(payload.get("message")) or "",
        error_type=_as_str(payload.get("type")),
        is_transient=_as_bool(payload.get("is_transient")),
        fbtrace_id=_as_str(payload.get("fbtrace_id")) or header_trace,
        retry_after=retry_after,
        user_title=_as_str(payload.get("error_user_title")),
        user_msg=_as_str(payload.get("error_user_msg")),
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date. None if absent or junk."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _error_payload(body: bytes) -> dict[str, Any] | None:
    try:
        decoded = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    error = decoded.get("error")
    return error if isinstance(error, dict) else None


def _body_text(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    text = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return text[:_MESSAGE_LIMIT]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None
