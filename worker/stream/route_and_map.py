"""The route-and-map stage: one decoded record -> the destinations that take it, and for each
the serialised event, a deliberate skip, or why it cannot be sent.

Each mapped event is serialised here, once: batches hold bytes, not the mapped dicts. The
destination set is read once per record, so swapping it (`replace_destinations`, a reload)
takes effect between two records, never within one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from worker import reasons
from worker.capi.match_quality import user_data_signature
from worker.config import DestinationSettings
from worker.destination_set import DestinationSet
from worker.mapping.result import Invalid, Mapped, Skipped
from worker.pipeline import RoutedResults, map_routed

Headers = Sequence[tuple[str, bytes | None]] | None
Mapper = Callable[[dict[str, Any], Headers, DestinationSet, float], RoutedResults | Invalid]
#: Per routed destination: the serialised event, a deliberate skip, or why it cannot be sent.
Outcome = bytes | Skipped | Invalid
#: (destination, outcome, the event's own test_event_code (batched apart when set), the
#: event's user_data keys (`user_data_signature`, for the match-quality counts))
Routed = list[tuple[DestinationSettings, Outcome, str | None, tuple[str, ...]]]


class RouteAndMap:
    def __init__(self, destinations: DestinationSet, *, mapper: Mapper = map_routed) -> None:
        self.destinations = destinations
        self._mapper = mapper

    def replace_destinations(self, destinations: DestinationSet) -> None:
        """From the next record on, route and map for `destinations` instead."""
        self.destinations = destinations

    def __call__(self, decoded: dict[str, Any], headers: Headers, now: float) -> Routed | Invalid:
        """(destination, outcome, test_event_code, user_data keys) per destination the record is
        routed to, in fan-out order
        (empty: routed nowhere); an `Invalid` when routing itself failed (the whole record)."""
        routed = self._mapper(decoded, headers, self.destinations, now)
        if isinstance(routed, Invalid):
            return routed
        outcomes: Routed = []
        for destination, result in routed:
            if isinstance(result, Mapped):
                # orjson's result is copied into the batch at once (it occupies a few
                # kilobytes whatever the length of the JSON, so it must not be kept).
                try:
                    encoded = orjson.dumps(result.event)
                except (TypeError, orjson.JSONEncodeError) as error:
                    # The mapping should never produce such an event; if it does, that record
                    # is dead-lettered, not the worker.
                    failure = f"the mapped event cannot be sent: {error}"
                    invalid = Invalid(reasons.UNSERIALIZABLE_EVENT, failure)
                    outcomes.append((destination, invalid, None, ()))
                else:
                    keys = user_data_signature(result.event)
                    outcomes.append((destination, encoded, result.test_event_code, keys))
            else:
                outcomes.append((destination, result, None, ()))
        return outcomes
