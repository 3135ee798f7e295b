"""The JSON decoder and the decode stage's error, compiled with the hot path (setup.py).

`decode_json` runs once per record; interpreted, its frame cost ~1,000 instructions beside
orjson's parse, so it lives here rather than in `worker/decode.py` (which cannot be compiled:
tests subclass its schema-registry client). `worker.decode` re-exports both names: import them
from there.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from worker import reasons

_loads: Final = orjson.loads
_JSONDecodeError: Final = orjson.JSONDecodeError


class DecodeError(Exception):
    """A record value that cannot be decoded into an event.

    `reason` is a decode-stage code of `worker.reasons`, `message` says what is wrong for humans.
    `retryable` is True when the record may be fine and the fault is in the infrastructure
    (``schema_registry_unavailable``): retry later instead of dead-lettering.
    """

    def __init__(self, reason: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.retryable = retryable


_TYPE_NAMES: Final[dict[type, str]] = {
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
}


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def decode_json(value: bytes | None) -> dict[str, Any]:
    """Decode a JSON record value; it must hold an object."""
    if not value:
        raise DecodeError(reasons.EMPTY_VALUE, "the record has no value (tombstone or empty)")
    try:
        event = _loads(value)
    except _JSONDecodeError as error:
        raise DecodeError(reasons.INVALID_JSON, f"the value is not valid JSON: {error}") from None
    if type(event) is not dict:
        raise DecodeError(
            reasons.NOT_AN_OBJECT, f"expected a JSON object, got {json_type_name(event)}"
        )
    return event
