"""Golden cases: load them, run them through the real `capi-worker transform`, compare.

A case is one YAML file under `cases/`:

    description: what the case pins, in a sentence or two
    now: 1700000000              # the --now of the run (Unix seconds)
    settings: {...}              # one destination's settings (name, pixel_id, access_token are
                                 # filled in when absent); or `destinations: [{...}, {...}]`
    input: {...}                 # the event, any JSON value; or `raw_line: "..."` for a line
                                 # that is not valid JSON
    expected: [...]              # the output lines of `capi-worker transform`, parsed, one per
                                 # destination

Cases that share `now` run in one process: its configuration holds the destinations of all of
them, each input line gives one output line per destination, and each case keeps the lines of
its own destinations (the mapping of one destination never depends on another). Outputs are
compared as canonical JSON, so 3 and 3.0 differ.
Used by tests/e2e/test_golden.py and tests/golden/regenerate.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GOLDEN_DIR = Path(__file__).resolve().parent
CASES_DIR = GOLDEN_DIR / "cases"
REPO_ROOT = GOLDEN_DIR.parent.parent

DEFAULT_PIXEL_ID = "1234567890"
DEFAULT_ACCESS_TOKEN = "golden-access-token"
KAFKA_SECTION = {
    "bootstrap_servers": "localhost:9092",
    "topics": ["events"],
    "dead_letter_topic": "events-dead-letters",
}
CASE_KEYS = frozenset(
    {"description", "now", "settings", "destinations", "input", "raw_line", "expected"}
)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps date-like scalars as strings: events carry ISO-8601 text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class CaseError(Exception):
    """A case file that does not follow the format above."""


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    now: float
    destinations: list[dict[str, Any]]
    line: bytes
    expected: list[Any]


def canonical(value: Any) -> str:
    """Sorted-key JSON: equal for equal outputs, and 3 is not 3.0."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def load_case(path: Path) -> Case:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    name = path.stem
    if not isinstance(data, dict):
        raise CaseError(f"{name}: the file must hold a mapping")
    unknown = set(data) - CASE_KEYS
    if unknown:
        raise CaseError(f"{name}: unknown keys {sorted(unknown)}")
    if not isinstance(data.get("description"), str) or not data["description"].strip():
        raise CaseError(f"{name}: `description` is required")
    now = data.get("now")
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise CaseError(f"{name}: `now` must be a number (Unix seconds)")
    if ("settings" in data) == ("destinations" in data):
        raise CaseError(f"{name}: give exactly one of `settings` and `destinations`")
    destinations = data["destinations"] if "destinations" in data else [data["settings"] or {}]
    if not isinstance(destinations, list) or not all(isinstance(d, dict) for d in destinations):
        raise CaseError(f"{name}: settings must be a mapping (destinations a list of them)")
    filled = [
        {
            "name": f"golden-{index}",
            "pixel_id": DEFAULT_PIXEL_ID,
            "access_token": DEFAULT_ACCESS_TOKEN,
            **destination,
        }
        for index, destination in enumerate(destinations)
    ]
    if ("input" in data) == ("raw_line" in data):
        raise CaseError(f"{name}: give exactly one of `input` and `raw_line`")
    if "raw_line" in data:
        if not isinstance(data["raw_line"], str):
            raise CaseError(f"{name}: `raw_line` must be a string")
        line = data["raw_line"].encode("utf-8")
    else:
        line = json.dumps(data["input"], ensure_ascii=False, allow_nan=False).encode("utf-8")
    if b"\n" in line or b"\r" in line or not line.strip():
        raise CaseError(f"{name}: the input must be one non-blank line")
    expected = data.get("expected")
    if expected is None:
        expected = []
    if not isinstance(expected, list):
        raise CaseError(f"{name}: `expected` must be a list of output lines")
    return Case(name, path, float(now), filled, line, expected)


def load_cases(names: Iterable[str] = ()) -> list[Case]:
    """Every case, sorted by name (only `names` when given)."""
    wanted = set(names)
    paths = sorted(CASES_DIR.glob("*.yaml"))
    cases = [load_case(path) for path in paths if not wanted or path.stem in wanted]
    missing = wanted - {case.name for case in cases}
    if missing:
        raise CaseError(f"no such case: {', '.join(sorted(missing))}")
    return cases


def transform_command() -> list[str]:
    """The installed `capi-worker` next to this interpreter, else `python -m worker.cli`."""
    script = Path(sys.executable).parent / "capi-worker"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "transform"]
    return [sys.executable, "-m", "worker.cli", "transform"]


def _run_group(cases: list[Case], workdir: Path, index: int) -> dict[str, list[Any]]:
    """Run cases sharing `now` in one process whose config holds every distinct destination
    list of the group; each input line then gives one output line per configured destination,
    and a case keeps the lines of its own destinations (mapping is per destination)."""
    slots: dict[str, tuple[int, int]] = {}
    destinations: list[dict[str, Any]] = []
    for case in cases:
        key = json.dumps(case.destinations, sort_keys=True)
        if key not in slots:
            slots[key] = (len(destinations), len(destinations) + len(case.destinations))
            destinations.extend(
                {**destination, "name": f"{len(slots)}-{destination['name']}"}
                for destination in case.destinations
            )
    config = workdir / f"config-{index}.yaml"
    config.write_text(
        yaml.safe_dump({"kafka": KAFKA_SECTION, "destinations": destinations}), encoding="utf-8"
    )
    stdin = b"".join(case.line + b"\n" for case in cases)
    # --show-unrouted: one line per (input line, destination), whatever the routing says.
    command = [
        *transform_command(),
        "--config",
        str(config),
        "--now",
        repr(cases[0].now),
        "--show-unrouted",
    ]
    done = subprocess.run(
        command, input=stdin, capture_output=True, timeout=120, cwd=REPO_ROOT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"`capi-worker transform` exited {done.returncode}:\n"
            + done.stderr.decode(errors="replace")
        )
    lines = done.stdout.splitlines()
    width = len(destinations)
    if len(lines) != width * len(cases):
        raise RuntimeError(
            f"expected {width * len(cases)} output lines, got {len(lines)}:\n"
            + done.stdout.decode(errors="replace")[:2000]
        )
    results: dict[str, list[Any]] = {}
    for row, case in enumerate(cases):
        first, last = slots[json.dumps(case.destinations, sort_keys=True)]
        own = lines[row * width + first : row * width + last]
        results[case.name] = [json.loads(line) for line in own]
    return results


def run_cases(cases: list[Case]) -> dict[str, list[Any]]:
    """Case name -> the parsed output lines of `capi-worker transform` for its input.

    One process per distinct `now` (normally one in all), run in parallel.
    """
    groups: dict[float, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.now, []).append(case)
    results: dict[str, list[Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="golden-") as tmp,
        ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool,
    ):
        futures = [
            pool.submit(_run_group, group, Path(tmp), index)
            for index, group in enumerate(groups.values())
        ]
        for future in futures:
            results.update(future.result())
    return results


def diff_text(expected: Any, actual: Any) -> str:
    """A unified diff of the two outputs as indented, sorted JSON."""
    import difflib

    def lines(value: Any) -> list[str]:
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False).splitlines()

    return "\n".join(
        difflib.unified_diff(lines(expected), lines(actual), "expected", "actual", lineterm="")
    )
