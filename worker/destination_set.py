"""DestinationSet: the destinations a worker sends to, with everything derived from them.

Built once per configuration (and once per reload), never per event: each destination's
mapping plan and the routing table over all of them. Immutable: a reload builds a new set
beside the old one and swaps it in whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from worker.config import DestinationSettings, Settings
from worker.mapping.plan import DestinationPlan, build_plan
from worker.mapping.routing import RoutingTable


class DestinationSet:
    __slots__ = ("_by_name", "destinations", "plans", "routing")

    def __init__(
        self, destinations: Sequence[DestinationSettings], *, verify_contract: bool = False
    ) -> None:
        """`verify_contract`: `mapping.verify_contract`, every mapped event checked against
        Meta's contract (off on the hot path: the mapping's rules guarantee it)."""
        self.destinations: tuple[DestinationSettings, ...] = tuple(destinations)
        self.plans: tuple[DestinationPlan, ...] = tuple(
            build_plan(d, verify_contract=verify_contract) for d in self.destinations
        )
        self._by_name = {d.name: index for index, d in enumerate(self.destinations)}
        if len(self._by_name) != len(self.destinations):
            raise ValueError("destination names must be unique")
        # Read by the compiled per-record path directly (`routing.route`): a call through
        # `route` below would run an interpreted frame per record.
        self.routing = RoutingTable([d.match for d in self.destinations])

    @classmethod
    def from_settings(cls, settings: Settings) -> DestinationSet:
        """The set of `settings.destinations`, with `settings.mapping`."""
        return cls(settings.destinations, verify_contract=settings.mapping.verify_contract)

    def __len__(self) -> int:
        return len(self.destinations)

    def __iter__(self) -> Iterator[DestinationSettings]:
        return iter(self.destinations)

    def get(self, name: str) -> DestinationSettings | None:
        index = self._by_name.get(name)
        return None if index is None else self.destinations[index]

    def index_of(self, name: str) -> int | None:
        return self._by_name.get(name)

    def route(self, message: Any, headers: Mapping[str, bytes | None] | None) -> list[int]:
        """Positions (ascending: the fan-out order) of the destinations that take `message`."""
        return self.routing.route(message, headers)
