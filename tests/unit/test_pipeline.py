from typing import Any

import pytest

from worker.config import DestinationSettings
from worker.destination_set import DestinationSet
from worker.mapping.event import map_event
from worker.mapping.result import Invalid, Mapped, Skipped
from worker.pipeline import map_for_destinations, map_routed


def _destination(**match: Any) -> DestinationSettings:
    return _named("shop", "1", **match)


def test_a_destination_whose_match_refuses_the_event_gets_not_routed() -> None:
    [result] = map_for_destinations(
        {"type": "track", "event": "X"}, None, [_destination(event_types=["page"])], 0
    )
    assert result == Skipped("not_routed")


def test_a_routing_failure_is_one_invalid_route_stage_result_not_an_exception() -> None:
    destinations = DestinationSet([_destination(), _named("blog", "2")])
    # A bug of ours in routing, stood in for by headers that are not (key, value) pairs: the
    # routing step raises reading them. (The set and its routing table are compiled classes,
    # which refuse a stand-in routing table.)
    broken_headers: Any = [("capi.redrive.only_destination",)]
    result = map_routed({"type": "track"}, broken_headers, destinations, 0)
    assert isinstance(result, Invalid)
    assert (result.stage, result.reason) == ("route", "routing_failed")
    assert result.message == "routing raised ValueError"
    every = map_for_destinations({"type": "track"}, broken_headers, destinations, 0)
    assert every == [result, result]


def test_a_record_is_mapped_only_for_the_destinations_it_is_routed_to_in_fan_out_order() -> None:
    # Each destination has its own default action source: a result shows whose plan mapped
    # it. (No spy on map_event: map_routed is compiled, and a compiled caller never sees a
    # monkeypatched function.)
    sources = {"web": "website", "all": "email", "app": "phone_call", "pages": "chat"}
    destinations = DestinationSet(
        [
            _named("web", "1", source_ids=["web"]),
            _named("all", "2"),
            _named("app", "3", source_ids=["app"]),
            _named("pages", "4", event_types=["page"]),
        ],
    )
    destinations = DestinationSet(
        [d.model_copy(update={"default_action_source": sources[d.name]}) for d in destinations]
    )
    plans = {d.name: plan for d, plan in zip(destinations, destinations.plans, strict=True)}
    now = 1_700_000_000
    message = {**_PAGE, "context": {**_PAGE["context"], "sourceId": "app"}}  # type: ignore[dict-item]
    results = map_routed(message, None, destinations, now)
    assert isinstance(results, list)
    assert [d.name for d, _ in results] == ["all", "app", "pages"]
    for destination, result in results:
        assert result == map_event(message, destination, now, plans[destination.name])
        assert isinstance(result, Mapped)
        assert result.event["action_source"] == sources[destination.name]
    track = {"type": "track", "event": "Lead", "context": {"sourceId": "x"}}
    assert [d.name for d, _ in map_routed(track, None, destinations, now)] == ["all"]


# -- capi.redrive.only_destination: a redriven record goes back to its one destination ----------


def _named(name: str, pixel_id: str, **match: Any) -> DestinationSettings:
    return DestinationSettings(name=name, pixel_id=pixel_id, access_token="t", match=match)  # type: ignore[arg-type]


_FANOUT = [_named("shop", "1"), _named("blog", "2"), _named("app", "3")]
_PAGE = {
    "type": "page",
    "messageId": "m-1",
    "timestamp": 1_700_000_000,
    "userId": "u-1",
    "context": {"page": {"url": "https://example.com/"}, "userAgent": "UA"},
}


def test_a_record_for_one_destination_of_a_fan_out_is_routed_to_that_destination_only() -> None:
    headers = [("capi.redrive.only_destination", b"blog"), ("capi.redrive.count", b"1")]
    results = map_for_destinations(_PAGE, headers, _FANOUT, 1_700_000_000)
    assert results[0] == Skipped("redrive_other_destination")
    assert isinstance(results[1], Mapped)
    assert results[2] == Skipped("redrive_other_destination")


