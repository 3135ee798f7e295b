"""The one exception of the mapping stage: raised deep inside, turned into `Invalid` at the top.

Its message ends up in the dead-letter headers (`capi.dlq.message`), in `transform`'s output
and in `dlq inspect`: never an access token and never unhashed personal data. Messages name the
field and what is wrong; a value from the event is quoted only through `shown`.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any


class InvalidEvent(Exception):
    """The event cannot be sent: `reason` is a code from `reasons`, `message` says what to fix."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# What personal data looks like when a producer puts it in a field we quote (an email address
# as the revenue, a phone number as the timestamp). Deliberately broad: a quoted value is only
# a convenience. Names and street addresses cannot be told from other text, so the fields that
# hold them (traits, user data) are never quoted at all.
_EMAIL = re.compile(r"[^\s@]@[^\s@]")
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_IPV6 = re.compile(r"[0-9A-Fa-f]{0,4}::[0-9A-Fa-f:.]*|(?:[0-9A-Fa-f]{1,4}:){4,7}[0-9A-Fa-f]{1,4}")
_DIGIT_RUN = re.compile(r"\+?\(?\d[\d\s().\-/]*\d")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PHONE_MIN_DIGITS = 7
_LOOKAHEAD = 16  # characters past the cut that are checked too, so a cut value cannot leak

_BOUNDED = reprlib.Repr()
_BOUNDED.maxlevel = 3
_BOUNDED.maxstring = _BOUNDED.maxother = _BOUNDED.maxlong = 100
_BOUNDED.maxlist = _BOUNDED.maxtuple = _BOUNDED.maxdict = _BOUNDED.maxset = 6


def looks_personal(text: str) -> str | None:
    """What `text` looks like when it may be personal data ("an email address"...), else None.

    A run of 7 or more digits (with spaces, dashes, dots, slashes, parentheses, a leading +)
    counts as a phone number, unless it starts with an ISO date (an unreadable timestamp).
    """
    if "@" in text and _EMAIL.search(text):
        return "an email address"
    if _IPV4.search(text) or (":" in text and _IPV6.search(text)):
        return "an IP address"
    for run in _DIGIT_RUN.finditer(text):
        digits = sum(c.isdigit() for c in run.group())
        if digits >= _PHONE_MIN_DIGITS and not _ISO_DATE.match(run.group()):
            return "a phone number"
    return None


def shown(value: Any, limit: int, *, quoted: bool = True) -> str:
    """A value from the event as an error message may quote it: short and never personal data.

    Text is cut to `limit` characters (quoted with repr unless `quoted` is False), as are
    numbers, booleans and null; objects and lists are summarised with bounded depth and length
    (their full text can be megabytes, or nested too deep to print). Anything that looks like an
    email address, a phone number or an IP address is not shown at all.
    """
    if isinstance(value, int) and value.bit_length() > 256:  # str() raises past 4300 digits
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    if isinstance(value, str | int | float | bool) or value is None:
        text = str(value)[: limit + _LOOKAHEAD]
    else:
        text = _BOUNDED.repr(value)[: limit + _LOOKAHEAD]
    kind = looks_personal(text)
    if kind is not None:
        return f"<not shown: looks like {kind}>"
    return repr(text[:limit]) if quoted else text[:limit]
