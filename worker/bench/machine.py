"""The machine a benchmark ran on, and what a process costs: CPU seconds and memory from /proc.

psutil is not a dependency: Linux's /proc answers everything the benchmarks ask.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, Python and kernel versions, load: printed beside the figures."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError), open("/proc/meminfo", encoding="ascii") as info:
        memory = info.readline().split(":", 1)[1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "memory": memory,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def uptime() -> str:
    """`uptime`'s line (load averages), for the record of how busy the machine was."""
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_kib(pid: int) -> int | None:
    """Resident set size of `pid` now, in KiB (None once the process is gone)."""
    return _status_kib(pid, "VmRSS:")


def peak_rss_kib(pid: int) -> int | None:
    """The highest resident set size `pid` has had (VmHWM), in KiB."""
    return _status_kib(pid, "VmHWM:")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time `pid` has used so far (utime + stime of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (IndexError, ValueError):
        return None
