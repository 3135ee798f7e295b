"""Printing and saving the figures: a rich table on the terminal, the same numbers as JSON.

Every figure is summarised over the runs as `{"median", "min", "max", "runs": [...]}`.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, stderr=True)
if not console.is_terminal:
    console = Console(highlight=False, stderr=True, width=160)


def log(message: str) -> None:
    """A progress line on stderr: the table goes to stdout."""
    console.print(f"[dim]{datetime.now().strftime('%H:%M:%S')}[/] {message}")


def summarise(values: Sequence[float | None], digits: int = 1) -> dict[str, Any]:
    """Median, min and max of the runs' values (None values, failed runs, are left out)."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "runs": list(values)}
    return {
        "median": round(statistics.median(present), digits),
        "min": round(min(present), digits),
        "max": round(max(present), digits),
        "runs": [None if v is None else round(float(v), digits) for v in values],
    }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values sorted ascending (`fraction` in [0, 1])."""
    if not sorted_values:
        raise ValueError("no values")
    rank = math.ceil(round(fraction * len(sorted_values), 9))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in {"events/s", "records/s"} or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def _build(section: dict[str, Any]) -> str:
    """` [mapping: compiled]`: which build of the mapping produced the figures of a section."""
    build = section.get("mapping_build")
    return f" \\[mapping: {build}]" if build else ""  # escaped: not rich markup


def figure_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(label, summary, unit) for every figure the report holds, in the table's order."""
    rows: list[tuple[str, dict[str, Any], str]] = []
    mapping = report.get("mapping")
    if mapping:
        rows.append(
            (
                f"mapping stage, 1 core ({mapping['events']:,} events){_build(mapping)}",
                mapping["events_per_second"],
                "events/s",
            )
        )
        rows.append(
            ("  per CPU second of the process", mapping["events_per_cpu_second"], "events/s")
        )
        if "cpu_microseconds_per_event" in mapping:
            rows.append(("  per event (CPU)", mapping["cpu_microseconds_per_event"], "µs"))
            for stage, summary in mapping["stage_cpu_microseconds_per_event"].items():
                rows.append((f"    {stage}", summary, "µs"))
        peer = mapping.get("sdk_peer")
        if peer:
            rows.append(
                (
                    "  Meta SDK objects, same corpus: per CPU second",
                    peer["events_per_cpu_second"],
                    "events/s",
                )
            )
            rows.append(("  mapping / Meta SDK", peer["ratio"], "x"))
        rows.append(("  per event (wall)", mapping["microseconds_per_event"], "µs"))
        for stage, summary in mapping["stage_microseconds_per_event"].items():
            rows.append((f"    {stage}", summary, "µs"))
    many = report.get("destinations")
    if many:
        for size in many["sizes"]:
            mapping_figures, transform = size["mapping"], size["transform"]
            rows.append(
                (
                    f"{size['destinations']:,} destination(s): mapping per CPU second "
                    f"(x{mapping_figures['ratio']:.2f} of 1, peak RSS "
                    f"{mapping_figures['peak_rss_mb']:.0f} MB, "
                    f"+{mapping_figures['rss_growth_mb']:.0f})",
                    mapping_figures["events_per_cpu_second"],
                    "events/s",
                )
            )
            rows.append(
                (
                    f"  transform per CPU second (x{transform['ratio']:.2f}, peak RSS "
                    f"{transform['peak_rss_mb']:.0f} MB, +{transform['rss_growth_mb']:.0f})",
                    transform["events_per_cpu_second"],
                    "events/s",
                )
            )
            rows.append(
                ("  start-up: configuration and set", mapping_figures["start_cpu_seconds"], "CPU s")
            )
            rows.append(
                ("  start-up: transform, no input", transform["start_cpu_seconds"], "CPU s")
            )
    e2e = report.get("end_to_end")
    if e2e:
        rows.append(
            (
                f"end to end, 1 worker ({e2e['events']:,} events, {e2e['partitions']} "
                f"partitions){_build(e2e)}",
                e2e["events_per_second"],
                "events/s",
            )
        )
        rows.append(("  wall time, start to all committed", e2e["wall_seconds"], "s"))
        rows.append(("  of which start-up (to first commit)", e2e["startup_seconds"], "s"))
        rows.append(("  worker CPU per million events", e2e["worker_cpu_seconds_per_million"], "s"))
        if "delivered_per_worker_cpu_second" in e2e:
            rows.append(
                (
                    "  delivered events per worker CPU second",
                    e2e["delivered_per_worker_cpu_second"],
                    "events/s",
                )
            )
        rows.append(("  worker peak RSS", e2e["worker_peak_rss_mib"], "MiB"))
        rows.append(
            ("  emulator CPU per million events", e2e["emulator_cpu_seconds_per_million"], "s")
        )
        rows.append(("  broker CPU per million events", e2e["broker_cpu_seconds_per_million"], "s"))
    latency = report.get("latency")
    if latency:
        label = f"latency at {latency['rate']:,}/s for {latency['seconds']:g} s{_build(latency)}"
        rows.append((f"{label}: p50", latency["p50_ms"], "ms"))
        rows.append(("  p99", latency["p99_ms"], "ms"))
        rows.append(("  max", latency["max_ms"], "ms"))
        rows.append(("  produce rate achieved", latency["achieved_rate"], "events/s"))
    scaling = report.get("scaling")
    if scaling:
        for processes, summary in scaling["events_per_second"].items():
            label = f"scaling: {processes} worker process(es){_build(scaling)}"
            rows.append((label, summary, "events/s"))
        rows.append(
            (
                f"  ratio {scaling['processes'][-1]} / 1 process",
                {"median": scaling["ratio"], "min": None, "max": None},
                "x",
            )
        )
        rows.append(
            ("  worker CPU per million events, 2 processes", scaling["cpu_per_million"], "s")
        )
    return rows


def print_report(report: dict[str, Any]) -> None:
    machine = report["machine"]
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=120)
    settings = report["settings"]
    out.print(
        f"[bold]capi-worker bench[/], {report['date']}: {settings['runs']} run(s) per figure, "
        f"seed {settings['seed']}, batching {settings['batching']}"
    )
    out.print(
        f"machine: {machine['nproc']} cores, {machine['cpu_model']}, {machine['memory']} RAM, "
        f"{machine['implementation']} {machine['python']}, Linux {machine['kernel']}, "
        f"load before {machine['load_average']}"
    )
    table = Table()
    table.add_column("figure")
    table.add_column("median", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("unit")
    for label, summary, unit in figure_rows(report):
        table.add_row(
            label,
            _number(summary.get("median"), unit),
            _number(summary.get("min"), unit),
            _number(summary.get("max"), unit),
            unit,
        )
    out.print(table)
    corpus = report.get("corpus")
    if corpus:
        out.print(
            f"corpus: {corpus['events']:,} events, {corpus['mean_bytes']:.0f} bytes on average, "
            f"{corpus['repeating_user_events']:,} from repeating users, invalid "
            f"{corpus['invalid_by_kind']}"
        )
    for problem in report.get("problems", []):
        out.print(f"[red]problem:[/] {problem}")


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
