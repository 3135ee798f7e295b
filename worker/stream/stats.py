"""What the worker did: per-instance counters (progress line, demo summary) and Prometheus.

Every count goes through one method here, so the summary and the metrics never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from worker import reasons
from worker.capi.graph_errors import ErrorKind
from worker.config import DestinationSettings
from worker.telemetry import metrics

label = metrics.destination_label

RETRIED_KINDS = (ErrorKind.THROTTLED, ErrorKind.TRANSIENT)
AUTH_REASONS = (reasons.INVALID_TOKEN, reasons.PERMISSION_DENIED)


@dataclass
class WorkerStats:
    consumed: int = 0
    refetched: int = 0  # records the consumer handed over again within one assignment: ignored
    delivered: Counter[str] = field(default_factory=Counter)  # by destination name
    # destination name -> delivered events carrying each user_data key
    user_data_keys: dict[str, Counter[str]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    dead_lettered: Counter[str] = field(default_factory=Counter)  # by "stage/reason"
    requests: int = 0
    batches: int = 0
    commits: int = 0

    def expect(self, destinations: Iterable[DestinationSettings]) -> None:
        """Export at zero, from start-up, each destination's series that the alerts take
        increases of (deliveries, throttled and transient retries, token and permission dead
        letters): a counter born with its first increment shows that increment to no rate()."""
        labels = {
            (label(destination.name), label(destination.pixel_id)) for destination in destinations
        }
        for name, pixel_id in labels:
            metrics.EVENTS_DELIVERED.labels(name, pixel_id)
            for kind in RETRIED_KINDS:
                metrics.GRAPH_RETRIES.labels(name, kind.name.lower())
            for reason in AUTH_REASONS:
                metrics.EVENTS_DEAD_LETTERED.labels(name, reasons.stage_of(reason), reason)

    def count_consumed(self, topic: str, records: int) -> None:
        self.consumed += records
        metrics.RECORDS_CONSUMED.labels(topic).inc(records)

    def count_refetched(self, topic: str) -> None:
        self.refetched += 1
        metrics.RECORDS_REFETCHED.labels(topic).inc()

    def count_skipped(self, destination: str, reason: str) -> None:
        self.skipped[reason] += 1
        metrics.EVENTS_SKIPPED.labels(label(destination), reason).inc()

    def count_batch(self, destination: str, events: int) -> None:
        self.batches += 1
        metrics.BATCH_SIZE.labels(label(destination)).observe(events)

    def count_delivered(
        self, destination: str, pixel_id: str, events: int, keys: Counter[str] | None = None
    ) -> None:
        """`events` delivered; `keys`: how many of them carried each user_data key."""
        self.delivered[destination] += events
        metrics.EVENTS_DELIVERED.labels(label(destination), label(pixel_id)).inc(events)
        if keys:
            self.user_data_keys.setdefault(destination, Counter()).update(keys)
            for key, count in keys.items():
                metrics.USER_DATA_KEYS.labels(label(destination), key).inc(count)

    def count_dead_lettered(self, destination: str | None, stage: str, reason: str) -> None:
        self.dead_lettered[f"{stage}/{reason}"] += 1
        metrics.EVENTS_DEAD_LETTERED.labels(label(destination or ""), stage, reason).inc()

    def summary(self) -> str:
        return (
            f"consumed={self.consumed} delivered={sum(self.delivered.values())} "
            f"skipped={sum(self.skipped.values())} "
            f"dead_lettered={sum(self.dead_lettered.values())} batches={self.batches} "
            f"refetched={self.refetched}"
        )
