"""RoutingTable: a destination's `match` narrows which events it takes; the table finds the
destinations of a set that take an event without looking at the others."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import MatchSettings
from worker.mapping.paths import get_path, split_path
from worker.mapping.routing import RoutingTable


def match(**restrictions: Any) -> MatchSettings:
    return MatchSettings(**restrictions)


def routes(message: Any, headers: Mapping[str, bytes | None] | None, m: MatchSettings) -> bool:
    return list(RoutingTable([m]).route(message, headers)) == [0]


def track(event: str = "Order Completed", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, **fields}


# ---- every rule, one destination ---------------------------------------------------------------


def test_destination_without_match_takes_every_event() -> None:
    assert routes(track(), None, match())
    assert routes({"type": "group"}, None, match())


def test_destination_without_match_takes_even_a_malformed_event_so_mapping_reports_it() -> None:
    assert routes([], None, match())
    assert routes("text", None, match())


def test_event_types_restrict_by_type() -> None:
    assert routes({"type": "page"}, None, match(event_types=["page"]))
    assert not routes(track(), None, match(event_types=["page"]))


def test_event_type_match_ignores_case_and_surrounding_blanks() -> None:
    assert routes({"type": "Page"}, None, match(event_types=["page"]))
    assert routes({"type": " PAGE "}, None, match(event_types=["page"]))


def test_event_without_type_is_not_routed_to_a_type_restricted_destination() -> None:
    assert not routes({"event": "x"}, None, match(event_types=["track"]))
    assert not routes({"type": 3, "event": "x"}, None, match(event_types=["track"]))


def test_event_names_restrict_track_events_by_event() -> None:
    m = match(event_names=["Order Completed"])
    assert routes(track("Order Completed"), None, m)
    assert not routes(track("Product Viewed"), None, m)
    assert not routes(track("order completed"), None, m)  # names match exactly


def test_event_names_match_page_and_screen_events_by_name_or_properties_name() -> None:
    m = match(event_names=["Pricing"])
    assert routes({"type": "page", "name": "Pricing"}, None, m)
    assert routes({"type": "page", "properties": {"name": "Pricing"}}, None, m)
    assert routes({"type": "screen", "name": "Pricing"}, None, m)
    assert not routes({"type": "page", "name": "Home"}, None, m)
    assert not routes({"type": "page", "name": "Home", "properties": {"name": "Pricing"}}, None, m)


def test_a_track_call_is_named_by_event_not_by_name() -> None:
    assert not routes({"type": "track", "name": "Pricing"}, None, match(event_names=["Pricing"]))


def test_identify_has_no_name_and_is_not_routed_to_a_name_restricted_destination() -> None:
    assert not routes({"type": "identify"}, None, match(event_names=["Order Completed"]))


def test_source_ids_are_read_from_the_default_field() -> None:
    m = match(source_ids=["src-1"])
    assert routes(track(context={"sourceId": "src-1"}), None, m)
    assert not routes(track(context={"sourceId": "src-2"}), None, m)
    assert not routes(track(context={"sourceId": 1}), None, match(source_ids=["1"]))


def test_source_ids_are_read_from_a_configured_field_path() -> None:
    m = match(source_ids=["web"], source_id_field="properties.source.id")
    assert routes(track(properties={"source": {"id": "web"}}), None, m)
    assert not routes(track(context={"sourceId": "web"}), None, m)


def test_event_without_source_id_is_not_routed_to_a_source_restricted_destination() -> None:
    assert not routes(track(), None, match(source_ids=["src-1"]))


def test_source_id_is_read_from_a_kafka_header() -> None:
    m = match(source_ids=["src-1"], source_id_header="x-source-id")
    assert routes(track(), {"x-source-id": b"src-1"}, m)
    assert not routes(track(), {"x-source-id": b"src-2"}, m)


def test_header_wins_over_the_field_when_both_are_present() -> None:
    m = match(source_ids=["src-1"], source_id_header="x-source-id")
    assert not routes(track(context={"sourceId": "src-1"}), {"x-source-id": b"src-2"}, m)


def test_missing_header_falls_back_to_the_field() -> None:
    m = match(source_ids=["src-1"], source_id_header="x-source-id")
    assert routes(track(context={"sourceId": "src-1"}), {}, m)
    assert routes(track(context={"sourceId": "src-1"}), None, m)
    assert routes(track(context={"sourceId": "src-1"}), {"x-source-id": None}, m)


def test_header_that_is_not_utf8_does_not_match() -> None:
    m = match(source_ids=["src-1"], source_id_header="x-source-id")
    assert not routes(track(), {"x-source-id": b"\xff\xfe"}, m)


def test_restricted_destination_does_not_take_a_message_that_is_not_an_object() -> None:
    assert not routes("track", None, match(event_types=["track"]))
    assert not routes(["track"], None, match(source_ids=["a"]))


# ---- each combination of restrictions -----------------------------------------------------------


def test_type_and_name_must_both_match() -> None:
    m = match(event_types=["page"], event_names=["Pricing"])
    assert routes({"type": "page", "name": "Pricing"}, None, m)
    assert not routes({"type": "screen", "name": "Pricing"}, None, m)
    assert not routes({"type": "page", "name": "Home"}, None, m)


def test_type_and_source_must_both_match() -> None:
    m = match(event_types=["track"], source_ids=["a"])
    assert routes(track(context={"sourceId": "a"}), None, m)
    assert not routes({"type": "page", "context": {"sourceId": "a"}}, None, m)
    assert not routes(track(context={"sourceId": "b"}), None, m)


def test_name_and_source_must_both_match() -> None:
    m = match(event_names=["Order Completed"], source_ids=["a"])
    assert routes(track(context={"sourceId": "a"}), None, m)
    assert not routes(track("Other", context={"sourceId": "a"}), None, m)
    assert not routes(track(context={"sourceId": "b"}), None, m)


def test_every_configured_restriction_must_match() -> None:
    m = match(event_types=["track"], event_names=["Order Completed"], source_ids=["a"])
    assert routes(track(context={"sourceId": "a"}), None, m)
    assert not routes(track(context={"sourceId": "b"}), None, m)
    assert not routes(track("Other", context={"sourceId": "a"}), None, m)
    assert not routes(
        {"type": "page", "name": "Order Completed", "context": {"sourceId": "a"}}, None, m
    )


# ---- a set: fan-out order, disjoint lookups -----------------------------------------------------


def test_the_fan_out_keeps_configuration_order_across_every_kind_of_entry() -> None:
    table = RoutingTable(
        [
            match(source_ids=["a"]),  # 0
            match(),  # 1
            match(event_names=["Order Completed"]),  # 2
            match(event_types=["track"]),  # 3
            match(source_ids=["b"]),  # 4
            match(source_ids=["a"], source_id_header="x-src"),  # 5
            match(),  # 6
        ]
    )
    message = track(context={"sourceId": "a"})
    assert list(table.route(message, {"x-src": b"a"})) == [0, 1, 2, 3, 5, 6]
    assert list(table.route(message, {"x-src": b"b"})) == [0, 1, 2, 3, 6]
    assert list(table.route({"type": "page"}, None)) == [1, 6]
    assert list(table.route(None, None)) == [1, 6]


def test_a_destination_fenced_to_several_sources_is_found_by_any_of_them_once() -> None:
    table = RoutingTable([match(source_ids=["a", "b", "a"]), match(source_ids=["b"])])
    assert list(table.route(track(context={"sourceId": "a"}), None)) == [0]
    assert list(table.route(track(context={"sourceId": "b"}), None)) == [0, 1]
    assert list(table.route(track(context={"sourceId": "c"}), None)) == []


def test_ten_thousand_fenced_destinations_answer_only_their_own() -> None:
    table = RoutingTable([match(source_ids=[f"shop-{i}"]) for i in range(10_000)])
    assert list(table.route(track(context={"sourceId": "shop-7321"}), None)) == [7321]
    assert list(table.route(track(), None)) == []


def test_the_answer_is_not_changed_by_a_caller_that_keeps_it() -> None:
    table = RoutingTable([match(), match()])
    first = table.route(track(), None)
    assert list(first) == [0, 1]
    assert list(table.route({"type": "page"}, None)) == [0, 1]


# ---- equivalence with the per-destination rule (the semantics before the table) ------------------


def reference_is_routed(
    message: Any, headers: Mapping[str, bytes | None] | None, m: MatchSettings
) -> bool:
    """The per-destination `is_routed` the worker ran for every destination before the table,
    kept verbatim as the specification the table must agree with."""
    types, names, sources = set(m.event_types), set(m.event_names), set(m.source_ids)
    if not (types or names or sources):
        return True
    if not isinstance(message, dict):
        return False
    kind = message.get("type")
    kind = kind.strip().lower() if isinstance(kind, str) else None
    if types and kind not in types:
        return False
    if names:
        if kind == "track":
            name = message.get("event")
        elif kind in ("page", "screen"):
            properties = message.get("properties")
            fallback = properties.get("name") if isinstance(properties, dict) else None
            name = fallback if message.get("name") is None else message["name"]
        else:
            name = None
        if (name if isinstance(name, str) else None) not in names:
            return False
    if sources:
        source_id = None
        if m.source_id_header is not None and headers:
            value: Any = headers.get(m.source_id_header)
            if isinstance(value, bytes):
                try:
                    source_id = value.decode("utf-8")
                except UnicodeDecodeError:
                    source_id = None
            elif isinstance(value, str):
                source_id = value
        if source_id is None:
            value = get_path(message, split_path(m.source_id_field))
            source_id = value if isinstance(value, str) else None
        if source_id not in sources:
            return False
    return True


TYPES = ["track", "page", "screen", "identify"]
NAMES = ["Order Completed", "Pricing", "Home"]
SOURCES = ["a", "b", "c"]
FIELDS = ["context.sourceId", "properties.source"]

matches = st.builds(
    MatchSettings,
    event_types=st.lists(st.sampled_from(TYPES), max_size=2),
    event_names=st.lists(st.sampled_from(NAMES), max_size=2),
    source_ids=st.lists(st.sampled_from(SOURCES), max_size=2),
    source_id_field=st.sampled_from(FIELDS),
    source_id_header=st.sampled_from([None, "x-src"]),
)
maybe = st.none() | st.integers(0, 2)
messages = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from([*TYPES, "Track", " page ", "group", "", 7]),
            "event": st.sampled_from([*NAMES, 5]),
            "name": st.sampled_from(NAMES),
            "properties": st.fixed_dictionaries(
                {},
                optional={"name": st.sampled_from(NAMES), "source": st.sampled_from(SOURCES)},
            )
            | st.just("not an object"),
            "context": st.fixed_dictionaries(
                {}, optional={"sourceId": st.sampled_from([*SOURCES, 1])}
            ),
        },
    ),
    st.sampled_from([None, [], "track", 3]),
)
header_sets = st.none() | st.fixed_dictionaries(
    {}, optional={"x-src": st.sampled_from([b"a", b"b", b"\xff", None, "c"])}
)


@settings(max_examples=400, deadline=None)
@given(st.lists(matches, max_size=8), messages, header_sets)
def test_the_table_routes_exactly_as_the_per_destination_rule_in_the_same_order(
    destinations: Sequence[MatchSettings], message: Any, headers: Any
) -> None:
    expected = [i for i, m in enumerate(destinations) if reference_is_routed(message, headers, m)]
    assert list(RoutingTable(destinations).route(message, headers)) == expected


def test_every_combination_of_restrictions_against_every_shape_of_event() -> None:
    """Exhaustive over a small grid: each subset of {types, names, sources} with the header on
    and off, against events that hit and miss each restriction."""
    choices = {
        "event_types": [[], ["track"], ["page", "screen"]],
        "event_names": [[], ["Order Completed"], ["Pricing"]],
        "source_ids": [[], ["a"], ["a", "b"]],
        "source_id_header": [None, "x-src"],
    }
    grid = [
        MatchSettings(**dict(zip(choices, values, strict=True)))
        for values in itertools.product(*choices.values())
    ]
    events: list[Any] = [
        None,
        {},
        track(),
        track(context={"sourceId": "a"}),
        track("Other", context={"sourceId": "b"}),
        {"type": "page", "name": "Pricing", "context": {"sourceId": "a"}},
        {"type": "screen", "properties": {"name": "Pricing"}, "context": {"sourceId": "b"}},
        {"type": "identify", "context": {"sourceId": "a"}},
    ]
    table = RoutingTable(grid)
    for message in events:
        for headers in (None, {"x-src": b"b"}, {"x-src": b"zz"}):
            expected = [i for i, m in enumerate(grid) if reference_is_routed(message, headers, m)]
            assert list(table.route(message, headers)) == expected, (message, headers)
