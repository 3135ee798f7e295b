"""Figure 5: many destinations. The mapping stage and `capi-worker transform` with 1, 100, 1,000
and 10,000 destinations, each fenced to its own source id, every event routed to exactly one.

Per size, in a fresh process each time, whose peak RSS is read from its own /proc/self/status
(VmHWM: `ru_maxrss` would carry over the bench process's peak through fork and exec):

- `probe`: load the configuration and build the destination set (start-up, CPU seconds; the
  peak RSS so far is the mapping's RSS figure, taken before the corpus is read into memory),
  then the mapping stage on the corpus (`mapping_stage.run_mapping`: decode, route, map,
  serialise), events per CPU second;
- `capi-worker transform` on the same lines, and once more on no input: its events per CPU
  second are the lines over the CPU seconds it reports from its first read of stdin to its end
  (start-up left out), and the empty run is the command's start-up with that many destinations.

The ratio is each size's figure over the 1-destination one; the RSS growth is the peak RSS
over the 1-destination peak. Targets (issue 9): ratio >= 0.7 and growth <= 150 MB at 10,000.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from .report import log, summarise

SIZES = (1, 100, 1_000, 10_000)
RATIO_TARGET = 0.7
RSS_GROWTH_TARGET_MB = 150.0
FIRST_PIXEL = 10**12


def source_id(index: int) -> str:
    return f"shop-{index}"


def write_config(path: Path, destinations: int) -> Path:
    config = {
        "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"], "dead_letter_topic": "d"},
        "metrics": {"enabled": False},
        "destinations": [
            {
                "name": f"shop-{index}",
                "pixel_id": str(FIRST_PIXEL + index),
                "access_token": f"EAAB-bench-token-{index}",
                "match": {"source_ids": [source_id(index)]},
            }
            for index in range(destinations)
        ],
    }
    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump(config, Dumper=dumper, sort_keys=False), encoding="utf-8")
    return path


def write_events(path: Path, values: list[bytes], destinations: int) -> Path:
    """The corpus, one JSON line each, every event's `context.sourceId` set to one of the
    destinations in turn (lines that are not JSON objects are kept as they are)."""
    lines = []
    for index, value in enumerate(values):
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            context = event.get("context")
            if isinstance(context, dict):
                event["context"] = {**context, "sourceId": source_id(index % destinations)}
                value = orjson.dumps(event)
        lines.append(value.replace(b"\n", b" "))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# ---------------------------------------------------------------------- in the fresh process


def probe(config: Path, events: Path, now: float) -> dict[str, Any]:
    """What `python -m worker.bench.destinations CONFIG EVENTS NOW` prints as JSON."""
    from worker.config import load_settings
    from worker.destination_set import DestinationSet

    from .mapping_stage import run_mapping

    rss_before = _peak_rss_mb()
    started = time.process_time()
    settings = load_settings(config, env={})
    destinations = DestinationSet.from_settings(settings)
    start_cpu = time.process_time() - started
    # Before the corpus is read: what the destinations cost, not the events held in memory.
    rss_with_destinations = _peak_rss_mb()
    values = events.read_bytes().splitlines()
    run = run_mapping(values, settings, now, destinations, stages=False)
    return {
        "destinations": len(settings.destinations),
        "start_cpu_seconds": round(start_cpu, 3),
        "events": run.events,
        "events_per_cpu_second": round(run.events_per_cpu_second, 1),
        "events_per_second": round(run.events_per_second, 1),
        "outcomes": dict(run.outcomes),
        "rss_before_config_mb": round(rss_before, 1),
        "peak_rss_mb": round(rss_with_destinations, 1),
        "peak_rss_with_corpus_mb": round(_peak_rss_mb(), 1),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident set since its exec (VmHWM), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


PEAK_MARKER = "peak_rss_mb="
LOOP_CPU_MARKER = "loop_cpu_seconds="

# `capi-worker transform` run as the command runs it (its console-script entry point), in a
# process of its own, which then reports on stderr its peak RSS and the CPU seconds from its
# first read of stdin (configuration loaded, destination set built) to the end. Measured inside
# the one process: the difference of two processes' CPU times (a run with input and one without)
# is mostly start-up noise on a small corpus and can come out at zero or below. A script, not an
# import: the bench sits below the command line.
TRANSFORM_AND_REPORT = f"""
import sys, time, types
from worker.bench.destinations import _peak_rss_mb
from worker.cli import main

class FirstReadClock:
    def __init__(self, lines):
        self.lines, self.started = lines, None
    def __iter__(self):
        self.started = time.process_time()
        return iter(self.lines)

stdin = FirstReadClock(sys.stdin.buffer)
sys.stdin = types.SimpleNamespace(buffer=stdin)
code = main(["transform", *sys.argv[1:]])
sys.stdout.flush()
if stdin.started is not None:
    print("{LOOP_CPU_MARKER}" + repr(time.process_time() - stdin.started), file=sys.stderr)
