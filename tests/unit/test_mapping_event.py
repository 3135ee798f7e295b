"""map_event as the worker calls it: event types, skips, structure, identity, where, time, LDU."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.builders import NOW, destination, track_message
from worker import reasons
from worker.capi.contract import validate_event
from worker.capi.rules import ACTION_SOURCES
from worker.config import DestinationSettings
from worker.mapping.event import map_event
from worker.mapping.normalize import normalize_and_hash
from worker.mapping.result import Invalid, Mapped, Skipped

DAY = 86_400


def message(**fields: Any) -> dict[str, Any]:
    website = {
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
        "page": {"url": "https://shop.example/signup"},
        "traits": {"email": "jane@example.com"},
    }
    return track_message(
        **{
            "event": "Signed Up",
            "timestamp": "2023-11-14T22:12:20.000Z",  # NOW - 60 s
            "context": website,
            **fields,
        }
    )


def mapped(result: Any) -> dict[str, Any]:
    assert isinstance(result, Mapped), result
    return result.event


def invalid_reason(result: Any) -> str:
    assert isinstance(result, Invalid), result
    assert result.stage == "map"
    assert result.message
    return result.reason


# ---- event types ------------------------------------------------------------------------------


def test_track_event_is_mapped_to_a_complete_conversions_api_event() -> None:
    event = mapped(map_event(message(), destination(), NOW))
    assert event["event_name"] == "Signed Up"
    assert event["event_time"] == int(NOW) - 60
    assert event["event_id"] == "msg-1"
    assert event["action_source"] == "website"
    assert event["event_source_url"] == "https://shop.example/signup"
    assert event["user_data"]["client_user_agent"] == "Mozilla/5.0 (X11; Linux x86_64)"
    assert validate_event(event, NOW) is None


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_empty_type_is_invalid(value: Any) -> None:
    msg = message(type=value)
    assert invalid_reason(map_event(msg, destination(), NOW)) == reasons.MISSING_TYPE


def test_non_string_type_is_invalid() -> None:
    result = map_event(message(type=7), destination(), NOW)
    assert invalid_reason(result) == reasons.INVALID_TYPE


def test_type_is_read_case_insensitively() -> None:
    assert isinstance(map_event(message(type="Track"), destination(), NOW), Mapped)


@pytest.mark.parametrize("kind", ["group", "alias", "something_else"])
def test_group_alias_and_unknown_types_are_skipped(kind: str) -> None:
    result = map_event(message(type=kind), destination(), NOW)
    assert result == Skipped(reasons.EVENT_TYPE_NOT_FORWARDED)


def test_identify_is_skipped_unless_forward_identify() -> None:
    result = map_event(message(type="identify"), destination(), NOW)
    assert result == Skipped(reasons.IDENTIFY_NOT_FORWARDED)


def test_forwarded_identify_is_a_user_data_only_event_named_identify() -> None:
    msg = message(type="identify", traits={"email": "x@example.com", "plan": "pro"})
    msg["properties"] = {"plan": "pro"}
    event = mapped(map_event(msg, destination(forward_identify=True), NOW))
    assert event["event_name"] == "identify"
    assert "custom_data" not in event
    assert event["user_data"]["em"] == normalize_and_hash("em", "x@example.com")


def test_screen_is_skipped_unless_forward_screen() -> None:
    result = map_event(message(type="screen", name="Home"), destination(), NOW)
    assert result == Skipped(reasons.SCREEN_NOT_FORWARDED)


def test_forwarded_screen_is_a_page_view() -> None:
    result = map_event(message(type="screen", name="Home"), destination(forward_screen=True), NOW)
    assert mapped(result)["event_name"] == "PageView"


def test_forwarded_screen_with_viewed_page_naming_uses_the_screen_name() -> None:
    settings = destination(forward_screen=True, page_event_naming="viewed_page")
    event = mapped(map_event(message(type="screen", name="Home"), settings, NOW))
    assert event["event_name"] == "Viewed screen Home"


def test_page_is_a_page_view() -> None:
    event = mapped(map_event(message(type="page", name="Pricing"), destination(), NOW))
    assert event["event_name"] == "PageView"


def test_message_that_is_not_an_object_is_invalid() -> None:
    bad: Any
    for bad in (None, [], "track", 42, b"{}"):
        assert invalid_reason(map_event(bad, destination(), NOW)) == reasons.INVALID_MESSAGE


def test_map_event_never_raises_on_hostile_shapes() -> None:
    hostile: list[Any] = [
        message(event=["x"]),
        message(context={"traits": {"email": {"a": 1}, "address": "nowhere"}}),
        message(properties={"products": [{"product_id": {"x": 1}, "quantity": "many"}]}),
        message(properties={"revenue": float("nan")}),
        message(timestamp=float("inf")),
        message(integrations={"Facebook Conversions API": {"dataProcessingOptions": "LDU"}}),
        message(userId={"id": 1}),
        message(context={"page": {"url": 5}, "userAgent": 3, "ip": ["x"]}),
    ]
    for msg in hostile:
        result = map_event(msg, destination(), NOW)
        assert isinstance(result, Mapped | Skipped | Invalid)


# ---- structure --------------------------------------------------------------------------------


def test_non_object_properties_is_invalid() -> None:
    result = map_event(message(properties=["a"]), destination(), NOW)
    assert invalid_reason(result) == reasons.INVALID_PROPERTIES


def test_non_object_context_is_invalid() -> None:
    result = map_event(message(context="web"), destination(), NOW)
    assert invalid_reason(result) == reasons.INVALID_CONTEXT


def test_non_object_context_traits_is_invalid() -> None:
    msg = message()
    msg["context"]["traits"] = "jane"
    assert invalid_reason(map_event(msg, destination(), NOW)) == reasons.INVALID_TRAITS


def test_non_object_traits_is_invalid() -> None:
    result = map_event(message(traits=[1]), destination(), NOW)
    assert invalid_reason(result) == reasons.INVALID_TRAITS


def test_null_properties_are_treated_as_empty() -> None:
    assert isinstance(map_event(message(properties=None), destination(), NOW), Mapped)


def test_mapping_does_not_modify_the_message() -> None:
    msg = message(properties={"revenue": 5, "email": "a@b.c", "products": [{"sku": "1"}]})
    before = copy.deepcopy(msg)
    map_event(msg, destination(forward_identify=True), NOW)
    assert msg == before


# ---- consent ----------------------------------------------------------------------------------


def test_event_without_required_consent_is_skipped() -> None:
    settings = destination(required_consent_categories=["Advertising"])
    result = map_event(message(), settings, NOW)
    assert result == Skipped(reasons.NO_CONSENT)


def test_event_with_one_required_category_denied_is_skipped() -> None:
    settings = destination(required_consent_categories=["Advertising", "Analytics"])
    msg = message()
    msg["context"]["consent"] = {"categoryPreferences": {"Advertising": True, "Analytics": False}}
    assert map_event(msg, settings, NOW) == Skipped(reasons.NO_CONSENT)


def test_event_with_every_required_category_granted_is_sent() -> None:
    settings = destination(required_consent_categories=["Advertising"])
    msg = message()
    msg["context"]["consent"] = {"categoryPreferences": {"Advertising": True, "Other": False}}
    assert isinstance(map_event(msg, settings, NOW), Mapped)


def test_consent_is_not_checked_without_required_categories() -> None:
    msg = message()
    msg["context"]["consent"] = {"categoryPreferences": {"Advertising": False}}
    assert isinstance(map_event(msg, destination(), NOW), Mapped)


# ---- identity ---------------------------------------------------------------------------------


def test_event_id_prefers_properties_event_id() -> None:
    msg = message(properties={"event_id": "prop-id"}, traits={"event_id": "trait-id"})
    msg["context"]["traits"]["event_id"] = "ctx-id"
    assert mapped(map_event(msg, destination(), NOW))["event_id"] == "prop-id"


def test_event_id_falls_back_to_context_traits_then_traits() -> None:
    msg = message(traits={"event_id": "trait-id"})
    msg["context"]["traits"]["event_id"] = "ctx-id"
    assert mapped(map_event(msg, destination(), NOW))["event_id"] == "ctx-id"
    del msg["context"]["traits"]["event_id"]
    assert mapped(map_event(msg, destination(), NOW))["event_id"] == "trait-id"


def test_event_id_falls_back_to_message_id() -> None:
    assert mapped(map_event(message(messageId="m-9"), destination(), NOW))["event_id"] == "m-9"


def test_event_without_any_id_is_sent_without_event_id() -> None:
    msg = message()
    del msg["messageId"]
    assert "event_id" not in mapped(map_event(msg, destination(), NOW))


def test_event_id_is_not_copied_into_custom_data() -> None:
    event = mapped(map_event(message(properties={"event_id": "e"}), destination(), NOW))
    assert "event_id" not in event.get("custom_data", {})


def test_opt_out_property_becomes_the_top_level_opt_out() -> None:
    event = mapped(map_event(message(properties={"opt_out": True}), destination(), NOW))
    assert event["opt_out"] is True
    assert "opt_out" not in event.get("custom_data", {})


# ---- action_source and event_source_url ---------------------------------------------------------


def test_action_source_defaults_to_the_destination_default() -> None:
    event = mapped(map_event(message(), destination(default_action_source="chat"), NOW))
    assert event["action_source"] == "chat"


def test_action_source_is_read_from_properties_snake_case() -> None:
    msg = message(properties={"action_source": "physical_store"})
    event = mapped(map_event(msg, destination(), NOW))
    assert event["action_source"] == "physical_store"
    assert "action_source" not in event.get("custom_data", {})


def test_action_source_is_read_from_properties_camel_case() -> None:
    msg = message(properties={"actionSource": "email"})
    event = mapped(map_event(msg, destination(), NOW))
    assert event["action_source"] == "email"
    assert "actionSource" not in event.get("custom_data", {})


def test_action_source_is_read_from_integration_options() -> None:
    msg = message(integrations={"Facebook Conversions API": {"action_source": "chat"}})
    assert mapped(map_event(msg, destination(), NOW))["action_source"] == "chat"


def test_action_source_is_read_from_context_traits_then_traits() -> None:
    msg = message(traits={"action_source": "email"})
    msg["context"]["traits"]["action_source"] = "phone_call"
    assert mapped(map_event(msg, destination(), NOW))["action_source"] == "phone_call"
    del msg["context"]["traits"]["action_source"]
    assert mapped(map_event(msg, destination(), NOW))["action_source"] == "email"


def test_action_source_of_properties_and_options_beats_the_traits() -> None:
    msg = message(
        integrations={"Facebook Conversions API": {"action_source": "chat"}},
        traits={"actionSource": "email"},
    )
    msg["context"]["traits"]["action_source"] = "phone_call"
    assert mapped(map_event(msg, destination(), NOW))["action_source"] == "chat"
    msg["properties"]["action_source"] = "system_generated"
    assert mapped(map_event(msg, destination(), NOW))["action_source"] == "system_generated"


def test_unknown_action_source_in_traits_is_invalid() -> None:
    msg = message()
    msg["context"]["traits"]["action_source"] = "kiosk"
    assert invalid_reason(map_event(msg, destination(), NOW)) == reasons.INVALID_ACTION_SOURCE


def test_website_event_carries_the_referrer_url() -> None:
    assert "referrer_url" not in mapped(map_event(message(), destination(), NOW))
    msg = message(properties={"referrer": "https://ads.example/"})
    msg["context"]["page"]["referrer"] = "  https://www.google.com/  "
    assert mapped(map_event(msg, destination(), NOW))["referrer_url"] == "https://www.google.com/"
    msg["context"]["page"]["referrer"] = " "
    event = mapped(map_event(msg, destination(), NOW))
    assert event["referrer_url"] == "https://ads.example/"  # properties.referrer, the fallback
    assert event["custom_data"]["referrer"] == "https://ads.example/"  # still copied as before


def test_referrer_url_is_sent_for_website_events_only() -> None:
    msg = message(properties={"action_source": "chat"})
    msg["context"]["page"]["referrer"] = "https://www.google.com/"
    assert "referrer_url" not in mapped(map_event(msg, destination(), NOW))
    msg["context"]["page"]["referrer"] = 42
    assert "referrer_url" not in mapped(map_event(message(), destination(), NOW))


def test_per_event_test_event_code_is_carried_beside_the_event() -> None:
    options = {"Facebook Conversions API": {"test_event_code": " TEST777 "}}
    result = map_event(message(integrations=options), destination(test_event_code="T1"), NOW)
    assert isinstance(result, Mapped) and result.test_event_code == "TEST777"
    assert "test_event_code" not in result.event
    plain = map_event(message(), destination(test_event_code="T1"), NOW)
    assert isinstance(plain, Mapped) and plain.test_event_code is None


def test_unknown_action_source_is_invalid() -> None:
    result = map_event(message(properties={"action_source": "kiosk"}), destination(), NOW)
    assert invalid_reason(result) == reasons.INVALID_ACTION_SOURCE


def test_website_event_without_user_agent_is_invalid() -> None:
    msg = message()
    del msg["context"]["userAgent"]
    result = map_event(msg, destination(), NOW)
    assert invalid_reason(result) == reasons.MISSING_CLIENT_USER_AGENT


def test_website_event_without_page_url_is_invalid() -> None:
    msg = message()
    del msg["context"]["page"]
    result = map_event(msg, destination(), NOW)
    assert invalid_reason(result) == reasons.MISSING_EVENT_SOURCE_URL


def test_non_website_event_needs_neither_user_agent_nor_url() -> None:
    msg = message(properties={"action_source": "physical_store"})
    del msg["context"]["userAgent"]
    del msg["context"]["page"]
    event = mapped(map_event(msg, destination(), NOW))
    assert "event_source_url" not in event


def test_event_source_url_is_the_context_page_url() -> None:
    msg = message(properties={"url": "https://elsewhere.example/"})
    msg["context"]["page"] = {"url": " https://shop.example/cart?x=1 ", "path": "/cart"}
    event = mapped(map_event(msg, destination(), NOW))
    assert event["event_source_url"] == "https://shop.example/cart?x=1"


def test_page_event_prefers_the_context_page_url_over_properties_url() -> None:
    msg = message(type="page", properties={"url": "https://shop.example/from-properties"})
    event = mapped(map_event(msg, destination(), NOW))
    assert event["event_source_url"] == "https://shop.example/signup"


def test_page_event_takes_its_url_from_properties_when_context_has_none() -> None:
    msg = message(type="page", properties={"url": "https://shop.example/pricing"})
    del msg["context"]["page"]
    event = mapped(map_event(msg, destination(), NOW))
    assert event["event_source_url"] == "https://shop.example/pricing"


# ---- time -------------------------------------------------------------------------------------


def test_event_time_is_integer_unix_seconds() -> None:
    event = mapped(
        map_event(message(timestamp="2023-11-14T23:13:19.999+01:00"), destination(), NOW)
    )
    assert event["event_time"] == int(NOW) - 1
    assert isinstance(event["event_time"], int)


def test_missing_timestamp_falls_back_to_original_timestamp() -> None:
    msg = message(originalTimestamp=(NOW - 5) * 1000)
    del msg["timestamp"]
    assert mapped(map_event(msg, destination(), NOW))["event_time"] == int(NOW) - 5


def test_missing_timestamp_is_invalid() -> None:
    msg = message()
    del msg["timestamp"]
    assert invalid_reason(map_event(msg, destination(), NOW)) == reasons.INVALID_TIMESTAMP


def test_unreadable_timestamp_is_invalid() -> None:
    result = map_event(message(timestamp="yesterday"), destination(), NOW)
    assert invalid_reason(result) == reasons.INVALID_TIMESTAMP


def test_event_older_than_seven_days_is_invalid() -> None:
    result = map_event(message(timestamp=NOW - 7 * DAY - 1), destination(), NOW)
    assert invalid_reason(result) == reasons.EVENT_TIME_TOO_OLD


def test_event_exactly_seven_days_old_is_accepted() -> None:
    assert isinstance(map_event(message(timestamp=NOW - 7 * DAY), destination(), NOW), Mapped)


def test_physical_store_event_may_be_up_to_62_days_old() -> None:
    props = {"action_source": "physical_store"}
    ok = map_event(message(timestamp=NOW - 62 * DAY, properties=props), destination(), NOW)
    assert isinstance(ok, Mapped)
    stale = map_event(message(timestamp=NOW - 62 * DAY - 1, properties=props), destination(), NOW)
    assert invalid_reason(stale) == reasons.EVENT_TIME_TOO_OLD


def test_event_more_than_a_minute_in_the_future_is_invalid() -> None:
    assert isinstance(map_event(message(timestamp=NOW + 60), destination(), NOW), Mapped)
    result = map_event(message(timestamp=NOW + 61), destination(), NOW)
    assert invalid_reason(result) == reasons.EVENT_TIME_IN_FUTURE


# ---- user data --------------------------------------------------------------------------------


def test_event_without_any_customer_information_is_invalid() -> None:
    msg = message(properties={"action_source": "system_generated"}, context={})
    del msg["anonymousId"]
    assert invalid_reason(map_event(msg, destination(), NOW)) == reasons.MISSING_USER_DATA


# ---- limited data use -------------------------------------------------------------------------


def test_no_data_processing_options_when_limited_data_use_is_off() -> None:
    event = mapped(map_event(message(), destination(), NOW))
    assert "data_processing_options" not in event


def test_limited_data_use_adds_the_settings_defaults() -> None:
    event = mapped(map_event(message(), destination(limited_data_use=True), NOW))
    assert event["data_processing_options"] == ["LDU"]
    assert event["data_processing_options_country"] == 0
    assert event["data_processing_options_state"] == 0


def test_limited_data_use_country_and_state_come_from_settings() -> None:
    settings = destination(
        limited_data_use=True,
        data_processing_options_country=1,
        data_processing_options_state=1000,
    )
    event = mapped(map_event(message(), settings, NOW))
    assert (event["data_processing_options_country"], event["data_processing_options_state"]) == (
        1,
        1000,
    )


def test_per_event_data_processing_options_override_the_defaults() -> None:
    options = {"dataProcessingOptions": [["LDU"], 1, 1000]}
    msg = message(integrations={"Facebook Conversions API": options})
    event = mapped(map_event(msg, destination(limited_data_use=True), NOW))
    assert event["data_processing_options"] == ["LDU"]
    assert event["data_processing_options_country"] == 1
    assert event["data_processing_options_state"] == 1000


def test_per_event_empty_data_processing_options_turn_ldu_off() -> None:
    msg = message(integrations={"Facebook Conversions API": {"dataProcessingOptions": [[]]}})
    event = mapped(map_event(msg, destination(limited_data_use=True), NOW))
    assert event["data_processing_options"] == []
    assert "data_processing_options_country" not in event


def test_per_event_data_processing_options_apply_even_when_the_setting_is_off() -> None:
    msg = message(integrations={"Facebook Conversions API": {"dataProcessingOptions": [["LDU"]]}})
    event = mapped(map_event(msg, destination(), NOW))
    assert event["data_processing_options"] == ["LDU"]
    assert event["data_processing_options_country"] == 0


def test_context_data_processing_options_are_read_as_rudderstack_sends_them() -> None:
    msg = message()
    msg["context"]["dataProcessingOptions"] = [["LDU"], 1, 1000]
    event = mapped(map_event(msg, destination(), NOW))
    assert event["data_processing_options_state"] == 1000


def test_malformed_data_processing_options_are_invalid() -> None:
    for bad in ("LDU", [], ["LDU", 1, 1000], [["LDU"], "us", 0], [[1], 0, 0]):
        msg = message(integrations={"Facebook Conversions API": {"dataProcessingOptions": bad}})
        result = map_event(msg, destination(limited_data_use=True), NOW)
        assert invalid_reason(result) == reasons.INVALID_DATA_PROCESSING_OPTIONS, bad


@pytest.mark.parametrize("code", ["9" * 30, "9" * 5000, "\u00b2", "\u0661", -1, 2**31, 1.0])
def test_data_processing_country_and_state_must_be_small_non_negative_integers(code: Any) -> None:
    for options in ([["LDU"], code, 0], [["LDU"], 0, code]):
        msg = message(integrations={"Facebook Conversions API": {"dataProcessingOptions": options}})
        result = map_event(msg, destination(), NOW)
        assert invalid_reason(result) == reasons.INVALID_DATA_PROCESSING_OPTIONS, options


def test_data_processing_codes_may_be_numeric_strings() -> None:
    options = {"dataProcessingOptions": [["LDU"], " 1 ", "1000"]}
    event = mapped(map_event(message(integrations={"Facebook Pixel": options}), destination(), NOW))
    assert (event["data_processing_options_country"], event["data_processing_options_state"]) == (
        1,
        1000,
    )


def test_integration_options_are_read_from_the_first_configured_name_with_an_object() -> None:
    msg = message(
        integrations={
            "Facebook Conversions API": True,
            "Facebook Pixel": {"action_source": "email"},
        }
    )
    assert mapped(map_event(msg, destination(), NOW))["action_source"] == "email"


# ---- integration switches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "integrations",
    [
        {"All": True, "Facebook Conversions API": False},
        {"Facebook Pixel Server Side": False},
        {"All": True, "FACEBOOK_CONVERSIONS": False, "Facebook Conversions API": {"hashed": True}},
        {"All": False},
        {"All": False, "Google Analytics": True, "Google Ads": {"action_source": "email"}},
        {"All": False, "Facebook Conversions API": None},
    ],
)
def test_event_switched_off_in_integrations_is_skipped(integrations: dict[str, Any]) -> None:
    msg = message(integrations=integrations)
    assert map_event(msg, destination(), NOW) == Skipped(reasons.INTEGRATION_DISABLED)


@pytest.mark.parametrize(
    "integrations",
    [
        {"All": False, "Facebook Conversions API": True},
        {"All": False, "Facebook Conversions API (Actions)": {}},
        {"All": True, "Google Analytics": False},
        {"All": True},
        {"Facebook Conversions API": "false"},  # not a boolean: switches nothing
    ],
)
def test_event_switched_on_or_not_switched_off_is_sent(integrations: dict[str, Any]) -> None:
    assert isinstance(map_event(message(integrations=integrations), destination(), NOW), Mapped)


def test_all_false_with_this_destination_as_an_object_keeps_its_per_event_options() -> None:
    msg = message(
        integrations={"All": False, "Facebook Conversions API": {"action_source": "email"}}
    )
    assert mapped(map_event(msg, destination(), NOW))["action_source"] == "email"


def test_integration_switches_follow_the_destination_integration_names() -> None:
    msg = message(integrations={"All": False, "My Pixel": True, "Facebook Conversions API": False})
    assert isinstance(map_event(msg, destination(integration_names=["My Pixel"]), NOW), Mapped)
    msg = message(integrations={"My Pixel": False})
    assert map_event(msg, destination(integration_names=["My Pixel"]), NOW) == Skipped(
        reasons.INTEGRATION_DISABLED
    )
    assert isinstance(map_event(msg, destination(), NOW), Mapped)


def test_switched_off_event_is_skipped_before_its_structure_is_checked() -> None:
    msg = message(integrations={"All": False}, context="not an object")
    assert map_event(msg, destination(), NOW) == Skipped(reasons.INTEGRATION_DISABLED)


# ---- reasons ----------------------------------------------------------------------------------


def test_every_reason_code_is_snake_case_and_listed_once() -> None:
    assert not reasons.SKIP_REASONS & reasons.INVALID_REASONS
    for code in reasons.SKIP_REASONS | reasons.INVALID_REASONS:
        assert code == code.lower() and " " not in code


# ---- robustness -------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "type",
        "event",
        "name",
        "timestamp",
        "userId",
        "anonymousId",
        "messageId",
        "properties",
        "context",
        "traits",
        "integrations",
    ]
)
property_names = st.sampled_from(
    [
        "revenue",
        "value",
        "price",
        "currency",
        "products",
        "category",
        "query",
        "content_type",
        "action_source",
        "event_id",
        "delivery_category",
        "email",
        "fbc",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    top=st.dictionaries(field_names, json_values, max_size=3),
    props=st.dictionaries(property_names, json_values, max_size=4),
)
def test_any_input_gives_a_result_and_every_mapped_event_is_acceptable_to_meta(
    top: dict[str, Any], props: dict[str, Any]
) -> None:
    msg = message(event="Order Completed", properties={"revenue": 1, **props})
    msg.update(top)
    result = map_event(msg, destination(forward_identify=True, forward_screen=True), NOW)
    if isinstance(result, Invalid):
        assert result.reason != reasons.MAPPING_FAILED, result.message
        assert result.reason != reasons.META_CONTRACT_VIOLATION, result.message
        assert result.reason in reasons.INVALID_REASONS
    elif isinstance(result, Skipped):
        assert result.reason in reasons.SKIP_REASONS
    else:
        assert validate_event(result.event, NOW) is None


# Arbitrary JSON as the decoders produce it: orjson and Avro give integers within 64 bits, and
# no NaN or infinity (these stay in `json_values` above, for the mapping's own robustness).
json_numbers = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats(
    allow_nan=False, allow_infinity=False
)
decoded_json = st.recursive(
    st.none() | st.booleans() | json_numbers | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def mostly(strategy: st.SearchStrategy[Any], odds: int = 10) -> st.SearchStrategy[Any]:
    """`strategy`, except once in `odds` any JSON value (the wrong type, null, ...)."""
    return st.integers(0, odds - 1).flatmap(lambda n: decoded_json if n == 0 else strategy)


def rarely_wrong(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """For the fields whose wrong type fails the whole event: keep most events mappable."""
    return mostly(strategy, odds=40)


def iso_timestamp(seconds: int, millis: int, offset_minutes: int, spec: str) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = datetime.fromtimestamp(seconds + millis / 1000, tz=zone)
    text = moment.isoformat(timespec=spec)
    return text.replace("+00:00", "Z") if offset_minutes == 0 else text


near_now = st.integers(int(NOW) - 8 * DAY, int(NOW) + 120)
good_timestamps = st.one_of(
    near_now,
    st.builds(lambda s, ms: s * 1000 + ms, near_now, st.integers(0, 999)),
    near_now.map(str),
    st.builds(
        iso_timestamp,
        near_now,
        st.integers(0, 999),
        st.sampled_from([0, 60, -300, 330, 840, -720]),
        st.sampled_from(["seconds", "milliseconds", "microseconds"]),
    ),
)
timestamps = st.integers(0, 19).flatmap(
    lambda n: (
        st.sampled_from(["yesterday", "", "2023-13-01T00:00:00Z", "1e9"])
        if n == 0
        else good_timestamps
    )
)
short_text = st.text(max_size=12)
ids = st.sampled_from(["user-1", "anon-1", "42", "  ", "a" * 64, "A" * 64]) | short_text
emails = st.sampled_from(["jane@example.com", " Jane.Doe@Example.COM ", "not-an-email", ""])
phones = st.sampled_from(["+1 (415) 555-0132", "0044 20 7946 0958", "555", "x"]) | short_text
urls = st.sampled_from(
    [
        "https://shop.example/",
        "https://shop.example/?fbclid=IwAR2xyz",
        "https://shop.example/?fbclid=",
        "https://[::1/?fbclid=a",
        "/relative?fbclid=b",
        "   ",
    ]
)
amounts = st.one_of(
    json_numbers,
    st.sampled_from(["12.345", " 7 ", "1e3", "twelve", "", "NaN", "1_000", "Infinity"]),
)
categories = st.sampled_from(["Shoes", "Rooms", ""]) | st.lists(short_text, max_size=3)
address = st.fixed_dictionaries(
    {},
    optional={
        "city": mostly(st.sampled_from(["San Francisco", "St. Louis", "Zürich"])),
        "state": mostly(st.sampled_from(["CA", "California", "US-NY", "Bavaria"])),
        "postal_code": mostly(st.sampled_from(["94103-1234", "SW1A 1AA", 94103])),
        "country": mostly(st.sampled_from(["US", "United States", "gb", "Narnia"])),
    },
)
traits = st.fixed_dictionaries(
    {},
    optional={
        "email": mostly(emails | st.lists(emails, max_size=3)),
        "phone": mostly(phones),
        "firstName": mostly(short_text),
        "last_name": mostly(short_text),
        "name": mostly(st.sampled_from(["Jane Doe", "Cher", "A B C"])),
        "gender": mostly(st.sampled_from(["female", "M", "other"])),
        "birthday": mostly(st.sampled_from(["1990-02-03", "03/02/1990", "31.12.1985", "soon"])),
        "address": mostly(address),
        "event_id": mostly(ids),
        "opt_out": mostly(st.booleans()),
    },
)
data_processing = st.sampled_from(
    [[["LDU"], 1, 1000], [["LDU"]], [[]], ["LDU"], [["LDU"], "1", "1000"], [[1], 0, 0]]
)
context = st.fixed_dictionaries(
    {
        "userAgent": rarely_wrong(st.sampled_from(["Mozilla/5.0", "Mozilla/5.0 (X11)", "  "])),
        "page": rarely_wrong(st.fixed_dictionaries({"url": mostly(urls)})),
    },
    optional={
        "ip": mostly(st.sampled_from(["203.0.113.9", "2001:db8::1", "999.1.1.1", "localhost"])),
        "traits": rarely_wrong(traits),
        "consent": mostly(
            st.fixed_dictionaries(
                {
                    "categoryPreferences": mostly(
                        st.dictionaries(
                            st.sampled_from(["Advertising", "Analytics"]),
                            st.booleans() | decoded_json,
                            max_size=2,
                        )
                    )
                },
            )
        ),
        "fbp": mostly(st.sampled_from(["fb.1.1699990000000.123", ""])),
        "fbc": mostly(st.sampled_from(["fb.1.1699990000000.AbC", ""])),
        "cookies": mostly(st.fixed_dictionaries({}, optional={"_fbp": mostly(short_text)})),
        "dataProcessingOptions": mostly(data_processing),
        "sourceId": mostly(short_text),
    },
)
product = st.fixed_dictionaries(
    {},
    optional={
        "product_id": mostly(ids),
        "sku": mostly(short_text),
        "id": mostly(json_numbers),
        "price": mostly(amounts),
        "quantity": mostly(amounts),
        "category": mostly(categories),
        "delivery_category": mostly(st.sampled_from(["curbside", "in_store", "drone"])),
        "name": mostly(short_text),
    },
)
properties = st.fixed_dictionaries(
    {},
    optional={
        "revenue": mostly(amounts),
        "value": mostly(amounts),
        "price": mostly(amounts),
        "sale_price": mostly(amounts),
        "currency": mostly(st.sampled_from(["usd", "EUR", " gbp ", "jpy", "EURO"])),
        "products": mostly(st.lists(mostly(product), max_size=3)),
        "product_id": mostly(ids),
        "category": mostly(categories),
        "query": mostly(short_text),
        "status": mostly(short_text),
        "order_id": mostly(ids),
        "content_type": mostly(st.sampled_from(["product", "hotel", ""])),
        "content_name": mostly(short_text),
        "num_items": mostly(json_numbers),
        "action_source": mostly(
            st.sampled_from(["website", "physical_store", "APP", "app", "email", "kiosk"])
        ),
        "actionSource": mostly(st.sampled_from(["email", "chat"])),
        "event_id": mostly(ids),
        "opt_out": mostly(st.booleans()),
        "fbp": mostly(short_text),
        "fbc": mostly(short_text),
        "delivery_category": mostly(
            st.sampled_from(["in_store", "home_delivery", "curbside", "drone"])
        ),
        "email": mostly(emails),
        "city": mostly(short_text),
        "externalId": mostly(ids),
        "url": mostly(urls),
        "name": mostly(short_text),
        "coupon": decoded_json,
    },
)
integration_options = st.fixed_dictionaries(
    {},
    optional={
        "hashed": mostly(st.booleans()),
        "action_source": mostly(st.sampled_from(["app", "system_generated", "kiosk"])),
        "dataProcessingOptions": mostly(data_processing),
        "content_type": mostly(st.sampled_from(["vehicle", ""])),
        "contentType": mostly(short_text),
        "fbc": mostly(short_text),
    },
)
integrations = st.dictionaries(
    st.sampled_from(["All", "Facebook Conversions API", "Facebook Pixel", "FACEBOOK_PIXEL"]),
    mostly(integration_options) | st.booleans(),
    max_size=3,
)
EVENT_NAMES = [
    "Order Completed",
    "Product Added",
    "Product List Viewed",
    "Product Viewed",
    "Products Searched",
    "Checkout Started",
    "order completed",
    "Signed Up",
    "Trial Started",
    "x" * 51,
    "",
]
TYPES = ["track"] * 6 + ["page", "page", "screen", "identify", "group", "Track"]
segment_events = st.fixed_dictionaries(
    {
        "type": rarely_wrong(st.sampled_from(TYPES)),
        "event": rarely_wrong(st.sampled_from(EVENT_NAMES) | short_text),
        "timestamp": rarely_wrong(timestamps),
        "context": rarely_wrong(context),
        "properties": rarely_wrong(properties),
    },
    optional={
        "name": mostly(st.sampled_from(["Home", "Pricing", "n" * 60]) | short_text),
        "messageId": mostly(ids),
        "userId": mostly(ids),
        "anonymousId": mostly(ids),
        "originalTimestamp": mostly(timestamps),
        "traits": rarely_wrong(traits),
        "integrations": mostly(integrations),
    },
)
destinations = st.fixed_dictionaries(
    {},
    optional={
        "events_to_standard": st.dictionaries(
            st.sampled_from(EVENT_NAMES), st.sampled_from(["Lead", "Subscribe", "AddToWishlist"])
        ),
        "categories_to_content_types": st.dictionaries(
            st.sampled_from(["Shoes", "Rooms"]), st.sampled_from(["hotel", "vehicle"])
        ),
        "value_field_identifier": st.sampled_from(
            ["price", "value", "properties.sale_price", "products.0.price", ""]
        ),
        "external_id_field": st.sampled_from(
            ["context.traits.email", "properties.externalId", "traits", "properties.products.0"]
        ),
        "default_action_source": st.sampled_from(sorted(ACTION_SOURCES)),
        "limited_data_use": st.booleans(),
        "data_processing_options_country": st.sampled_from([0, 1]),
        "pii_denylist": st.lists(
            st.sampled_from(["email", "city", "coupon"])
            | st.builds(
                lambda p, h: {"property": p, "hash": h},
                st.sampled_from(["email", "coupon"]),
                st.booleans(),
            ),
            max_size=3,
        ),
        "pii_allowlist": st.lists(st.sampled_from(["email", "city"]), max_size=2),
        "required_consent_categories": st.sampled_from([[], [], ["Advertising"]]),
        "forward_identify": st.booleans(),
        "forward_screen": st.booleans(),
        "page_event_naming": st.sampled_from(["page_view", "viewed_page"]),
    },
).map(lambda fields: destination(**fields))


def assert_well_formed(result: Any) -> None:
    """The contract of map_event, whatever the input."""
    if isinstance(result, Invalid):
        assert result.reason not in (reasons.MAPPING_FAILED, reasons.META_CONTRACT_VIOLATION), (
            result.message
        )
        assert result.reason in reasons.INVALID_REASONS
        assert result.stage == "map"
        assert isinstance(result.message, str) and result.message
    elif isinstance(result, Skipped):
        assert result.reason in reasons.SKIP_REASONS
    else:
        assert isinstance(result, Mapped), result
        assert validate_event(result.event, NOW) is None, result.event
        orjson.dumps(result.event)  # what `transform` and the batcher do with it


@settings(max_examples=300, deadline=None)
@given(value=decoded_json)
def test_any_json_value_gives_a_result_never_an_exception(value: Any) -> None:
    result = map_event(value, destination(forward_identify=True, forward_screen=True), NOW)
    assert_well_formed(result)
    if not isinstance(value, dict):
        assert invalid_reason(result) == reasons.INVALID_MESSAGE


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=segment_events, dest=destinations)
def test_any_segment_shaped_event_gives_a_result_and_mapped_events_are_acceptable_to_meta(
    msg: dict[str, Any], dest: DestinationSettings
) -> None:
    before = copy.deepcopy(msg)
    result = map_event(msg, dest, NOW)
    assert_well_formed(result)
    assert msg == before  # the mapping never modifies its input


def test_mapped_compares_and_shows_like_the_dataclass_it_was() -> None:
    """Mapped is a plain class (native when compiled): equality, repr and unhashability are
    still a dataclass's."""
    event = {"event_name": "Lead", "event_time": 1}
    assert Mapped(event) == Mapped(dict(event), None)
    assert Mapped(event) != Mapped(event, "TEST1")
    assert Mapped(event) != Mapped({"event_name": "Lead"})
    assert Mapped(event) != Skipped("x")
    assert repr(Mapped(event, "T")) == f"Mapped(event={event!r}, test_event_code='T')"
    with pytest.raises(TypeError):
        hash(Mapped(event))
    with pytest.raises(AttributeError):
        Mapped(event).other = 1  # type: ignore[attr-defined]
