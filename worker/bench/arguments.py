"""The flags of `capi-worker bench`, apart from the bench itself: every command of the CLI
builds its parser, and importing the bench (its broker, emulator, corpus and report modules)
would cost every `capi-worker run` start-up about 0.1 CPU second."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

PARTS = ("mapping", "destinations", "e2e", "scaling", "latency")
SOAK = "soak"  # never a default part
DESCRIPTION = (
    "`capi-worker bench`: parse the flags, run the parts asked for, print and save the figures."
)


def add_bench_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark: mapping stage, end to end, latency, scaling",
        description=DESCRIPTION,
    )
    bench.add_argument("--runs", type=int, help="runs per figure; the median is reported (3)")
    bench.add_argument("--seed", type=int, default=1, help="seeds the corpus (1)")
    bench.add_argument(
        "--events", type=int, help="records for end to end and scaling (500000; soak: 1000000)"
    )
    bench.add_argument("--mapping-events", type=int, help="records for the mapping stage (100000)")
    bench.add_argument("--partitions", type=int, default=4, help="source topic partitions (4)")
    bench.add_argument("--latency-rate", type=int, help="records/s for the latency run (5000)")
    bench.add_argument("--latency-seconds", type=float, help="length of the latency run (60)")
    bench.add_argument(
        "--scaling-processes", type=int, default=2, help="worker processes to compare with 1 (2)"
    )
    bench.add_argument("--linger-ms", type=int, help="batching.linger_ms (worker default 200)")
    bench.add_argument("--max-events", type=int, help="batching.max_events (worker default 1000)")
    bench.add_argument(
        "--consumer-setting",
        action="append",
        metavar="KEY=VALUE",
        help="a librdkafka setting for the workers' consumer (kafka.consumer), e.g. "
        "fetch.wait.max.ms=50; repeatable",
    )
    bench.add_argument(
        "--only",
        action="append",
        metavar="PART",
        help=f"run only these parts ({', '.join(PARTS)}); repeat or separate with commas",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one run: a smoke test (explicit sizes still win)",
    )
    bench.add_argument("--out", type=Path, help="JSON file (bench/results/bench-<time>.json)")
    soak_options = bench.add_argument_group("soak (--only soak)")
    soak_options.add_argument(
        "--poison-ratio", type=float, default=0.01, help="share of poison records (0.01)"
    )
    soak_options.add_argument("--compression", choices=["lz4", "none"], default="lz4")
    soak_options.add_argument("--no-faults", action="store_true", help="inject no Graph faults")
    soak_options.add_argument(
        "--check-seconds", type=float, default=3.0, help="committed-offset poll (3)"
    )
    soak_options.add_argument(
        "--max-seconds", type=float, default=7200.0, help="give up after this (7200)"
    )
    bench.add_argument("--keep-logs", action="store_true", help="keep broker/emulator/worker logs")
    bench.set_defaults(handler=_command_bench)


def _command_bench(args: argparse.Namespace) -> int:
    from .command import command_bench

    return command_bench(args)
