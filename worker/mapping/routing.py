"""is_routed: does a destination's `match` take this event?

Empty lists mean no restriction, so by default every destination takes every event. Each
configured restriction must match positively: an event whose type, name or source id is absent
is not routed to a destination that restricts on it (events of one source must never leak to a
pixel fenced to another). Types match case-insensitively; names and source ids exactly. The name
of a track call is `event`; of a page or screen call, `name` (or `properties.name`); identify
has none. The source id comes from the Kafka header
`source_id_header` when it is configured and present, else from the `source_id_field` path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.config import DestinationSettings
from worker.mapping.paths import get_path
from worker.mapping.plan import plan_for


def is_routed(
    message: Any,  # any decoded JSON value: compiled code enforces annotations (setup.py)
    headers: Mapping[str, bytes | None] | None,
    destination: DestinationSettings,
) -> bool:
    """True when `destination` takes `message`. Never raises."""
    plan = plan_for(destination)
    if not (plan.match_types or plan.match_names or plan.match_source_ids):
        return True
    if not isinstance(message, dict):
        return False
    kind = message.get("type")
    kind = kind.strip().lower() if isinstance(kind, str) else None
    if plan.match_types and kind not in plan.match_types:
        return False
    if plan.match_names and _event_name(message, kind) not in plan.match_names:
        return False
    if plan.match_source_ids:
        source_id = _header_text(headers, plan.source_id_header)
        if source_id is None:
            value = get_path(message, plan.source_id_field)
            source_id = value if isinstance(value, str) else None
        if source_id not in plan.match_source_ids:
            return False
    return True


def _event_name(message: dict[str, Any], kind: str | None) -> str | None:
    if kind == "track":
        name = message.get("event")
    elif kind in ("page", "screen"):
        name = message.get("name")
        if name is None:
            properties = message.get("properties")
            name = properties.get("name") if isinstance(properties, dict) else None
    else:
        return None
    return name if isinstance(name, str) else None


def _header_text(headers: Mapping[str, bytes | None] | None, name: str | None) -> str | None:
    if name is None or not headers:
        return None
    value: Any = headers.get(name)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None
