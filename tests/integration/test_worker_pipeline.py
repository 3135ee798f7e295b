"""The worker end to end: real broker, real Graph API emulator, the real `capi-worker run`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka_helpers import committed_offsets, produce, read_all
from tests.support.avro import encode_avro
from tests.support.http import local_get
from tests.support.rig import WorkerRig
from tests.support.worker import (
    BLOG_PIXEL,
    SHOP_PIXEL,
    delivered_to_both,
    unique_at,
    valid_events,
    wait_until,
)
from worker.config import DEFAULT_AVRO_SCHEMA
from worker.decode import load_avro_schema
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator
from worker.sandbox.sample_events import bad_revenue_event, sample_event, stale_event


@pytest.fixture
def pipeline(kafka_broker: Any, emulator: RunningEmulator, tmp_path: Path) -> Iterator[WorkerRig]:
    running = WorkerRig(kafka_broker, emulator.url, tmp_path)
    yield running
    running.stop()


def _dead_letter_headers(message: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers or [] if k.startswith("capi.dlq.")}


def test_every_event_reaches_both_pixels_in_batches_no_larger_than_max_events(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    records = valid_events(2000, "spread")
    produce(pipeline.bootstrap, pipeline.source, records)
    worker = pipeline.start_worker(pipeline.config(batching={"max_events": 300}))

    wait_until(
        lambda: delivered_to_both(graph, 2000), 180, "2000 unique events at both pixels", worker.log
    )
    wait_until(pipeline.all_committed, 60, "offsets committed to the end", worker.log)
    received = graph.received(events=False)["pixels"]
    for pixel in (SHOP_PIXEL, BLOG_PIXEL):
        assert max(received[pixel]["batch_sizes"]) <= 300
        assert received[pixel]["duplicates"] == {}
    assert read_all(pipeline.bootstrap, pipeline.dead_letters) == []
    assert worker.terminate() == 0


def test_poison_records_are_dead_lettered_untouched_with_reason_headers(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    now = time.time()
    good = valid_events(200, "mixed", now)
    poison = {
        b"not json at all": "decode",
        orjson.dumps(stale_event(1, now, prefix="mixed")): "map",
        orjson.dumps(bad_revenue_event(2, now, prefix="mixed")): "map",
    }
    records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (b"key-good", value, []) for value in good
    ]
    for index, value in enumerate(poison):
        records.insert(50 * (index + 1), (b"key-poison", value, [("origin", b"test")]))
    produce(pipeline.bootstrap, pipeline.source, records, partition=0)
    worker = pipeline.start_worker(pipeline.config())

    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) == 200,
        120,
        "the good events",
        worker.log,
    )
    wait_until(pipeline.all_committed, 60, "offsets committed past the poison", worker.log)

    dead = read_all(pipeline.bootstrap, pipeline.dead_letters)
    by_value = {message.value: message for message in dead}
    assert set(by_value) == set(poison)
    decode_failure = _dead_letter_headers(by_value[b"not json at all"])
    assert decode_failure["capi.dlq.stage"] == "decode"
    assert decode_failure["capi.dlq.reason"] == "invalid_json"
    assert "capi.dlq.pixel_id" not in decode_failure  # one copy for the record, no pixel
    for value, stage in poison.items():
        message = by_value.get(value)
        assert message is not None
        assert message.key == b"key-poison"
        assert ("origin", b"test") in message.headers
        headers = _dead_letter_headers(message)
        assert headers["capi.dlq.stage"] == stage
        assert headers["capi.dlq.source_topic"] == pipeline.source
        assert headers["capi.dlq.source_partition"] == "0"
        assert int(headers["capi.dlq.source_offset"]) in {50, 100, 150}
        assert headers["capi.dlq.message"]
    stale = _dead_letter_headers(by_value[orjson.dumps(stale_event(1, now, prefix="mixed"))])
    assert stale["capi.dlq.reason"] == "event_time_too_old"
    assert stale["capi.dlq.pixel_id"] in {SHOP_PIXEL, BLOG_PIXEL}
    assert worker.terminate() == 0


def test_transient_and_throttling_errors_are_retried_until_everything_is_delivered(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    graph.inject_fault(count=2, status=400, error_code=4, retry_after=1)  # app request limit
    graph.inject_fault(count=1, status=400, error_code=80004)  # ads insights throttle
    graph.inject_fault(count=1, status=500, error_code=2, is_transient=True)
    graph.inject_fault(count=1, status=503)
    graph.inject_fault(count=1, drop_connection=True)
    produce(pipeline.bootstrap, pipeline.source, valid_events(600, "faulty"))
    worker = pipeline.start_worker(pipeline.config(batching={"max_events": 100}))

    wait_until(
        lambda: delivered_to_both(graph, 600),
        180,
        "all 600 events at both pixels despite faults",
        worker.log,
    )
    wait_until(pipeline.all_committed, 60, "offsets committed", worker.log)
    assert read_all(pipeline.bootstrap, pipeline.dead_letters) == []
    assert worker.terminate() == 0


def test_one_event_meta_rejects_is_isolated_and_the_rest_of_its_batch_delivered(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    records = valid_events(400, "bisect")
    poisoned_id = "bisect-137"
    graph.reject_event_ids([poisoned_id], error_subcode=2804050)
    produce(pipeline.bootstrap, pipeline.source, records, partition=1)
    worker = pipeline.start_worker(
        pipeline.config(
            destinations=[
                {"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"}
            ],
            batching={"max_events": 1000, "linger_ms": 500},
        )
    )
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) == 399,
        120,
        "the 399 good events",
        worker.log,
    )
    wait_until(pipeline.all_committed, 60, "offsets committed", worker.log)
    [dead] = read_all(pipeline.bootstrap, pipeline.dead_letters)
    assert orjson.loads(dead.value)["messageId"] == poisoned_id
    headers = _dead_letter_headers(dead)
    assert headers["capi.dlq.stage"] == "deliver"
    assert headers["capi.dlq.reason"] == "invalid_parameter"
    assert headers["capi.dlq.graph_code"] == "100"
    assert headers["capi.dlq.graph_subcode"] == "2804050"
    assert worker.terminate() == 0


def test_token_error_dead_letters_that_pixel_only_with_a_reason_naming_the_token(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    produce(pipeline.bootstrap, pipeline.source, valid_events(150, "token"))
    worker = pipeline.start_worker(
        pipeline.config(
            destinations=[
                {"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"},
                {"name": "blog", "pixel_id": BLOG_PIXEL, "access_token": "expired-token"},
            ]
        )
    )
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) == 150,
        120,
        "the shop pixel's events",
        worker.log,
    )
    wait_until(pipeline.all_committed, 60, "offsets committed", worker.log)
    dead = read_all(pipeline.bootstrap, pipeline.dead_letters)
    assert len(dead) == 150
    for message in dead:
        headers = _dead_letter_headers(message)
        assert headers["capi.dlq.pixel_id"] == BLOG_PIXEL
        assert headers["capi.dlq.reason"] == "invalid_token"
        assert headers["capi.dlq.graph_code"] == "190"
        assert "access_token" in headers["capi.dlq.message"]
    assert unique_at(graph, BLOG_PIXEL) == 0
    assert "expired-token" not in worker.log()
    assert worker.terminate() == 0


def test_worker_killed_mid_stream_delivers_every_event_at_least_once_after_restart(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    graph.inject_fault(count=30, latency_ms=300)
    produce(pipeline.bootstrap, pipeline.source, valid_events(3000, "crash"))
    config = pipeline.config(batching={"max_events": 100})
    first = pipeline.start_worker(config)
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) >= 300,
        120,
        "the first deliveries",
        first.log,
    )
    first.kill()
    assert unique_at(graph, SHOP_PIXEL) < 3000

    second = pipeline.start_worker(config)

    wait_until(
        lambda: delivered_to_both(graph, 3000), 120, "every event after the restart", second.log
    )
    wait_until(pipeline.all_committed, 60, "offsets committed", second.log)
    assert second.terminate() == 0


def test_sigterm_flushes_in_flight_batches_and_a_restart_resends_nothing(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    graph.inject_fault(count=1000, latency_ms=400)  # every request is slow: batches in flight
    produce(pipeline.bootstrap, pipeline.source, valid_events(2000, "sigterm"))
    # Few events outstanding at once (backpressure), so SIGTERM lands mid-stream.
    config = pipeline.config(
        batching={"max_events": 50, "linger_ms": 50, "max_pending_events": 200}
    )
    first = pipeline.start_worker(config)
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) >= 100,
        120,
        "deliveries under way",
        first.log,
    )
    assert first.terminate() == 0, first.log()
    assert "Worker stopped" in first.log()
    graph.clear_faults()
    delivered_before_stop = graph.received(events=False)["pixels"][SHOP_PIXEL]["events_received"]
    assert 0 < delivered_before_stop < 2000

    second = pipeline.start_worker(config)

    wait_until(
        lambda: delivered_to_both(graph, 2000), 120, "the rest after the restart", second.log
    )
    received = graph.received(events=False)["pixels"]
    assert received[SHOP_PIXEL]["duplicates"] == {}, "a restart re-sent acknowledged events"
    assert received[BLOG_PIXEL]["duplicates"] == {}
    assert second.terminate() == 0


def test_avro_records_are_delivered_and_undecodable_avro_is_dead_lettered(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    import random

    schema = load_avro_schema(DEFAULT_AVRO_SCHEMA)
    rng = random.Random(3)
    now = time.time()
    records = [encode_avro(sample_event(i, now, rng, prefix="avro"), schema) for i in range(300)]
    records.insert(120, b"\x02\xff\xff\xff garbage that is not this schema")
    produce(pipeline.bootstrap, pipeline.source, records, partition=2)
    worker = pipeline.start_worker(
        pipeline.config(decoding={"format": "avro", "avro_schema": str(DEFAULT_AVRO_SCHEMA)})
    )
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) == 300,
        120,
        "the Avro events",
        worker.log,
    )
    wait_until(pipeline.all_committed, 60, "offsets committed", worker.log)
    [dead] = read_all(pipeline.bootstrap, pipeline.dead_letters)
    headers = _dead_letter_headers(dead)
    assert (headers["capi.dlq.stage"], headers["capi.dlq.reason"]) == ("decode", "invalid_avro")
    assert headers["capi.dlq.source_offset"] == "120"
    assert worker.terminate() == 0


def test_a_worker_joining_late_takes_over_partitions_without_losing_events(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    graph.inject_fault(count=40, latency_ms=300)  # batches are in flight when partitions move
    produce(pipeline.bootstrap, pipeline.source, valid_events(3000, "rebalance"))
    config = pipeline.config(batching={"max_events": 100, "max_pending_events": 400})
    first = pipeline.start_worker(config)
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) >= 200,
        120,
        "the first worker's deliveries",
        first.log,
    )
    second = pipeline.start_worker(config)

    wait_until(
        lambda: delivered_to_both(graph, 3000),
        120,
        "every event with two workers",
        lambda: first.log() + second.log(),
    )
    wait_until(pipeline.all_committed, 60, "offsets committed", second.log)
    # The cooperative rebalance finishes in two rounds and may complete after the last delivery:
    # wait for the hand-over itself rather than assume it happened before the backlog drained.
    wait_until(
        lambda: "Partitions revoked" in first.log(), 120, "the first worker's revoke", first.log
    )
    wait_until(
        lambda: "Partitions assigned" in second.log(),
        120,
        "the second worker's assignment",
        second.log,
    )
    assert second.terminate() == 0
    assert first.terminate() == 0


def test_events_with_their_own_test_event_code_are_posted_apart_with_that_code(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    codes = [None, "TEST_A", "TEST_B"]
    records = []
    for index, value in enumerate(valid_events(60, "codes")):
        code = codes[index % 3]
        if code is not None:
            event = orjson.loads(value)
            event["integrations"] = {"Facebook Conversions API": {"test_event_code": code}}
            value = orjson.dumps(event)
        records.append(value)
    produce(pipeline.bootstrap, pipeline.source, records, partition=0)
    shop_only = [{"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"}]
    worker = pipeline.start_worker(pipeline.config(destinations=shop_only))

    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) == 60,
        60,
        "the 60 events",
        worker.log,
    )
    received = graph.received(SHOP_PIXEL)["pixels"][SHOP_PIXEL]
    code_of = {item["event"]["event_id"]: item["test_event_code"] for item in received["events"]}
    # The emulator records each request's code on its events: mixed in one request, the events
    # of another code (or of none) would carry the wrong one.
    assert code_of == {f"codes-{i}": codes[i % 3] for i in range(60)}
    assert received["requests"] >= 3
    assert worker.terminate() == 0


def test_metrics_and_health_endpoints_report_the_running_worker(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:

    from worker.sandbox.broker import free_port

    port = free_port()

    def get(path: str) -> tuple[int, str]:
        return local_get(port, path)

    # Six visitors whose consent manager switched the destination off: skipped, counted.
    switched_off = [
        orjson.dumps({**orjson.loads(event), "integrations": integrations})
        for event, integrations in zip(
            valid_events(6, "declined"),
            [{"All": True, "Facebook Conversions API": False}] * 4 + [{"All": False}] * 2,
            strict=True,
        )
    ]
    valid = valid_events(100, "metrics")
    produce(pipeline.bootstrap, pipeline.source, valid + switched_off)
    worker = pipeline.start_worker(pipeline.config(metrics_port=port))
    wait_until(lambda: get("/livez")[0] == 200, 60, "/livez", worker.log)
    wait_until(lambda: get("/readyz")[0] == 200, 60, "/readyz after joining", worker.log)
    wait_until(
        lambda: unique_at(graph, SHOP_PIXEL) == 100,
        120,
        "the events",
        worker.log,
    )
    wait_until(pipeline.all_committed, 60, "offsets committed", worker.log)

    status, text = get("/metrics")
    assert status == 200
    assert (
        f'capi_events_delivered_total{{destination="shop",pixel_id="{SHOP_PIXEL}"}} 100.0' in text
    )
    assert f'capi_records_consumed_total{{topic="{pipeline.source}"}} 106.0' in text
    for name in ("shop", "blog"):
        assert (
            f'capi_events_skipped_total{{destination="{name}",reason="integration_disabled"}} 6.0'
            in text
        )
    assert unique_at(graph, SHOP_PIXEL) == 100
    # Match quality, counted from what the events carry: every sample event has an email, some
    # a phone, some the pixel's _fbp cookie.
    events = [orjson.loads(value) for value in valid]
    with_phone = sum(1 for event in events if "phone" in event["context"]["traits"])
    with_fbp = sum(1 for event in events if "cookies" in event["context"])
    assert 0 < with_phone < 100 and 0 < with_fbp < 100
    for key, count in (
        ("em", 100),
        ("ph", with_phone),
        ("fbp", with_fbp),
        ("fbp_or_fbc", with_fbp),
    ):
        assert f'capi_user_data_keys_total{{destination="shop",key="{key}"}} {count}.0' in text
    assert 'key="fbc"' not in text
    assert 'capi_graph_request_seconds_count{destination="shop",outcome="ok"}' in text
    assert "capi_batch_events_bucket" in text
    assert "capi_partitions_assigned 4.0" in text
    assert "capi_last_commit_timestamp_seconds" in text
    assert worker.terminate() == 0
    # Not on a terminal: one JSON object per line, none about single events.
    lines = [line for line in worker.log().splitlines() if line.startswith("{")]
    assert lines and all(orjson.loads(line)["level"] for line in lines)
    assert not any("metrics-" in line for line in lines)


def test_circuit_breaker_stops_the_worker_instead_of_dead_lettering_the_stream(
    pipeline: WorkerRig, graph: EmulatorClient
) -> None:
    # A bad deploy: the worker is told the topic holds Avro, but it holds JSON.
    produce(pipeline.bootstrap, pipeline.source, valid_events(400, "breaker"), partition=0)
    config = pipeline.config(
        decoding={"format": "avro", "avro_schema": str(DEFAULT_AVRO_SCHEMA)},
        extra={"circuit_breaker": {"min_events": 50, "window_events": 100}},
    )
    worker = pipeline.start_worker(config)
    exit_code = worker.process.wait(60)
    log = worker.log()
    assert exit_code == 3, log[-3000:]
    assert "circuit breaker open" in log and "decode/invalid_avro" in log
    dead = read_all(pipeline.bootstrap, pipeline.dead_letters)
    assert 0 < len(dead) < 50, "the stream was not emptied into the dead-letter topic"
    committed = committed_offsets(pipeline.bootstrap, pipeline.group, pipeline.source)
    assert committed.get(0, 0) <= len(dead), "nothing past the tripping record is committed"
    assert unique_at(graph, SHOP_PIXEL) == 0
