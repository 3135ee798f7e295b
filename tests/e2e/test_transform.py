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


def test_summary_on_stderr_counts_per_destination_and_shares_of_user_data_keys(
    tmp_path: Path,
) -> None:
    destinations = [
        {"name": "shop", "pixel_id": "1", "access_token": "t"},
        {"name": "blog", "pixel_id": "2", "access_token": "t", "match": {"event_types": ["page"]}},
    ]
    config = _config(tmp_path, destinations)
    with_email = {**EVENT, "context": {**EVENT["context"], "traits": {"email": "a@b.co"}}}
    with_fbp = {**EVENT, "properties": {**EVENT["properties"], "fbp": "fb.1.1.2"}}
    declined = {**EVENT, "integrations": {"All": False}}
    bad_revenue = {**EVENT, "properties": {"revenue": "lots", "action_source": "system_generated"}}
    lines = [json.dumps(event) for event in (EVENT, with_email, with_fbp, declined, bad_revenue)]
    done = subprocess.run(
        [*CLI, "--config", str(config), "--now", str(NOW), "--summary"],
        input="\n".join([*lines, "not json"]) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(done.stdout.splitlines()) == 6  # stdout as without --summary: 5 for shop, 1 error
    report = done.stderr.splitlines()
    assert report[0] == "transform summary"
    shop = report.index("shop (pixel 1): 3 mapped, 1 skipped, 1 errored")
    assert report[shop + 1 : shop + 4] == [
        "  skipped integration_disabled: 1",
        "  errored map/invalid_value: 1",
        "  share of mapped events carrying each user_data key:",
    ]
    shares = {line.split()[0]: line.split()[1] for line in report[shop + 4 :] if "%" in line}
    assert shares["em"] == "33.3%" and shares["external_id"] == "100.0%"
    assert shares["fbp_or_fbc"] == "33.3%" and shares["ph"] == "0.0%"
    assert "(no destination): 0 mapped, 0 skipped, 1 errored" in report
    assert "  errored decode/invalid_json: 1" in report
    assert not any(line.startswith("blog") for line in report)  # took none of the events
