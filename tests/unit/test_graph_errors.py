"""Graph API error parsing and classification (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
import pytest

from worker.capi.graph_errors import (
    ErrorKind,
    GraphError,
    classify,
    parse_graph_error,
    parse_retry_after,
    transport_error,
)


def graph_body(code: int | None, subcode: int | None = None, **extra: Any) -> bytes:
    error: dict[str, Any] = {"message": "boom", "type": "OAuthException", "fbtrace_id": "AbC"}
    if code is not None:
        error["code"] = code
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    return orjson.dumps({"error": error})


CLASSIFICATION = [
    # (HTTP status, code, subcode, extra fields, expected kind)
    (400, 4, None, {}, ErrorKind.THROTTLED),
    (400, 17, 2446079, {}, ErrorKind.THROTTLED),
    (400, 32, None, {}, ErrorKind.THROTTLED),
    (400, 613, 1487742, {}, ErrorKind.THROTTLED),
    (400, 80000, None, {}, ErrorKind.THROTTLED),
    (400, 80004, None, {}, ErrorKind.THROTTLED),
    (400, 80014, None, {}, ErrorKind.THROTTLED),
    (500, 1, None, {}, ErrorKind.TRANSIENT),
    (500, 2, None, {"is_transient": True}, ErrorKind.TRANSIENT),
    (400, 341, None, {}, ErrorKind.TRANSIENT),
    (400, 368, None, {}, ErrorKind.TRANSIENT),
    (400, 9999, None, {"is_transient": True}, ErrorKind.TRANSIENT),
    (503, 9999, None, {}, ErrorKind.TRANSIENT),
    (400, 190, None, {}, ErrorKind.INVALID_TOKEN),
    (401, 190, 463, {}, ErrorKind.INVALID_TOKEN),
    (400, 102, None, {}, ErrorKind.INVALID_TOKEN),
    (400, 2500, 467, {}, ErrorKind.INVALID_TOKEN),
    (500, 190, None, {"is_transient": False}, ErrorKind.INVALID_TOKEN),
    (403, 10, None, {}, ErrorKind.PERMISSION),
    (403, 200, None, {}, ErrorKind.PERMISSION),
    (403, 299, None, {}, ErrorKind.PERMISSION),
    (400, 100, 33, {}, ErrorKind.PERMISSION),
    (400, 100, 2804003, {}, ErrorKind.INVALID_PARAMETER),
    (400, 100, 2804009, {}, ErrorKind.INVALID_PARAMETER),
    (400, 100, None, {}, ErrorKind.INVALID_PARAMETER),
    (400, 100, None, {"message": "Invalid appsecret_proof provided"}, ErrorKind.INVALID_TOKEN),
    (400, 3, None, {}, ErrorKind.PERMANENT),
    (400, 506, None, {}, ErrorKind.PERMANENT),
    (404, 803, None, {}, ErrorKind.PERMANENT),
]


@pytest.mark.parametrize(("status", "code", "subcode", "extra", "kind"), CLASSIFICATION)
def test_classification_uses_code_and_subcode(
    status: int, code: int, subcode: int | None, extra: dict[str, Any], kind: ErrorKind
) -> None:
    error = parse_graph_error(status, graph_body(code, subcode, **extra), {})
    assert error.code == code
    assert error.subcode == subcode
    assert error.kind is kind
    assert error.is_retryable is (kind in {ErrorKind.THROTTLED, ErrorKind.TRANSIENT})


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", ErrorKind.TRANSIENT),
        (500, b"", ErrorKind.TRANSIENT),
        (504, b"upstream timed out", ErrorKind.TRANSIENT),
        (429, b"Too Many Requests", ErrorKind.THROTTLED),
        (408, b"", ErrorKind.TRANSIENT),
        (400, b"not json", ErrorKind.PERMANENT),
        (400, b'{"error": "a string, not an object"}', ErrorKind.PERMANENT),
        (400, b"[1, 2]", ErrorKind.PERMANENT),
        (400, orjson.dumps({"error": {"message": "x", "is_transient": True}}), ErrorKind.TRANSIENT),
    ],
)
def test_bodies_without_a_code_fall_back_on_the_status(
    status: int, body: bytes, kind: ErrorKind
) -> None:
    error = parse_graph_error(status, body, {})
    assert error.code is None
    assert error.kind is kind


def test_html_page_becomes_a_short_text_message() -> None:
    page = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>" + b"x" * 5000 + b"</body>"
    error = parse_graph_error(502, page, {"X-FB-Trace-Id": "trace1"})
    assert error.message.startswith("502 Bad Gateway")
    assert "<" not in error.message
    assert len(error.message) <= 300
    assert error.fbtrace_id == "trace1"


def test_all_fields_are_read() -> None:
    body = orjson.dumps(
        {
            "error": {
                "message": "Invalid parameter",
                "type": "OAuthException",
                "code": 100,
                "error_subcode": 2804003,
                "is_transient": False,
                "error_user_title": "Event Timestamp Too Old",
                "error_user_msg": "The timestamp for this event is too far in the past.",
                "fbtrace_id": "AZx1",
            }
        }
    )
    error = parse_graph_error(400, body, {"Retry-After": "3"})
    assert error == GraphError(
        http_status=400,
        code=100,
        subcode=2804003,
        message="Invalid parameter",
        error_type="OAuthException",
        is_transient=False,
        fbtrace_id="AZx1",
        retry_after=3.0,
        user_title="Event Timestamp Too Old",
        user_msg="The timestamp for this event is too far in the past.",
    )
    assert (
        error.describe() == "HTTP 400, code 100, subcode 2804003, OAuthException: Invalid parameter"
    )


def test_codes_sent_as_strings_are_read_and_odd_types_ignored() -> None:
    body = orjson.dumps({"error": {"code": "4", "error_subcode": True, "is_transient": "true"}})
    error = parse_graph_error(400, body, None)
    assert (error.code, error.subcode, error.is_transient) == (4, None, True)
    assert error.message == ""
    assert error.kind is ErrorKind.THROTTLED


def test_header_lookup_ignores_case() -> None:
    error = parse_graph_error(400, graph_body(4), {"retry-after": "2.5"})
    assert error.retry_after == 2.5


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("1", 1.0),
        (" 120 ", 120.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("soon", None),
        (format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True), 30.0),
        (format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: cannot tell when that is
    ],
)
def test_retry_after_forms(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_transport_errors_are_transient_and_have_no_status() -> None:
    error = transport_error("ServerDisconnectedError: Server disconnected")
    assert error.http_status is None
    assert error.kind is ErrorKind.TRANSIENT
    assert error.describe() == "no response: ServerDisconnectedError: Server disconnected"


def test_status_alone_never_overrides_a_permanent_code() -> None:
    assert classify(GraphError(502, 100, 2804003, "bad")) is ErrorKind.INVALID_PARAMETER
    assert classify(GraphError(400, 4, None, "slow down")) is ErrorKind.THROTTLED
