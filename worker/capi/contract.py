"""Meta's Conversions API contract: what `POST /{pixel_id}/events` accepts, checked as Meta does.

Pure: no I/O, no clock reads (`now` is an argument). The Graph API emulator enforces these
rules; the mapping stage may use them to stop an event before it reaches a batch, since one
invalid event makes Meta reject the whole request.

Meta does not publish its list of error subcodes. `Subcode` says, for each one, whether it was
seen in real Graph responses quoted by public sources (confirmed) or is assumed. Assumed
subcodes sit at 2804100 and above so they are not mistaken for real ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from worker.capi.rules import (
    ACTION_SOURCES,
    CUSTOMER_INFORMATION_PARAMETERS,
    HASHED_FIELDS,
    INVALID_PARAMETER_CODE,
    MAX_EVENTS_PER_REQUEST,
    is_in_future,
    is_too_old,
    max_event_age_days,
)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Subcode(IntEnum):
    """`error_subcode` of an invalid-parameter (code 100) error, per rule."""

    # Confirmed: rudderlabs/rudder-transformer test data (a recorded Graph response, with this
    # title and message) and its facebookUtils/networkHandler.js error map.
    EVENT_TIME_TOO_OLD = 2804003
    # Confirmed: Setono/meta-conversions-api-php quotes a real response with this subcode and
    # a (Danish) title "you have not added sufficient customer information parameters".
    INSUFFICIENT_CUSTOMER_INFORMATION = 2804050
    # Assumed: DESIGN.md section 4 uses 2804009 for a Purchase without value; no public source
    # confirms it.
    PURCHASE_VALUE_OR_CURRENCY_MISSING = 2804009
    # Assumed from here on.
    TOO_MANY_EVENTS = 2804100
    EVENT_NOT_AN_OBJECT = 2804101
    EVENT_NAME_INVALID = 2804102
    EVENT_TIME_INVALID = 2804103
    EVENT_TIME_IN_FUTURE = 2804104
    ACTION_SOURCE_MISSING = 2804105
    ACTION_SOURCE_INVALID = 2804106
    CLIENT_USER_AGENT_MISSING = 2804107
    EVENT_SOURCE_URL_MISSING = 2804108
    USER_DATA_MISSING = 2804109
    HASHED_VALUE_INVALID = 2804110
    CUSTOM_DATA_INVALID = 2804111
    VALUE_NOT_NUMERIC = 2804112
    CURRENCY_INVALID = 2804113
    CONTENTS_INVALID = 2804114
    DATA_PROCESSING_OPTIONS_INVALID = 2804115
    APP_DATA_MISSING = 2804116
    APP_DATA_INVALID = 2804117


@dataclass(frozen=True, slots=True)
class ContractViolation:
    """Why Meta would reject a request, in the fields of a Graph API error.

    `error_user_title`/`error_user_msg` are empty for plain parameter errors, which Meta sends
    without them. `event_index` is the position in `data` of the first invalid event.
    """

    code: int
    subcode: int | None
    message: str
    error_user_title: str
    error_user_msg: str
    event_index: int | None = None


Event = dict[str, Any]
_NO_CUSTOM_DATA: dict[str, Any] = {}


def validate_request(body: Any, now: float) -> ContractViolation | None:
    """Check a parsed request body `{"data": [...], "test_event_code"?, "partner_agent"?}`.

    Returns the first problem found; an invalid event carries its index in `data`.
    """
    if not isinstance(body, dict) or "data" not in body:
        return _parameter_error("(#100) The parameter data is required")
    data = body["data"]
    if not isinstance(data, list):
        return _parameter_error("(#100) param data must be an array.")
    if not data:
        return _parameter_error("(#100) param data must be a non-empty array.")
    if len(data) > MAX_EVENTS_PER_REQUEST:
        return _invalid(
            Subcode.TOO_MANY_EVENTS,
            "Too Many Events",
            f"A request can contain at most {MAX_EVENTS_PER_REQUEST} events; this one has "
            f"{len(data)}. Send the events in smaller batches.",
        )
    for name in ("test_event_code", "partner_agent"):
        if name in body and not isinstance(body[name], str):
            return _parameter_error(f"(#100) param {name} must be a string.")
    for index, event in enumerate(data):
        violation = validate_event(event, now)
        if violation is not None:
            return replace(violation, event_index=index)
    return None


def validate_event(
    event: Any, now: float, *, hashes_verified: bool = False
) -> ContractViolation | None:
    """Check one server event; `now` is Unix seconds. None when Meta would accept it.

    Rules are checked in order and the first broken one is reported; later rules rely on what
    earlier ones established (types, action_source). `hashes_verified=True` skips checking that
    each hashed `user_data` field is a SHA-256 hex digest: for a caller that computed every hash
    itself and checked any it passed through.
    """
    if not isinstance(event, dict):
        return _invalid(
            Subcode.EVENT_NOT_AN_OBJECT,
            "Invalid Event",
            "Each element of data must be a JSON object describing one event.",
        )
    # One function per group of rules, each a run of plain checks: this runs for every event
    # the worker maps, and a call per rule would cost more than the rules themselves.
    violation = _envelope_violation(event, now)
    if violation is None:
        violation = _user_data_violation(event, hashes_verified)
    if violation is None:
        violation = _custom_data_violation(event)
    if violation is None:
        violation = _data_processing_options_violation(event)
    if violation is None and event["action_source"] == "app":
        violation = _app_data_violation(event)
    return violation


# extinfo's first entry: Meta's extinfo version, a2 for Android apps and i2 for iOS apps.
EXTINFO_VERSIONS: frozenset[str] = frozenset({"a2", "i2"})
EXTINFO_LENGTH = 16
_TRACKING_FLAGS = ("advertiser_tracking_enabled", "application_tracking_enabled")


def app_data_problem(app_data: Any) -> str | None:
    """What makes `app_data` unacceptable to Meta, as `app_data.<field> ...`; None when fine.

    Both tracking flags are 0/1 (or booleans); `extinfo` is a list of 16 strings whose first
    is `a2` or `i2`.
    """
    if not isinstance(app_data, dict):
        return "app_data must be an object"
    for flag in _TRACKING_FLAGS:
        if app_data.get(flag) not in (0, 1):  # True == 1 and False == 0
            return f"app_data.{flag} is required: 1 or 0"
    extinfo = app_data.get("extinfo")
    if not (
        isinstance(extinfo, list)
        and len(extinfo) == EXTINFO_LENGTH
        and all(isinstance(item, str) for item in extinfo)
        and extinfo[0] in EXTINFO_VERSIONS
    ):
        return (
            f"app_data.extinfo must be a list of {EXTINFO_LENGTH} strings starting with the "
            "extinfo version a2 (Android) or i2 (iOS)"
        )
    return None


def _app_data_violation(event: Event) -> ContractViolation | None:
    """An app event carries app_data with its tracking flags and device information."""
    if "app_data" not in event:
        return _invalid(
            Subcode.APP_DATA_MISSING,
            "Missing App Data",
            "The app_data parameter is required for events whose action_source is app.",
        )
    problem = app_data_problem(event["app_data"])
    if problem is None:
        return None
    return _invalid(Subcode.APP_DATA_INVALID, "Invalid App Data", f"{problem}.")


def is_sha256_hex(value: Any) -> bool:
    """A SHA-256 digest as Meta expects it: 64 lowercase hex characters."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def _envelope_violation(event: Event, now: float) -> ContractViolation | None:
    """event_name, event_time, action_source and the event time window."""
    name = event.get("event_name")
    if not (isinstance(name, str) and name.strip()):
        return _invalid(
            Subcode.EVENT_NAME_INVALID,
            "Missing Event Name",
            "The event_name parameter is required and must be a non-empty string.",
        )
    event_time = event.get("event_time")
    if type(event_time) is not int and (
        not isinstance(event_time, int) or isinstance(event_time, bool)
    ):
        return _invalid(
            Subcode.EVENT_TIME_INVALID,
            "Invalid Event Timestamp",
            "The event_time parameter is required and must be a Unix timestamp in seconds, "
            "as an integer.",
        )
    if "action_source" not in event:
        return _invalid(
            Subcode.ACTION_SOURCE_MISSING,
            "Missing Action Source",
            "The action_source parameter is required. Say where the conversion happened, "
            "for example website, app or physical_store.",
        )
    action_source = event["action_source"]
    if action_source not in ACTION_SOURCES:
        return _invalid(
            Subcode.ACTION_SOURCE_INVALID,
            "Invalid Action Source",
            f"The action_source value {action_source!r} is not valid. Allowed values: "
            f"{', '.join(sorted(ACTION_SOURCES))}.",
        )
    if is_too_old(event_time, now, action_source):
        days = max_event_age_days(action_source)
        return _invalid(
            Subcode.EVENT_TIME_TOO_OLD,
            "Event Timestamp Too Old",
            "The timestamp for this event is too far in the past. Events need to be sent "
            f"from your server within {days} days of when they occurred. Enter a timestamp "
            f"that has occurred within the last {days} days.",
        )
    if is_in_future(event_time, now):
        return _invalid(
            Subcode.EVENT_TIME_IN_FUTURE,
            "Event Timestamp In The Future",
            "The timestamp for this event is in the future. Enter the time the event "
            "actually occurred, as a Unix timestamp in seconds.",
        )
    return None


