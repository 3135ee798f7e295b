"""capi_consumer_lag from librdkafka's statistics: assigned partitions only."""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import REGISTRY

from worker.stream.runner import _record_consumer_lag

TOPIC = "lag-metric-topic"


def statistics(partitions: dict[str, dict[str, Any]]) -> str:
    """The part of librdkafka's statistics JSON the callback reads."""
    return orjson.dumps({"topics": {TOPIC: {"partitions": partitions}}}).decode()


def lag(partition: str) -> float | None:
    return REGISTRY.get_sample_value("capi_consumer_lag", {"topic": TOPIC, "partition": partition})


def test_lag_of_assigned_partitions_is_exported_and_a_revoked_one_disappears() -> None:
    # As librdkafka reports them: "-1" is the topic's internal partition, never assigned.
    _record_consumer_lag(
        statistics(
            {
                "0": {"desired": True, "fetch_state": "active", "consumer_lag": 120},
                "1": {"desired": True, "fetch_state": "active", "consumer_lag": 4500},
                "-1": {"desired": False, "fetch_state": "none", "consumer_lag": -1},
            }
        )
    )
    assert (lag("0"), lag("1"), lag("-1")) == (120.0, 4500.0, None)
    # Partition 1 revoked: librdkafka still lists it, with the last lag it knew.
    _record_consumer_lag(
        statistics(
            {
                "0": {"desired": True, "fetch_state": "active", "consumer_lag": 80},
                "1": {"desired": False, "fetch_state": "stopped", "consumer_lag": 4500},
            }
        )
    )
    assert (lag("0"), lag("1")) == (80.0, None)


def test_an_unknown_lag_removes_the_series_and_unreadable_statistics_change_nothing() -> None:
    _record_consumer_lag(statistics({"2": {"desired": True, "consumer_lag": 7}}))
    assert lag("2") == 7.0
    _record_consumer_lag("not json")
    _record_consumer_lag('{"topics": []}')
    assert lag("2") == 7.0
    _record_consumer_lag(statistics({"2": {"desired": True, "consumer_lag": -1}}))
    assert lag("2") is None