print("{PEAK_MARKER}" + format(_peak_rss_mb(), ".1f"), file=sys.stderr)
sys.exit(code)
"""


# ---------------------------------------------------------------------- the bench part


def _child(command: list[str], stdin: Path | None) -> tuple[bytes, float, dict[str, float]]:
    """Run `command`; its stdout, CPU seconds (its own rusage) and the figures it reported on
    stderr (`name=value` lines, by name)."""
    with (
        stdin.open("rb") if stdin else open(os.devnull, "rb") as source,
        tempfile.TemporaryFile() as errors,
    ):
        process = subprocess.Popen(command, stdin=source, stdout=subprocess.PIPE, stderr=errors)
        out = process.stdout.read() if process.stdout else b""
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} exited {process.returncode}: {stderr[-500:]}")
    reported = {
        marker: float(line[len(marker) :])
        for line in stderr.splitlines()
        for marker in (PEAK_MARKER, LOOP_CPU_MARKER)
        if line.startswith(marker)
    }
    return out, usage.ru_utime + usage.ru_stime, reported


def measure_size(
    destinations: int, values: list[bytes], now: float, workdir: Path, runs: int
) -> dict[str, Any]:
    config = write_config(workdir / f"destinations-{destinations}.yaml", destinations)
    events = write_events(workdir / f"events-{destinations}.jsonl", values, destinations)
    probes = []
    for _ in range(runs):
        out, _, _ = _child(
            [
                sys.executable,
                "-m",
                "worker.bench.destinations",
                str(config),
                str(events),
                repr(now),
            ],
            None,
        )
        probes.append(json.loads(out))
    transform = [sys.executable, "-c", TRANSFORM_AND_REPORT]
    transform += ["--config", str(config), "--now", repr(now)]
    rates, rss, starts = [], [], []
    for _ in range(runs):
        _, empty_cpu, _ = _child(transform, None)
        out, _, reported = _child(transform, events)
        lines = out.count(b"\n")
        if PEAK_MARKER not in reported or not reported.get(LOOP_CPU_MARKER, 0) > 0:
            raise RuntimeError(f"the transform run did not report its figures: {reported}")
        rates.append(len(values) / reported[LOOP_CPU_MARKER])
        rss.append(reported[PEAK_MARKER])
        starts.append(empty_cpu)
    return {
        "destinations": destinations,
        "events": len(values),
        "mapping": {
            "events_per_cpu_second": summarise([p["events_per_cpu_second"] for p in probes], 0),
            "events_per_second": summarise([p["events_per_second"] for p in probes], 0),
            "peak_rss_mb": max(p["peak_rss_mb"] for p in probes),
            "start_cpu_seconds": summarise([p["start_cpu_seconds"] for p in probes], 2),
            "outcomes": probes[0]["outcomes"],
        },
        "transform": {
            "events_per_cpu_second": summarise(rates, 0),
            "peak_rss_mb": round(max(rss), 1),
            "start_cpu_seconds": summarise(starts, 2),
            "output_lines": lines,
        },
    }


def section(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios and RSS growth against the 1-destination size, and whether the targets hold."""
    base = sizes[0]
    for size in sizes:
        for part in ("mapping", "transform"):
            figures, first = size[part], base[part]
            rate, base_rate = figures["events_per_cpu_second"], first["events_per_cpu_second"]
            figures["ratio"] = (
                round(rate["median"] / base_rate["median"], 3) if base_rate["median"] else None
            )
            figures["rss_growth_mb"] = round(figures["peak_rss_mb"] - first["peak_rss_mb"], 1)
    largest = sizes[-1]
    met = {
        part: largest[part]["ratio"] is not None
        and largest[part]["ratio"] >= RATIO_TARGET
        and largest[part]["rss_growth_mb"] <= RSS_GROWTH_TARGET_MB
        for part in ("mapping", "transform")
    }
    return {
        "sizes": sizes,
        "targets": {
            "ratio": RATIO_TARGET,
            "rss_growth_mb": RSS_GROWTH_TARGET_MB,
            "at_destinations": largest["destinations"],
            "met": met,
        },
    }


def run_part(
    values: list[bytes], now: float, workdir: Path, runs: int, sizes: tuple[int, ...] = SIZES
) -> tuple[dict[str, Any], list[str]]:
    measured: list[dict[str, Any]] = []
    problems: list[str] = []
    for destinations in sizes:
        size = measure_size(destinations, values, now, workdir, runs)
        # Every size routes each event to exactly one destination: the same outcomes.
        if measured and (
            size["mapping"]["outcomes"] != measured[0]["mapping"]["outcomes"]
            or size["transform"]["output_lines"] != measured[0]["transform"]["output_lines"]
        ):
            problems.append(
                f"destinations {destinations}: outcomes {size['mapping']['outcomes']} and "
                f"{size['transform']['output_lines']} transform lines differ from the first size"
            )
        log(
            f"destinations {destinations:,}: mapping "
            f"{size['mapping']['events_per_cpu_second']['median']:,.0f} events/CPU-s, peak RSS "
            f"{size['mapping']['peak_rss_mb']:.0f} MB, start-up "
            f"{size['transform']['start_cpu_seconds']['median']:.2f} CPU-s; transform "
            f"{size['transform']['events_per_cpu_second']['median']:,.0f} events/CPU-s"
        )
        measured.append(size)
    return section(measured), problems


def main(argv: list[str]) -> int:
    config, events, now = argv
    print(json.dumps(probe(Path(config), Path(events), float(now))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