def _user_data_violation(event: Event, hashes_verified: bool) -> ContractViolation | None:
    """user_data: an object, hashed fields, customer information, website's required fields."""
    user_data = event.get("user_data")
    if not isinstance(user_data, dict):
        return _invalid(
            Subcode.USER_DATA_MISSING,
            "Missing User Data",
            "The user_data parameter is required and must be an object of customer "
            "information parameters.",
        )
    if not hashes_verified:
        for field in HASHED_FIELDS:
            value = user_data.get(field)
            if value is not None and not _is_hash_or_hash_list(value):
                return _invalid(
                    Subcode.HASHED_VALUE_INVALID,
                    "Invalid Hashed Parameter",
                    f"user_data.{field} must be a SHA-256 hash (64 lowercase hexadecimal "
                    "characters) of the normalized value, or a list of such hashes.",
                )
    for name in CUSTOMER_INFORMATION_PARAMETERS:
        if _is_present(user_data.get(name)):
            break
    else:
        return _invalid(
            Subcode.INSUFFICIENT_CUSTOMER_INFORMATION,
            "Insufficient Customer Information Parameters",
            "This event has no customer information parameters, or a combination so broad "
            "that it is unlikely to be useful for matching. Add parameters such as em, ph, "
            "external_id, client_ip_address with client_user_agent, fbp or fbc.",
        )
    if event["action_source"] != "website":
        return None
    if not _is_non_empty_string(user_data.get("client_user_agent")):
        return _invalid(
            Subcode.CLIENT_USER_AGENT_MISSING,
            "Missing Client User Agent",
            "user_data.client_user_agent is required for events whose action_source is website.",
        )
    if not _is_non_empty_string(event.get("event_source_url")):
        return _invalid(
            Subcode.EVENT_SOURCE_URL_MISSING,
            "Missing Event Source URL",
            "The event_source_url parameter is required for events whose action_source is website.",
        )
    return None


