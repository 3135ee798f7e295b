"""Figure 4: the end-to-end run with 1 and with N worker processes in one consumer group.

Kafka's consumer group is how the worker scales: N separate `capi-worker run` processes with
the same configuration share the topic's partitions. The N-process runs drain the same
pre-produced topic as figure 2 (each run in a fresh group); the 1-process figure is figure 2's
runs when they ran in the same invocation, else runs of its own.
"""

from __future__ import annotations

from typing import Any

from .end_to_end import DrainRun, build_of
from .end_to_end import section as drain_section


def section(by_processes: dict[int, list[DrainRun]], reused_single: bool) -> dict[str, Any]:
    summaries = {n: drain_section(runs) for n, runs in sorted(by_processes.items())}
    most = max(summaries)
    single = summaries[1]["events_per_second"]["median"]
    top = summaries[most]["events_per_second"]["median"]
    return {
        "processes": sorted(summaries),
        "mapping_build": build_of([run for runs in by_processes.values() for run in runs]),
        "events_per_second": {str(n): s["events_per_second"] for n, s in summaries.items()},
        "ratio": round(top / single, 2) if single and top else None,
        "cpu_per_million": summaries[most]["worker_cpu_seconds_per_million"],
        "worker_peak_rss_mib": {str(n): s["worker_peak_rss_mib"] for n, s in summaries.items()},
        "single_process_runs_from_end_to_end": reused_single,
        "run_details": {str(n): s["run_details"] for n, s in summaries.items()},
    }
