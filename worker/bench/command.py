"""`capi-worker bench`: parse the flags, run the parts asked for, print and save the figures.

    capi-worker bench [--runs 3] [--seed 1] [--events 500000]
                      [--only mapping|destinations|e2e|latency|scaling] [--quick] [--out FILE]
    capi-worker bench --only soak [--events 1000000] [--poison-ratio 0.01] [--no-faults] ...

Parts, in this order: `mapping` (the mapping stage in process), `destinations` (the mapping
stage and `transform` with 1 to 10,000 destinations, worker/bench/destinations.py), `e2e` (one
worker draining a pre-produced topic), `scaling` (1 and N worker processes), `latency` (steady
produce rate). The last three share one embedded broker and one Graph API emulator, each in
its own process. `soak` (soak.py: a long run with poison records and Graph faults, checked
record by record) runs only when asked for, after the others, with its own report.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.compiled import mapping_line

from . import destinations, end_to_end, latency, mapping_stage, scaling, sdk_peer, soak
from .arguments import PARTS, SOAK
from .corpus import Corpus, Mix, summary
from .machine import machine, uptime
from .report import log, print_report, write_report
from .stack import Stack

SOAK_EVENTS = 1_000_000
RESULTS_DIR = Path("bench") / "results"
E2E_TOPIC = "bench.events"

# name: (full default, --quick default)
SIZES: dict[str, tuple[int | float, int | float]] = {
    "runs": (3, 1),
    "events": (500_000, 20_000),
    "mapping_events": (100_000, 5_000),
    "latency_rate": (5_000, 1_000),
    "latency_seconds": (60.0, 5.0),
}


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the sizes the user left unset from the full or the --quick defaults; check them."""
    args.soak_events = args.events if args.events is not None else SOAK_EVENTS
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    parts: list[str] = []
    for item in args.only or PARTS:
        for part in item.split(","):
            part = part.strip()
            if part not in (*PARTS, SOAK):
                raise SystemExit(
                    f"capi-worker bench: unknown part {part!r}; one of {(*PARTS, SOAK)}"
                )
            if part not in parts:
                parts.append(part)
    args.parts = [part for part in PARTS if part in parts]
    args.soak = SOAK in parts
    if args.soak and not 0 <= args.poison_ratio < 1:
        raise SystemExit("capi-worker bench: --poison-ratio must be in [0, 1)")
    positive = ("runs", "events", "mapping_events", "latency_rate", "partitions")
    for name in positive:
        if getattr(args, name) < 1:
            raise SystemExit(f"capi-worker bench: --{name.replace('_', '-')} must be >= 1")
    if args.latency_seconds <= 0 or args.scaling_processes < 2:
        raise SystemExit(
            "capi-worker bench: --latency-seconds must be > 0, --scaling-processes >= 2"
        )
    return args


def consumer_settings(args: argparse.Namespace) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in args.consumer_setting or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"capi-worker bench: --consumer-setting expects KEY=VALUE, got {item}")
        settings[key.strip()] = value.strip()
    return settings


