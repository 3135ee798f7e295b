"""Rewrite the `expected` of golden cases from what `capi-worker transform` outputs now.

For reviewing an intentional change of the mapping: run it, read every diff it prints, and
commit the case files only when each change is the one you meant.

    .venv/bin/python tests/golden/regenerate.py                # rewrite every changed case
    .venv/bin/python tests/golden/regenerate.py --check        # print the diffs, write nothing
    .venv/bin/python tests/golden/regenerate.py page_view ...  # only these cases

Only the `expected:` block (the last key of the file) is rewritten; the description, settings
and input above it, comments included, are kept as written. Exits 1 with --check when a case
differs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.golden` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml

from tests.golden.runner import Case, canonical, diff_text, load_cases, run_cases


def expected_block(actual: list[object]) -> str:
    return yaml.safe_dump(
        {"expected": actual}, sort_keys=False, allow_unicode=True, width=100, indent=2
    )


def rewrite(case: Case, actual: list[object]) -> None:
    text = case.path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("expected:")]
    head = "".join(lines[: starts[0]]) if starts else text
    if head and not head.endswith("\n"):
        head += "\n"
    case.path.write_text(head + expected_block(actual), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (file stems); default: all")
    parser.add_argument("--check", action="store_true", help="print the diffs, write nothing")
    args = parser.parse_args(argv)

    cases = load_cases(args.cases)
    outputs = run_cases(cases)
    changed: list[str] = []
    for case in cases:
        actual = outputs[case.name]
        if canonical(actual) == canonical(case.expected):
            continue
        changed.append(case.name)
        print(f"--- {case.name} ({os.path.relpath(case.path)})")
        print(diff_text(case.expected, actual) if case.expected else "(new: no expected yet)")
        if not args.check:
            rewrite(case, actual)
    verb = "differ" if args.check else "rewritten"
    print(f"{len(cases)} cases, {len(changed)} {verb}, {len(cases) - len(changed)} unchanged")
    for name in changed:
        print(f"  {name}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
