"""The dead-letter circuit breaker: stop instead of dead-lettering the stream.

When most recent events fail with the same stage and reason, the fault is almost certainly ours
(a bad deploy, a wrong decoding format, a broken mapping), not the data's. Dead-lettering on would
empty the topic into the dead-letter topic; stopping keeps the records where they are.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from worker.config import CircuitBreakerSettings


class CircuitOpen(Exception):
    """The breaker tripped; the message names the stage, reason and figures."""


@dataclass(slots=True)
class _Run:
    key: str | None  # "stage/reason", or None for events that went well
    count: int


class FailureBreaker:
    """Outcomes of the most recent events, kept as runs of (failure key or None, count)."""

    def __init__(self, settings: CircuitBreakerSettings) -> None:
        self._settings = settings
        self._ignored = frozenset(settings.ignore_reasons)
        self._runs: deque[_Run] = deque()
        self._in_window = 0
        self._failures: Counter[str] = Counter()
        self._consecutive_key: str | None = None
        self._consecutive = 0

    def succeeded(self, events: int = 1) -> None:
        """Events delivered or deliberately skipped."""
        if events <= 0 or not self._settings.enabled:
            return
        self._consecutive_key, self._consecutive = None, 0
        self._add(None, events)

    def failed(self, stage: str, reason: str) -> str | None:
        """One event about to be dead-lettered. Returns why the breaker trips, if it does."""
        if not self._settings.enabled or reason in self._ignored:
            return None
        key = f"{stage}/{reason}"
        if key == self._consecutive_key:
            self._consecutive += 1
        else:
            self._consecutive_key, self._consecutive = key, 1
        self._add(key, 1)
        settings = self._settings
        if self._consecutive >= settings.max_consecutive:
            return f"{self._consecutive} events in a row failed with {key}"
        failures = self._failures[key]
        if self._in_window >= settings.min_events and (
            failures / self._in_window > settings.max_failure_ratio
        ):
            return (
                f"{failures} of the last {self._in_window} events failed with {key} "
                f"(more than {settings.max_failure_ratio:.0%})"
            )
        return None

    def _add(self, key: str | None, count: int) -> None:
        runs = self._runs
        if runs and runs[-1].key == key:
            runs[-1].count += count
        else:
            runs.append(_Run(key, count))
        self._in_window += count
        if key is not None:
            self._failures[key] += count
        excess = self._in_window - self._settings.window_events
        while excess > 0:
            oldest = runs[0]
            dropped = min(excess, oldest.count)
            oldest.count -= dropped
            self._in_window -= dropped
            if oldest.key is not None:
                self._failures[oldest.key] -= dropped
            if oldest.count == 0:
                runs.popleft()
            excess -= dropped
