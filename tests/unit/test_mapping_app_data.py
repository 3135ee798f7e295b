"""App events (action_source app): app_data from the mobile context, madid, missing_app_data."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.builders import NOW
from tests.support.builders import destination as base_destination
from worker import reasons
from worker.capi.contract import validate_event
from worker.config import DestinationSettings
from worker.mapping.event import map_event
from worker.mapping.result import Invalid, Mapped

AD_ID = "38400000-8CF0-11BD-B23E-10B96E40000D"


def destination(**settings: Any) -> DestinationSettings:
    return base_destination("app", **{"default_action_source": "app", **settings})


def android_context() -> dict[str, Any]:
    """What analytics-kotlin sends."""
    return {
        "app": {
            "name": "Shop",
            "namespace": "com.shop.app",
            "version": "2.1.0",
            "build": "210",
        },
        "device": {
            "id": "device-1",
            "manufacturer": "Google",
            "model": "Pixel 8",
            "type": "android",
            "advertisingId": AD_ID,
            "adTrackingEnabled": True,
        },
        "os": {"name": "Android", "version": "14"},
        "screen": {"width": 1080, "height": 2400, "density": 2.625},
        "network": {"carrier": "EE", "wifi": True},
        "locale": "en-GB",
        "timezone": "Europe/London",
        "ip": "203.0.113.9",
        "traits": {"email": "jane@example.com"},
    }


def ios_context() -> dict[str, Any]:
    """What analytics-swift sends (ad tracking limited: a zeroed IDFA)."""
    return {
        "app": {"name": "Shop", "namespace": "com.shop.ios", "version": "3.0", "build": "300"},
        "device": {
            "model": "iPhone15,2",
            "type": "ios",
            "advertisingId": "00000000-0000-0000-0000-000000000000",
            "adTrackingEnabled": False,
        },
        "os": {"name": "iOS", "version": "17.1"},
        "screen": {"width": 390, "height": 844, "density": 3},
        "locale": "en-US",
        "timezone": "PST",
        "traits": {"email": "jane@example.com"},
    }


def message(context: dict[str, Any], **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "msg-1",
        "userId": "user-1",
        "timestamp": "2023-11-14T22:12:20.000Z",
        "context": context,
        "properties": {"revenue": 9.99, "currency": "GBP"},
    }
    event.update(fields)
    return event


def mapped(msg: dict[str, Any], settings: DestinationSettings | None = None) -> dict[str, Any]:
    result = map_event(msg, settings or destination(), NOW)
    assert isinstance(result, Mapped), result
    assert validate_event(result.event, NOW) is None
    return result.event


def test_android_app_event_carries_app_data_from_the_context() -> None:
    event = mapped(message(android_context()))
    assert event["action_source"] == "app"
    assert event["app_data"] == {
        "advertiser_tracking_enabled": 1,
        "application_tracking_enabled": 1,
        "extinfo": [
            "a2",
            "com.shop.app",
            "2.1.0",
            "210",
            "14",
            "Pixel 8",
            "en-GB",
            "",  # Europe/London is not an abbreviation
            "EE",
            "1080",
            "2400",
            "2.625",
            "",
            "",
            "",
            "Europe/London",
        ],
    }
    assert event["user_data"]["madid"] == AD_ID.lower()


def test_ios_app_event_with_ad_tracking_limited_has_no_madid() -> None:
    event = mapped(message(ios_context()))
    assert event["app_data"]["advertiser_tracking_enabled"] == 0
    assert event["app_data"]["extinfo"][:8] == [
        "i2",
        "com.shop.ios",
        "3.0",
        "300",
        "17.1",
        "iPhone15,2",
        "en-US",
        "PST",
    ]
    assert event["app_data"]["extinfo"][9:12] == ["390", "844", "3"]
    assert "madid" not in event["user_data"]


def test_zeroed_advertising_id_is_not_a_madid_even_with_tracking_on() -> None:
    context = ios_context()
    context["device"]["adTrackingEnabled"] = True
    event = mapped(message(context))
    assert event["app_data"]["advertiser_tracking_enabled"] == 1
    assert "madid" not in event["user_data"]


@pytest.mark.parametrize(
    ("given", "enabled", "has_madid"),
    [
        (0, 0, False),
        ("false", 0, False),
        (" False ", 0, False),
        ("0", 0, False),
        (1, 1, True),
        ("true", 1, True),
        ("1", 1, True),
        ("maybe", 0, True),
        (2, 0, True),
    ],
)
def test_ad_tracking_given_as_a_number_or_text_gives_the_same_answer_for_both_fields(
    given: Any, enabled: int, has_madid: bool
) -> None:
    # A device that says ad tracking is off (0, "false") must not have its advertising id sent.
    context = android_context()
    context["device"]["adTrackingEnabled"] = given
    event = mapped(message(context))
    assert event["app_data"]["advertiser_tracking_enabled"] == enabled
    assert ("madid" in event["user_data"]) is has_madid


def test_unknown_ad_tracking_is_reported_as_disabled_with_the_madid_kept() -> None:
    context = android_context()
    del context["device"]["adTrackingEnabled"]
    event = mapped(message(context))
    assert event["app_data"]["advertiser_tracking_enabled"] == 0
    assert event["user_data"]["madid"] == AD_ID.lower()


def test_app_data_is_sent_for_app_events_only() -> None:
    msg = message(android_context(), properties={"revenue": 1, "action_source": "chat"})
    event = mapped(msg)
    assert "app_data" not in event
    assert "madid" not in event["user_data"]


def test_integration_options_app_data_overrides_the_context() -> None:
    options = {"Facebook Conversions API": {"app_data": {"application_tracking_enabled": 0}}}
    event = mapped(message(android_context(), integrations=options))
    assert event["app_data"]["application_tracking_enabled"] == 0
    assert event["app_data"]["extinfo"][0] == "a2"


@pytest.mark.parametrize("os", [{"name": "Windows"}, {}, None, "Android"])
def test_app_event_on_another_os_without_app_data_is_missing_app_data(os: Any) -> None:
    context = android_context()
    context["os"] = os
    result = map_event(message(context), destination(), NOW)
    assert isinstance(result, Invalid) and result.reason == reasons.MISSING_APP_DATA
    assert "app_data" in result.message


def test_app_event_on_another_os_takes_the_app_data_of_the_options() -> None:
    app_data = {
        "advertiser_tracking_enabled": 0,
        "application_tracking_enabled": 1,
        "extinfo": ["i2", *[""] * 15],
    }
    context = android_context()
    context["os"] = {"name": "visionOS"}
    event = mapped(message(context, integrations={"Facebook Pixel": {"app_data": app_data}}))
    assert event["app_data"] == app_data


@pytest.mark.parametrize(
    "app_data", ["yes", {"advertiser_tracking_enabled": 2}, {"extinfo": ["a2"]}]
)
def test_app_data_options_meta_would_refuse_make_the_event_invalid(app_data: Any) -> None:
    options = {"Facebook Conversions API": {"app_data": app_data}}
    result = map_event(message(android_context(), integrations=options), destination(), NOW)
    assert isinstance(result, Invalid) and result.reason == reasons.INVALID_APP_DATA


def test_app_event_from_the_traits_action_source() -> None:
    context = android_context()
    context["traits"]["action_source"] = "app"
    event = mapped(message(context), destination(default_action_source="website"))
    assert event["action_source"] == "app"
    assert event["app_data"]["extinfo"][0] == "a2"
