"""The reason-code registry: one entry per code, used by every stage, listed by the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker import reasons
from worker.capi.delivery import EventFailure
from worker.config import CircuitBreakerSettings, DecodingSettings
from worker.decode import DecodeError, build_decoder
from worker.mapping.result import Invalid
from worker.pipeline import NOT_ROUTED, REDRIVE_OTHER_DESTINATION, decode_record

DOCS = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"
SECTION = "## Skip and error reasons"


def documented_reasons() -> dict[str, str]:
    """code -> stage cell ("map", "route (skip)"...) of the docs' reason table."""
    text = DOCS.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", len(SECTION))]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for code in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            assert code not in rows, f"{code} is listed twice"
            rows[code] = cells[1]
    return rows


def test_the_docs_reason_table_lists_exactly_the_registry() -> None:
    documented = documented_reasons()
    assert set(documented) == set(reasons.REGISTRY)
    for code, stage_cell in documented.items():
        reason = reasons.REGISTRY[code]
        expected = (
            f"{reason.stage} (skip)"
            if reason.outcome is reasons.Outcome.SKIPPED
            else str(reason.stage)
        )
        assert stage_cell == expected, code


def test_every_code_is_snake_case_and_described() -> None:
    for code, reason in reasons.REGISTRY.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code)
        assert reason.code == code and reason.description


def test_a_code_is_defined_once() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        reasons._define("not_routed", reasons.Stage.ROUTE, reasons.Outcome.SKIPPED, "again")


def test_the_stage_of_an_invalid_result_comes_from_the_registry() -> None:
    assert Invalid(reasons.INVALID_JSON, "x").stage == "decode"
    assert Invalid(reasons.ROUTING_FAILED, "x").stage == "route"
    assert Invalid(reasons.INVALID_VALUE, "x").stage == "map"
    assert Invalid(reasons.UNSERIALIZABLE_EVENT, "x").stage == "map"


def test_decode_failures_carry_registered_decode_codes() -> None:
    decoder = build_decoder(DecodingSettings())
    for value in (None, b"", b"{not json", b"[1, 2]"):
        result = decode_record(decoder, value)
        assert isinstance(result, Invalid)
        assert result.reason in reasons.DECODE_REASONS
        assert result.stage == "decode"
    assert DecodeError(reasons.EMPTY_VALUE, "x").reason in reasons.codes(reasons.Stage.DECODE)


def test_routing_skips_are_registered_route_skips() -> None:
    route_skips = reasons.codes(reasons.Stage.ROUTE, outcome=reasons.Outcome.SKIPPED)
    assert {NOT_ROUTED.reason, REDRIVE_OTHER_DESTINATION.reason} == route_skips


def test_an_internal_delivery_failure_is_a_registered_deliver_code() -> None:
    failure = EventFailure.internal_error(3, "delivery failed: boom")
    assert (failure.index, failure.reason, failure.attempts) == (3, reasons.INTERNAL_ERROR, 0)
    assert reasons.stage_of(failure.reason) == "deliver"


def test_the_breaker_ignores_by_default_what_the_registry_marks() -> None:
    marked = {code for code, reason in reasons.REGISTRY.items() if reason.breaker_ignores}
    assert set(CircuitBreakerSettings().ignore_reasons) == marked
    assert marked == {reasons.INVALID_TOKEN, reasons.PERMISSION_DENIED}
