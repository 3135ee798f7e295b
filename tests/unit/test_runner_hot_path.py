"""The worker's hot path without Kafka or HTTP: records in, serialised batches out, and a
commit position that never passes a record with an event not done."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from worker.config import parse_settings
from worker.destination_set import DestinationSet
from worker.mapping.result import Invalid, Mapped
from worker.stream.batcher import Batch, PixelBatcher
from worker.stream.commit import CommitCoordinator
from worker.stream.dead_letter import DeadLetterReason
from worker.stream.decoding import DecodeStage
from worker.stream.destination_reload import DestinationChanges, swap_destination_set
from worker.stream.hot_path import HotPath
from worker.stream.kafka_thread import KafkaThread
from worker.stream.route_and_map import RouteAndMap
from worker.stream.stats import WorkerStats
from worker.stream.watermark import InFlightRecord, PartitionWatermark

SETTINGS = parse_settings(
    {
        "kafka": {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"},
        "batching": {"max_events": 3},
        "metrics": {"enabled": False},
        "destinations": [
            {"name": "shop", "pixel_id": "1", "access_token": "a"},
            {"name": "blog", "pixel_id": "2", "access_token": "b"},
        ],
    }
)


class Message:
    def __init__(self, partition: int, offset: int, value: dict[str, Any]) -> None:
        self._partition, self._offset, self._value = partition, offset, orjson.dumps(value)

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None


def fake_mapping(decoded: dict[str, Any], _headers: Any, destinations: Any, _now: Any) -> Any:
    """Per destination: what the record's `shop` / `blog` fields say (`skip`: not routed)."""
    results: list[Any] = []
    for destination in destinations:
        kind = decoded[destination.name]
        if kind == "ok":
            event = {"event_name": "Lead", "event_id": decoded["id"], "to": destination.name}
            results.append((destination, Mapped(event)))
        elif kind == "skip":
            continue
        elif kind == "unserializable":
            results.append((destination, Mapped({"event_name": "Lead", "custom_data": {"x": {1}}})))
        else:
            results.append((destination, Invalid("invalid_value", "revenue is not a number")))
    return results


class Harness:
    """The hot path's stages, wired as the worker wires them, with the batches sent and the
    dead letters written kept here instead of going to Graph and Kafka."""

    def __init__(self, mapper: Any = fake_mapping) -> None:
        self.stats = WorkerStats()
        self.coordinator = CommitCoordinator(
            KafkaThread(), self.stats, commit_interval_seconds=1, revoke_timeout_seconds=1
        )
        self.coordinator.assign([("t", 0), ("t", 1)])
        batching = SETTINGS.batching
        self.batcher = PixelBatcher(
            batching.max_events, batching.max_bytes, batching.linger_ms / 1000, time.monotonic
        )
        self.sent: list[Batch] = []
        self.dead: list[tuple[InFlightRecord, DeadLetterReason]] = []
        self.hot_path = HotPath(
            decode=DecodeStage(SETTINGS.decoding, heartbeat=lambda: None, stopping=asyncio.Event()),
            route_and_map=RouteAndMap(DestinationSet(SETTINGS.destinations), mapper=mapper),
            batcher=self.batcher,
            coordinator=self.coordinator,
            stats=self.stats,
            send=self.sent.append,
            dead_letter=lambda record, why: self.dead.append((record, why)),
            skipped=lambda: None,
            halted=lambda: False,
        )

    def handle(self, messages: list[Message]) -> None:
        asyncio.run(self.hot_path.handle(messages))

    def position(self, partition: int) -> int | None:
        return self.coordinator.positions().get(("t", partition))


