"""`capi-worker bench`: the corpus keeps its promises, the figures come out in the promised shape.

Tiny sizes only (figures are not judged here; `make bench` measures): the corpus's mix, the
mapping stage on it, and one `capi-worker bench --quick` run of the mapping and end-to-end parts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.bench.corpus import (
    CUSTOM_EVENTS,
    ECOMMERCE_EVENTS,
    INVALID_KINDS,
    INVALID_REASONS,
    MULTI_PRODUCT_EVENTS,
    Corpus,
    pii_fields,
    summary,
)
from worker.bench.mapping_stage import bench_settings, run_mapping
from worker.bench.report import percentile, summarise
from worker.compiled import mapping_build

NOW = 1_800_000_000.0
CLI = [sys.executable, "-m", "worker.cli"]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(3000, seed=7, now=NOW)


def test_the_corpus_is_the_same_for_the_same_seed_and_differs_for_another(corpus: Corpus) -> None:
    again = Corpus(3000, seed=7, now=NOW)
    other = Corpus(3000, seed=8, now=NOW)

    values = [record.value for record in corpus]
    assert values == [record.value for record in again]
    assert values != [record.value for record in other]
    assert len({record.event_id for record in corpus}) == 3000


def test_one_percent_is_invalid_spread_over_the_kinds(corpus: Corpus) -> None:
    records = corpus.records()
    invalid = Counter(record.invalid for record in records if record.invalid)

    assert sum(invalid.values()) == 30 == corpus.invalid_count
    assert set(invalid) == set(INVALID_KINDS)
    assert max(invalid.values()) - min(invalid.values()) <= 1
    for record in records:
        if record.invalid == "invalid_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(record.value)
        else:
            assert isinstance(orjson.loads(record.value), dict)


def test_thirty_percent_of_events_come_from_repeating_users(corpus: Corpus) -> None:
    records = corpus.records()
    per_user = Counter(record.user_id for record in records)
    repeating = [record for record in records if per_user[record.user_id] > 1]

    assert len(repeating) == 900  # exactly 30 % of 3000
    assert all(record.repeating_user for record in repeating)
    # What the bytes say agrees with the plan (the truncated records cannot be read).
    decoded = [orjson.loads(r.value) for r in records if r.invalid != "invalid_json"]
    users = Counter(event["userId"] for event in decoded)
    assert sum(1 for event in decoded if users[event["userId"]] > 1) == pytest.approx(900, abs=10)


def test_every_event_carries_ten_pii_fields_and_the_browser_identifiers(corpus: Corpus) -> None:
    for record in corpus:
        if record.invalid == "invalid_json":
            continue
        event = orjson.loads(record.value)
        assert len(pii_fields(event)) == 10, pii_fields(event)
        context = event["context"]
        assert context["ip"] and context["userAgent"] and context["cookies"]["_fbp"]


def test_the_mix_holds_every_kind_and_one_to_five_products(corpus: Corpus) -> None:
    records = corpus.records()
    kinds = Counter(record.kind for record in records)

    assert set(ECOMMERCE_EVENTS) | set(CUSTOM_EVENTS) | {"page"} == set(kinds)
    for record in records:
        if record.kind in MULTI_PRODUCT_EVENTS:
            products = (
                orjson.loads(record.value)["properties"]["products"]
                if (record.invalid != "invalid_json")
                else [None] * record.products
            )
            assert 1 <= len(products) == record.products <= 5
    assert {r.products for r in records if r.kind in MULTI_PRODUCT_EVENTS} == {1, 2, 3, 4, 5}
    mix = summary(corpus, records)
    assert mix["valid"] == 2970 and mix["repeating_user_events"] == 900


def test_the_mapping_stage_maps_every_valid_event_and_fails_the_invalid_ones() -> None:
    corpus = Corpus(1000, seed=3, now=NOW)
    run = run_mapping([record.value for record in corpus], bench_settings(), NOW)

    expected = Counter({"mapped": corpus.valid_count})
    for record in corpus:
        if record.invalid:
            expected[f"invalid:{INVALID_REASONS[record.invalid]}"] += 1
    assert run.outcomes == expected
    assert run.events == 1000 and run.events_per_second > 0
    assert run.as_dict()["stage_microseconds_per_event"]["route_map"] > 0


def test_summaries_and_percentiles() -> None:
    assert summarise([3.0, 1.0, 2.0]) == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "runs": [3.0, 1.0, 2.0],
    }
    assert summarise([None])["median"] is None
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0,
        99.0,
        100.0,
    )


def _positive(summary: dict[str, Any]) -> bool:
    return all(summary[key] is not None and summary[key] > 0 for key in ("median", "min", "max"))


def test_bench_quick_prints_the_figures_and_writes_them_as_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            *CLI,
            "bench",
            "--quick",
            "--only",
            "mapping,e2e",
            "--mapping-events",
            "1000",
            "--events",
            "2000",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["problems"] == []
    assert {"nproc", "cpu_model", "python"} <= set(report["machine"])
    assert report["settings"]["parts"] == ["mapping", "e2e"]
    mapping, e2e = report["mapping"], report["end_to_end"]
    assert mapping["events"] == 1000 and _positive(mapping["events_per_second"])
    assert e2e["events"] == 2000 and e2e["partitions"] == 4
    for figure in (
        "events_per_second",
        "wall_seconds",
        "worker_cpu_seconds_per_million",
        "worker_peak_rss_mib",
    ):
        assert _positive(e2e[figure]), figure
    (details,) = e2e["run_details"]
    assert details["delivered_unique"] == details["expected_delivered"] == 1980
    assert details["exit_codes"] == [0]
    assert "mapping stage, 1 core" in result.stdout and "end to end, 1 worker" in result.stdout
    assert "latency" not in report and "scaling" not in report
    # Which build of the mapping made each figure: the bench's own, and what the worker logged.
    build, _ = mapping_build()
    assert mapping["mapping_build"] == e2e["mapping_build"] == build
    assert report["mapping_build"].startswith(f"mapping: {build}")
    assert result.stdout.count(f"[mapping: {build}]") >= 2
    assert _positive(mapping["events_per_cpu_second"])
    # Meta's SDK objects on the same corpus, in the same process: the same events get through.
    peer = mapping["sdk_peer"]
    assert _positive(peer["events_per_cpu_second"]) and _positive(peer["ratio"])
    assert peer["outcomes"]["mapped"] == mapping["outcomes"]["mapped"]
    assert "mapping / Meta SDK" in result.stdout
    assert _positive(e2e["delivered_per_worker_cpu_second"])


def test_the_destinations_part_measures_each_size_in_its_own_process(tmp_path: Path) -> None:
    from worker.bench import destinations

    values = [record.value for record in Corpus(300, seed=3, now=NOW).records()]
    section, problems = destinations.run_part(values, NOW, tmp_path, runs=1, sizes=(1, 200))
    assert problems == []
    one, many = section["sizes"]
    assert (one["destinations"], many["destinations"]) == (1, 200)
    for size in (one, many):
        for part in ("mapping", "transform"):
            assert _positive(size[part]["events_per_cpu_second"]), (size["destinations"], part)
            assert size[part]["peak_rss_mb"] > 0
    assert one["mapping"]["ratio"] == 1.0 and one["mapping"]["rss_growth_mb"] == 0
    assert many["mapping"]["ratio"] > 0 and many["transform"]["ratio"] > 0
    # Every event is routed to exactly one destination at every size: the same outcomes.
    assert one["mapping"]["outcomes"] == many["mapping"]["outcomes"]
    assert one["mapping"]["outcomes"]["mapped"] == 297
    assert one["transform"]["output_lines"] == many["transform"]["output_lines"] > 0
    assert section["targets"]["at_destinations"] == 200
    config = (tmp_path / "destinations-200.yaml").read_text()
    assert config.count("source_ids:") == 200


def test_the_soak_is_a_part_of_capi_worker_bench_and_its_accounting_holds(tmp_path: Path) -> None:
    """`capi-worker bench --only soak` (what `make soak` runs): a tiny soak, checked record by
    record by the soak itself."""
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [*CLI, "bench", "--only", "soak", "--events", "2000", "--no-faults", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "accounting holds" in result.stdout
    report = json.loads(out.read_text())
    assert report["accounting_holds"] is True and report["failures"] == []
    assert report["settings"]["events"] == report["produced_records"] == 2000
    assert report["settings"]["faults"] is False
    assert report["worker_exit_code"] == 0
