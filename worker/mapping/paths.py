"""Dotted path lookup in a decoded event: `context.traits.email`, `properties.products.0.id`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1024)
def split_path(path: str) -> tuple[str, ...]:
    """The segments of a dotted path, computed once per distinct path."""
    return tuple(part for part in path.strip().split(".") if part)


def get_path(node: Any, parts: tuple[str, ...]) -> Any:
    """The value at `parts` below `node`, or None when any step is missing or not a container.

    A segment made of digits also indexes a list.
    """
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isascii() and part.isdigit():
            index = int(part)
            node = node[index] if index < len(node) else None
        else:
            return None
        if node is None:
            return None
    return node


def lookup(node: Any, path: str) -> Any:
    """`get_path` with a dotted string."""
    return get_path(node, split_path(path))


def first_present(source: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first value of `keys` in `source` that is neither None nor an empty/blank string."""
    for key in keys:
        value = source.get(key)
        if value is None:
            continue
        if isinstance(value, str) and not value.strip():
            continue
        return value
    return None
