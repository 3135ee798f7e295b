"""`capi-worker dlq inspect|stats|redrive` as a user runs it: real broker, real CLI, emulator."""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka_helpers import (
    Record,
    produce,
    read_all,
)
from tests.support.dead_letters import dead_letter_headers
from tests.support.rig import WorkerRig
from tests.support.worker import (
    BLOG_PIXEL,
    BLOG_TOKEN,
    SHOP_PIXEL,
    SHOP_TOKEN,
    WorkerProcess,
    unique_at,
    valid_events,
    wait_until,
)
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator
from worker.sandbox.sample_events import sample_event, stale_event
from worker.stream.dead_letter import DeadLetterReason

DLQ = "capi.dlq."
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Source:
    """Stands in for the consumed record `dead_letter_headers` reads from."""

    topic_name: str
    partition_number: int
    offset_number: int
    original_headers: list[tuple[str, bytes]]

    def headers(self) -> list[tuple[str, bytes]]:
        return self.original_headers

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number


def dead_letter(
    source_topic: str,
    offset: int,
    value: bytes | None,
    *,
    key: bytes | None = b"user-1",
    headers: list[tuple[str, bytes]] | None = None,
    stage: str = "deliver",
    reason: str = "invalid_token",
    message: str = "access token for pixel 2222222222 (destination blog) was rejected",
    destination: str | None = "blog",
    pixel_id: str | None = BLOG_PIXEL,
    graph_code: int | None = 190,
    at: float | None = None,
    partition: int = 0,
) -> tuple[bytes | None, bytes | None, list[tuple[str, Any]]]:
    """A dead-letter record as the worker writes it: key, value, headers + capi.dlq.*."""
    why = DeadLetterReason(
        stage=stage,
        reason=reason,
        message=message,
        destination=destination,
        pixel_id=pixel_id,
        graph_code=graph_code if stage == "deliver" else None,
        graph_subcode=None,
        fbtrace_id="AbCdEf123" if stage == "deliver" else None,
        attempts=1 if stage == "deliver" else 0,
    )
    source = Source(source_topic, partition, offset, list(headers or []))
    built = dead_letter_headers(source, why, time.time() if at is None else at)
    return key, value, built


