"""`event_time` from a Segment/RudderStack timestamp: ISO-8601 or epoch (s or ms) to Unix time.

Numbers and numeric strings take a fast path without datetime; ISO-8601 strings go through the
C-implemented `datetime.fromisoformat` (Python 3.11 reads 'Z', offsets with or without a colon,
and fractions of any length). A time without an offset is UTC, never the host's local time.
The usual `YYYY-MM-DDTHH:MM:SS(.fff)Z` reads its minutes, seconds and milliseconds directly and
its date and hour from a cache of `fromisoformat` results per hour.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from worker.mapping.build import COMPILED

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
    fast = _usual_iso_ms(text) if COMPILED else None
    return fast if fast is not None else _iso_ms(text)


# "YYYY-MM-DDTHH" -> Unix time in ms of that hour (UTC), from _iso_ms: the date and the hour are
# read once per hour seen, not once per event. Emptied when full.
_hour_ms: Final[dict[str, int]] = {}
HOUR_CACHE_SIZE: Final = 4096


def _usual_iso_ms(text: str) -> int | None:
    """`YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DDTHH:MM:SS.fffZ` (what Segment and RudderStack send)
    without datetime, or None for any other text (or any doubt): `_iso_ms` decides then.

    Minutes, seconds and milliseconds are read here; the date and hour come from `_iso_ms` of
    the hour's start, cached, so every value read is one `datetime.fromisoformat` would read."""
    length = len(text)
    if length == 24:
        if text[19] != "." or text[23] != "Z":
            return None
        # ASCII digits by their code points: no slice and no int() of one (mypyc reads
        # ord(text[i]) straight from the string's buffer).
        digit1 = ord(text[20]) - 48
        digit2 = ord(text[21]) - 48
        digit3 = ord(text[22]) - 48
        if not (0 <= digit1 <= 9 and 0 <= digit2 <= 9 and 0 <= digit3 <= 9):
            return None
        milliseconds = digit1 * 100 + digit2 * 10 + digit3
    elif length == 20 and text[19] == "Z":
        milliseconds = 0
    else:
        return None
    if text[10] != "T" or text[13] != ":" or text[16] != ":":
        return None
    minute1 = ord(text[14]) - 48
    minute2 = ord(text[15]) - 48
    second1 = ord(text[17]) - 48
    second2 = ord(text[18]) - 48
    if not (0 <= minute1 <= 5 and 0 <= minute2 <= 9 and 0 <= second1 <= 5 and 0 <= second2 <= 9):
        return None
    seconds = minute1 * 600 + minute2 * 60 + second1 * 10 + second2
    hour = text[:13]
    start = _hour_ms.get(hour)
    if start is None:
        # Hours past 23 never: Python 3.12+ reads "24:00:00" (only) as the next day's midnight.
        start = _iso_ms(hour + ":00:00Z") if hour[11:13] < "24" else None
        if start is None:
            return None
        if len(_hour_ms) >= HOUR_CACHE_SIZE:
            _hour_ms.clear()
        _hour_ms[hour] = start
    return start + seconds * 1000 + milliseconds


def _iso_ms(text: str) -> int | None:
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
