"""Whether `context.ip` is an IP address, so only real addresses reach `client_ip_address`.

`ipaddress.ip_address` is the rule (IPv4, or IPv6 with or without a scope id) but costs a few
microseconds. The C `inet_pton` answers first: every text it takes as an IPv4 address (four
decimal octets up to 255, no leading zeros) or IPv6 address, `ipaddress` takes too; what it
refuses (a scope id, garbage) goes to `ipaddress`. Answers are memoised in a bounded LRU,
except for IPv4 addresses, which `inet_pton` answers faster than the LRU does.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from socket import AF_INET, AF_INET6, inet_pton
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from functools import _CacheInfo

#: Distinct addresses whose answer is kept.
IP_CACHE_SIZE: Final = 16384
#: Longer texts are checked without being cached, so the cache's memory stays bounded. The
#: longest IPv6 address is 45 characters; a scope id (an interface name) adds a few.
MAX_CACHED_LENGTH: Final = 64

_MAX_IPV4_LENGTH: Final = len("255.255.255.255")
_FAMILIES: Final[tuple[int, ...]] = (AF_INET, AF_INET6)


def is_ip_address(text: str) -> bool:
    """True when `text` parses as an IPv4 or IPv6 address."""
    if len(text) <= _MAX_IPV4_LENGTH and ":" not in text:  # perhaps IPv4: ask first, uncached
        try:
            inet_pton(AF_INET, text)
        except (OSError, ValueError):  # not IPv4 (ValueError: an embedded NUL): see below
            pass
        else:
            return True
    if len(text) > MAX_CACHED_LENGTH:
        return _parses(text)
    return _cached_parses(text)


def _parses(text: str) -> bool:
    for family in _FAMILIES:
        try:
            inet_pton(family, text)
        except (OSError, ValueError):  # not that family (ValueError: an embedded NUL)
            continue
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_cached_parses: Final = lru_cache(maxsize=IP_CACHE_SIZE)(_parses)


def ip_cache_info() -> _CacheInfo:
    """Hits, misses, maxsize and current size of the cache (for tests)."""
    return _cached_parses.cache_info()


def clear_ip_cache() -> None:
    """Empty the cache."""
    _cached_parses.cache_clear()
