"""Golden files: every case of tests/golden/cases through the real `capi-worker transform`.

Each case is an input line and a destination's settings; its `expected` holds the exact output
lines. Cases sharing settings run in one process. After an intentional mapping change, review
and rewrite the expectations with `.venv/bin/python tests/golden/regenerate.py`.
"""

from __future__ import annotations

from tests.golden.runner import canonical, diff_text, load_cases, run_cases

MIN_CASES = 40


def test_every_golden_case_gives_its_expected_output_lines() -> None:
    cases = load_cases()
    assert len(cases) >= MIN_CASES, f"only {len(cases)} golden cases"
    outputs = run_cases(cases)

    mismatches: list[str] = []
    for case in cases:
        actual = outputs[case.name]
        if not case.expected:
            mismatches.append(f"{case.name}: no `expected` yet (run tests/golden/regenerate.py)")
        elif canonical(actual) != canonical(case.expected):
            mismatches.append(f"{case.name}:\n{diff_text(case.expected, actual)}")
    assert not mismatches, (
        f"{len(mismatches)} of {len(cases)} golden cases differ "
        "(if intended: tests/golden/regenerate.py, then review the diff):\n\n"
        + "\n\n".join(mismatches)
    )
