"""`event_time` from a Segment/RudderStack timestamp: ISO-8601 or epoch (s or ms) to Unix time.

Numbers and numeric strings take a fast path without datetime; ISO-8601 strings go through the
C-implemented `datetime.fromisoformat` (Python 3.11 reads 'Z', offsets with or without a colon,
and fractions of any length). A time without an offset is UTC, never the host's local time.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_PER_DAY: Final = 86_400

# Epoch values at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
MILLISECONDS_THRESHOLD: Final = 100_000_000_000
# A numeric string longer than this is no epoch time (2**63 has 19 digits).
MAX_EPOCH_DIGITS: Final = 19


def _epoch_number_to_ms(number: float) -> int | None:
    if not math.isfinite(number):
        return None
    if abs(number) >= MILLISECONDS_THRESHOLD:
        return int(number)
    return int(number * 1000)


def parse_timestamp_ms(value: Any) -> int | None:
    """Unix time in milliseconds, or None when `value` is not a readable timestamp."""
    if type(value) is not str:  # ISO-8601 text is the common case: no failing isinstance()
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value if value >= MILLISECONDS_THRESHOLD else value * 1000
        if isinstance(value, float):
            return _epoch_number_to_ms(value)
        if not isinstance(value, str):
            return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        # Only ASCII digits, and no more than a 64-bit integer has: `int()` reads other scripts'
        # digits (Arabic-Indic ones, say) and raises on strings of over 4300 digits.
        if not text.isascii() or len(text) > MAX_EPOCH_DIGITS:
            return None
        number = int(text)  # as an int, never through a float: no digit is lost
        return number if number >= MILLISECONDS_THRESHOLD else number * 1000
    first = text[0]
    if len(text) < 10 or text[4] != "-":
        # Not a date: perhaps a signed or fractional epoch number ("1700000000.5").
        if first.isdigit() or first in "+-.":
            try:
                return _epoch_number_to_ms(float(text))
            except ValueError:
                return None
        return None
    if text[-1] == "z":
        text = text[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Whole milliseconds from the timedelta's parts (seconds and microseconds are never
    # negative): the same floor as `// timedelta(milliseconds=1)`, which costs ~2,600
    # instructions in C (it goes through Python ints of microseconds).
    since_epoch = moment - _EPOCH
    seconds = since_epoch.days * _SECONDS_PER_DAY + since_epoch.seconds
    return seconds * 1000 + since_epoch.microseconds // 1000