def test_events_are_batched_as_json_and_a_record_is_done_with_its_last_event() -> None:
    harness = Harness()
    harness.handle(
        [
            Message(0, 10, {"id": "a", "shop": "ok", "blog": "ok"}),
            Message(0, 11, {"id": "b", "shop": "ok", "blog": "skip"}),
            Message(1, 5, {"id": "c", "shop": "skip", "blog": "skip"}),
            Message(0, 12, {"id": "d", "shop": "ok", "blog": "ok"}),
        ]
    )
    [shop] = harness.sent  # max_events 3: shop's batch is cut, blog's is still open
    assert shop.destination.name == "shop"
    events = [orjson.loads(shop.encoded.event(i)) for i in range(len(shop))]
    assert [e["event_id"] for e in events] == ["a", "b", "d"]
    body = orjson.loads(shop.encoded.body(0, 3, b"]}"))
    assert body == {"data": events}
    assert harness.coordinator.outstanding_events == 5
    assert harness.stats.consumed == 4
    # Partition 1's only record was skipped everywhere: done. Partition 0 waits at offset 10.
    assert harness.position(1) == 6
    assert harness.position(0) == 10
    records = {record.offset: record for record in shop.records}
    assert records[10].remaining == 2 and records[11].remaining == 1
    harness.coordinator.complete(records[11])  # offset 11 done, 10 not yet: still 10
    assert harness.position(0) == 10
    harness.coordinator.complete(records[10])  # shop done, blog's event of offset 10 is not
    assert harness.position(0) == 10
    [blog] = harness.batcher.drain()
    for record in blog.records:
        harness.coordinator.complete(record)
    assert harness.position(0) == 12  # offset 12 still waits for its shop event
    harness.coordinator.complete(records[12])
    assert harness.position(0) == 13
    assert harness.coordinator.outstanding_events == 0


def test_an_event_that_cannot_be_serialised_is_dead_lettered_and_the_rest_batched() -> None:
    harness = Harness()
    harness.handle([Message(0, 0, {"id": "a", "shop": "unserializable", "blog": "ok"})])
    [(record, why)] = harness.dead
    assert (why.stage, why.reason, why.destination) == ("map", "unserializable_event", "shop")
    assert record.remaining == 2  # the dead letter and blog's event
    [blog] = harness.batcher.drain()
    assert blog.destination.name == "blog" and blog.records == [record]
    assert harness.position(0) == 0


def test_mapping_failures_are_dead_lettered_once_per_destination() -> None:
    harness = Harness()
    harness.handle([Message(0, 7, {"id": "a", "shop": "bad", "blog": "bad"})])
    assert [(why.reason, why.destination) for _, why in harness.dead] == [
        ("invalid_value", "shop"),
        ("invalid_value", "blog"),
    ]
    assert harness.dead[0][0] is harness.dead[1][0]
    assert harness.dead[0][0].remaining == 2
    assert harness.position(0) == 7


def test_a_record_no_destination_takes_is_done_and_counted_once_as_not_routed() -> None:
    harness = Harness()
    harness.handle([Message(0, 3, {"id": "a", "shop": "skip", "blog": "skip"})])
    assert harness.sent == [] and harness.dead == []
    assert harness.stats.skipped == {"not_routed": 1}
    assert harness.position(0) == 4


def test_a_routing_failure_is_one_dead_letter_without_a_destination() -> None:
    failure = Invalid("routing_failed", "routing raised KeyError")
    harness = Harness(mapper=lambda *_: failure)
    harness.handle([Message(0, 9, {"id": "a"})])
    [(record, why)] = harness.dead
    assert (why.stage, why.reason, why.destination, why.pixel_id) == (
        "route",
        "routing_failed",
        None,
        None,
    )
    assert record.remaining == 1
    assert harness.position(0) == 9


def test_a_reload_cuts_the_batches_of_replaced_destinations_under_their_old_settings() -> None:
    old = DestinationSet(SETTINGS.destinations)
    route_and_map = RouteAndMap(old)
    batcher = PixelBatcher(100, 1_000_000, 60.0, time.monotonic)
    sent: list[Batch] = []
    record = InFlightRecord(None, PartitionWatermark(), 2, 0)
    for name in ("shop", "blog"):
        destination = old.get(name)
        assert destination is not None
        batcher.add(destination, b'{"event_name":"Lead"}', record)
    rotated = parse_settings(
        {
            "kafka": {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"},
            "destinations": [{"name": "shop", "pixel_id": "1", "access_token": "rotated"}],
        }
    )
    new_set = DestinationSet(rotated.destinations)
    swap_destination_set(
        new_set,
        DestinationChanges(added=(), removed=("blog",), changed=("shop",)),
        batcher=batcher,
        send_batch=sent.append,
        route_and_map=route_and_map,
        stats=WorkerStats(),
    )
    by_name = {batch.destination.name: batch for batch in sent}
    assert sorted(by_name) == ["blog", "shop"] and len(sent) == 2
    assert by_name["shop"].destination is old.get("shop")  # sent with the token it was mapped for
    assert batcher.drain() == []
    assert route_and_map.destinations is new_set
