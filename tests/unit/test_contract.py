"""Meta's Conversions API contract, rule by rule: a valid event passes, each violation is named."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from worker.capi.contract import (
    ContractViolation,
    Subcode,
    is_sha256_hex,
    validate_event,
    validate_request,
)
from worker.capi.rules import (
    ACTION_SOURCES,
    CUSTOMER_INFORMATION_PARAMETERS,
    HASHED_FIELDS,
    MAX_EVENTS_PER_REQUEST,
)

NOW = 1_700_000_000.0
DAY = 24 * 3600
EMAIL_HASH = hashlib.sha256(b"jane@example.com").hexdigest()
ANDROID_EXTINFO = ["a2", "com.shop.app", "2.1", "210", "14", "Pixel 8", "en_GB", "", "EE"] + [
    ""
] * 7
APP_DATA = {
    "advertiser_tracking_enabled": 1,
    "application_tracking_enabled": 1,
    "extinfo": ANDROID_EXTINFO,
}


def good_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_name": "Purchase",
        "event_time": int(NOW) - 30,
        "event_id": "order-1",
        "action_source": "website",
        "event_source_url": "https://shop.example/checkout",
        "user_data": {
            "em": [EMAIL_HASH],
            "client_user_agent": "Mozilla/5.0",
            "client_ip_address": "203.0.113.9",
        },
        "custom_data": {
            "value": 42.5,
            "currency": "USD",
            "contents": [{"id": "sku-1", "quantity": 1, "item_price": 42.5}],
        },
        "data_processing_options": [],
    }
    event.update(overrides)
    if event["action_source"] == "app" and "app_data" not in overrides:
        event["app_data"] = copy.deepcopy(APP_DATA)
    return event


def with_user_data(**fields: Any) -> dict[str, Any]:
    event = good_event()
    event["user_data"] = {**event["user_data"], **fields}
    return event


def with_custom_data(**fields: Any) -> dict[str, Any]:
    event = good_event()
    event["custom_data"] = {**event["custom_data"], **fields}
    return event


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    trimmed = copy.deepcopy(event)
    parent = trimmed
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return trimmed


def subcode_of(event: Any, now: float = NOW) -> int | None:
    violation = validate_event(event, now)
    assert violation is not None, "expected the event to be rejected"
    assert violation.code == 100
    return violation.subcode


# ----------------------------------------------------------------------------- valid events


def test_a_complete_purchase_is_accepted() -> None:
    assert validate_event(good_event(), NOW) is None


@pytest.mark.parametrize("source", sorted(ACTION_SOURCES - {"website"}))
def test_non_website_sources_need_neither_user_agent_nor_url(source: str) -> None:
    event = without(good_event(action_source=source), "event_source_url")
    event["user_data"] = {"external_id": EMAIL_HASH}
    assert validate_event(event, NOW) is None


def test_an_app_event_needs_app_data() -> None:
    event = without(good_event(action_source="app"), "app_data")
    assert subcode_of(event) == Subcode.APP_DATA_MISSING
    assert validate_event(without(event, "event_source_url"), NOW) is not None


@pytest.mark.parametrize(
    "app_data",
    [
        "a2",
        {**APP_DATA, "advertiser_tracking_enabled": "yes"},
        {key: value for key, value in APP_DATA.items() if key != "application_tracking_enabled"},
        {**APP_DATA, "extinfo": ANDROID_EXTINFO[:10]},
        {**APP_DATA, "extinfo": ["w2", *ANDROID_EXTINFO[1:]]},
        {**APP_DATA, "extinfo": [*ANDROID_EXTINFO[:-1], 3]},
    ],
)
def test_app_data_without_tracking_flags_or_a_16_string_extinfo_is_invalid(
    app_data: Any,
) -> None:
    assert subcode_of(good_event(action_source="app", app_data=app_data)) == (
        Subcode.APP_DATA_INVALID
    )


def test_app_data_of_an_ios_app_with_boolean_flags_is_accepted() -> None:
    app_data = {
        "advertiser_tracking_enabled": False,
        "application_tracking_enabled": True,
        "extinfo": ["i2", *ANDROID_EXTINFO[1:]],
    }
    assert validate_event(good_event(action_source="app", app_data=app_data), NOW) is None


def test_net_revenue_must_be_a_number() -> None:
    assert validate_event(with_custom_data(net_revenue=12.5), NOW) is None
    assert subcode_of(with_custom_data(net_revenue="12.5")) == Subcode.VALUE_NOT_NUMERIC


def test_a_custom_event_needs_no_custom_data() -> None:
    event = without(good_event(event_name="Newsletter Signup"), "custom_data")
    assert validate_event(event, NOW) is None


def test_single_hash_strings_are_accepted_as_well_as_lists() -> None:
    assert validate_event(with_user_data(em=EMAIL_HASH, ph=[EMAIL_HASH, EMAIL_HASH]), NOW) is None


def test_lowercase_currency_and_integer_value_are_accepted() -> None:
    assert validate_event(with_custom_data(value=10, currency="eur"), NOW) is None


# ----------------------------------------------------------------------------- event basics


@pytest.mark.parametrize("event", [None, "Purchase", 7, ["event_name"]])
def test_an_event_that_is_not_an_object_is_rejected(event: Any) -> None:
    assert subcode_of(event) == Subcode.EVENT_NOT_AN_OBJECT


@pytest.mark.parametrize("name", [None, "", "   ", 12])
def test_event_name_must_be_a_non_empty_string(name: Any) -> None:
    assert subcode_of(good_event(event_name=name)) == Subcode.EVENT_NAME_INVALID


def test_event_name_is_required() -> None:
    assert subcode_of(without(good_event(), "event_name")) == Subcode.EVENT_NAME_INVALID


@pytest.mark.parametrize("event_time", [None, True, float(NOW), str(int(NOW)), "2024-01-01"])
def test_event_time_must_be_an_integer(event_time: Any) -> None:
    assert subcode_of(good_event(event_time=event_time)) == Subcode.EVENT_TIME_INVALID


def test_event_time_is_required() -> None:
    assert subcode_of(without(good_event(), "event_time")) == Subcode.EVENT_TIME_INVALID


# ----------------------------------------------------------------------------- time window


def test_an_event_exactly_seven_days_old_is_accepted() -> None:
    assert validate_event(good_event(event_time=int(NOW) - 7 * DAY), NOW) is None


def test_an_event_older_than_seven_days_is_too_old_with_metas_wording() -> None:
    violation = validate_event(good_event(event_time=int(NOW) - 7 * DAY - 1), NOW)
    assert violation == ContractViolation(
        code=100,
        subcode=2804003,
        message="Invalid parameter",
        error_user_title="Event Timestamp Too Old",
        error_user_msg=(
            "The timestamp for this event is too far in the past. Events need to be sent from "
            "your server within 7 days of when they occurred. Enter a timestamp that has "
            "occurred within the last 7 days."
        ),
    )


def test_physical_store_events_may_be_up_to_62_days_old() -> None:
    store_event = good_event(action_source="physical_store", event_time=int(NOW) - 62 * DAY)
    assert validate_event(store_event, NOW) is None
    older = good_event(action_source="physical_store", event_time=int(NOW) - 62 * DAY - 1)
    violation = validate_event(older, NOW)
    assert violation is not None
    assert violation.subcode == Subcode.EVENT_TIME_TOO_OLD
    assert "62 days" in violation.error_user_msg


def test_up_to_sixty_seconds_in_the_future_is_tolerated() -> None:
    assert validate_event(good_event(event_time=int(NOW) + 60), NOW) is None


def test_more_than_sixty_seconds_in_the_future_is_rejected() -> None:
    assert subcode_of(good_event(event_time=int(NOW) + 61)) == Subcode.EVENT_TIME_IN_FUTURE


# ----------------------------------------------------------------------------- action source


def test_action_source_is_required() -> None:
    assert subcode_of(without(good_event(), "action_source")) == Subcode.ACTION_SOURCE_MISSING


@pytest.mark.parametrize("source", ["web", "Website", "", None, 1])
def test_action_source_must_be_one_of_metas_values(source: Any) -> None:
    assert subcode_of(good_event(action_source=source)) == Subcode.ACTION_SOURCE_INVALID


def test_website_events_need_a_client_user_agent() -> None:
    event = without(good_event(), "user_data", "client_user_agent")
    assert subcode_of(event) == Subcode.CLIENT_USER_AGENT_MISSING
    assert subcode_of(with_user_data(client_user_agent="  ")) == Subcode.CLIENT_USER_AGENT_MISSING


def test_website_events_need_an_event_source_url() -> None:
    assert subcode_of(without(good_event(), "event_source_url")) == Subcode.EVENT_SOURCE_URL_MISSING
    assert subcode_of(good_event(event_source_url="")) == Subcode.EVENT_SOURCE_URL_MISSING


# ----------------------------------------------------------------------------- user_data


@pytest.mark.parametrize("user_data", [None, "jane@example.com", [EMAIL_HASH]])
def test_user_data_must_be_an_object(user_data: Any) -> None:
    assert subcode_of(good_event(user_data=user_data)) == Subcode.USER_DATA_MISSING


def test_user_data_is_required() -> None:
    assert subcode_of(without(good_event(), "user_data")) == Subcode.USER_DATA_MISSING


def test_user_data_without_any_customer_information_is_insufficient() -> None:
    event = good_event(action_source="app", user_data={"unknown_key": "x"})
    violation = validate_event(event, NOW)
    assert violation is not None
    assert (violation.code, violation.subcode) == (100, 2804050)
    assert violation.error_user_title


def test_empty_values_do_not_count_as_customer_information() -> None:
    event = good_event(action_source="app", user_data={"em": [], "fbp": "", "external_id": None})
    assert subcode_of(event) == Subcode.INSUFFICIENT_CUSTOMER_INFORMATION


@pytest.mark.parametrize("parameter", CUSTOMER_INFORMATION_PARAMETERS)
def test_any_one_customer_information_parameter_is_enough(parameter: str) -> None:
    value = EMAIL_HASH if parameter in HASHED_FIELDS else "some-value"
    event = good_event(action_source="app", user_data={parameter: value})
    assert validate_event(event, NOW) is None


@pytest.mark.parametrize("field", HASHED_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        "jane@example.com",
        EMAIL_HASH.upper(),
        EMAIL_HASH[:-1],
        EMAIL_HASH + "0",
        EMAIL_HASH + "\n",
        [EMAIL_HASH, "plain"],
        12345,
    ],
)
def test_hashed_fields_must_be_lowercase_sha256_hex(field: str, value: Any) -> None:
    assert subcode_of(with_user_data(**{field: value})) == Subcode.HASHED_VALUE_INVALID


def test_hashes_verified_skips_only_the_hash_format_rule() -> None:
    # For the mapping stage, which computed every hash itself: the format is not checked again.
    unchecked = with_user_data(em="jane@example.com")
    assert validate_event(unchecked, NOW, hashes_verified=True) is None
    # Every other rule still applies.
    no_agent = with_user_data(em="jane@example.com", client_user_agent="")
    violation = validate_event(no_agent, NOW, hashes_verified=True)
    assert violation is not None
    assert violation.subcode == Subcode.CLIENT_USER_AGENT_MISSING


def test_is_sha256_hex() -> None:
    assert is_sha256_hex(EMAIL_HASH)
    assert not is_sha256_hex(EMAIL_HASH.upper())
    assert not is_sha256_hex(None)


# ----------------------------------------------------------------------------- custom_data


@pytest.mark.parametrize("custom_data", ["42.5", [1, 2], 3])
def test_custom_data_must_be_an_object(custom_data: Any) -> None:
    assert subcode_of(good_event(custom_data=custom_data)) == Subcode.CUSTOM_DATA_INVALID


@pytest.mark.parametrize("value", ["42.5", None, True, float("nan"), float("inf"), {"amount": 1}])
def test_value_must_be_a_finite_number(value: Any) -> None:
    assert subcode_of(with_custom_data(value=value)) == Subcode.VALUE_NOT_NUMERIC


@pytest.mark.parametrize("currency", ["US", "USDD", "U$D", "", 840, None, "€UR"])
def test_currency_must_be_three_letters(currency: Any) -> None:
    assert subcode_of(with_custom_data(currency=currency)) == Subcode.CURRENCY_INVALID


@pytest.mark.parametrize("missing", ["value", "currency"])
def test_purchase_needs_value_and_currency(missing: str) -> None:
    event = without(good_event(), "custom_data", missing)
    assert subcode_of(event) == Subcode.PURCHASE_VALUE_OR_CURRENCY_MISSING


def test_purchase_without_custom_data_is_rejected() -> None:
    event = without(good_event(), "custom_data")
    assert subcode_of(event) == Subcode.PURCHASE_VALUE_OR_CURRENCY_MISSING


def test_other_events_may_omit_value_and_currency() -> None:
    event = good_event(event_name="AddToCart", custom_data={"content_ids": ["sku-1"]})
    assert validate_event(event, NOW) is None


@pytest.mark.parametrize(
    "contents",
    [
        [{"quantity": 1}],
        [{"id": ""}],
        [{"id": None}],
        [{"id": True}],
        [{"id": "sku-1"}, {"item_price": 3}],
        ["sku-1"],
        {"id": "sku-1"},
    ],
)
def test_every_content_needs_an_id(contents: Any) -> None:
    assert subcode_of(with_custom_data(contents=contents)) == Subcode.CONTENTS_INVALID


def test_numeric_content_ids_are_accepted() -> None:
    assert validate_event(with_custom_data(contents=[{"id": 17}]), NOW) is None


@pytest.mark.parametrize("options", ["LDU", [1], ["LDU", None], {"LDU": True}])
def test_data_processing_options_must_be_a_list_of_strings(options: Any) -> None:
    event = good_event(data_processing_options=options)
    assert subcode_of(event) == Subcode.DATA_PROCESSING_OPTIONS_INVALID


def test_ldu_options_are_accepted() -> None:
    assert validate_event(good_event(data_processing_options=["LDU"]), NOW) is None


# ----------------------------------------------------------------------------- the request


def test_a_request_of_valid_events_is_accepted() -> None:
    body = {"data": [good_event(), good_event(event_id="order-2")], "test_event_code": "TEST1"}
    assert validate_request(body, NOW) is None


@pytest.mark.parametrize("body", [None, [], {}, {"events": []}])
def test_data_is_required(body: Any) -> None:
    violation = validate_request(body, NOW)
    assert violation is not None
    assert (violation.code, violation.subcode) == (100, None)
    assert "data" in violation.message


@pytest.mark.parametrize("data", [good_event(), "[]", 3])
def test_data_must_be_an_array(data: Any) -> None:
    violation = validate_request({"data": data}, NOW)
    assert violation is not None
    assert violation.message == "(#100) param data must be an array."


def test_data_must_not_be_empty() -> None:
    violation = validate_request({"data": []}, NOW)
    assert violation is not None
    assert violation.code == 100


def test_at_most_1000_events_per_request() -> None:
    events = [good_event(event_id=str(i)) for i in range(MAX_EVENTS_PER_REQUEST + 1)]
    assert validate_request({"data": events[:MAX_EVENTS_PER_REQUEST]}, NOW) is None
    violation = validate_request({"data": events}, NOW)
    assert violation is not None
    assert violation.subcode == Subcode.TOO_MANY_EVENTS
    assert "1001" in violation.error_user_msg


@pytest.mark.parametrize("field", ["test_event_code", "partner_agent"])
def test_optional_request_fields_must_be_strings(field: str) -> None:
    violation = validate_request({"data": [good_event()], field: 123}, NOW)
    assert violation is not None
    assert field in violation.message


def test_the_first_invalid_event_rejects_the_request_and_is_located() -> None:
    stale = good_event(event_time=int(NOW) - 30 * DAY)
    data = [good_event(), good_event(event_id="2"), stale, good_event(event_name="")]
    violation = validate_request({"data": data}, NOW)
    assert violation is not None
    assert violation.subcode == Subcode.EVENT_TIME_TOO_OLD
    assert violation.event_index == 2


def test_validate_event_leaves_the_index_unset() -> None:
    violation = validate_event(good_event(event_name=""), NOW)
    assert violation is not None
    assert violation.event_index is None


def test_confirmed_subcodes_keep_metas_numbers() -> None:
    assert Subcode.EVENT_TIME_TOO_OLD == 2804003
    assert Subcode.INSUFFICIENT_CUSTOMER_INFORMATION == 2804050
    assert len({int(s) for s in Subcode}) == len(Subcode)
