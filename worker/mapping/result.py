"""What the stateless stage answers for one (event, destination): an event, a skip or an error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.reasons import REGISTRY, Stage


# Not frozen, unlike the two below: one is built for every mapped event, and a frozen
# dataclass's __init__ (object.__setattr__ per field, run as Python) costs twice as much, even
# compiled. Nothing modifies one; its `event` dict was never frozen anyway.
@dataclass(slots=True)
class Mapped:
    """A Conversions API event, normalised, hashed and validated: ready to batch.

    `test_event_code` is the event's own (`integrations.<name>.test_event_code`): it is sent
    in a request of its own with that code, apart from the destination's other events.
    """

    event: dict[str, Any]
    test_event_code: str | None = None


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
