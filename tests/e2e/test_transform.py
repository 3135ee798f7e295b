"""`capi-worker transform` as a user runs it: lines only for the destinations an event is routed
to; `--show-unrouted` adds one `not_routed` line per other destination."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

CLI = [sys.executable, "-m", "worker.cli", "transform"]
NOW = 1_700_000_000

EVENT = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "m-1",
    "userId": "u-1",
    "timestamp": NOW - 60,
    "context": {"sourceId": "shop-2", "ip": "203.0.113.9", "userAgent": "UA"},
    "properties": {"revenue": 10, "action_source": "system_generated"},
}


def _config(tmp_path: Path, destinations: list[dict[str, Any]]) -> Path:
    config = tmp_path / "worker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"},
                "destinations": destinations,
            }
        )
    )
    return config


def _transform(config: Path, lines: list[str], *flags: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*CLI, "--config", str(config), "--now", str(NOW), *flags],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def _fenced(count: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"shop-{i}",
            "pixel_id": str(1000 + i),
            "access_token": "t",
            "match": {"source_ids": [f"shop-{i}"]},
        }
        for i in range(count)
    ]


def test_an_event_prints_one_line_per_destination_it_is_routed_to_only(tmp_path: Path) -> None:
    config = _config(tmp_path, _fenced(50))
    rows = _transform(config, [json.dumps(EVENT)])
    assert [(row["pixel_id"], row["event"]["event_id"]) for row in rows] == [("1002", "m-1")]


def test_an_event_no_destination_takes_prints_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, _fenced(3))
    other = {**EVENT, "context": {"sourceId": "elsewhere"}}
    assert _transform(config, [json.dumps(other)]) == []


def test_show_unrouted_prints_a_not_routed_line_for_every_other_destination(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, _fenced(4))
    rows = _transform(config, [json.dumps(EVENT)], "--show-unrouted")
    assert rows[:2] == [{"skipped": "not_routed"}] * 2
    assert rows[2]["pixel_id"] == "1002" and rows[2]["event"]["event_name"] == "Purchase"
    assert rows[3] == {"skipped": "not_routed"}


def test_errors_and_skips_of_routed_destinations_are_printed_with_their_reason(
    tmp_path: Path,
) -> None:
    destinations = [
        *_fenced(3),
        {"name": "all", "pixel_id": "9", "access_token": "t"},
    ]
    config = _config(tmp_path, destinations)
    bad_revenue = {**EVENT, "properties": {"revenue": "lots", "action_source": "system_generated"}}
    rows = _transform(config, [json.dumps(bad_revenue), json.dumps({"type": "group"}), "not json"])
    assert [row.get("pixel_id") for row in rows[:2]] == ["1002", "9"]
    assert {row["error"]["reason"] for row in rows[:2]} == {"invalid_value"}
    assert rows[2] == {"skipped": "event_type_not_forwarded"}  # only `all` takes a group call
    assert rows[3]["error"]["stage"] == "decode" and "pixel_id" not in rows[3]
    assert len(rows) == 4
