"""Hostile records through the real worker (`capi-worker run` in a subprocess), the embedded
broker and the Graph API emulator: each bad record is dead-lettered with a precise stage and
reason, odd-but-valid ones are delivered, and the worker keeps going to the end of the topic.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.hostile.rig import (
    RAW_LIBRDKAFKA,
    HostileRig,
    Worker,
    dlq_headers,
    event_ids,
    produce_raw_headers,
    schema_registry,
)
from tests.kafka_helpers import produce, read_all
from tests.support.avro import encode_confluent
from tests.support.worker import (
    BLOG_PIXEL,
    SHOP_PIXEL,
    valid_events,
    wait_until,
)
from worker.config import DEFAULT_AVRO_SCHEMA
from worker.decode import load_avro_schema
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator
from worker.sandbox.sample_events import iso, sample_event

pytestmark = pytest.mark.integration

BIG_PRODUCER = {"message.max.bytes": 20_000_000}
TEN_MB = 10 * 1024 * 1024
BOTH = (SHOP_PIXEL, BLOG_PIXEL)
DECODE = ("",)  # dead-lettered once, before routing: no pixel


@dataclass
class Stream:
    """Records for partition 0 in order, with what each must become."""

    now: float
    values: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = field(
        default_factory=list
    )
    raw: dict[int, tuple[bytes, list[tuple[bytes, bytes | None]]]] = field(default_factory=dict)
    # offset -> (stage, reason, pixel or "") -> copies expected in the dead-letter topic
    dead: Counter[tuple[int, str, str, str]] = field(default_factory=Counter)
    delivered: set[str] = field(default_factory=set)  # event ids expected at both pixels
    quiet: set[str] = field(default_factory=set)  # event ids neither delivered nor dead

    def good(self, count: int, prefix: str) -> None:
        for value in valid_events(count, prefix, self.now):
            self.values.append((b"good", value, []))
            self.delivered.add(orjson.loads(value)["messageId"])

    def bad(
        self,
        value: bytes | None,
        stage: str,
        reason: str,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> int:
        offset = len(self.values)
        self.values.append((b"bad", value, headers or []))
        for pixel in DECODE if stage == "decode" else BOTH:
            self.dead[(offset, stage, reason, pixel)] += 1
        return offset

    def bad_raw(self, value: bytes, headers: list[tuple[bytes, bytes | None]]) -> int:
        """A record whose header keys only the raw producer can write (stage decode)."""
        offset = len(self.values)
        self.values.append((None, None, []))  # placeholder; produced raw
        self.raw[offset] = (value, headers)
        self.dead[(offset, "decode", "invalid_json", "")] += 1
        return offset

    def odd(self, event: dict[str, Any], headers: list[tuple[str, bytes | None]] | None = None):
        """A strange but valid event: delivered to both pixels."""
        self.values.append((b"odd", orjson.dumps(event), headers or []))
        self.delivered.add(event["messageId"])

    def odd_raw(self, value: bytes, event_id: str, headers: list[tuple[str, bytes | None]]):
        self.values.append((b"odd", value, headers))
        self.delivered.add(event_id)

    def produce(self, bootstrap: str, topic: str) -> None:
        """In order on partition 0: normal runs through confluent-kafka, the rest raw."""
        run: list[Any] = []
        start = 0
        for offset, record in enumerate([*self.values, None]):
            if record is not None and offset not in self.raw:
                run.append(record)
                continue
            if run:
                positions = produce(bootstrap, topic, run, partition=0, config=BIG_PRODUCER)
                assert [o for _, o in positions] == list(range(start, start + len(run)))
                run = []
            if record is not None:
                value, headers = self.raw[offset]
                produce_raw_headers(bootstrap, topic, 0, value, headers)
            start = offset + 1


def event(index: int, now: float, prefix: str, **changes: Any) -> dict[str, Any]:
    """A valid sample event (an Order Completed when index % 8 == 5), then `changes`."""
    base = sample_event(index, now, random.Random(index), prefix=prefix)
    base.update(changes)
    return base


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_hostile_records_are_dead_lettered_with_precise_reasons_and_the_worker_keeps_going(
    kafka_broker: Any, emulator: RunningEmulator, graph: EmulatorClient, tmp_path: Path
) -> None:
    now = time.time()
    s = Stream(now)
    s.good(20, "head")

    s.bad(b"", "decode", "empty_value")
    s.bad(None, "decode", "empty_value")  # a tombstone
    s.good(5, "g1")

    # 10 MB of valid JSON that mapping refuses: fetched, decoded, mapped, dead-lettered twice;
    # its copies leave the value out (the dead-letter producer takes 1 MB by default).
    huge = event(5, now, "huge", timestamp=iso(now - 30 * 86_400))
    huge["properties"]["blob"] = "x" * TEN_MB
    huge_offset = s.bad(orjson.dumps(huge), "map", "event_time_too_old")
    s.good(5, "g2")

    # Deep nesting: in a property (copied to custom_data), past orjson's limit, as the root.
    deep = orjson.dumps(event(3, now, "deep"))[:-1] + b',"properties":' + nested(1000) + b"}"
    s.bad(deep, "map", "invalid_properties")
    s.bad(b'{"type":"track","x":' + nested(2000) + b"}", "decode", "invalid_json")
    s.bad(b"[" * 1000 + b"]" * 1000, "decode", "not_an_object")
    s.good(5, "g3")

    s.bad(b'{"type":"track","event":"\xff\xfe Order"}', "decode", "invalid_json")  # not UTF-8
    s.bad(b"\xef\xbb\xbf" + valid_events(1, "bom", now)[0], "decode", "invalid_json")  # a BOM

    # Numbers: out of double range and NaN are not JSON (orjson refuses them); a 2**70 integer
    # is read as a float: as a timestamp it is far in the future, as a revenue it is sent.
    order = orjson.dumps(event(5, now, "num", properties={"revenue": "__N__"}))
    s.bad(order.replace(b'"__N__"', b"1e400"), "decode", "invalid_json")
    s.bad(order.replace(b'"__N__"', b"NaN"), "decode", "invalid_json")
    s.bad(order.replace(b'"__N__"', b"-Infinity"), "decode", "invalid_json")
    s.bad(order.replace(b'"__N__"', b"9" * 400), "decode", "invalid_json")
    too_late = orjson.dumps(event(3, now, "num-ts", timestamp="__T__"))
    s.bad(too_late.replace(b'"__T__"', str(2**70).encode()), "map", "event_time_in_future")
    s.odd_raw(
        orjson.dumps(event(5, now, "big-rev", properties={"revenue": "__N__"})).replace(
            b'"__N__"', str(2**70).encode()
        ),
        "big-rev-5",
        [],
    )
    s.odd(event(5, now, "negzero", properties={"revenue": -0.0, "currency": "EUR"}))
    s.odd_raw(
        order.replace(b'"__N__"', b"-0").replace(b'"num-5"', b'"negzero-int-5"'),
        "negzero-int-5",
        [],
    )
    s.good(5, "g4")

    for value in (b"[1, 2]", b'"track"', b"null", b"42", b"true"):
        s.bad(value, "decode", "not_an_object")

    # Duplicate keys: orjson keeps the last one, as JSON.parse and Python's json do.
    valid_ts = orjson.dumps(iso(now - 60))
    dup = orjson.dumps(event(3, now, "dup-bad"))[:-1] + b',"timestamp":"not a time"}'
    s.bad(dup, "map", "invalid_timestamp")
    dup_good = orjson.dumps(event(3, now, "dup-good", timestamp="not a time"))
    s.odd_raw(dup_good[:-1] + b',"timestamp":' + valid_ts + b"}", "dup-good-3", [])

    s.bad(
        orjson.dumps(event(3, now, "y9999", timestamp="9999-12-31T23:59:59Z")),
        "map",
        "event_time_in_future",
    )
    s.bad(
        orjson.dumps(event(3, now, "y10k", timestamp="+10000-01-01T00:00:00Z")),
        "map",
        "invalid_timestamp",
    )
    s.good(5, "g5")

    # Headers: binary values, null values, an empty key, a 1.5 MB header.
    garbage = [
        ("bin", b"\x00\xff\xfe\x80"),
        ("none", None),
        ("", b""),
        ("dup", b"1"),
        ("dup", b"2"),
    ]
    garbage_offset = s.bad(b"not json", "decode", "invalid_json", headers=garbage)
    big_header = [("blob", b"h" * 1_500_000), ("trace", b"t")]
    big_header_offset = s.bad(b"not json either", "decode", "invalid_json", headers=big_header)
    s.odd(event(3, now, "odd-headers"), headers=[*garbage, *big_header])
    # A redrive header naming no destination that exists: every destination skips the record.
    quiet = event(3, now, "bad-redrive")
    s.values.append((b"odd", orjson.dumps(quiet), [("capi.redrive.only_destination", b"\xff")]))
    s.quiet.add(quiet["messageId"])
    raw_offset = None
    if RAW_LIBRDKAFKA is not None:
        raw_offset = s.bad_raw(b"\xff not json", [(b"\xff\xfe", b"x"), (b"ok", b"y")])
    s.good(20, "tail")

    rig = HostileRig(kafka_broker, emulator.url, tmp_path, partitions=1)
    bootstrap, source, dlq = rig.bootstrap, rig.source, rig.dead_letters
    s.produce(bootstrap, source)
    config = rig.config()
    worker = Worker(config, tmp_path)
    try:

        def delivered() -> bool:
            assert worker.alive(), worker.output()[-4000:]
            received = graph.received()
            return all(event_ids(received, pixel) >= s.delivered for pixel in BOTH)

        wait_until(delivered, 180, "every good event at both pixels", worker.output)
        wait_until(rig.all_committed, 60, "commits to the end", worker.output)
        received = graph.received()
        for pixel in BOTH:
            assert event_ids(received, pixel) == s.delivered, "nothing else reached Meta"

        dead = read_all(bootstrap, dlq)
        got: Counter[tuple[int, str, str, str]] = Counter()
        by_offset: dict[int, list[Any]] = {}
        for record in dead:
            headers = dlq_headers(record)
            offset = int(headers["capi.dlq.source_offset"])
            by_offset.setdefault(offset, []).append(record)
            got[
                (
                    offset,
                    headers["capi.dlq.stage"],
                    headers["capi.dlq.reason"],
                    headers.get("capi.dlq.pixel_id", ""),
                )
            ] += 1
            assert headers["capi.dlq.message"]
            if offset != huge_offset:
                assert record.value == s.values[offset][1] or offset == raw_offset
        assert got == s.dead

        for copy in by_offset[huge_offset]:  # too large for the dead-letter producer
            assert copy.value is None and copy.key == b"bad"
            assert dlq_headers(copy)["capi.dlq.value_omitted"] == str(
                len(s.values[huge_offset][1] or b"")
            )
        [copy] = by_offset[garbage_offset]
        assert copy.headers[: len(garbage)] == garbage, "garbage headers copied byte for byte"
        [copy] = by_offset[big_header_offset]
        assert copy.value == b"not json either"
        assert int(dlq_headers(copy)["capi.dlq.headers_omitted"]) > 1_500_000
        if raw_offset is not None:
            [copy] = by_offset[raw_offset]
            assert copy.value == b"\xff not json"
            assert ("ok", b"y") in copy.headers
            assert dlq_headers(copy)["capi.dlq.headers_dropped"] == "1"

        big = next(
            e["event"]
            for e in received["pixels"][SHOP_PIXEL]["events"]
            if e["event"].get("event_id") == "big-rev-5"
        )
        assert big["custom_data"]["value"] == float(2**70)
        output = worker.output()
        assert "Traceback" not in output
        assert "Dead-letter copy too large for the topic" in output
        assert worker.terminate() == 0
    finally:
        worker.stop_quietly()


@pytest.mark.skipif(RAW_LIBRDKAFKA is None, reason="needs the raw librdkafka producer")
def test_a_valid_event_with_a_header_key_that_is_not_utf8_is_still_delivered(
    kafka_broker: Any, emulator: RunningEmulator, graph: EmulatorClient, tmp_path: Path
) -> None:
    rig = HostileRig(kafka_broker, emulator.url, tmp_path, partitions=1)
    bootstrap, source = rig.bootstrap, rig.source
    now = time.time()
    odd = event(3, now, "rawkey")
    produce(bootstrap, source, valid_events(5, "before", now), partition=0)
    produce_raw_headers(bootstrap, source, 0, orjson.dumps(odd), [(b"\xff\xfe", b"x")])
    produce(bootstrap, source, valid_events(5, "after", now), partition=0)
    config = rig.config(
        extra={
            "destinations": [{"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "shop-token"}]
        },
    )
    worker = Worker(config, tmp_path)
    try:

        def delivered() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            return "rawkey-3" in event_ids(graph.received(SHOP_PIXEL), SHOP_PIXEL)

        wait_until(delivered, 90, "the event with a binary header key", worker.output)
        wait_until(rig.all_committed, 60, "commits", worker.output)
        assert len(event_ids(graph.received(SHOP_PIXEL), SHOP_PIXEL)) == 11
        assert worker.terminate() == 0
    finally:
        worker.stop_quietly()


def test_avro_with_an_unknown_schema_id_is_dead_lettered_and_known_ids_flow(
    kafka_broker: Any, emulator: RunningEmulator, graph: EmulatorClient, tmp_path: Path
) -> None:
    schema = load_avro_schema(DEFAULT_AVRO_SCHEMA)
    raw_schema = orjson.loads(Path(DEFAULT_AVRO_SCHEMA).read_bytes())
    now = time.time()
    rng = random.Random(9)
    goods = [sample_event(i, now, rng, prefix="avro") for i in range(60)]
    values = [encode_confluent(e, 1, schema) for e in goods]
    bad_embedded = encode_confluent({**goods[0], "messageId": "x"}, 1, schema)
    bad_embedded = bad_embedded.replace(b'{"url"', b'["url"', 1)
    hostile = {
        10: (encode_confluent(goods[1], 999, schema), "unknown_schema_id"),
        20: (b"\x01" + values[2][1:], "not_confluent_wire_format"),
        30: (b"\x00\x00\x01", "not_confluent_wire_format"),
        40: (b"", "empty_value"),
        50: (values[3][:5] + b"\xff\xff\xff garbage", "invalid_avro"),
        55: (bad_embedded, "invalid_embedded_json"),
    }
    records: list[bytes] = list(values)
    for offset in sorted(hostile):
        records.insert(offset, hostile[offset][0])
    rig = HostileRig(kafka_broker, emulator.url, tmp_path, partitions=1)
    bootstrap, source, dlq = rig.bootstrap, rig.source, rig.dead_letters
    produce(bootstrap, source, records, partition=0)
    with schema_registry({1: raw_schema}) as registry_url:
        config = rig.config(
            extra={"decoding": {"format": "avro-confluent", "schema_registry_url": registry_url}},
        )
        worker = Worker(config, tmp_path)
        try:
            expected = {e["messageId"] for e in goods}

            def delivered() -> bool:
                assert worker.alive(), worker.output()[-3000:]
                received = graph.received()
                return all(event_ids(received, pixel) >= expected for pixel in BOTH)

            wait_until(delivered, 120, "the Avro events at both pixels", worker.output)
            wait_until(rig.all_committed, 60, "commits", worker.output)
            dead = read_all(bootstrap, dlq)
            got = {
                int(h["capi.dlq.source_offset"]): (h["capi.dlq.stage"], h["capi.dlq.reason"])
                for h in map(dlq_headers, dead)
            }
            assert got == {offset: ("decode", reason) for offset, (_, reason) in hostile.items()}
            assert len(dead) == len(hostile)
            assert worker.terminate() == 0
        finally:
            worker.stop_quietly()
