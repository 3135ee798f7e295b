"""Meta's Conversions API rules as constants and predicates, defined once.

Pure and import-free (no worker module): the settings, the mapping, the contract check, the
Graph client and the emulator all read Meta's limits from here, so a rule changes in one place.
"""

from __future__ import annotations

from typing import Literal, get_args

#: Meta's `action_source` values.
ActionSource = Literal[
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
]
ACTION_SOURCES: frozenset[str] = frozenset(get_args(ActionSource))

#: Events in one `POST /{pixel_id}/events` request.
MAX_EVENTS_PER_REQUEST = 1000
#: Graph API error code of an invalid parameter.
INVALID_PARAMETER_CODE = 100

SECONDS_PER_DAY = 86_400
#: How old an event may be when Meta receives it, in days: 7, or 62 for physical_store.
MAX_EVENT_AGE_DAYS = 7
MAX_PHYSICAL_STORE_EVENT_AGE_DAYS = 62
MAX_EVENT_AGE_SECONDS = MAX_EVENT_AGE_DAYS * SECONDS_PER_DAY
MAX_PHYSICAL_STORE_EVENT_AGE_SECONDS = MAX_PHYSICAL_STORE_EVENT_AGE_DAYS * SECONDS_PER_DAY
#: How far ahead of Meta's clock an event_time may be.
MAX_SECONDS_IN_FUTURE = 60

#: user_data keys that are normalised then SHA-256 hashed.
HASHED_FIELDS: tuple[str, ...] = (
    "em",
    "ph",
    "fn",
    "ln",
    "ge",
    "db",
    "ct",
    "st",
    "zp",
    "country",
    "external_id",
)
#: Meta's "customer information parameters": any one of them identifies who the event is about.
CUSTOMER_INFORMATION_PARAMETERS: tuple[str, ...] = (
    *HASHED_FIELDS,
    "client_ip_address",
    "client_user_agent",
    "fbc",
    "fbp",
    "subscription_id",
    "fb_login_id",
    "lead_id",
    "anon_id",
    "madid",
    "page_id",
    "page_scoped_user_id",
    "ctwa_clid",
    "ig_account_id",
    "ig_sid",
)


def max_event_age_days(action_source: str) -> int:
    """How old, in days, an event of this action_source may be when Meta receives it."""
    if action_source == "physical_store":
        return MAX_PHYSICAL_STORE_EVENT_AGE_DAYS
    return MAX_EVENT_AGE_DAYS


def max_event_age_seconds(action_source: str) -> int:
    return max_event_age_days(action_source) * SECONDS_PER_DAY


def is_too_old(event_time: float, now: float, action_source: str) -> bool:
    return now - event_time > max_event_age_seconds(action_source)


def is_in_future(event_time: float, now: float) -> bool:
    return event_time - now > MAX_SECONDS_IN_FUTURE
