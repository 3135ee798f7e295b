"""Whether `context.ip` is an IP address, so only real addresses reach `client_ip_address`.

`ipaddress.ip_address` is the rule (IPv4, or IPv6 with or without a scope id) but costs a few
microseconds. The C `inet_pton` answers first: every text it takes as an IPv4 address (four
decimal octets up to 255, no leading zeros) or IPv6 address, `ipaddress` takes too; what it
refuses (a scope id, garbage) goes to `ipaddress`. Answers are memoised in a bounded LRU,
except for IPv4 addresses, which `inet_pton` answers faster than the LRU does. Compiled, the
IPv4 question is answered by `is_dotted_quad`, inet_pton's IPv4 rule read from the characters.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from socket import AF_INET, AF_INET6, inet_pton
from typing import TYPE_CHECKING, Final

from worker.mapping.build import COMPILED

if TYPE_CHECKING:
    from functools import _CacheInfo

    from mypy_extensions import i64  # compiled: machine integers; interpreted: int

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
        if COMPILED:
            if is_dotted_quad(text):
                return True
        else:
            try:
                inet_pton(AF_INET, text)
            except (OSError, ValueError):  # not IPv4 (ValueError: an embedded NUL): see below
                pass
            else:
                return True
    if len(text) > MAX_CACHED_LENGTH:
        return _parses(text)
    return _cached_parses(text)


def is_dotted_quad(text: str) -> bool:
    """What `inet_pton(AF_INET, text)` accepts (glibc's inet_pton4): four ASCII decimal octets
    of at most 255 without a leading zero, separated by single dots, nothing else."""
    if len(text) > _MAX_IPV4_LENGTH:
        return False
    dots: i64 = 0
    octet: i64 = 0
    digits: i64 = 0
    i: i64
    for i in range(len(text)):
        code: i64 = ord(text[i])  # compiled: read from the string's buffer
        if 48 <= code <= 57:
            if digits and octet == 0:  # a leading zero
                return False
            octet = octet * 10 + code - 48
            if octet > 255:
                return False
            digits += 1
        elif code == 46 and digits and dots < 3:
            dots += 1
            octet = 0
            digits = 0
        else:
            return False
    return dots == 3 and digits > 0


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