def _custom_data_violation(event: Event) -> ContractViolation | None:
    """custom_data: an object; value a number, currency a code, a Purchase has both; contents
    a list of objects with ids."""
    custom_data = event.get("custom_data", _NO_CUSTOM_DATA)
    if not isinstance(custom_data, dict):
        return _invalid(
            Subcode.CUSTOM_DATA_INVALID,
            "Invalid Custom Data",
            "The custom_data parameter must be an object.",
        )
    if "value" in custom_data and not _is_number(custom_data["value"]):
        return _invalid(
            Subcode.VALUE_NOT_NUMERIC,
            "Invalid Value",
            "custom_data.value must be a number, for example 142.52.",
        )
    if "net_revenue" in custom_data and not _is_number(custom_data["net_revenue"]):
        return _invalid(
            Subcode.VALUE_NOT_NUMERIC,
            "Invalid Net Revenue",
            "custom_data.net_revenue must be a number, for example 120.00.",
        )
    if "currency" in custom_data and not _is_currency_code(custom_data["currency"]):
        return _invalid(
            Subcode.CURRENCY_INVALID,
            "Invalid Currency Code",
            "custom_data.currency must be a 3-letter ISO 4217 currency code, for example USD.",
        )
    if event["event_name"] == "Purchase" and not (
        "value" in custom_data and "currency" in custom_data
    ):
        return _invalid(
            Subcode.PURCHASE_VALUE_OR_CURRENCY_MISSING,
            "Missing Value or Currency",
            "Purchase events must include custom_data.value and custom_data.currency.",
        )
    contents = custom_data.get("contents")
    if contents is None:
        return None
    if isinstance(contents, list):
        for item in contents:
            if not _has_id(item):
                break
        else:
            return None
    return _invalid(
        Subcode.CONTENTS_INVALID,
        "Invalid Contents",
        "custom_data.contents must be a list of objects, each with an id.",
    )


def _data_processing_options_violation(event: Event) -> ContractViolation | None:
    options = event.get("data_processing_options")
    if options is None or (isinstance(options, list) and all(isinstance(o, str) for o in options)):
        return None
    return _invalid(
        Subcode.DATA_PROCESSING_OPTIONS_INVALID,
        "Invalid Data Processing Options",
        'data_processing_options must be a list of strings, for example ["LDU"] or [].',
    )


def _invalid(subcode: Subcode, title: str, user_msg: str) -> ContractViolation:
    return ContractViolation(
        code=INVALID_PARAMETER_CODE,
        subcode=subcode,
        message="Invalid parameter",
        error_user_title=title,
        error_user_msg=user_msg,
    )


def _parameter_error(message: str) -> ContractViolation:
    return ContractViolation(
        code=INVALID_PARAMETER_CODE,
        subcode=None,
        message=message,
        error_user_title="",
        error_user_msg="",
    )


def _is_hash_or_hash_list(value: Any) -> bool:
    if isinstance(value, list):
        return all(is_sha256_hex(item) for item in value)
    return is_sha256_hex(value)


def _is_present(value: Any) -> bool:
    if value is None:
        return False
    if type(value) is str:  # the common case, without the failing isinstance() calls below
        return bool(value)
    if isinstance(value, bool):
        return False
    if isinstance(value, str | list | dict):
        return bool(value)
    return True


def _is_non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_number(value: Any) -> bool:
    if type(value) is float:  # the common case, without the failing isinstance() calls below
        return math.isfinite(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _is_currency_code(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()


def _has_id(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    item_id = item.get("id")
    if type(item_id) is str:  # the common case, without the failing isinstance() calls below
        return bool(item_id.strip())
    if isinstance(item_id, bool):
        return False
    return isinstance(item_id, int) or _is_non_empty_string(item_id)
