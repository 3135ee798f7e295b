"""The pure parts of `capi-worker dlq`: filters, redrive plans and headers, JSON rows."""

from __future__ import annotations

import base64
from typing import Any

from worker.config import DestinationSettings, Settings
from worker.kafka_config import inspection_consumer_config
from worker.tools.dlq import (
    plan_pixel_redrive,
    plan_source_redrive,
    previous_redrives,
    record_json,
)
from worker.tools.dlq_reader import DeadLetter, DeadLetterFilter

SHOP = DestinationSettings(name="shop", pixel_id="1", access_token="t")  # type: ignore[arg-type]
BLOG = DestinationSettings(name="blog", pixel_id="2", access_token="t")  # type: ignore[arg-type]


def _record(
    value: bytes | None = b"{}",
    original: list[tuple[str, bytes | None]] | None = None,
    **dlq: Any,
) -> DeadLetter:
    fields = {
        "stage": "deliver",
        "reason": "invalid_token",
        "destination": "blog",
        "pixel_id": "2",
        "source_topic": "events",
        "source_partition": 3,
        "source_offset": 42,
        "time": "1700000000.500",
        **dlq,
    }
    headers: list[tuple[str, bytes | None]] = list(original or [])
    headers += [(f"capi.dlq.{k}", str(v).encode()) for k, v in fields.items() if v is not None]
    return DeadLetter("dlq", 0, 7, None, b"key", value, headers)


def test_filters_match_reason_stage_pixel_or_destination_and_time() -> None:
    record = _record()
    assert DeadLetterFilter().matches(record)
    assert DeadLetterFilter(reasons=frozenset({"invalid_token", "x"})).matches(record)
    assert not DeadLetterFilter(reasons=frozenset({"invalid_json"})).matches(record)
    assert not DeadLetterFilter(stages=frozenset({"decode"})).matches(record)
    assert DeadLetterFilter(pixels=frozenset({"2"})).matches(record)
    assert DeadLetterFilter(pixels=frozenset({"blog"})).matches(record)
    assert not DeadLetterFilter(pixels=frozenset({"shop"})).matches(record)
    assert DeadLetterFilter(since=1_700_000_000.5, until=1_700_000_000.5).matches(record)
    assert not DeadLetterFilter(since=1_700_000_001).matches(record)
    assert not DeadLetterFilter(until=1_699_999_999).matches(record)
    assert not DeadLetterFilter(since=0).matches(_record(time=None))  # no time, no match


def test_a_first_redrive_strips_the_dead_letter_headers_and_counts_one() -> None:
    record = _record(original=[("origin", b"web"), ("bin", b"\xff")])
    plan = plan_source_redrive(record, [SHOP, BLOG], max_redrives=3)
    assert (plan.topic, plan.count, plan.only_destination) == ("events", 1, "blog")
    assert plan.refused is None and plan.error is None
    assert plan.headers == [
        ("origin", b"web"),
        ("bin", b"\xff"),
        ("capi.redrive.count", b"1"),
        ("capi.redrive.only_destination", b"blog"),
    ]


def test_the_redrive_count_is_incremented_and_refused_past_the_limit() -> None:
    twice = _record(original=[("capi.redrive.count", b"2")])
    assert previous_redrives(twice) == 2
    assert plan_source_redrive(twice, [BLOG], max_redrives=3).count == 3
    refused = plan_source_redrive(twice, [BLOG], max_redrives=2)
    assert refused.refused is not None and "--max-redrives 2" in refused.refused
    garbage = _record(original=[("capi.redrive.count", b"many")])
    assert previous_redrives(garbage) is None
    assert plan_source_redrive(garbage, [BLOG], max_redrives=3).refused is not None