def test_without_the_redrive_header_every_destination_gets_the_record() -> None:
    results = map_for_destinations(_PAGE, [("origin", b"x")], _FANOUT, 1_700_000_000)
    assert all(isinstance(result, Mapped) for result in results)


def test_the_named_destination_still_applies_its_own_routing() -> None:
    destinations = [_named("shop", "1"), _named("blog", "2", event_types=["track"])]
    headers = [("capi.redrive.only_destination", b"blog")]
    results = map_for_destinations(_PAGE, headers, destinations, 1_700_000_000)
    assert results == [Skipped("redrive_other_destination"), Skipped("not_routed")]


def test_a_destination_no_longer_configured_means_no_destination_takes_the_record() -> None:
    headers = [("capi.redrive.only_destination", b"renamed")]
    results = map_for_destinations(_PAGE, headers, _FANOUT, 1_700_000_000)
    assert results == [Skipped("redrive_other_destination")] * 3


@pytest.mark.parametrize("value", [None, b"\xff\xfe", b""])
def test_an_unreadable_redrive_header_never_fans_the_record_out_again(value: Any) -> None:
    headers = [("capi.redrive.only_destination", value)]
    results = map_for_destinations(_PAGE, headers, _FANOUT, 1_700_000_000)
    assert results == [Skipped("redrive_other_destination")] * 3


def test_the_routed_results_of_a_redriven_record_hold_its_one_destination_only() -> None:
    headers = [("capi.redrive.only_destination", b"blog")]
    results = map_routed(_PAGE, headers, DestinationSet(_FANOUT), 1_700_000_000)
    assert isinstance(results, list)
    assert [(d.name, type(r)) for d, r in results] == [("blog", Mapped)]
    gone = [("capi.redrive.only_destination", b"renamed")]
    assert map_routed(_PAGE, gone, DestinationSet(_FANOUT), 1_700_000_000) == []


def _website_event() -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "u-1",
        "timestamp": "2023-11-14T22:13:00Z",
        "context": {"userAgent": "Mozilla/5.0", "page": {"url": "https://shop.example/"}},
        "properties": {"revenue": 10, "currency": "USD"},
    }


@pytest.mark.parametrize("verify", [True, False])
def test_the_contract_check_of_mapped_events_runs_only_when_mapping_verify_contract_is_on(
    verify: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.mapping.event as event_module
    from worker.capi.contract import ContractViolation

    checked: list[dict[str, Any]] = []

    def refuse_everything(event: dict[str, Any], now: float, **_: Any) -> ContractViolation:
        checked.append(event)
        return ContractViolation(100, None, "Invalid parameter", "Bad event", "refused")

    # The mapping's rules keep every event within the contract, so a refusing check stands in
    # for the event that would slip through.
    monkeypatch.setattr(event_module, "validate_event", refuse_everything)
    destinations = DestinationSet([_destination()], verify_contract=verify)

    (result,) = map_for_destinations(_website_event(), None, destinations, 1_700_000_000.0)

    if verify:
        assert result == Invalid("meta_contract_violation", "refused")
        assert len(checked) == 1
    else:
        assert isinstance(result, Mapped)
        assert checked == []


def test_verify_contract_comes_from_the_mapping_section_of_the_settings() -> None:
    from worker.config import parse_settings

    raw = {
        "kafka": {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"},
        "destinations": [{"name": "shop", "pixel_id": "1", "access_token": "t"}],
    }
    default = parse_settings(raw, env={})
    assert default.mapping.verify_contract is False
    assert not DestinationSet.from_settings(default).plans[0].verify_contract
    on = parse_settings({**raw, "mapping": {"verify_contract": True}}, env={})
    assert DestinationSet.from_settings(on).plans[0].verify_contract
