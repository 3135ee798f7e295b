"""Times on the command line: ISO-8601, Unix seconds, or an age such as `90m`, `6h`, `7d`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_time(text: str, now: float) -> float:
    """Unix seconds for `text`; an age counts back from `now`. ValueError says what is accepted."""
    value = text.strip()
    age = _AGE.match(value.lower())
    if age:
        return now - float(age.group(1)) * _UNIT_SECONDS[age.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO-8601 (2026-11-20T08:00:00Z), Unix seconds, "
            "or an age such as 90m, 6h, 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
