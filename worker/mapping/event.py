"""map_event: one decoded Segment/RudderStack event + one destination -> a Conversions API event.

Pure: no I/O, no clock (`now` is an argument), no logging. Never raises: whatever the input,
the answer is `Mapped`, `Skipped` or `Invalid` (stage `map`). Checks run cheapest first and the
first failure wins: type, integration switches, structure, consent, name, time, action_source,
user_data, custom_data; with `mapping.verify_contract` (and for calls without a plan), the
built event is then checked against Meta's contract (`worker.capi.contract`).

event_id is `properties.event_id`, `context.traits.event_id`, `traits.event_id`, else
`messageId`; with none of them the event is sent without one (Meta accepts it; it only loses
deduplication against the browser pixel), rather than with an id we would invent and that could
never match the pixel's.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Final

from worker import reasons
from worker.capi.contract import validate_event
from worker.capi.rules import (
    ACTION_SOURCES,
    MAX_EVENT_AGE_SECONDS,
    MAX_PHYSICAL_STORE_EVENT_AGE_SECONDS,
    MAX_SECONDS_IN_FUTURE,
    is_in_future,
    is_too_old,
    max_event_age_days,
)
from worker.config import DestinationSettings
from worker.mapping.app_data import advertising_id, build_app_data
from worker.mapping.consent import has_consent
from worker.mapping.custom_data import build_custom_data
from worker.mapping.errors import InvalidEvent, shown
from worker.mapping.ldu import data_processing_options
from worker.mapping.names import IDENTIFY_EVENT_NAME, page_event_name, track_event_name
from worker.mapping.options import integration_options
from worker.mapping.paths import first_present
from worker.mapping.plan import DestinationPlan, build_plan
from worker.mapping.result import Invalid, Mapped, MapResult, Skipped
from worker.mapping.timefields import parse_timestamp_ms
from worker.mapping.user_data import build_user_data, has_customer_information

FORWARDED_TYPES: Final = frozenset({"track", "page", "screen", "identify"})
_EMPTY: Final[dict[str, Any]] = {}
_ACTION_SOURCE_KEYS: Final[tuple[str, ...]] = ("action_source", "actionSource")
# Ages (now - event_time, seconds) within every action_source's window: such an event is
# neither too old nor in the future, which _check_time_window sees without calling the rules
# (uncompiled code) for it.
_OLDEST_ALWAYS_ACCEPTED: Final = float(
    min(MAX_EVENT_AGE_SECONDS, MAX_PHYSICAL_STORE_EVENT_AGE_SECONDS)
)
_NEWEST_ALWAYS_ACCEPTED: Final = -float(MAX_SECONDS_IN_FUTURE)


def map_event(
    message: Any,
    destination: DestinationSettings,
    now: float,
    plan: DestinationPlan | None = None,
) -> MapResult:
    """Map `message` for `destination` as of `now` (Unix seconds). `plan` is the destination's
    plan from its destination set; without one it is built for this call, with the contract
    check on (see the end of `_map`)."""
    if plan is None:
        plan = build_plan(destination, verify_contract=True)
    try:
        return _map(message, plan, now)
    except InvalidEvent as error:
        return Invalid(error.reason, error.message)
    except Exception as error:  # a bug in this package must cost one event, not the worker
        return Invalid(reasons.MAPPING_FAILED, _describe_bug(error))


def _map(message: Any, plan: DestinationPlan, now: float) -> MapResult:
    if not isinstance(message, dict):
        raise InvalidEvent(
            reasons.INVALID_MESSAGE,
            f"the event must be a JSON object, got {type(message).__name__}",
        )
    kind = message.get("type")
    if type(kind) is not str or kind not in FORWARDED_TYPES:  # else it is already normalised
        kind = _event_type(kind)
        if kind not in FORWARDED_TYPES:
            return Skipped(reasons.EVENT_TYPE_NOT_FORWARDED)
    if kind == "identify" and not plan.forward_identify:
        return Skipped(reasons.IDENTIFY_NOT_FORWARDED)
    if kind == "screen" and not plan.forward_screen:
        return Skipped(reasons.SCREEN_NOT_FORWARDED)

    options = integration_options(message, plan.integration_names, plan.integration_name_set)
    if options is None:
        return Skipped(reasons.INTEGRATION_DISABLED)
    context = message.get("context")
    if type(context) is not dict:
        context = _object(context, reasons.INVALID_CONTEXT, "context")
    if plan.required_consent and not has_consent(context, plan.required_consent):
        return Skipped(reasons.NO_CONSENT)
    properties = message.get("properties")
    if type(properties) is not dict:
        properties = _object(properties, reasons.INVALID_PROPERTIES, "properties")
    context_traits = context.get("traits")
    if type(context_traits) is not dict:
        context_traits = _object(context_traits, reasons.INVALID_TRAITS, "context.traits")
    traits = message.get("traits")
    if type(traits) is not dict:
        traits = _object(traits, reasons.INVALID_TRAITS, "traits")

    if kind == "track":
        event_name = track_event_name(message.get("event"), plan)
    elif kind == "identify":
        event_name = IDENTIFY_EVENT_NAME
    else:
        page_name = message.get("name")
        if page_name is None:
            page_name = properties.get("name")
        event_name = page_event_name(kind, page_name, plan.page_event_naming)

    timestamp = message.get("timestamp")
    if timestamp is None:
        timestamp = message.get("originalTimestamp")
    event_time_ms = parse_timestamp_ms(timestamp)
    if event_time_ms is None:
        raise InvalidEvent(
            reasons.INVALID_TIMESTAMP,
            f"timestamp must be ISO-8601 or epoch seconds/milliseconds, got {shown(timestamp, 40)}",
        )
    event_time = event_time_ms // 1000

    prehashed = options.get("hashed") is True
    action_source = _action_source(
        properties, options, context_traits, traits, plan.default_action_source
    )
    _check_time_window(event_time, now, action_source)
    app_data = build_app_data(context, options) if action_source == "app" else None

    page = context.get("page")
    if page is None or not isinstance(page, dict):
        page = _EMPTY
    page_url = _page_field(page, properties if kind == "page" else _EMPTY, "url")
    user_data = build_user_data(
        message,
        context,
        properties,
        (context_traits,) if kind == "track" else (traits, context_traits),
        options,
        plan.external_id_field,
        page_url,
        event_time_ms,
        prehashed,
        plan.drop_external_id,
        plan.default_phone_country,
    )
    if app_data is not None and "madid" not in user_data:
        madid = advertising_id(context)
        if madid is not None:
            user_data["madid"] = madid
    referrer_url = None
    if action_source == "website":
        referrer_url = _page_field(page, properties, "referrer")
        if "client_user_agent" not in user_data:
            raise InvalidEvent(
                reasons.MISSING_CLIENT_USER_AGENT,
                "a website event needs context.userAgent (or set another action_source)",
            )
        if page_url is None:
            raise InvalidEvent(
                reasons.MISSING_EVENT_SOURCE_URL,
                "a website event needs context.page.url (or set another action_source)",
            )
    if not has_customer_information(user_data):
        raise InvalidEvent(
            reasons.MISSING_USER_DATA,
            "no customer information parameter: send userId or anonymousId, traits such as "
            "email or phone, context.ip, context.userAgent, or fbp/fbc",
        )

    event: dict[str, Any] = {"event_name": event_name, "event_time": event_time}
    event_id = _event_id(message, properties, context_traits, traits)
    if event_id is not None:
        event["event_id"] = event_id
    event["action_source"] = action_source
    if page_url is not None:
        event["event_source_url"] = page_url
    if referrer_url is not None:
        event["referrer_url"] = referrer_url
    opt_out = _opt_out(properties, context_traits, traits)
    if opt_out is not None:
        event["opt_out"] = opt_out
    event["user_data"] = user_data
    if app_data is not None:
        event["app_data"] = app_data
    if kind != "identify":
        custom_data = build_custom_data(properties, event_name, plan, options, prehashed)
        if custom_data:
            event["custom_data"] = custom_data
    processing = data_processing_options(options, context, plan)
    if processing is not None:
        chosen, country, state = processing
        event["data_processing_options"] = chosen
        if country is not None:
            event["data_processing_options_country"] = country
        if state is not None:
            event["data_processing_options_state"] = state
    # The rules above guarantee Meta's contract (the tests check every event they map against
    # it, with hypothesis too), so the worker does not check its own events again on the hot
    # path. `mapping.verify_contract: true` turns the check on as a backstop: one event Meta
    # refuses makes it refuse the whole batch, and such an event is then stopped here. user_data's
    # hashes are SHA-256 hex by construction, so their format is not checked again.
    if plan.verify_contract:
        violation = validate_event(event, now, hashes_verified=True)
        if violation is not None:
            return Invalid(
                reasons.META_CONTRACT_VIOLATION,
                violation.error_user_msg or violation.message,
            )
    return Mapped(event, _test_event_code(options))


def _describe_bug(error: Exception) -> str:
    """Where the mapping code failed, for a bug report. Not the exception's text: that may
    quote a value of the event (`int('jane@example.com')`), and this message is dead-lettered.
    """
    where = ""
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        frame = frames[-1]
        where = f" in {frame.name} ({Path(frame.filename).name}:{frame.lineno})"
    return f"{type(error).__name__}{where}: a bug in the mapping; report it with the event"


def _event_type(value: Any) -> str:
    if value is None:
        raise InvalidEvent(reasons.MISSING_TYPE, "the event has no `type`")
    if not isinstance(value, str):
        raise InvalidEvent(
            reasons.INVALID_TYPE, f"`type` must be a string, got {type(value).__name__}"
        )
    kind = value.strip().lower()
    if not kind:
        raise InvalidEvent(reasons.MISSING_TYPE, "the event's `type` is empty")
    return kind


def _object(value: Any, reason: str, where: str) -> dict[str, Any]:
    """`value` when it is an object, `{}` when absent or null, else the event is invalid."""
    if value is None:
        return _EMPTY
    if isinstance(value, dict):
        return value
    raise InvalidEvent(reason, f"`{where}` must be an object, got {type(value).__name__}")


def _action_source(
    properties: dict[str, Any],
    options: dict[str, Any],
    context_traits: dict[str, Any],
    traits: dict[str, Any],
    default: str,
) -> str:
    """properties, the integration options, context.traits, then traits; else `default`."""
    raw = None
    # `in` twice rather than keys().isdisjoint(): a native dict lookup each when compiled.
    if "action_source" in properties or "actionSource" in properties:
        raw = first_present(properties, _ACTION_SOURCE_KEYS)
    if raw is None and options and ("action_source" in options or "actionSource" in options):
        raw = first_present(options, _ACTION_SOURCE_KEYS)
    if raw is None and ("action_source" in context_traits or "actionSource" in context_traits):
        raw = first_present(context_traits, _ACTION_SOURCE_KEYS)
    if raw is None and traits and ("action_source" in traits or "actionSource" in traits):
        raw = first_present(traits, _ACTION_SOURCE_KEYS)
    if raw is None:
        return default
    value = raw.strip().lower() if isinstance(raw, str) else None
    if value not in ACTION_SOURCES:
        raise InvalidEvent(
            reasons.INVALID_ACTION_SOURCE,
            f"action_source {shown(raw, 40)} is not one of {', '.join(sorted(ACTION_SOURCES))}",
        )
    return value


def _check_time_window(event_time: int, now: float, action_source: str) -> None:
    if _NEWEST_ALWAYS_ACCEPTED <= now - event_time <= _OLDEST_ALWAYS_ACCEPTED:  # the usual
        return
    if is_too_old(event_time, now, action_source):
        raise InvalidEvent(
            reasons.EVENT_TIME_TOO_OLD,
            f"event_time {event_time} is more than {max_event_age_days(action_source)} days old; "
            "Meta rejects it (replay or redrive older data sooner)",
        )
    if is_in_future(event_time, now):
        raise InvalidEvent(
            reasons.EVENT_TIME_IN_FUTURE,
            f"event_time {event_time} is more than {MAX_SECONDS_IN_FUTURE} s in the future; "
            "check the producer's clock",
        )


def _page_field(page: dict[str, Any], properties: dict[str, Any], key: str) -> str | None:
    """`context.page.<key>` (`page`), else `properties.<key>`: a non-blank string, trimmed (the
    page's `url` is event_source_url, its `referrer` referrer_url)."""
    value = page.get(key)
    if not (isinstance(value, str) and value.strip()):
        value = properties.get(key)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _test_event_code(options: dict[str, Any]) -> str | None:
    """`integrations.<name>.test_event_code`: this event goes to Meta's Test Events tool."""
    code = options.get("test_event_code") if options else None
    if isinstance(code, str):
        return code.strip() or None
    return None


def _event_id(
    message: dict[str, Any],
    properties: dict[str, Any],
    context_traits: dict[str, Any],
    traits: dict[str, Any],
) -> str | None:
    """The first candidate that is a non-blank string (trimmed) or an integer (as text)."""
    event_id = _id_text(properties.get("event_id"))
    if event_id is None:
        event_id = _id_text(context_traits.get("event_id"))
    if event_id is None:
        event_id = _id_text(traits.get("event_id"))
    if event_id is None:
        event_id = _id_text(message.get("messageId"))
    return event_id


def _id_text(value: Any) -> str | None:
    """A non-blank string (trimmed), or an integer as text; else None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _opt_out(
    properties: dict[str, Any], context_traits: dict[str, Any], traits: dict[str, Any]
) -> bool | None:
    """properties, context.traits, then traits: the first `opt_out` that is a boolean."""
    value = properties.get("opt_out")
    if value is not True and value is not False:
        value = context_traits.get("opt_out")
    if value is not True and value is not False:
        value = traits.get("opt_out")
    return value if value is True or value is False else None
