"""RoutingTable: which destinations of a set take an event, without looking at the others.

The rules (README, "Routing"): empty `match` lists mean no restriction, so by default every
destination takes every event. Each configured restriction must match positively: an event
whose type, name or source id is absent is not routed to a destination that restricts on it
(events of one source must never leak to a pixel fenced to another). Types match
case-insensitively; names and source ids exactly. The name of a track call is `event`; of a
page or screen call, `name` (or `properties.name`); identify has none. The source id comes from
the Kafka header `source_id_header` when it is configured and present, else from the
`source_id_field` path. A message that is not an object goes only to unrestricted destinations
(their mapping reports it).

How: every destination is filed once, under its most selective restriction: by source id (per
distinct field/header pair), else by event name, else by event type, else in the unrestricted
list. An event looks up its own type, name and source ids, checks the few candidates found for
their remaining restrictions, and answers their positions in configuration order (the fan-out
order). The cost per event depends on the destinations it can reach, not on how many exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from worker.config import MatchSettings
from worker.mapping.paths import get_path, split_path

Headers = Mapping[str, bytes | None]

_NO_CANDIDATES: Final[list[int]] = []  # shared, like every answer of route: never modified


@dataclass(frozen=True, slots=True)
class _Residual:
    """Restrictions of a candidate that its index entry has not already checked."""

    types: frozenset[str] | None
    names: frozenset[str] | None


@dataclass(slots=True)
class _SourceIndex:
    """Destinations restricted by source id that read it from the same place."""

    field: tuple[str, ...]
    header: str | None
    by_id: dict[str, list[int]]


class RoutingTable:
    """Built once per destination set from each destination's `match`, in fan-out order."""

    __slots__ = (
        "_by_name",
        "_by_source",
        "_by_type",
        "_residual",
        "_size",
        "_unrestricted",
        "_unrestricted_only",
    )

    def __init__(self, matches: Sequence[MatchSettings]) -> None:
        self._size = len(matches)
        self._unrestricted: list[int] = []
        self._by_type: dict[str, list[int]] = {}
        self._by_name: dict[str, list[int]] = {}
        self._by_source: list[_SourceIndex] = []
        self._residual: dict[int, _Residual] = {}
        sources: dict[tuple[tuple[str, ...], str | None], _SourceIndex] = {}
        for index, match in enumerate(matches):
            types = frozenset(match.event_types)
            names = frozenset(match.event_names)
            if match.source_ids:
                field = split_path(match.source_id_field)
                key = (field, match.source_id_header)
                source = sources.get(key)
                if source is None:
                    source = sources[key] = _SourceIndex(field, match.source_id_header, {})
                    self._by_source.append(source)
                for source_id in frozenset(match.source_ids):
                    source.by_id.setdefault(source_id, []).append(index)
                if types or names:
                    self._residual[index] = _Residual(types or None, names or None)
            elif names:
                for name in names:
                    self._by_name.setdefault(name, []).append(index)
                if types:
                    self._residual[index] = _Residual(types, None)
            elif types:
                for kind in types:
                    self._by_type.setdefault(kind, []).append(index)
            else:
                self._unrestricted.append(index)
        # No destination restricted at all (the usual set-up: one pixel per source topic): every
        # record goes to all of them, with nothing of the record to read.
        self._unrestricted_only = not (self._by_type or self._by_name or self._by_source)

    def __len__(self) -> int:
        return self._size

    def route(self, message: Any, headers: Headers | None) -> list[int]:
        """Positions of the destinations that take `message`, ascending. Never raises on any
        input shape. The list may be the table's own: read it, never modify it."""
        if self._unrestricted_only or not isinstance(message, dict):
            return self._unrestricted
        found: list[list[int]] = []
        if self._unrestricted:
            found.append(self._unrestricted)
        kind = message.get("type")
        kind = kind.strip().lower() if isinstance(kind, str) else None
        if self._by_type and kind is not None:
            typed = self._by_type.get(kind)
            if typed:
                found.append(typed)
        name: str | None = None
        if self._by_name or self._residual:
            name = _event_name(message, kind)
        if self._by_name and name is not None:
            named = self._by_name.get(name)
            if named:
                found.append(self._checked(named, kind, name))
        for source in self._by_source:
            source_id = _header_text(headers, source.header)
            if source_id is None:
                value = get_path(message, source.field)
                source_id = value if isinstance(value, str) else None
            if source_id is not None:
                fenced = source.by_id.get(source_id)
                if fenced:
                    found.append(self._checked(fenced, kind, name))
        if not found:
            return _NO_CANDIDATES
        if len(found) == 1:
            return found[0]
        # Each destination is filed under one entry only, so the lists are disjoint.
        return sorted([index for indexes in found for index in indexes])

    def _checked(self, candidates: list[int], kind: str | None, name: str | None) -> list[int]:
        residual = self._residual
        if not residual:
            return candidates
        return [
            index
            for index in candidates
            if (rest := residual.get(index)) is None
            or (
                (rest.types is None or kind in rest.types)
                and (rest.names is None or name in rest.names)
            )
        ]


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


def _header_text(headers: Mapping[str, Any] | None, name: str | None) -> str | None:
    # Values typed Any: a str value (tests, other clients) must reach the checks below, and
    # compiled code (setup.py) would refuse what `bytes | None` does not allow.
    if name is None or not headers:
        return None
    value = headers.get(name)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None
