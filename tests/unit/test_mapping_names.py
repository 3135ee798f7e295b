"""Event names: Segment e-commerce defaults, events_to_standard, custom names, page naming."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.builders import NOW, destination, track_message
from worker import reasons
from worker.config import DestinationSettings
from worker.mapping.event import map_event
from worker.mapping.result import Invalid, Mapped


def message(**fields: Any) -> dict[str, Any]:
    return track_message(**{"properties": {"revenue": 1}, **fields})


def name_of(msg: dict[str, Any], settings: DestinationSettings | None = None) -> str:
    result = map_event(msg, settings or destination(), NOW)
    assert isinstance(result, Mapped), result
    name: str = result.event["event_name"]
    return name


@pytest.mark.parametrize(
    ("segment_name", "meta_name"),
    [
        ("Order Completed", "Purchase"),
        ("Product Added", "AddToCart"),
        ("Product List Viewed", "ViewContent"),
        ("Product Viewed", "ViewContent"),
        ("Products Searched", "Search"),
        ("Checkout Started", "InitiateCheckout"),
    ],
)
def test_segment_ecommerce_events_map_to_meta_standard_events(
    segment_name: str, meta_name: str
) -> None:
    assert name_of(message(event=segment_name)) == meta_name


def test_default_names_also_match_case_insensitively() -> None:
    assert name_of(message(event="order completed")) == "Purchase"


def test_events_to_standard_adds_a_mapping() -> None:
    settings = destination(events_to_standard={"Signed Up": "CompleteRegistration"})
    assert name_of(message(event="Signed Up"), settings) == "CompleteRegistration"


def test_events_to_standard_overrides_a_default() -> None:
    settings = destination(events_to_standard={"Product Added": "AddToWishlist"})
    assert name_of(message(event="Product Added"), settings) == "AddToWishlist"


def test_events_to_standard_exact_match_wins_over_a_case_insensitive_one() -> None:
    settings = destination(events_to_standard={"lead": "Contact", "Lead": "Lead"})
    assert name_of(message(event="Lead"), settings) == "Lead"
    assert name_of(message(event="lead"), settings) == "Contact"


def test_events_to_standard_case_insensitive_match_beats_a_default() -> None:
    settings = destination(events_to_standard={"order completed": "Subscribe"})
    assert name_of(message(event="Order Completed"), settings) == "Subscribe"


def test_other_events_are_sent_as_custom_events_under_their_own_name() -> None:
    assert name_of(message(event="Coupon Applied")) == "Coupon Applied"


def test_custom_event_name_of_50_characters_is_accepted() -> None:
    assert name_of(message(event="x" * 50)) == "x" * 50


def test_custom_event_name_over_50_characters_is_invalid() -> None:
    result = map_event(message(event="x" * 51), destination(), NOW)
    assert isinstance(result, Invalid)
    assert result.reason == reasons.EVENT_NAME_TOO_LONG


def test_track_without_event_is_invalid() -> None:
    result = map_event(message(), destination(), NOW)
    assert isinstance(result, Invalid)
    assert result.reason == reasons.MISSING_EVENT_NAME


def test_track_with_non_string_event_is_invalid() -> None:
    result = map_event(message(event=12), destination(), NOW)
    assert isinstance(result, Invalid)
    assert result.reason == reasons.INVALID_EVENT_NAME


def test_page_is_page_view_by_default() -> None:
    assert name_of(message(type="page", name="Pricing")) == "PageView"


def test_viewed_page_naming_uses_the_page_name() -> None:
    settings = destination(page_event_naming="viewed_page")
    assert name_of(message(type="page", name="Pricing"), settings) == "Viewed page Pricing"


def test_viewed_page_naming_reads_the_name_from_properties() -> None:
    settings = destination(page_event_naming="viewed_page")
    msg = message(type="page", properties={"name": "Docs"})
    assert name_of(msg, settings) == "Viewed page Docs"


def test_viewed_page_naming_without_a_name_is_viewed_page() -> None:
    settings = destination(page_event_naming="viewed_page")
    assert name_of(message(type="page", properties={}), settings) == "Viewed page"


def test_viewed_page_name_over_50_characters_is_invalid() -> None:
    settings = destination(page_event_naming="viewed_page")
    result = map_event(message(type="page", name="p" * 45), settings, NOW)
    assert isinstance(result, Invalid)
    assert result.reason == reasons.EVENT_NAME_TOO_LONG
