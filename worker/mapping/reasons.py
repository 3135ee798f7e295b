"""Stable reason codes of the mapping stage: dead-letter headers, metrics and tests use them.

A code never changes meaning once released; add a new one instead. Skips are deliberate and
end the record's life quietly; invalid events are dead-lettered with a message saying what to fix.
"""

from __future__ import annotations

# Skipped: not sent on purpose.
NOT_ROUTED = "not_routed"  # the destination's `match` does not take this event
EVENT_TYPE_NOT_FORWARDED = "event_type_not_forwarded"  # group, alias or an unknown type
IDENTIFY_NOT_FORWARDED = "identify_not_forwarded"  # identify while `forward_identify` is off
SCREEN_NOT_FORWARDED = "screen_not_forwarded"  # screen while `forward_screen` is off
NO_CONSENT = "no_consent"  # a `required_consent_categories` entry is not granted
INTEGRATION_DISABLED = "integration_disabled"  # `integrations` switches this destination off

# Invalid: cannot be sent as it is.
INVALID_MESSAGE = "invalid_message"  # the decoded record is not a JSON object
MISSING_TYPE = "missing_type"  # `type` is absent or empty
INVALID_TYPE = "invalid_type"  # `type` is not a string
MISSING_EVENT_NAME = "missing_event_name"  # a track call without `event`
INVALID_EVENT_NAME = "invalid_event_name"  # `event` is not a string
EVENT_NAME_TOO_LONG = "event_name_too_long"  # a custom event name over 50 characters
INVALID_PROPERTIES = "invalid_properties"  # `properties` is not an object
INVALID_CONTEXT = "invalid_context"  # `context` is not an object
INVALID_TRAITS = "invalid_traits"  # `traits` or `context.traits` is not an object
INVALID_TIMESTAMP = "invalid_timestamp"  # `timestamp` is absent or not ISO-8601 / epoch
EVENT_TIME_TOO_OLD = "event_time_too_old"  # older than 7 days (62 for physical_store)
EVENT_TIME_IN_FUTURE = "event_time_in_future"  # more than 60 seconds ahead of now
INVALID_ACTION_SOURCE = "invalid_action_source"  # not one of Meta's action_source values
MISSING_CLIENT_USER_AGENT = "missing_client_user_agent"  # website event without context.userAgent
MISSING_EVENT_SOURCE_URL = "missing_event_source_url"  # website event without a page URL
MISSING_USER_DATA = "missing_user_data"  # no customer information parameter Meta accepts
INVALID_VALUE = "invalid_value"  # revenue / value field is not a number
MISSING_VALUE = "missing_value"  # a Purchase without a value (Meta rejects it)
INVALID_CURRENCY = "invalid_currency"  # currency is not an ISO 4217 code
INVALID_PRODUCTS = "invalid_products"  # `products` is not a list of objects
INVALID_CATEGORY = "invalid_category"  # `category` is neither a string, a number nor a list
INVALID_DELIVERY_CATEGORY = "invalid_delivery_category"  # not in_store, curbside, home_delivery
INVALID_DATA_PROCESSING_OPTIONS = "invalid_data_processing_options"  # not [[opts], country, state]
MISSING_APP_DATA = "missing_app_data"  # an app event on neither Android nor iOS, no app_data
INVALID_APP_DATA = "invalid_app_data"  # integrations.<name>.app_data Meta would refuse
META_CONTRACT_VIOLATION = "meta_contract_violation"  # built, but breaks a rule Meta enforces
MAPPING_FAILED = "mapping_failed"  # an unexpected error in the mapping code itself (a bug)

SKIP_REASONS: frozenset[str] = frozenset(
    {
        NOT_ROUTED,
        EVENT_TYPE_NOT_FORWARDED,
        IDENTIFY_NOT_FORWARDED,
        SCREEN_NOT_FORWARDED,
        NO_CONSENT,
        INTEGRATION_DISABLED,
    }
)

INVALID_REASONS: frozenset[str] = frozenset(
    {
        INVALID_MESSAGE,
        MISSING_TYPE,
        INVALID_TYPE,
        MISSING_EVENT_NAME,
        INVALID_EVENT_NAME,
        EVENT_NAME_TOO_LONG,
        INVALID_PROPERTIES,
        INVALID_CONTEXT,
        INVALID_TRAITS,
        INVALID_TIMESTAMP,
        EVENT_TIME_TOO_OLD,
        EVENT_TIME_IN_FUTURE,
        INVALID_ACTION_SOURCE,
        MISSING_CLIENT_USER_AGENT,
        MISSING_EVENT_SOURCE_URL,
        MISSING_USER_DATA,
        INVALID_VALUE,
        MISSING_VALUE,
        INVALID_CURRENCY,
        INVALID_PRODUCTS,
        INVALID_CATEGORY,
        INVALID_DELIVERY_CATEGORY,
        INVALID_DATA_PROCESSING_OPTIONS,
        MISSING_APP_DATA,
        INVALID_APP_DATA,
        META_CONTRACT_VIOLATION,
        MAPPING_FAILED,
    }
)
