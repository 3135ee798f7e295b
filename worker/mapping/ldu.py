"""Limited Data Use: `data_processing_options` with its country and state.

An event may carry its own choice as `integrations.<name>.dataProcessingOptions` (or, as
RudderStack reads it, `context.dataProcessingOptions`) = `[[options], country, state]`. That
choice is honoured even when the destination's `limited_data_use` is off: it is a privacy
request about this very person. Without one, `limited_data_use: true` adds the settings' defaults.
"""

from __future__ import annotations

from typing import Any

from worker import reasons
from worker.mapping.errors import InvalidEvent, shown
from worker.mapping.plan import DestinationPlan

DataProcessing = tuple[list[str], int | None, int | None]

MAX_CODE = 2**31 - 1
_MAX_CODE_DIGITS = len(str(MAX_CODE))


def data_processing_options(
    options: dict[str, Any], context: dict[str, Any], plan: DestinationPlan
) -> DataProcessing | None:
    """(options, country, state) to send, or None to send no data processing options at all.

    Country and state are None when the options list is empty (explicitly no LDU).
    """
    override = options.get("dataProcessingOptions")
    if override is None:
        override = context.get("dataProcessingOptions")
    if override is not None:
        return _parse_override(override, plan)
    if plan.limited_data_use:
        return list(plan.processing_options), plan.processing_country, plan.processing_state
    return None


def _parse_override(value: Any, plan: DestinationPlan) -> DataProcessing:
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        raise _invalid(value)
    chosen = value[0]
    if not isinstance(chosen, list) or not all(isinstance(item, str) for item in chosen):
        raise _invalid(value)
    if not chosen:
        return [], None, None
    country = _code(value[1]) if len(value) > 1 else plan.processing_country
    state = _code(value[2]) if len(value) > 2 else plan.processing_state
    if country is None or state is None:
        raise _invalid(value)
    return list(chosen), country, state


def _code(value: Any) -> int | None:
    """A country or state code: a non-negative integer (or its ASCII digits) of at most 32 bits.

    Meta's codes are small (1 = USA, 1000 = California); anything else is malformed, and a
    numeric string of many digits must neither raise in `int()` nor make an integer the JSON
    encoder cannot write.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_CODE_DIGITS):
            return None
        value = int(text)
    if isinstance(value, int) and 0 <= value <= MAX_CODE:
        return value
    return None


def _invalid(value: Any) -> InvalidEvent:
    return InvalidEvent(
        reasons.INVALID_DATA_PROCESSING_OPTIONS,
        f"dataProcessingOptions must be [[options], country, state] "
        f"such as [['LDU'], 1, 1000], got {shown(value, 80, quoted=False)}",
    )
