"""is_routed: a destination's `match` narrows which events it takes."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from worker.config import DestinationSettings, MatchSettings
from worker.mapping.routing import is_routed


def destination(**match: Any) -> DestinationSettings:
    return DestinationSettings(
        name="shop",
        pixel_id="1234567890",
        access_token=SecretStr("token"),
        match=MatchSettings(**match),
    )


def track(event: str = "Order Completed", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, **fields}


def test_destination_without_match_takes_every_event() -> None:
    assert is_routed(track(), None, destination())
    assert is_routed({"type": "group"}, None, destination())


def test_destination_without_match_takes_even_a_malformed_event_so_mapping_reports_it() -> None:
    assert is_routed([], None, destination())  # type: ignore[arg-type]


def test_event_types_restrict_by_type() -> None:
    settings = destination(event_types=["page"])
    assert is_routed({"type": "page"}, None, settings)
    assert not is_routed(track(), None, settings)


def test_event_type_match_ignores_case() -> None:
    assert is_routed({"type": "Page"}, None, destination(event_types=["page"]))


def test_event_without_type_is_not_routed_to_a_type_restricted_destination() -> None:
    assert not is_routed({"event": "x"}, None, destination(event_types=["track"]))


def test_event_names_restrict_track_events_by_event() -> None:
    settings = destination(event_names=["Order Completed"])
    assert is_routed(track("Order Completed"), None, settings)
    assert not is_routed(track("Product Viewed"), None, settings)


def test_event_names_match_page_events_by_name() -> None:
    settings = destination(event_names=["Pricing"])
    assert is_routed({"type": "page", "name": "Pricing"}, None, settings)
    assert is_routed({"type": "page", "properties": {"name": "Pricing"}}, None, settings)
    assert not is_routed({"type": "page", "name": "Home"}, None, settings)


def test_identify_has_no_name_and_is_not_routed_to_a_name_restricted_destination() -> None:
    assert not is_routed({"type": "identify"}, None, destination(event_names=["Order Completed"]))


def test_source_ids_are_read_from_the_default_field() -> None:
    settings = destination(source_ids=["src-1"])
    assert is_routed(track(context={"sourceId": "src-1"}), None, settings)
    assert not is_routed(track(context={"sourceId": "src-2"}), None, settings)


def test_source_ids_are_read_from_a_configured_field_path() -> None:
    settings = destination(source_ids=["web"], source_id_field="properties.source.id")
    assert is_routed(track(properties={"source": {"id": "web"}}), None, settings)


def test_event_without_source_id_is_not_routed_to_a_source_restricted_destination() -> None:
    assert not is_routed(track(), None, destination(source_ids=["src-1"]))


def test_source_id_is_read_from_a_kafka_header() -> None:
    settings = destination(source_ids=["src-1"], source_id_header="x-source-id")
    assert is_routed(track(), {"x-source-id": b"src-1"}, settings)
    assert not is_routed(track(), {"x-source-id": b"src-2"}, settings)


def test_header_wins_over_the_field_when_both_are_present() -> None:
    settings = destination(source_ids=["src-1"], source_id_header="x-source-id")
    msg = track(context={"sourceId": "src-1"})
    assert not is_routed(msg, {"x-source-id": b"src-2"}, settings)


def test_missing_header_falls_back_to_the_field() -> None:
    settings = destination(source_ids=["src-1"], source_id_header="x-source-id")
    assert is_routed(track(context={"sourceId": "src-1"}), {}, settings)
    assert is_routed(track(context={"sourceId": "src-1"}), None, settings)


def test_header_that_is_not_utf8_does_not_match() -> None:
    settings = destination(source_ids=["src-1"], source_id_header="x-source-id")
    assert not is_routed(track(), {"x-source-id": b"\xff\xfe"}, settings)


def test_every_configured_restriction_must_match() -> None:
    settings = destination(event_types=["track"], event_names=["Order Completed"], source_ids=["a"])
    assert is_routed(track(context={"sourceId": "a"}), None, settings)
    assert not is_routed(track(context={"sourceId": "b"}), None, settings)
    assert not is_routed(track("Other", context={"sourceId": "a"}), None, settings)


def test_restricted_destination_does_not_take_a_message_that_is_not_an_object() -> None:
    assert not is_routed("track", None, destination(event_types=["track"]))  # type: ignore[arg-type]