def batching(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {"linger_ms": args.linger_ms, "max_events": args.max_events}
    return {key: value for key, value in chosen.items() if value is not None}


def command_bench(args: argparse.Namespace) -> int:
    args = resolve(args)
    if not args.parts:  # --only soak
        return run_soak_part(args, args.out)
    status = run_parts(args)
    return max(status, run_soak_part(args, None)) if args.soak else status


def run_soak_part(args: argparse.Namespace, out: Path | None) -> int:
    options = argparse.Namespace(
        events=args.soak_events,
        poison_ratio=args.poison_ratio,
        seed=args.seed,
        compression=args.compression,
        no_faults=args.no_faults,
        check_seconds=args.check_seconds,
        max_seconds=args.max_seconds,
        output=out,
        keep_logs=args.keep_logs,
    )
    return soak.run(options)


def run_parts(args: argparse.Namespace) -> int:
    date = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="capi-bench-"))
    report: dict[str, Any] = {
        "date": date.isoformat(timespec="seconds"),
        "command": " ".join(["capi-worker", *sys.argv[1:]]),
        "machine": machine(),
        "uptime_before": uptime(),
        "settings": {
            "parts": args.parts,
            "runs": args.runs,
            "seed": args.seed,
            "quick": args.quick,
            "events": args.events,
            "mapping_events": args.mapping_events,
            "partitions": args.partitions,
            "latency_rate": args.latency_rate,
            "latency_seconds": args.latency_seconds,
            "scaling_processes": args.scaling_processes,
            "batching": batching(args) or "worker defaults",
            "consumer_settings": consumer_settings(args),
            "destinations": 1,
        },
        "problems": [],
    }
    started = time.monotonic()
    report["mapping_build"] = mapping_line()
    log(
        f"bench: parts {', '.join(args.parts)}, {args.runs} run(s) each; {mapping_line()}; "
        f"logs in {workdir}"
    )
    try:
        if "mapping" in args.parts:
            run_mapping_part(args, report)
        if "destinations" in args.parts:
            run_destinations_part(args, report, workdir)
        if {"e2e", "scaling", "latency"} & set(args.parts):
            with Stack(workdir, log=log) as stack:
                if {"e2e", "scaling"} & set(args.parts):
                    run_drain_parts(args, report, stack, workdir)
                if "latency" in args.parts:
                    run_latency_part(args, report, stack, workdir)
    except Exception as error:  # print and save what was measured before it
        report["problems"].append(f"the bench stopped: {type(error).__name__}: {error}")
        log(f"[red]the bench stopped: {type(error).__name__}: {error}[/]")
    finally:
        report["uptime_after"] = uptime()
        report["bench_seconds"] = round(time.monotonic() - started, 1)
    print_report(report)
    path = args.out or RESULTS_DIR / f"bench-{date.strftime('%Y%m%d-%H%M%S')}.json"
    write_report(report, path)
    log(f"results written to {path} ({report['bench_seconds']:.0f}s)")
    if report["problems"] or args.keep_logs:
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if report["problems"] else 0


def run_mapping_part(args: argparse.Namespace, report: dict[str, Any]) -> None:
    now = time.time()
    corpus = Corpus(args.mapping_events, seed=args.seed, now=now, prefix="map")
    records = corpus.records()
    values = [record.value for record in records]
    settings = mapping_stage.bench_settings(batching(args))
    runs = []
    peer_runs = []
    peer = sdk_peer.sdk_available()
    for number in range(1, args.runs + 1):
        run = mapping_stage.run_mapping(values, settings, now)
        log(
            f"mapping run {number}/{args.runs} \\[{mapping_line()}]: "
            f"{run.events_per_cpu_second:,.0f} events per CPU second, "
            f"{run.events_per_second:,.0f} events/s wall ({run.events:,} events)"
        )
        runs.append(run)
        if peer:  # interleaved with the mapping runs: both see the same machine load
            peer_run = sdk_peer.run_sdk(values, now)
            log(
                f"Meta SDK peer run {number}/{args.runs}: "
                f"{peer_run.events_per_cpu_second:,.0f} events per CPU second"
            )
            peer_runs.append(peer_run)
    section = mapping_stage.section(runs)
    if peer_runs:
        section["sdk_peer"] = sdk_peer.section(peer_runs, runs)
    section["corpus"] = summary(corpus, records)
    expected = {"mapped": corpus.valid_count}
    if section["outcomes"].get("mapped") != expected["mapped"]:
        report["problems"].append(
            f"mapping: {section['outcomes']} but {corpus.valid_count:,} valid events"
        )
    report["mapping"] = section
    report.setdefault("corpus", section["corpus"])


