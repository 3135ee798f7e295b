"""event_time parsing: ISO-8601 with offsets and fractions, epoch seconds or milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.capi.rules import max_event_age_seconds as max_age_seconds
from worker.mapping.timefields import (
    HOUR_CACHE_SIZE,
    _hour_ms,
    _usual_iso_ms,
    parse_timestamp_ms,
)

T = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    "value",
    [
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20z",
        "2023-11-14T22:13:20.000Z",
        "2023-11-14T22:13:20+00:00",
        "2023-11-14T23:13:20+01:00",
        "2023-11-14T23:13:20+0100",
        "2023-11-14T17:13:20-05:00",
        "2023-11-14 22:13:20",
        "2023-11-14T22:13:20",
        " 2023-11-14T22:13:20Z ",
    ],
)
def test_iso_8601_timestamps_are_read_with_their_offset(value: str) -> None:
    assert parse_timestamp_ms(value) == T * 1000


def test_iso_fractions_of_any_length_keep_milliseconds() -> None:
    assert parse_timestamp_ms("2023-11-14T22:13:20.123Z") == T * 1000 + 123
    assert parse_timestamp_ms("2023-11-14T22:13:20.123456789Z") == T * 1000 + 123
    assert parse_timestamp_ms("2023-11-14T22:13:20.5+00:00") == T * 1000 + 500


def test_timestamp_without_offset_is_utc() -> None:
    assert parse_timestamp_ms("2023-11-14T22:13:20") == parse_timestamp_ms("2023-11-14T22:13:20Z")


@pytest.mark.parametrize("value", [T, float(T), str(T), f"{T}.0"])
def test_epoch_seconds_as_number_or_numeric_string(value: Any) -> None:
    assert parse_timestamp_ms(value) == T * 1000


@pytest.mark.parametrize("value", [T * 1000 + 7, str(T * 1000 + 7), float(T * 1000 + 7)])
def test_epoch_milliseconds_as_number_or_numeric_string(value: Any) -> None:
    assert parse_timestamp_ms(value) == T * 1000 + 7


def test_fractional_epoch_seconds_keep_milliseconds() -> None:
    assert parse_timestamp_ms(T + 0.25) == T * 1000 + 250


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "yesterday",
        "2023-13-01T00:00:00Z",
        "2023-11-14T25:00:00Z",
        "nan",
        "inf",
        float("nan"),
        float("inf"),
        True,
        [T],
        {"t": T},
    ],
)
def test_unreadable_timestamps_give_none(value: Any) -> None:
    assert parse_timestamp_ms(value) is None


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0667\u0660\u0660" * 3, "9" * 20, "9" * 5000])
def test_digit_strings_that_are_not_ascii_or_too_long_give_none(value: str) -> None:
    # int() reads other scripts' digits, raises on "²" and on strings of over 4300 digits.
    assert parse_timestamp_ms(value) is None


def test_physical_store_events_may_be_62_days_old_others_7() -> None:
    assert max_age_seconds("physical_store") == 62 * 86_400
    assert max_age_seconds("website") == 7 * 86_400


# The usual Segment/RudderStack shape takes a path without datetime (minutes, seconds and
# milliseconds read directly, the date and hour cached): it must read exactly what
# datetime.fromisoformat reads, and leave every other text to it.
def _by_fromisoformat(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    millis=st.booleans(),
)
def test_usual_iso_shape_reads_what_fromisoformat_reads(moment: datetime, millis: bool) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    text += f".{moment.microsecond // 1000:03d}Z" if millis else "Z"
    assert _usual_iso_ms(text) == _by_fromisoformat(text) == parse_timestamp_ms(text)
    assert parse_timestamp_ms(text) == parse_timestamp_ms(text)  # from the hour cache too


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14T22:13:60Z",
        "2023-11-14T22:60:20Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T24:13:20Z",
        "2023-02-29T22:13:20Z",
        "2024-02-29T22:13:20Z",
        "2023-11-14T22:1a:20Z",
        "2023-11-14T22:13:2٣Z",
        "2023-11-14T22:13:20.12Z",
        "2023-11-14T22:13:20.1234Z",
        "2023-11-14T22:13:20.12aZ",
        "2023-11-14T22:13:20,123Z",
        "2023-11-14 22:13:20.123Z",
        "2023-11-14T22:13:20.123+",
        "2023-W46-2T22:13:20Z",
        "2023-11-1aT22:13:20Z",
        "2023-11-14T2a:13:20Z",
    ],
)
def test_near_misses_of_the_usual_shape_read_as_fromisoformat_reads(text: str) -> None:
    assert parse_timestamp_ms(text) == _by_fromisoformat(text)
    assert parse_timestamp_ms(text) == _by_fromisoformat(text)  # hour cache filled


def test_hour_cache_is_bounded() -> None:
    base = datetime(2000, 1, 1, tzinfo=UTC)
    for hour in range(HOUR_CACHE_SIZE + 10):
        moment = base + timedelta(hours=hour, minutes=7, seconds=9)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.042Z")
        assert parse_timestamp_ms(text) == _by_fromisoformat(text)
    assert len(_hour_ms) <= HOUR_CACHE_SIZE
