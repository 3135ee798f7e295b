"""Dead-letter headers as the worker writes them, built without a broker."""

from __future__ import annotations

from typing import Any

from worker.stream.dead_letter import NOTHING_OMITTED, DeadLetterCopy, DeadLetterReason

Headers = list[tuple[str, str | bytes | None]]


def dead_letter_headers(source: Any, why: DeadLetterReason, now: float) -> Headers:
    """The source record's own headers, then ours (`capi.dlq.*`), in a stable order."""
    return DeadLetterCopy.of(source).headers(why, now, NOTHING_OMITTED)