def run_destinations_part(args: argparse.Namespace, report: dict[str, Any], workdir: Path) -> None:
    now = time.time()
    corpus = Corpus(args.mapping_events, seed=args.seed, now=now, prefix="dest")
    values = [record.value for record in corpus.records()]
    log(f"destinations: {', '.join(f'{n:,}' for n in destinations.SIZES)}, fresh process each")
    section, problems = destinations.run_part(values, now, workdir, args.runs)
    report["destinations"] = section
    report["problems"].extend(f"destinations: {problem}" for problem in problems)


def run_drain_parts(
    args: argparse.Namespace, report: dict[str, Any], stack: Stack, workdir: Path
) -> None:
    corpus = Corpus(args.events, seed=args.seed, now=time.time(), prefix="e2e")
    mix = Mix(corpus)
    log(f"producing {args.events:,} records into {E2E_TOPIC} ({args.partitions} partitions)")
    produced = end_to_end.prepare_topic(
        stack,
        E2E_TOPIC,
        args.partitions,
        ((record.key, record.value, None) for record in map(mix.add, corpus)),
        args.events,
    )
    log(
        f"produced {produced.records:,} records ({produced.bytes / 1e6:.0f} MB) in "
        f"{produced.seconds:.1f}s; per partition {dict(sorted(produced.per_partition.items()))}"
    )
    common: dict[str, Any] = {
        "topic": E2E_TOPIC,
        "partitions": args.partitions,
        "produced": produced,
        "expected_delivered": corpus.valid_count,
        "workdir": workdir,
        "batching": batching(args),
        "consumer": consumer_settings(args),
    }

    def runs_of(processes: int, label: str) -> list[end_to_end.DrainRun]:
        runs = []
        for number in range(1, args.runs + 1):
            run = end_to_end.drain(stack, processes=processes, label=f"{label}{number}", **common)
            log(f"{label} run {number}/{args.runs}: {end_to_end.describe(run)}")
            report["problems"].extend(f"{label} run {number}: {p}" for p in run.problems)
            runs.append(run)
        return runs

    section_info = {
        "events": produced.records,
        "valid_events": corpus.valid_count,
        "partitions": args.partitions,
        "produce_seconds": round(produced.seconds, 1),
        "records_per_partition": {str(p): n for p, n in sorted(produced.per_partition.items())},
        "corpus": mix.as_dict(),
    }
    report["corpus"] = section_info["corpus"]
    single: list[end_to_end.DrainRun] | None = None
    if "e2e" in args.parts:
        single = runs_of(1, "e2e")
        report["end_to_end"] = {**section_info, **end_to_end.section(single)}
    if "scaling" in args.parts:
        reused = single is not None
        by_processes = {1: single if single is not None else runs_of(1, "scaling-1p")}
        by_processes[args.scaling_processes] = runs_of(
            args.scaling_processes, f"scaling-{args.scaling_processes}p"
        )
        report["scaling"] = {**section_info, **scaling.section(by_processes, reused)}


def run_latency_part(
    args: argparse.Namespace, report: dict[str, Any], stack: Stack, workdir: Path
) -> None:
    total = int(args.latency_rate * args.latency_seconds)
    log(f"latency: generating {total:,} records")
    corpus = Corpus(total, seed=args.seed, now=time.time(), prefix="lat")
    records = corpus.records()
    warmup = Corpus(50, seed=args.seed + 1, now=time.time(), prefix="warmup").records()
    runs = []
    for number in range(1, args.runs + 1):
        log(
            f"latency run {number}/{args.runs}: {args.latency_rate:,} records/s for "
            f"{args.latency_seconds:g}s"
        )
        run = latency.latency_run(
            stack,
            records,
            warmup,
            rate=args.latency_rate,
            seconds=args.latency_seconds,
            partitions=args.partitions,
            workdir=workdir,
            label=f"latency{number}",
            batching=batching(args),
            consumer=consumer_settings(args),
        )
        log(f"latency run {number}/{args.runs}: {latency.describe(run)}")
        report["problems"].extend(f"latency run {number}: {p}" for p in run.problems)
        runs.append(run)
    report["latency"] = {**latency.section(runs), "corpus": summary(corpus, records)}
