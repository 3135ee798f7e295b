"""Micro-batches of events per destination (pixel), cut at a count, a byte bound or a linger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.config import DestinationSettings
from worker.stream.watermark import InFlightRecord

# Bytes of `{"data":[` ... `]}` around the events, and the comma between two of them.
_ENVELOPE_BYTES = 12


@dataclass(slots=True)
class PendingEvent:
    event: dict[str, Any]
    size: int
    record: InFlightRecord


@dataclass(slots=True)
class Batch:
    destination: DestinationSettings
    opened_at: float
    events: list[PendingEvent] = field(default_factory=list)
    size: int = _ENVELOPE_BYTES

    def __len__(self) -> int:
        return len(self.events)


class PixelBatcher:
    """Keeps one open batch per destination and hands back batches that are ready to send."""

    def __init__(
        self,
        max_events: int,
        max_bytes: int,
        linger_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._linger = linger_seconds
        self._clock = clock
        self._open: dict[str, Batch] = {}
        self.buffered_events = 0

    def add(self, destination: DestinationSettings, pending: PendingEvent) -> list[Batch]:
        """Buffer one event; returns the batches that were cut and must be sent now."""
        ready: list[Batch] = []
        batch = self._open.get(destination.name)
        if batch is not None and batch.size + pending.size + 1 > self._max_bytes:
            ready.append(self._close(destination.name))
            batch = None
        if batch is None:
            batch = self._open[destination.name] = Batch(destination, self._clock())
        batch.events.append(pending)
        batch.size += pending.size + 1
        self.buffered_events += 1
        if len(batch.events) >= self._max_events:
            ready.append(self._close(destination.name))
        return ready

    def due(self) -> list[Batch]:
        """Batches whose linger has passed."""
        deadline = self._clock() - self._linger
        names = [name for name, batch in self._open.items() if batch.opened_at <= deadline]
        return [self._close(name) for name in names]

    def next_due_in(self) -> float | None:
        if not self._open:
            return None
        oldest = min(batch.opened_at for batch in self._open.values())
        return max(0.0, oldest + self._linger - self._clock())

    def drain(self) -> list[Batch]:
        """Every open batch, regardless of linger (revoke, shutdown)."""
        return [self._close(name) for name in list(self._open)]

    def _close(self, name: str) -> Batch:
        batch = self._open.pop(name)
        self.buffered_events -= len(batch.events)
        return batch
