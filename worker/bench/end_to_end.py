"""Figure 2 (and the runs behind figure 4): the real worker draining a pre-produced topic.

The records are produced once, before any clock starts, into a topic of several partitions;
the true end offset of every partition comes from the delivery reports (Tansu answers too low
a high watermark). Each run then starts N `capi-worker run` processes in a fresh consumer
group (so from offset 0) and stops the clock when the group's committed offsets reach the end
of every partition. Measured per run:

* events/s: records in the topic / wall seconds from starting the worker(s) to all committed
  (start-up, the group join and the last commit interval included, as an operator sees it);
* worker CPU seconds per million events: utime + stime of the worker processes
  (/proc/<pid>/stat) when the last offset is committed, start-up included;
* peak RSS: the highest VmHWM of the worker processes;
* emulator and broker CPU seconds spent during the run, to tell where a limit comes from.

A run counts only if the emulator accepted every valid event (unique event ids) and each
worker exits 0 on SIGTERM; otherwise its problem is reported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .kafka_io import CommitWatcher, Produced, produce_records, tail_check
from .machine import cpu_seconds, peak_rss_kib
from .report import log
from .stack import BENCH_PIXEL, Stack, start_worker, stop_workers, worker_mapping_build

DEAD_LETTER_TOPIC = "bench.dlq"


@dataclass
class DrainRun:
    """One run: N worker processes from offset 0 to every offset committed."""

    processes: int
    records: int
    expected_delivered: int
    wall_seconds: float | None = None
    startup_seconds: float | None = None
    worker_cpu_seconds: float | None = None
    worker_peak_rss_kib: int | None = None
    emulator_cpu_seconds: float | None = None
    broker_cpu_seconds: float | None = None
    emulator_peak_rss_kib: int | None = None
    delivered_unique: int = 0
    duplicates_sent: int = 0
    requests: int = 0
    exit_codes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # `compiled` / `pure Python`: what every worker of the run logged at start-up
    mapping_build: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.wall_seconds is not None

    @property
    def events_per_second(self) -> float | None:
        return self.records / self.wall_seconds if self.ok and self.wall_seconds else None

    @property
    def delivered_per_worker_cpu_second(self) -> float | None:
        """Events the emulator accepted per second of worker CPU (the worker processes only)."""
        if not self.ok or not self.worker_cpu_seconds:
            return None
        return self.delivered_unique / self.worker_cpu_seconds

    def per_million(self, seconds: float | None) -> float | None:
        if seconds is None or not self.ok or not self.records:
            return None
        return seconds / self.records * 1e6

    def as_dict(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "mapping_build": self.mapping_build,
            "records": self.records,
            "wall_seconds": _round(self.wall_seconds, 2),
            "startup_seconds": _round(self.startup_seconds, 2),
            "events_per_second": _round(self.events_per_second, 1),
            "worker_cpu_seconds": _round(self.worker_cpu_seconds, 2),
            "worker_cpu_seconds_per_million": _round(self.per_million(self.worker_cpu_seconds), 2),
            "worker_peak_rss_mib": _mib(self.worker_peak_rss_kib),
            "emulator_cpu_seconds": _round(self.emulator_cpu_seconds, 2),
            "broker_cpu_seconds": _round(self.broker_cpu_seconds, 2),
            "emulator_peak_rss_mib": _mib(self.emulator_peak_rss_kib),
            "delivered_unique": self.delivered_unique,
            "expected_delivered": self.expected_delivered,
            "duplicates_sent": self.duplicates_sent,
            "requests": self.requests,
            "mean_batch": round(self.delivered_unique / self.requests, 1)
            if self.requests
            else None,
            "exit_codes": self.exit_codes,
            "problems": self.problems,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def prepare_topic(
    stack: Stack, topic: str, partitions: int, records: Any, expected: int
) -> Produced:
    """Create `topic` and produce `records` ((key, value, partition) triples) into it."""
    stack.create_topics({topic: partitions, DEAD_LETTER_TOPIC: 1})
    produced = produce_records(
        stack.bootstrap,
        topic,
        records,
        progress=lambda n: log(f"produced {n:,} of {expected:,} records"),
    )
    if produced.errors:
        raise RuntimeError(f"producing to {topic} failed: {produced.errors}")
    true_ends = tail_check(stack.bootstrap, topic, partitions, produced.ends)
    if true_ends != {p: produced.ends.get(p, 0) for p in range(partitions)}:
        raise RuntimeError(f"end offsets: delivery reports {produced.ends}, read {true_ends}")
    produced.ends = true_ends
    return produced


def drain(
    stack: Stack,
    *,
    topic: str,
    partitions: int,
    produced: Produced,
    expected_delivered: int,
    processes: int,
    workdir: Path,
    label: str,
    batching: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
    check_seconds: float = 0.2,
    max_seconds: float = 3600.0,
) -> DrainRun:
    """Start `processes` workers in a new group; stop the clock once every offset is committed."""
    run = DrainRun(
        processes=processes, records=produced.records, expected_delivered=expected_delivered
    )
    group, config = stack.new_run(
        label, topic, DEAD_LETTER_TOPIC, batching=batching, consumer=consumer
    )
    client = stack.client()
    watcher = CommitWatcher(stack.bootstrap, group, topic, partitions)
    emulator_cpu = cpu_seconds(stack.emulator_pid)
    broker_cpu = cpu_seconds(stack.broker_pid)
    started = time.monotonic()
    workers = [start_worker(config, workdir, f"{label}-worker{n}") for n in range(processes)]
    try:
        last_report = started
        while True:
            time.sleep(check_seconds)
            now = time.monotonic()
            exited = [w.returncode for w in workers if w.poll() is not None]
            if exited:
                run.problems.append(f"a worker exited on its own with code {exited[0]}")
                break
            offsets = watcher.committed()
            done = sum(max(offsets.get(p, 0), 0) for p in range(partitions))
            if run.startup_seconds is None and done > 0:
                run.startup_seconds = now - started
            if watcher.reached(produced.ends, offsets):
                run.wall_seconds = now - started
                cpu = [cpu_seconds(w.pid) for w in workers]
                rss = [peak_rss_kib(w.pid) for w in workers]
                run.worker_cpu_seconds = sum(c for c in cpu if c is not None)
                run.worker_peak_rss_kib = max((r for r in rss if r is not None), default=None)
                break
            if now - last_report >= 15:
                last_report = now
                log(
                    f"  {label}: {now - started:5.0f}s committed {done:,}/{produced.records:,} "
                    f"({done / (now - started):,.0f} events/s)"
                )
            if now - started > max_seconds:
                run.problems.append(f"gave up after {max_seconds:.0f}s: committed {offsets}")
                break
        emulator_after, broker_after = (
            cpu_seconds(stack.emulator_pid),
            cpu_seconds(stack.broker_pid),
        )
        if emulator_cpu is not None and emulator_after is not None:
            run.emulator_cpu_seconds = emulator_after - emulator_cpu
        if broker_cpu is not None and broker_after is not None:
            run.broker_cpu_seconds = broker_after - broker_cpu
    finally:
        run.exit_codes = stop_workers(workers, log=log)
        watcher.close()
    builds = {worker_mapping_build(workdir, f"{label}-worker{n}") for n in range(processes)}
    run.mapping_build = builds.pop() if len(builds) == 1 else "mixed"
    run.emulator_peak_rss_kib = peak_rss_kib(stack.emulator_pid)
    seen = client.received(BENCH_PIXEL, events=False)["pixels"][BENCH_PIXEL]
    run.delivered_unique = int(seen["unique_events"])
    run.duplicates_sent = sum(count - 1 for count in seen["duplicates"].values())
    run.requests = int(seen["requests"])
    if run.delivered_unique != expected_delivered:
        run.problems.append(
            f"the emulator accepted {run.delivered_unique:,} unique events, "
            f"expected {expected_delivered:,}"
        )
    if any(code != 0 for code in run.exit_codes):
        run.problems.append(f"worker exit codes after SIGTERM: {run.exit_codes}")
    return run


def describe(run: DrainRun) -> str:
    if not run.ok:
        return f"[red]failed[/]: {'; '.join(run.problems)}"
    return (
        f"\\[mapping: {run.mapping_build}] "  # escaped: not rich markup
        f"{run.events_per_second:,.0f} events/s, {run.wall_seconds:.1f}s wall "
        f"(start-up {run.startup_seconds or 0:.1f}s), worker CPU {run.worker_cpu_seconds:.1f}s, "
        f"peak RSS {_mib(run.worker_peak_rss_kib)} MiB, emulator CPU "
        f"{run.emulator_cpu_seconds or 0:.1f}s, broker CPU {run.broker_cpu_seconds or 0:.1f}s"
    )


def build_of(runs: Sequence[Any]) -> str:
    """The mapping build the runs' workers logged: one of them, or `mixed` / `unknown`."""
    builds = {run.mapping_build for run in runs}
    if len(builds) != 1:
        return "mixed"
    return builds.pop() or "unknown"


def section(runs: list[DrainRun]) -> dict[str, Any]:
    """The figures of several drain runs, summarised (median, min, max)."""
    from .report import summarise

    return {
        "processes": runs[0].processes,
        "events_per_second": summarise([run.events_per_second for run in runs], 0),
        "wall_seconds": summarise([run.wall_seconds if run.ok else None for run in runs], 2),
        "startup_seconds": summarise([run.startup_seconds for run in runs], 2),
        "worker_cpu_seconds_per_million": summarise(
            [run.per_million(run.worker_cpu_seconds) for run in runs], 2
        ),
        "delivered_per_worker_cpu_second": summarise(
            [run.delivered_per_worker_cpu_second for run in runs], 0
        ),
        "mapping_build": build_of(runs),
        "worker_peak_rss_mib": summarise([_mib(run.worker_peak_rss_kib) for run in runs], 1),
        "emulator_cpu_seconds_per_million": summarise(
            [run.per_million(run.emulator_cpu_seconds) for run in runs], 2
        ),
        "broker_cpu_seconds_per_million": summarise(
            [run.per_million(run.broker_cpu_seconds) for run in runs], 2
        ),
        "run_details": [run.as_dict() for run in runs],
    }
