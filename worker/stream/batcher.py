"""Micro-batches of events per destination (pixel), cut at a count, a byte bound or a linger.

Events with their own test_event_code are batched apart, one batch per (destination, code):
Meta takes one code per request.

Events arrive serialised (the worker serialises each one as it is mapped) and are appended to
the batch's buffer (`EncodedEvents`): a buffered event costs its bytes and one reference to its
record, not a tree of Python objects.

Nothing here looks at every destination: open batches are found by key, and their linger
deadlines wait in a heap, so a turn of the poll loop costs the batches that are due, not the
number of pixels.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from worker.capi.delivery import EncodedEvents
from worker.config import DestinationSettings
from worker.stream.watermark import InFlightRecord

# Bytes of `{"data":[` ... `]}` around the events.
_ENVELOPE_BYTES = 11
_NOTHING_READY: Sequence[Batch] = ()

#: An open batch: (destination name, the events' own test_event_code).
BatchKey = tuple[str, str | None]


@dataclass(slots=True)
class Batch:
    destination: DestinationSettings
    opened_at: float
    test_event_code: str | None = None  # the events' own; None: the destination's setting
    records: list[InFlightRecord] = field(default_factory=list)  # one per event, in order
    # One per event, in order: its user_data keys (`worker.capi.match_quality`).
    user_data_keys: list[tuple[str, ...]] = field(default_factory=list)
    encoded: EncodedEvents = field(default_factory=EncodedEvents)
    # Bytes of the request body (without a test_event_code): the envelope, the events and the
    # commas between them.
    size: int = _ENVELOPE_BYTES - 1

    def __len__(self) -> int:
        return len(self.records)


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
        self._open: dict[BatchKey, Batch] = {}
        # (linger deadline, tie-breaker, key, batch) per batch opened. An entry whose batch was
        # cut otherwise (count, bytes, reload, drain) is left in place and skipped when it
        # comes up: at most one linger's worth of them.
        self._deadlines: list[tuple[float, int, BatchKey, Batch]] = []
        self._sequence = itertools.count()
        self.buffered_events = 0

    def add(
        self,
        destination: DestinationSettings,
        event: bytes,
        record: InFlightRecord,
        test_event_code: str | None = None,
        user_data_keys: tuple[str, ...] = (),
    ) -> Sequence[Batch]:
        """Buffer one serialised event; returns the batches that were cut and must be sent now."""
        name = (destination.name, test_event_code)
        batch = self._open.get(name)
        ready: Sequence[Batch] = _NOTHING_READY
        grows_by = len(event) + 1
        if batch is not None and batch.size + grows_by > self._max_bytes:
            ready = [self._close(name)]
            batch = None
        if batch is None:
            opened_at = self._clock()
            batch = self._open[name] = Batch(destination, opened_at, test_event_code)
            entry = (opened_at + self._linger, next(self._sequence), name, batch)
            heapq.heappush(self._deadlines, entry)
        buffer = batch.encoded.buffer
        buffer += event
        buffer += b","
        batch.encoded.ends.append(len(buffer))
        batch.records.append(record)
        batch.user_data_keys.append(user_data_keys)
        batch.size += grows_by
        self.buffered_events += 1
        if len(batch.records) >= self._max_events:
            ready = [*ready, self._close(name)]
        return ready

    def due(self) -> list[Batch]:
        """Batches whose linger has passed, oldest first."""
        now = self._clock()
        deadlines, ready = self._deadlines, []
        while deadlines and deadlines[0][0] <= now:
            _, _, key, batch = heapq.heappop(deadlines)
            if self._open.get(key) is batch:
                ready.append(self._close(key))
        return ready

    def cut(self, names: Iterable[str]) -> list[Batch]:
        """The open batches of these destinations, regardless of linger (a reload replaced or
        removed them)."""
        wanted = set(names)
        return [self._close(key) for key in list(self._open) if key[0] in wanted]

    def drain(self) -> list[Batch]:
        """Every open batch, regardless of linger (revoke, shutdown)."""
        self._deadlines.clear()
        return [self._close(name) for name in list(self._open)]

    def _close(self, name: BatchKey) -> Batch:
        batch = self._open.pop(name)
        self.buffered_events -= len(batch.records)
        return batch
