"""WorkerStats: the counts behind the progress line and the Prometheus metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY

from worker.config import DestinationSettings
from worker.stream.stats import WorkerStats


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_series_the_alerts_take_increases_of_exist_at_zero_before_any_event() -> None:
    """A counter born with its first increment shows that increment to no rate() or
    increase(): the first token failure of a pixel would go unseen by its alert."""
    pixel = DestinationSettings(name="stats-expect", pixel_id="9876543210", access_token="t")
    assert (
        sample("capi_events_delivered_total", destination="stats-expect", pixel_id=pixel.pixel_id)
        is None
    )
    WorkerStats().expect([pixel])
    assert (
        sample("capi_events_delivered_total", destination="stats-expect", pixel_id=pixel.pixel_id)
        == 0.0
    )
    for kind in ("throttled", "transient"):
        assert sample("capi_graph_retries_total", destination="stats-expect", kind=kind) == 0.0
    for reason in ("invalid_token", "permission_denied"):
        labels = {"destination": "stats-expect", "stage": "deliver", "reason": reason}
        assert sample("capi_events_dead_lettered_total", **labels) == 0.0


def test_counting_moves_the_same_series() -> None:
    pixel = DestinationSettings(name="stats-count", pixel_id="9876543211", access_token="t")
    stats = WorkerStats()
    stats.expect([pixel])
    stats.count_delivered("stats-count", pixel.pixel_id, 7)
    stats.count_dead_lettered("stats-count", "deliver", "invalid_token")
    assert (
        sample("capi_events_delivered_total", destination="stats-count", pixel_id=pixel.pixel_id)
        == 7.0
    )
    labels = {"destination": "stats-count", "stage": "deliver", "reason": "invalid_token"}
    assert sample("capi_events_dead_lettered_total", **labels) == 1.0
    assert stats.delivered["stats-count"] == 7
