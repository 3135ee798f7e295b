"""`context.ip` check: the same answer as `ipaddress`, from a bounded cache."""

from __future__ import annotations

import ipaddress

import pytest

from worker.mapping.ip_address import (
    IP_CACHE_SIZE,
    MAX_CACHED_LENGTH,
    clear_ip_cache,
    ip_cache_info,
    is_ip_address,
)

ADDRESSES = [
    "203.0.113.9",
    "0.0.0.0",
    "255.255.255.255",
    "2001:db8::1",
    "::1",
    "::ffff:203.0.113.9",
    "fe80::1%eth0",  # a scope id: inet_pton refuses it, ipaddress takes it
    "1:2:3:4:5:6:7:8",
]
NOT_ADDRESSES = [
    "",
    "203.0.113",
    "203.0.113.9.1",
    "256.0.0.1",
    "203.0.113.09",  # a leading zero
    " 203.0.113.9",
    "203.0.113.9\x00",
    "\uff12\uff10\uff13.0.113.9",  # full-width digits
    "2001:db8::g",
    "1:2:3:4:5:6:7:8:9",
    "localhost",
    "x" * (MAX_CACHED_LENGTH + 1),
]


def parses(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("text", ADDRESSES + NOT_ADDRESSES)
def test_same_answer_as_ipaddress(text: str) -> None:
    clear_ip_cache()
    assert is_ip_address(text) is parses(text)
    assert is_ip_address(text) is parses(text)  # from the cache


def test_examples_are_what_they_claim() -> None:
    assert all(parses(text) for text in ADDRESSES)
    assert not any(parses(text) for text in NOT_ADDRESSES)


def test_cache_is_bounded_and_hit_on_repeats() -> None:
    clear_ip_cache()
    assert is_ip_address("203.0.113.9")
    assert is_ip_address("203.0.113.9")
    info = ip_cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)

    for i in range(IP_CACHE_SIZE + 100):
        is_ip_address(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert ip_cache_info().currsize == IP_CACHE_SIZE
    clear_ip_cache()
    assert ip_cache_info().currsize == 0


def test_long_texts_are_not_cached() -> None:
    clear_ip_cache()
    assert not is_ip_address("1" * (MAX_CACHED_LENGTH + 1))
    assert ip_cache_info().currsize == 0
