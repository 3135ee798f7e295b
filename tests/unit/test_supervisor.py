"""The supervisor of `capi-worker run --processes N`: restart policy, metrics, logs, settings."""

from __future__ import annotations

import io
import logging
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.config import parse_settings
from worker.stream import supervisor
from worker.stream.supervisor import (
    EXIT_FAILED,
    MAX_RESTARTS,
    Supervisor,
    child_settings,
    merge_metrics,
    tag_log_lines,
)
from worker.telemetry.logs import configure_logging

RAW: dict[str, Any] = {
    "kafka": {
        "bootstrap_servers": "b:9092",
        "topics": ["t"],
        "dead_letter_topic": "d",
        "consumer": {"group.instance.id": "pod-0", "session.timeout.ms": 6000},
    },
    "metrics": {"host": "0.0.0.0", "port": 9100},
    "destinations": [{"name": "shop", "pixel_id": "1", "access_token": "EAAB-token"}],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_child_gets_its_own_group_instance_id_and_a_local_health_port() -> None:
    settings = parse_settings(RAW)
    first, second = child_settings(settings, 1), child_settings(settings, 2)
    assert first.kafka.consumer["group.instance.id"] == "pod-0-1"
    assert second.kafka.consumer["group.instance.id"] == "pod-0-2"
    assert first.kafka.consumer["session.timeout.ms"] == 6000
    assert (first.metrics.host, first.metrics.port) == ("127.0.0.1", 0)
    assert first.kafka.group_id == settings.kafka.group_id
    assert settings.kafka.consumer["group.instance.id"] == "pod-0"  # the parent's are untouched


def test_without_static_membership_the_kafka_settings_are_unchanged() -> None:
    raw = {**RAW, "kafka": {**RAW["kafka"], "consumer": {}}}
    settings = parse_settings(raw)
    assert child_settings(settings, 3).kafka == settings.kafka


def test_crashes_restart_with_a_growing_backoff_until_a_crash_loop_stops_all() -> None:
    clock = FakeClock()
    sup = Supervisor(parse_settings(RAW), 2, "INFO", "json", clock=clock)
    child = sup._children[0]
    delays = []
    for _ in range(MAX_RESTARTS):
        assert sup._schedule_restart(child, -9, clock.now) is None
        assert child.restart_at is not None
        delays.append(child.restart_at - clock.now)
        clock.now += 5
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert sup._schedule_restart(child, 1, clock.now) == EXIT_FAILED  # the 6th within 60 s


def test_restarts_older_than_the_window_do_not_count() -> None:
    clock = FakeClock()
    sup = Supervisor(parse_settings(RAW), 2, "INFO", "json", clock=clock)
    first, second = sup._children
    for _ in range(MAX_RESTARTS):
        assert sup._schedule_restart(first, 1, clock.now) is None
        clock.now += 13  # five restarts spread over 65 s
    assert sup._schedule_restart(second, 1, clock.now) is None
    assert second.restart_at == clock.now + 0.5  # that child's first restart
    clock.now += 61
    assert sup._schedule_restart(first, 1, clock.now) is None
    assert first.restart_at == clock.now + 0.5  # its old restarts left the window


def test_at_least_one_process() -> None:
    with pytest.raises(ValueError):
        Supervisor(parse_settings(RAW), 0, "INFO", "json")


def test_metrics_of_the_children_are_merged_with_a_process_label() -> None:
    page = (
        "# HELP capi_records_consumed_total Kafka records read\n"
        "# TYPE capi_records_consumed_total counter\n"
        'capi_records_consumed_total{topic="t"} 3.0\n'
        "# HELP capi_events_in_flight Events in flight\n"
        "# TYPE capi_events_in_flight gauge\n"
        "capi_events_in_flight 7.0\n"
    )
    merged = merge_metrics([("1", page), ("2", page.replace("3.0", "4.0"))]).decode()
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    consumed = {s.labels["process"]: s.value for s in families["capi_records_consumed"].samples}
    assert consumed == {"1": 3.0, "2": 4.0}
    in_flight = families["capi_events_in_flight"].samples
    assert [(s.labels, s.value) for s in in_flight] == [
        ({"process": "1"}, 7.0),
        ({"process": "2"}, 7.0),
    ]
    assert merged.count("# TYPE capi_records_consumed_total counter") == 1


def _capture(log_format: str, tag: str) -> str:
    configure_logging("INFO", log_format)  # type: ignore[arg-type]
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    tag_log_lines(tag)
    logging.getLogger("worker.test").info("Batch done; destination=%s", "shop")
    return stream.getvalue()


def test_log_lines_of_a_child_name_its_process() -> None:
    try:
        line = orjson.loads(_capture("json", "2/3"))
        assert line["process"] == "2/3"
        assert line["message"] == "Batch done; destination=shop"
        assert "[process 1/2] Batch done; destination=shop" in _capture("text", "1/2")
    finally:
        configure_logging("WARNING", "text")


def test_exit_codes_are_described_with_the_signal_that_killed() -> None:
    assert supervisor._describe_exit(-9) == "-9 (killed by SIGKILL)"
    assert supervisor._describe_exit(1) == "1"


def test_a_refused_librdkafka_value_is_not_echoed_in_the_start_up_error() -> None:
    from confluent_kafka import Consumer, KafkaException

    from worker.kafka_config import kafka_error_text

    with pytest.raises(KafkaException) as refused:
        Consumer({"group.id": "g", "security.protocol": "EAAB-secret-in-the-wrong-place"})
    text = kafka_error_text(refused.value)
    assert "EAAB-secret" not in text
    assert text == 'Invalid value (not shown) for configuration property "security.protocol"'
