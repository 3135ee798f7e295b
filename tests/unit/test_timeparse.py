import pytest

from worker.tools.timeparse import parse_time

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-15T08:00:00Z", 1_800_000_000.0),
        ("1799990000", 1_799_990_000.0),
        ("90m", NOW - 5400),
        ("6h", NOW - 21_600),
        ("7d", NOW - 604_800),
        ("2027-01-15T09:00:00+01:00", 1_800_000_000.0),
    ],
)
def test_times_are_read_in_every_accepted_form(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == expected


def test_a_naive_iso_time_is_utc() -> None:
    assert parse_time("2027-01-15T08:00:00", NOW) == 1_800_000_000.0


def test_garbage_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("last tuesday", NOW)