def test_a_decode_failure_after_a_one_destination_redrive_stays_with_that_destination() -> None:
    record = _record(
        original=[("capi.redrive.count", b"1"), ("capi.redrive.only_destination", b"blog")],
        stage="decode",
        reason="invalid_json",
        destination=None,
        pixel_id=None,
    )
    plan = plan_source_redrive(record, [SHOP, BLOG], max_redrives=3)
    assert plan.only_destination == "blog"
    assert plan.headers == [
        ("capi.redrive.count", b"2"),
        ("capi.redrive.only_destination", b"blog"),
    ]


def test_a_decode_failure_never_redriven_goes_to_every_destination() -> None:
    record = _record(stage="decode", reason="invalid_json", destination=None, pixel_id=None)
    plan = plan_source_redrive(record, [SHOP, BLOG], max_redrives=3)
    assert plan.only_destination is None
    assert plan.headers == [("capi.redrive.count", b"1")]


def test_records_that_cannot_be_redriven_to_their_source_say_why() -> None:
    no_topic = plan_source_redrive(_record(source_topic=None), [BLOG], max_redrives=3)
    assert no_topic.error is not None and "source_topic" in no_topic.error
    retired = plan_source_redrive(_record(destination="old"), [SHOP, BLOG], max_redrives=3)
    assert retired.error is not None and "'old' is not in this configuration" in retired.error


def test_json_rows_give_text_when_utf8_and_base64_otherwise() -> None:
    row = record_json(_record(value=b"\x00\xff", original=[("h", b"\xc3\x28")]))
    assert row["value_encoding"] == "base64"
    assert base64.b64decode(row["value"]) == b"\x00\xff"
    assert row["key"] == "key"
    assert row["headers"][0] == {
        "name": "h",
        "value": base64.b64encode(b"\xc3\x28").decode(),
        "encoding": "base64",
    }
    assert (row["source_partition"], row["source_offset"], row["time"]) == (
        3,
        42,
        "2023-11-14T22:13:20Z",
    )


def test_a_pixel_redrive_maps_for_the_dead_lettered_destination_only() -> None:
    settings = Settings.model_validate(
        {
            "kafka": {"bootstrap_servers": "x:9092", "topics": ["t"], "dead_letter_topic": "d"},
            "destinations": [
                {"name": "shop", "pixel_id": "1", "access_token": "a"},
                {"name": "blog", "pixel_id": "2", "access_token": "b"},
            ],
        }
    )
    event = (
        b'{"type":"page","messageId":"m1","timestamp":1700000000,"userId":"u",'
        b'"context":{"page":{"url":"https://e.com/"},"userAgent":"UA"}}'
    )

    def decode(value: bytes | None) -> dict[str, Any]:
        import orjson

        decoded: dict[str, Any] = orjson.loads(value or b"")
        return decoded

    plan = plan_pixel_redrive(_record(value=event), settings, decode, 1_700_000_010)
    assert [(t.destination, t.status) for t in plan.targets] == [("blog", "deliver")]
    undecoded = _record(value=event, stage="decode", destination=None, pixel_id=None)
    plan = plan_pixel_redrive(undecoded, settings, decode, 1_700_000_010)
    assert [(t.destination, t.status) for t in plan.targets] == [
        ("shop", "deliver"),
        ("blog", "deliver"),
    ]
    stale = plan_pixel_redrive(_record(value=event), settings, decode, 1_800_000_000)
    assert [t.status for t in stale.targets] == ["failed"]
    assert "event_time_too_old" in stale.targets[0].detail


def test_the_inspection_consumer_joins_no_group_and_commits_nothing() -> None:
    settings = Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": "x:9092",
                "topics": ["t"],
                "dead_letter_topic": "d",
                "client": {"security.protocol": "SASL_SSL"},
                "consumer": {"group.instance.id": "pod-0", "session.timeout.ms": 45000},
            },
            "destinations": [{"name": "shop", "pixel_id": "1", "access_token": "a"}],
        }
    )
    config = inspection_consumer_config(settings)
    assert config["enable.auto.commit"] is False
    assert config["group.id"].startswith("capi-worker-dlq-inspect-")
    assert "group.instance.id" not in config
    assert config["security.protocol"] == "SASL_SSL"