class Dlq(WorkerRig):
    """A source topic, a dead-letter topic, a configuration, and the `capi-worker dlq` CLI."""

    def __init__(self, broker: Any, emulator: RunningEmulator, tmp_path: Path) -> None:
        super().__init__(broker, emulator.url, tmp_path, partitions=2, dead_letter_partitions=2)
        self.config_path = self.config()

    def write(self, records: list[Any], partition: int | None = 0) -> None:
        produce(self.bootstrap, self.dead_letters, records, partition=partition)

    def cli(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SHOP_TOKEN": SHOP_TOKEN, "COLUMNS": "250", "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "worker.cli", "dlq", *args]
        command += ["--config", str(config or self.config_path)]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120
        )

    def jsonl(self, *args: str) -> list[dict[str, Any]]:
        result = self.cli(*args, "--format", "jsonl")
        assert result.returncode == 0, result.stderr
        return [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def dlq(kafka_broker: Any, emulator: RunningEmulator, tmp_path: Path) -> Dlq:
    return Dlq(kafka_broker, emulator, tmp_path)


def _seed_mixed(dlq: Dlq, now: float) -> None:
    """Six dead letters over both partitions: several stages, reasons, pixels and times."""
    long_message = "Meta rejected this event: " + "very long explanation " * 10 + "THE END"
    dlq.write(
        [
            dead_letter(dlq.source, 10, b'{"a":1}', at=now - 3 * 3600),
            dead_letter(dlq.source, 11, b'{"a":2}', at=now - 60),
            dead_letter(
                dlq.source,
                12,
                b"not json",
                stage="decode",
                reason="invalid_json",
                message="the record value is not JSON",
                destination=None,
                pixel_id=None,
                at=now - 30,
            ),
        ],
        partition=0,
    )
    dlq.write(
        [
            dead_letter(
                dlq.source,
                20,
                b'{"b":1}',
                stage="map",
                reason="event_time_too_old",
                message="event_time is 9 days old",
                destination="shop",
                pixel_id=SHOP_PIXEL,
                at=now - 20,
                partition=1,
            ),
            dead_letter(
                dlq.source,
                21,
                b'{"b":2}',
                reason="invalid_parameter",
                message=long_message,
                destination="shop",
                pixel_id=SHOP_PIXEL,
                graph_code=100,
                at=now - 10,
                partition=1,
            ),
            dead_letter(dlq.source, 22, b'{"b":3}', at=now - 5, partition=1),
        ],
        partition=1,
    )


# ---------------------------------------------------------------------------- inspect


def test_inspect_lists_every_dead_letter_as_a_table_with_position_reason_and_short_message(
    dlq: Dlq,
) -> None:
    _seed_mixed(dlq, time.time())
    result = dlq.cli("inspect")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for header in ("time", "stage", "reason", "pixel", "source", "attempts", "message"):
        assert header in out
    for reason in ("invalid_token", "invalid_json", "event_time_too_old", "invalid_parameter"):
        assert reason in out
    assert f"{dlq.source}[0]@10" in out and f"{dlq.source}[1]@22" in out
    assert f"{BLOG_PIXEL} (blog)" in out
    assert "…" in out and "THE END" not in out  # the long message is cut short
    assert "6 dead letter(s) shown, 6 read" in out
    assert "token" not in result.stderr.lower()
    assert SHOP_TOKEN not in out and BLOG_TOKEN not in out


def test_inspect_filters_by_reason_stage_pixel_time_and_limit(dlq: Dlq) -> None:
    now = time.time()
    _seed_mixed(dlq, now)

    def offsets(*args: str) -> list[int]:
        return [row["source_offset"] for row in dlq.jsonl("inspect", *args)]

    assert offsets() == [10, 11, 12, 20, 21, 22]  # (partition, offset) order
    assert offsets("--reason", "invalid_token") == [10, 11, 22]
    assert offsets("--reason", "invalid_json", "--reason", "event_time_too_old") == [12, 20]
    assert offsets("--reason", "invalid_json,event_time_too_old") == [12, 20]
    assert offsets("--stage", "decode") == [12]
    assert offsets("--pixel", "shop") == [20, 21]
    assert offsets("--pixel", SHOP_PIXEL) == [20, 21]
    assert offsets("--since", "1h") == [11, 12, 20, 21, 22]
    assert offsets("--until", str(now - 3600)) == [10]
    iso_since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 25))
    assert offsets("--since", iso_since) == [20, 21, 22]
    assert offsets("--since", "1h", "--reason", "invalid_token") == [11, 22]
    assert offsets("--limit", "2") == [10, 11]
    assert offsets("--pixel", "blog", "--limit", "3") == [10, 11, 22]

    table = dlq.cli("inspect", "--stage", "map")
    assert table.returncode == 0
    assert "event_time_too_old" in table.stdout and "invalid_token" not in table.stdout

    bad = dlq.cli("inspect", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "not a time" in bad.stderr


def test_inspect_jsonl_has_every_header_the_key_and_the_value_base64_when_not_utf8(
    dlq: Dlq,
) -> None:
    binary = b"\x00\x01\xfe\xff avro-ish bytes"
    dlq.write(
        [
            dead_letter(
                dlq.source,
                7,
                binary,
                key=b"\xff\xfekey",
                headers=[("origin", b"web"), ("trace", b"\xc3\x28")],
                stage="decode",
                reason="invalid_avro",
                message="not this schema",
                destination=None,
                pixel_id=None,
            ),
            dead_letter(dlq.source, 8, '{"type":"track","event":"Café"}'.encode(), key=None),
        ]
    )
    first, second = dlq.jsonl("inspect")
    assert first["value_encoding"] == "base64"
    assert base64.b64decode(first["value"]) == binary
    assert first["key_encoding"] == "base64"
    assert base64.b64decode(first["key"]) == b"\xff\xfekey"
    names = [header["name"] for header in first["headers"]]
    assert names[:2] == ["origin", "trace"]
    assert {f"{DLQ}stage", f"{DLQ}reason", f"{DLQ}source_offset", f"{DLQ}time"} <= set(names)
    assert first["headers"][0] == {"name": "origin", "value": "web", "encoding": "utf-8"}
    assert first["headers"][1]["encoding"] == "base64"
    assert (first["stage"], first["reason"], first["source_offset"]) == (
        "decode",
        "invalid_avro",
        7,
    )
    assert first["destination"] is None and first["pixel_id"] is None
    assert first["source_topic"] == dlq.source and first["source_partition"] == 0
    assert first["dlq_topic"] == dlq.dead_letters
    assert first["time"].endswith("Z") and isinstance(first["time_epoch"], float)

    assert second["value"] == '{"type":"track","event":"Café"}'
    assert second["value_encoding"] == "utf-8"
    assert second["key"] is None and second["key_encoding"] is None
    assert (second["graph_code"], second["attempts"]) == (190, 1)
    assert second["fbtrace_id"] == "AbCdEf123"


def test_an_empty_or_missing_dead_letter_topic_is_reported_plainly(
    dlq: Dlq, tmp_path: Path
) -> None:
    result = dlq.cli("inspect")
    assert result.returncode == 0
    assert "0 dead letter(s) shown, 0 read" in result.stdout
    missing = dlq.config("missing.yaml")
    missing.write_text(missing.read_text().replace(dlq.dead_letters, "no-such-topic-xyz"))
    result = dlq.cli("stats", config=missing)
    assert result.returncode == 1
    assert "no-such-topic-xyz" in result.stderr


# ---------------------------------------------------------------------------- stats


def test_stats_count_by_stage_reason_and_by_pixel(dlq: Dlq) -> None:
    _seed_mixed(dlq, time.time())
    rows = dlq.jsonl("stats")
    by_reason = {(r["stage"], r["reason"]): r["count"] for r in rows if r["by"] == "reason"}
    assert by_reason == {
        ("deliver", "invalid_token"): 3,
        ("deliver", "invalid_parameter"): 1,
        ("decode", "invalid_json"): 1,
        ("map", "event_time_too_old"): 1,
    }
    by_pixel = {(r["pixel_id"], r["destination"]): r["count"] for r in rows if r["by"] == "pixel"}
    assert by_pixel == {(BLOG_PIXEL, "blog"): 3, (SHOP_PIXEL, "shop"): 2, (None, None): 1}
    assert [r for r in rows if r["by"] == "total"] == [{"by": "total", "count": 6, "read": 6}]
    first_reason = next(r for r in rows if r["by"] == "reason")
    assert first_reason["reason"] == "invalid_token"  # the biggest group first
    assert first_reason["first"] <= first_reason["last"]

    filtered = dlq.jsonl("stats", "--pixel", "shop")
    assert [r["count"] for r in filtered if r["by"] == "total"] == [2]

    table = dlq.cli("stats")
    assert table.returncode == 0
    assert "by stage and reason" in table.stdout and "by pixel" in table.stdout
    assert "invalid_token" in table.stdout and BLOG_PIXEL in table.stdout
    assert "6 dead letter(s) counted" in table.stdout


# ---------------------------------------------------------------------------- redrive: source


def _without_dlq(headers: list[tuple[str, bytes | None]]) -> list[tuple[str, bytes | None]]:
    return [(k, v) for k, v in headers if not k.startswith(DLQ)]


def test_redrive_to_source_republishes_key_and_value_byte_for_byte_with_redrive_headers(
    dlq: Dlq,
) -> None:
    binary_value = b"\x00\xffnot utf-8 \xc3\x28"
    original = [("origin", b"web"), ("trace", b"\x01\x02")]
    dlq.write(
        [
            # one destination of a fan-out: only that destination again
            dead_letter(dlq.source, 1, b'{"x":1}', key=b"k-1", headers=original),
            # decoded by nobody: no destination, every routed destination again
            dead_letter(
                dlq.source,
                2,
                binary_value,
                key=None,
                headers=original,
                stage="decode",
                reason="invalid_json",
                destination=None,
                pixel_id=None,
            ),
            # redriven twice already: a third time is allowed
            dead_letter(
                dlq.source,
                3,
                b'{"x":3}',
                key=b"k-3",
                headers=[
                    ("capi.redrive.count", b"2"),
                    ("capi.redrive.only_destination", b"blog"),
                ],
            ),
            # redriven three times already: refused (loop protection)
            dead_letter(
                dlq.source, 4, b'{"x":4}', key=b"k-4", headers=[("capi.redrive.count", b"3")]
            ),
        ]
    )

    dry = dlq.cli("redrive", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert sum(line.startswith("would redrive ") for line in lines) == 3
    assert sum(line.startswith("refused ") for line in lines) == 1
    assert "refused" in dry.stdout and "--max-redrives 3" in dry.stdout
    assert "dry run: nothing was written" in dry.stdout
    assert read_all(dlq.bootstrap, dlq.source) == []

    result = dlq.cli("redrive")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "4 dead letter(s) matched: 3 redriven to their source topic, "
        "1 refused by --max-redrives 3, 0 failed" in result.stdout
    )
    assert f"{dlq.dead_letters}[0]@3" in result.stdout
    republished = {r.value: r for r in read_all(dlq.bootstrap, dlq.source)}
    assert set(republished) == {b'{"x":1}', binary_value, b'{"x":3}'}

    fanned = republished[b'{"x":1}']
    assert fanned.key == b"k-1"
    assert fanned.headers == [
        *original,
        ("capi.redrive.count", b"1"),
        ("capi.redrive.only_destination", b"blog"),
    ]
    undecodable = republished[binary_value]
    assert undecodable.key is None
    assert undecodable.headers == [*original, ("capi.redrive.count", b"1")]
    third = republished[b'{"x":3}']
    assert third.key == b"k-3"
    assert third.headers == [
        ("capi.redrive.count", b"3"),
        ("capi.redrive.only_destination", b"blog"),
    ]
    for record in republished.values():
        assert not any(name.startswith(DLQ) for name, _ in record.headers)

    # The dead letters are still there (Kafka cannot delete them); a higher limit lets the
    # refused one through.
    assert len(read_all(dlq.bootstrap, dlq.dead_letters)) == 4
    again = dlq.cli("redrive", "--max-redrives", "4", "--dry-run")
    assert again.returncode == 0
    assert "4 would be redriven to their source topic, 0 refused" in again.stdout


def test_redrive_to_source_fails_records_it_cannot_send_and_exits_non_zero(dlq: Dlq) -> None:
    dlq.write(
        [
            dead_letter(dlq.source, 1, b'{"ok":1}'),
            dead_letter(dlq.source, 2, b'{"gone":1}', destination="retired", pixel_id="999"),
        ]
    )
    result = dlq.cli("redrive")
    assert result.returncode == 1
    assert "1 redriven to their source topic, 0 refused by --max-redrives 3, 1 failed" in (
        result.stdout
    )
    assert "'retired' is not in this configuration" in result.stdout
    [republished] = read_all(dlq.bootstrap, dlq.source)
    assert republished.value == b'{"ok":1}'


# ---------------------------------------------------------------------------- redrive: pixel


def test_redrive_to_pixel_delivers_to_the_dead_lettered_destination_only(
    dlq: Dlq, graph: EmulatorClient
) -> None:
    now = time.time()
    rng = random.Random(5)
    fanned = sample_event(5, now, rng, prefix="pixel")  # an Order Completed
    undecoded = sample_event(1, now, rng, prefix="pixel")  # a Product Viewed
    stale = stale_event(2, now, prefix="pixel")
    dlq.write(
        [
            dead_letter(dlq.source, 1, orjson.dumps(fanned)),
            dead_letter(
                dlq.source,
                2,
                orjson.dumps(undecoded),
                stage="decode",
                reason="invalid_json",
                destination=None,
                pixel_id=None,
            ),
            dead_letter(dlq.source, 3, orjson.dumps(stale)),
        ]
    )

    dry = dlq.cli("redrive", "--to", "pixel", "--dry-run")
    assert dry.returncode == 1  # the stale event would fail again
    # fanned: blog only; undecoded: shop and blog; stale: blog, failing
    assert sum(line.startswith("would deliver ") for line in dry.stdout.splitlines()) == 3
    assert sum(line.startswith("failed ") for line in dry.stdout.splitlines()) == 1
    assert "dry run: nothing was sent" in dry.stdout
    assert graph.received(events=False)["pixels"] == {}

    result = dlq.cli("redrive", "--to", "pixel")
    assert result.returncode == 1, result.stderr
    assert "3 dead letter(s) matched: 2 redriven to their pixel" in result.stdout
    assert "1 failed" in result.stdout
    assert "event_time_too_old" in result.stdout
    assert "NOT dead-lettered again" in result.stdout
    received = graph.received()["pixels"]
    blog_ids = sorted(e["event"]["event_id"] for e in received[BLOG_PIXEL]["events"])
    shop_ids = sorted(e["event"]["event_id"] for e in received[SHOP_PIXEL]["events"])
    assert blog_ids == sorted([fanned["messageId"], undecoded["messageId"]])
    assert shop_ids == [undecoded["messageId"]]  # not the record dead-lettered for blog
    # Nothing was written anywhere: not to the source topic, not to the dead-letter topic.
    assert read_all(dlq.bootstrap, dlq.source) == []
    assert len(read_all(dlq.bootstrap, dlq.dead_letters)) == 3


def test_redrive_to_pixel_posts_an_event_with_its_own_test_code_apart(
    dlq: Dlq, graph: EmulatorClient
) -> None:
    now = time.time()
    rng = random.Random(7)
    plain = sample_event(3, now, rng, prefix="codes")
    tested = sample_event(4, now, rng, prefix="codes")
    tested["integrations"] = {"Facebook Conversions API": {"test_event_code": "TEST_REDRIVE"}}
    dlq.write([dead_letter(dlq.source, 1, orjson.dumps(e)) for e in (plain, tested)])

    result = dlq.cli("redrive", "--to", "pixel")
    assert result.returncode == 0, result.stdout + result.stderr
    received = graph.received(BLOG_PIXEL)["pixels"][BLOG_PIXEL]
    codes = {e["event"]["event_id"]: e["test_event_code"] for e in received["events"]}
    assert codes == {plain["messageId"]: None, tested["messageId"]: "TEST_REDRIVE"}
    assert received["requests"] == 2


def test_redrive_to_pixel_reports_a_token_that_is_still_wrong(
    dlq: Dlq, graph: EmulatorClient
) -> None:
    event = sample_event(0, time.time(), random.Random(1), prefix="still-wrong")
    dlq.write([dead_letter(dlq.source, 1, orjson.dumps(event))])
    config = dlq.config(
        "wrong.yaml",
        destinations=[
            {"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"},
            {"name": "blog", "pixel_id": BLOG_PIXEL, "access_token": "still-expired"},
        ],
    )
    result = dlq.cli("redrive", "--to", "pixel", config=config)
    assert result.returncode == 1
    assert "deliver/invalid_token" in result.stdout
    assert "still-expired" not in result.stdout + result.stderr
    assert graph.received(events=False)["pixels"].get(BLOG_PIXEL, {}).get("events_received", 0) == 0


# ---------------------------------------------------------------------------- end to end


def _events_received(graph: EmulatorClient, pixel: str) -> int:
    summary = graph.received(events=False)["pixels"].get(pixel, {})
    return int(summary.get("events_received", 0))


def test_fix_the_token_and_redrive_to_source_reaches_the_fixed_pixel_and_not_the_other(
    dlq: Dlq, graph: EmulatorClient, tmp_path: Path
) -> None:
    count = 40
    produce(dlq.bootstrap, dlq.source, valid_events(count, "redrive-e2e"))
    broken = dlq.config(
        "broken.yaml",
        destinations=[
            {"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"},
            {"name": "blog", "pixel_id": BLOG_PIXEL, "access_token": "expired-token"},
        ],
    )
    first = WorkerProcess(broken, tmp_path / "worker-1.log")
    try:
        wait_until(
            lambda: unique_at(graph, SHOP_PIXEL) == count,
            120,
            "the shop pixel's events",
            first.log,
        )
        wait_until(dlq.all_committed, 60, "offsets committed", first.log)
        assert first.terminate() == 0
    finally:
        first.stop_quietly()
    assert unique_at(graph, BLOG_PIXEL) == 0
    stats = {
        (row["stage"], row["reason"]): row["count"]
        for row in dlq.jsonl("stats")
        if row["by"] == "reason"
    }
    assert stats == {("deliver", "invalid_token"): count}

    fixed = dlq.config("fixed.yaml")  # both tokens right
    result = dlq.cli("redrive", "--reason", "invalid_token", "--pixel", "blog", config=fixed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{count} redriven to their source topic" in result.stdout
    redriven: list[Record] = [
        r for r in read_all(dlq.bootstrap, dlq.source) if r.header("capi.redrive.count")
    ]
    assert len(redriven) == count
    assert {r.header("capi.redrive.only_destination") for r in redriven} == {b"blog"}

    second = WorkerProcess(fixed, tmp_path / "worker-2.log")
    try:
        wait_until(
            lambda: unique_at(graph, BLOG_PIXEL) == count,
            120,
            "the redriven events at the fixed pixel",
            second.log,
        )
        wait_until(dlq.all_committed, 60, "offsets committed after redrive", second.log)
        received = graph.received(events=False)["pixels"]
        assert _events_received(graph, SHOP_PIXEL) == count, "shop was sent the events again"
        assert received[SHOP_PIXEL]["duplicates"] == {}
        assert received[BLOG_PIXEL]["duplicates"] == {}
        assert second.terminate() == 0
    finally:
        second.stop_quietly()
    # The second run dead-lettered nothing new.
    assert len(read_all(dlq.bootstrap, dlq.dead_letters)) == count
