"""The stateless stage for one record: decode, route, map. Shared by `run` and `transform`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from worker import reasons
from worker.config import DestinationSettings
from worker.destination_set import DestinationSet
from worker.json_decode import DecodeError
from worker.mapping.event import map_event
from worker.mapping.result import Invalid, MapResult, Skipped

NOT_ROUTED = Skipped(reasons.NOT_ROUTED)

# Set by `capi-worker dlq redrive --to source` on a record dead-lettered for one destination of
# a fan-out: only that destination takes it again, so the others are not sent it a second time.
REDRIVE_ONLY_DESTINATION_HEADER = "capi.redrive.only_destination"
REDRIVE_OTHER_DESTINATION = Skipped(reasons.REDRIVE_OTHER_DESTINATION)

Decoder = Callable[[bytes | None], dict[str, Any]]


def decode_record(decoder: Decoder, value: bytes | None) -> dict[str, Any] | Invalid:
    try:
        return decoder(value)
    except DecodeError as error:
        return decode_failure(error)


def decode_failure(error: DecodeError) -> Invalid:
    """A record that cannot be decoded, as the reason to dead-letter it."""
    return Invalid(error.reason, error.message)


RoutedResults = list[tuple[DestinationSettings, MapResult]]


def map_routed(
    message: dict[str, Any],
    headers: Sequence[tuple[str, bytes | None]] | None,
    destinations: DestinationSet,
    now: float,
) -> RoutedResults | Invalid:
    """(destination, result) for each destination the record is routed to, in fan-out order;
    destinations it is not routed to are not looked at. Never raises: a failure of routing
    itself (a bug of ours) is one `Invalid` at stage `route` for the whole record.

    A record carrying `capi.redrive.only_destination: X` is routed to destination X only (if
    X's own routing takes it).
    """
    try:
        if headers:
            routed = _routed(message, dict(headers), destinations)
        else:  # no header to read: neither a source id header nor the redrive header
            routed = destinations.routing.route(message, None)
    except Exception as error:  # a bug of ours; the record is dead-lettered, the worker goes on
        return Invalid(reasons.ROUTING_FAILED, f"routing raised {type(error).__name__}")
    every, plans = destinations.destinations, destinations.plans
    return [(every[i], map_event(message, every[i], now, plans[i])) for i in routed]


def map_for_destinations(
    message: dict[str, Any],
    headers: Sequence[tuple[str, bytes | None]] | None,
    destinations: DestinationSet | Sequence[DestinationSettings],
    now: float,
) -> list[MapResult]:
    """One result per destination of the set, in its order (tools that report on every
    destination: `transform --show-unrouted`, dead-letter redrive). Never raises.

    A destination the record is not routed to answers `Skipped("not_routed")`; with the
    redrive header, every destination but the one named answers
    `Skipped("redrive_other_destination")`.
    """
    if not isinstance(destinations, DestinationSet):
        destinations = DestinationSet(destinations)
    routed = map_routed(message, headers, destinations, now)
    if isinstance(routed, Invalid):
        return [routed] * len(destinations)
    only = _only_destination(dict(headers) if headers else None)
    results: list[MapResult] = [
        NOT_ROUTED if only is None or d.name == only else REDRIVE_OTHER_DESTINATION
        for d in destinations.destinations
    ]
    for destination, result in routed:
        index = destinations.index_of(destination.name)
        assert index is not None
        results[index] = result
    return results


def _routed(
    message: dict[str, Any], headers: dict[str, bytes | None] | None, destinations: DestinationSet
) -> list[int]:
    routed = destinations.route(message, headers)
    only = _only_destination(headers)
    if only is None:
        return routed
    index = destinations.index_of(only)
    return [index] if index is not None and index in routed else []


def _only_destination(headers: dict[str, bytes | None] | None) -> str | None:
    """The destination named by the redrive header; None when the header is absent.

    An unreadable value names no destination at all (every destination skips the record):
    re-sending a redriven record to every pixel is the one thing this header must prevent.
    """
    if not headers or REDRIVE_ONLY_DESTINATION_HEADER not in headers:
        return None
    value: Any = headers[REDRIVE_ONLY_DESTINATION_HEADER]
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return ""
