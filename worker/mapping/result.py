"""What the stateless stage answers for one (event, destination): an event, a skip or an error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.reasons import REGISTRY, Stage


# A plain class, not a dataclass like the two below: one is built for every mapped event, and a
# dataclass's generated __init__ runs as Python even when this module is compiled (~1,300
# instructions per event); this one is native then. Equality and repr as a dataclass's.
class Mapped:
    """A Conversions API event, normalised, hashed and validated: ready to batch.

    `test_event_code` is the event's own (`integrations.<name>.test_event_code`): it is sent
    in a request of its own with that code, apart from the destination's other events.
    """

    __slots__ = ("event", "test_event_code")

    def __init__(self, event: dict[str, Any], test_event_code: str | None = None) -> None:
        self.event = event
        self.test_event_code = test_event_code

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapped):
            return NotImplemented
        return self.event == other.event and self.test_event_code == other.test_event_code

    def __repr__(self) -> str:
        return f"Mapped(event={self.event!r}, test_event_code={self.test_event_code!r})"


@dataclass(frozen=True, slots=True)
class Skipped:
    """Deliberately not sent (identify off, screen off, no consent, not routed...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """Cannot be sent: `reason` is a code of `worker.reasons`, `message` says what to fix."""

    reason: str
    message: str

    @property
    def stage(self) -> Stage:
        """Where it was found (`decode`, `route` or `map`), as the registry says."""
        registered = REGISTRY.get(self.reason)
        return registered.stage if registered is not None else Stage.MAP


MapResult = Mapped | Skipped | Invalid
