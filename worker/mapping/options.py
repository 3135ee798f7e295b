"""Per-event options for this destination, from the event's `integrations` object."""

from __future__ import annotations

from typing import Any

_NO_OPTIONS: dict[str, Any] = {}


def integration_options(message: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`integrations.<name>` for the first of `names` whose value is an object, else `{}`.

    `integrations.<name>: true` (a plain on switch) carries no options. The result is shared and
    must not be modified.
    """
    integrations = message.get("integrations")
    # Most events name none of `names` ({"All": true}, or no integrations at all).
    if (
        not integrations
        or not isinstance(integrations, dict)
        or integrations.keys().isdisjoint(names)
    ):
        return _NO_OPTIONS
    for name in names:
        options = integrations.get(name)
        if options is not None and isinstance(options, dict):
            return options
    return _NO_OPTIONS
