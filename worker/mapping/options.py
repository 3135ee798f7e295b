"""Per-event switches and options for this destination, from the event's `integrations` object.

Segment and RudderStack read `integrations` as on/off switches (consent managers set them):
`<name>: false` turns the destination off for this event, `All: false` turns every destination
off except those named `true` or with an object. An object also carries per-event options.
"""

from __future__ import annotations

from typing import Any, Final

_NO_OPTIONS: Final[dict[str, Any]] = {}
_ALL: Final = "All"


def integration_options(
    message: dict[str, Any], names: tuple[str, ...], name_set: frozenset[str]
) -> dict[str, Any] | None:
    """`integrations.<name>` for the first of `names` whose value is an object, else `{}`;
    `None` when `integrations` switches this destination off.

    Off: one of `names` is `false`, or `All` is `false` and none of `names` is `true` or an
    object. `integrations.<name>: true` (a plain on switch) carries no options. A value that is
    neither a boolean nor an object switches nothing. The result is shared and must not be
    modified. `name_set`: `names` as a set.
    """
    integrations = message.get("integrations")
    if not integrations or not isinstance(integrations, dict):
        return _NO_OPTIONS
    # Most events name none of `names` ({"All": true}, or no integrations at all).
    if not _names_any(integrations, names, name_set):
        return None if integrations.get(_ALL) is False else _NO_OPTIONS
    options: dict[str, Any] | None = None
    switched_on = False
    for name in names:
        value = integrations.get(name)
        if value is False:
            return None
        if value is True:
            switched_on = True
        elif options is None and isinstance(value, dict):
            options = value
    if options is not None:
        return options
    if not switched_on and integrations.get(_ALL) is False:
        return None
    return _NO_OPTIONS


def _names_any(
    integrations: dict[str, Any], names: tuple[str, ...], name_set: frozenset[str]
) -> bool:
    """Whether `integrations` holds one of `names`: a lookup per key of the smaller side (most
    events carry `{"All": true}`, one key, and a destination has ~6 names). Loops of `in`
    rather than isdisjoint(): native lookups when compiled, no generator when not."""
    if len(integrations) < len(names):
        for key in integrations:  # noqa: SIM110 (any() with a generator is slower uncompiled)
            if key in name_set:
                return True
        return False
    for name in names:  # noqa: SIM110
        if name in integrations:
            return True
    return False
