"""The stateless stage for one record: decode, route, map. Shared by `run` and `transform`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from worker import reasons
from worker.config import DestinationSettings
from worker.decode import DecodeError
from worker.mapping.event import map_event
from worker.mapping.result import Invalid, MapResult, Skipped
from worker.mapping.routing import is_routed

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
        return Invalid(error.reason, error.message)


def map_for_destinations(
    message: dict[str, Any],
    headers: Sequence[tuple[str, bytes | None]] | None,
    destinations: Sequence[DestinationSettings],
    now: float,
) -> list[MapResult]:
    """One result per destination, in the order of `destinations`. Never raises.

    A record carrying `capi.redrive.only_destination: X` is routed to destination X only; every
    other destination answers `Skipped("redrive_other_destination")`.
    """
    header_map = dict(headers) if headers else None
    only = _only_destination(header_map)
    results: list[MapResult] = []
    for destination in destinations:
        if only is not None and destination.name != only:
            results.append(REDRIVE_OTHER_DESTINATION)
        else:
            results.append(_route_and_map(message, header_map, destination, now))
    return results


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


def _route_and_map(
    message: dict[str, Any],
    headers: dict[str, bytes | None] | None,
    destination: DestinationSettings,
    now: float,
) -> MapResult:
    try:
        routed = is_routed(message, headers, destination)
    except Exception as error:  # a bug of ours; the record is dead-lettered, the worker goes on
        return Invalid(reasons.ROUTING_FAILED, f"routing raised {type(error).__name__}")
    return map_event(message, destination, now) if routed else NOT_ROUTED
