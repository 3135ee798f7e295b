"""`metrics.destination_labels: false`: one series for every destination instead of one each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from worker.config import Settings, parse_settings
from worker.destination_set import DestinationSet
from worker.stream.runner import Worker
from worker.stream.stats import WorkerStats
from worker.telemetry import metrics


def _settings(per_destination: bool, count: int = 3) -> Settings:
    return parse_settings(
        {
            "kafka": {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"},
            "metrics": {"enabled": False, "destination_labels": per_destination},
            "destinations": [
                {"name": f"label-shop-{i}", "pixel_id": str(9100 + i), "access_token": "t"}
                for i in range(count)
            ],
        }
    )


def _delivered(destination: str, pixel_id: str) -> float | None:
    return REGISTRY.get_sample_value(
        "capi_events_delivered_total", {"destination": destination, "pixel_id": pixel_id}
    )


@pytest.fixture(autouse=True)
def per_destination_again() -> Iterator[None]:
    yield
    metrics.label_destinations(True)


def test_collapsed_labels_count_every_destination_in_one_series() -> None:
    settings = _settings(per_destination=False)
    Worker(settings)
    stats = WorkerStats()
    before = _delivered("*", "*") or 0.0
    stats.count_delivered("label-shop-0", "9100", 3)
    stats.count_delivered("label-shop-2", "9102", 4)
    assert _delivered("*", "*") == before + 7
    assert _delivered("label-shop-0", "9100") is None
    stats.count_dead_lettered(None, "decode", "invalid_json")
    assert (
        REGISTRY.get_sample_value(
            "capi_events_dead_lettered_total",
            {"destination": "", "stage": "decode", "reason": "invalid_json"},
        )
        is not None
    )


def test_by_default_each_destination_has_its_own_series_from_start_up() -> None:
    settings = _settings(per_destination=True)
    Worker(settings)
    assert _delivered("label-shop-1", "9101") == 0.0
    WorkerStats().count_delivered("label-shop-1", "9101", 2)
    assert _delivered("label-shop-1", "9101") == 2.0


def test_expecting_ten_thousand_destinations_collapsed_creates_one_series_each_metric() -> None:
    metrics.label_destinations(False)
    big = _settings(per_destination=False, count=10_000)
    WorkerStats().expect(DestinationSet(big.destinations))
    delivered = next(s for s in REGISTRY.collect() if s.name == "capi_events_delivered").samples
    assert not any(s.labels["destination"].startswith("label-shop-5") for s in delivered)
