"""Every reason code, in one registry: why a record was skipped, retried or dead-lettered.

A code is stable: it names the stage that found it, says what happened and what to do, and
whether the circuit breaker leaves it out of its count by default (destination-scoped
rejections by Meta: dead-lettered so the other pixels keep flowing). The mapping, decoding,
routing and delivery return these codes; the dead-letter headers (`capi.dlq.stage`,
`capi.dlq.reason`), the metrics' `reason` label and the breaker read them; docs/mapping.md lists
exactly this registry (a test checks it). A code never changes meaning once released: add a
new one instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    """Where in the hot path a reason is found (the `capi.dlq.stage` header)."""

    REPLAY = "replay"  # the record gate of `capi-worker replay`
    DECODE = "decode"
    ROUTE = "route"
    MAP = "map"
    DELIVER = "deliver"


class Outcome(StrEnum):
    SKIPPED = "skipped"  # not sent on purpose: counted, never dead-lettered
    DEAD_LETTERED = "dead_lettered"  # written to the dead-letter topic with this reason
    RETRIED = "retried"  # an infrastructure fault: `run` waits and retries, never dead-letters


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    stage: Stage
    outcome: Outcome
    description: str  # what happened / what to do
    breaker_ignores: bool = False  # default of `circuit_breaker.ignore_reasons`


REGISTRY: dict[str, Reason] = {}


def _define(
    code: str, stage: Stage, outcome: Outcome, description: str, *, breaker_ignores: bool = False
) -> str:
    if code in REGISTRY:
        raise ValueError(f"reason code {code!r} is defined twice")
    REGISTRY[code] = Reason(code, stage, outcome, description, breaker_ignores)
    return code


def _skip(code: str, stage: Stage, description: str) -> str:
    return _define(code, stage, Outcome.SKIPPED, description)


def _dead_letter(
    code: str, stage: Stage, description: str, *, breaker_ignores: bool = False
) -> str:
    return _define(code, stage, Outcome.DEAD_LETTERED, description, breaker_ignores=breaker_ignores)


_REPLAY, _DECODE, _ROUTE, _MAP, _DELIVER = (
    Stage.REPLAY,
    Stage.DECODE,
    Stage.ROUTE,
    Stage.MAP,
    Stage.DELIVER,
)

# ---- replay -----------------------------------------------------------------------------------
OUTSIDE_REPLAY_WINDOW = _skip(
    "outside_replay_window", _REPLAY, "a record outside the time window of `capi-worker replay`"
)

# ---- decode -----------------------------------------------------------------------------------
EMPTY_VALUE = _dead_letter(
    "empty_value", _DECODE, "tombstone or empty record value; stop producing them to this topic"
)
INVALID_JSON = _dead_letter(
    "invalid_json", _DECODE, "the value is not JSON; fix the producer or `decoding.format`"
)
NOT_AN_OBJECT = _dead_letter(
    "not_an_object", _DECODE, "the JSON or Avro value is not an object or record"
)
INVALID_AVRO = _dead_letter(
    "invalid_avro",
    _DECODE,
    "the datum does not match the schema (or is not Avro); check `decoding.avro_schema` / the "
    "writer schema",
)
UNKNOWN_SCHEMA_ID = _dead_letter(
    "unknown_schema_id",
    _DECODE,
    "the Confluent schema id is not in the registry; check `decoding.schema_registry_url`",
)
SCHEMA_REGISTRY_UNAVAILABLE = _define(
    "schema_registry_unavailable",
    _DECODE,
    Outcome.RETRIED,
    "`run` waits and retries instead of dead-lettering; `transform` reports it; fix the "
    "registry or its URL",
)
NOT_CONFLUENT_WIRE_FORMAT = _dead_letter(
    "not_confluent_wire_format",
    _DECODE,
    "no magic byte 0 and schema id; use `decoding.format: avro` for schemaless data",
)
INVALID_EMBEDDED_JSON = _dead_letter(
    "invalid_embedded_json",
    _DECODE,
    "an Avro `properties`/`context`/`traits`/`integrations` string is not a JSON object",
)

# ---- route ------------------------------------------------------------------------------------
NOT_ROUTED = _skip(
    "not_routed",
    _ROUTE,
    "the destination's `match` does not take the event; nothing to do unless it should",
)
REDRIVE_OTHER_DESTINATION = _skip(
    "redrive_other_destination",
    _ROUTE,
    "a redriven record names another destination in `capi.redrive.only_destination`; nothing to do",
)
ROUTING_FAILED = _dead_letter(
    "routing_failed",
    _ROUTE,
    "an unexpected error while routing (a bug); report it with the event",
)

# ---- map: skipped, not sent on purpose --------------------------------------------------------
EVENT_TYPE_NOT_FORWARDED = _skip(
    "event_type_not_forwarded", _MAP, "`group`, `alias` or an unknown type; nothing to do"
)
IDENTIFY_NOT_FORWARDED = _skip(
    "identify_not_forwarded", _MAP, "set `forward_identify: true` to send identify calls"
)
SCREEN_NOT_FORWARDED = _skip(
    "screen_not_forwarded", _MAP, "set `forward_screen: true` to send screen calls"
)
NO_CONSENT = _skip(
    "no_consent",
    _MAP,
    "a `required_consent_categories` entry is not `true` in `context.consent.categoryPreferences`",
)
INTEGRATION_DISABLED = _skip(
    "integration_disabled",
    _MAP,
    "`integrations` switches this destination off (`<name>: false`, or `All: false` without "
    "this destination switched on)",
)

# ---- map: invalid, cannot be sent as it is ----------------------------------------------------
INVALID_MESSAGE = _dead_letter("invalid_message", _MAP, "the decoded record is not a JSON object")
MISSING_TYPE = _dead_letter("missing_type", _MAP, "`type` is absent or empty")
INVALID_TYPE = _dead_letter("invalid_type", _MAP, "`type` is not a string")
MISSING_EVENT_NAME = _dead_letter("missing_event_name", _MAP, "a track call without `event`")
INVALID_EVENT_NAME = _dead_letter("invalid_event_name", _MAP, "`event` is not a string")
EVENT_NAME_TOO_LONG = _dead_letter(
    "event_name_too_long",
    _MAP,
    "a custom event name over 50 characters; shorten it or map it with `events_to_standard`",
)
INVALID_PROPERTIES = _dead_letter("invalid_properties", _MAP, "`properties` is not an object")
INVALID_CONTEXT = _dead_letter("invalid_context", _MAP, "`context` is not an object")
INVALID_TRAITS = _dead_letter(
    "invalid_traits", _MAP, "`traits` or `context.traits` is not an object"
)
INVALID_TIMESTAMP = _dead_letter(
    "invalid_timestamp",
    _MAP,
    "no readable `timestamp`/`originalTimestamp`; send ISO-8601 or epoch",
)
EVENT_TIME_TOO_OLD = _dead_letter(
    "event_time_too_old",
    _MAP,
    "older than 7 days (62 for `physical_store`); replay or redrive sooner",
)
EVENT_TIME_IN_FUTURE = _dead_letter(
    "event_time_in_future", _MAP, "more than 60 s ahead; check the producer's clock"
)
INVALID_ACTION_SOURCE = _dead_letter("invalid_action_source", _MAP, "not one of Meta's nine values")
MISSING_CLIENT_USER_AGENT = _dead_letter(
    "missing_client_user_agent",
    _MAP,
    "a `website` event without `context.userAgent`; add it or set another `action_source`",
)
MISSING_EVENT_SOURCE_URL = _dead_letter(
    "missing_event_source_url",
    _MAP,
    "a `website` event without a page URL; add `context.page.url` or set another `action_source`",
)
MISSING_USER_DATA = _dead_letter(
    "missing_user_data",
    _MAP,
    "no customer information at all; send `userId`/`anonymousId`, traits, `context.ip`, "
    "`context.userAgent` or fbp/fbc",
)
INVALID_VALUE = _dead_letter(
    "invalid_value", _MAP, "`revenue`/`value`/the value field is not a number"
)
MISSING_VALUE = _dead_letter("missing_value", _MAP, "a `Purchase` without `revenue` or `value`")
INVALID_CURRENCY = _dead_letter("invalid_currency", _MAP, "not an ISO 4217 code")
INVALID_PRODUCTS = _dead_letter("invalid_products", _MAP, "`products` is not a list of objects")
INVALID_CATEGORY = _dead_letter(
    "invalid_category", _MAP, "`category` is not a string, number or list"
)
INVALID_DELIVERY_CATEGORY = _dead_letter(
    "invalid_delivery_category", _MAP, "not `in_store`, `curbside` or `home_delivery`"
)
INVALID_DATA_PROCESSING_OPTIONS = _dead_letter(
    "invalid_data_processing_options", _MAP, "not `[[options], country, state]`"
)
MISSING_APP_DATA = _dead_letter(
    "missing_app_data",
    _MAP,
    "an `app` event on neither Android nor iOS and without `app_data`",
)
INVALID_APP_DATA = _dead_letter(
    "invalid_app_data", _MAP, "`integrations.<name>.app_data` is something Meta would refuse"
)
META_CONTRACT_VIOLATION = _dead_letter(
    "meta_contract_violation",
    _MAP,
    "the built event breaks a rule Meta enforces (a safety net; report it as a bug with the event)",
)
MAPPING_FAILED = _dead_letter(
    "mapping_failed",
    _MAP,
    "an unexpected error in the mapping code (a bug); report it with the event",
)
UNSERIALIZABLE_EVENT = _dead_letter(
    "unserializable_event",
    _MAP,
    "the mapped event cannot be serialised (a bug); report it with the event",
)

# ---- deliver ----------------------------------------------------------------------------------
INVALID_TOKEN = _dead_letter(
    "invalid_token",
    _DELIVER,
    "Meta refused the token (code 190 or 102, an expired-token subcode, or a bad "
    "`appsecret_proof`); renew `access_token` or fix `app_secret`, then redrive",
    breaker_ignores=True,
)
PERMISSION_DENIED = _dead_letter(
    "permission_denied",
    _DELIVER,
    "the token may not send to this pixel (10, 200-299, or 100/33); check `pixel_id` and the "
    "system user's access",
    breaker_ignores=True,
)
INVALID_PARAMETER = _dead_letter(
    "invalid_parameter",
    _DELIVER,
    "Meta rejected this event (code 100, isolated by splitting the batch); fix the source or "
    "the mapping settings",
)
INTERNAL_ERROR = _dead_letter(
    "internal_error",
    _DELIVER,
    "the delivery code itself failed (a bug); the records are kept in the dead-letter topic",
)
RETRIES_EXHAUSTED = _dead_letter(
    "retries_exhausted",
    _DELIVER,
    "throttling or transient errors outlasted `graph.max_retry_seconds`; redrive once Meta "
    "recovers",
)
GRAPH_REJECTED = _dead_letter(
    "graph_rejected",
    _DELIVER,
    "any other Graph API error; read the message and `capi.dlq.graph_code`",
)


def stage_of(code: str) -> Stage:
    """The stage that finds `code`; KeyError for a code that is not registered."""
    return REGISTRY[code].stage


def codes(*stages: Stage, outcome: Outcome | None = None) -> frozenset[str]:
    """The codes of `stages` (all stages when none is given), of one outcome if given."""
    return frozenset(
        reason.code
        for reason in REGISTRY.values()
        if (not stages or reason.stage in stages) and (outcome is None or reason.outcome is outcome)
    )


#: Skips that `map_event` and the routing answer for one (event, destination).
SKIP_REASONS: frozenset[str] = codes(_MAP, outcome=Outcome.SKIPPED) | {NOT_ROUTED}
#: Invalid events that `map_event` answers.
INVALID_REASONS: frozenset[str] = codes(_MAP, outcome=Outcome.DEAD_LETTERED) - {
    UNSERIALIZABLE_EVENT
}
#: Codes of the decode stage (`DecodeError.reason`).
DECODE_REASONS: frozenset[str] = codes(_DECODE)
#: Default of `circuit_breaker.ignore_reasons`.
BREAKER_IGNORED_REASONS: tuple[str, ...] = tuple(
    reason.code for reason in REGISTRY.values() if reason.breaker_ignores
)
