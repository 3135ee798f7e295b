"""`context.ip` check: the same answer as `ipaddress`, from a bounded cache."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.mapping.ip_address import (
    IP_CACHE_SIZE,
    MAX_CACHED_LENGTH,
    clear_ip_cache,
    ip_cache_info,
    is_dotted_quad,
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
    "203.0.113.009",
    "203.0.113.256",
    "203.0..9",
    "203.0.113.9.",
    "\u0663.0.113.9",  # an Arabic-Indic digit: isdigit() but not ASCII
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


def inet_pton_parses(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return False
    return True


OCTET = st.integers(0, 300).map(str) | st.sampled_from(["", "0", "00", "01", "007", "1000", "+1"])
DOTTED = st.lists(OCTET | st.text("0123456789.x \u0663", max_size=4), min_size=1, max_size=6).map(
    ".".join
)


@settings(max_examples=1000)
@given(DOTTED | st.text(max_size=20))
def test_same_answer_as_ipaddress_and_inet_pton_on_dotted_texts(text: str) -> None:
    """The dotted-quad check answers without inet_pton or ipaddress: still their answer."""
    clear_ip_cache()
    assert is_ip_address(text) is parses(text)
    if text.isascii() and "\x00" not in text:
        assert is_ip_address(text) is (inet_pton_parses(text) or parses(text))


@settings(max_examples=3000)
@given(DOTTED | st.text(max_size=20) | st.text("0123456789.", max_size=17))
def test_dotted_quad_check_is_inet_pton_ipv4(text: str) -> None:
    """The compiled build answers IPv4 with is_dotted_quad instead of inet_pton(AF_INET)."""
    assert is_dotted_quad(text) is inet_pton_parses(text)


@pytest.mark.parametrize("text", ADDRESSES + NOT_ADDRESSES + ["1.2.3.4.5", "9.9.9.9", "0.0.0.00"])
def test_dotted_quad_check_on_the_examples(text: str) -> None:
    assert is_dotted_quad(text) is inet_pton_parses(text)


def test_ipv4_addresses_bypass_the_cache() -> None:
    clear_ip_cache()
    assert is_ip_address("203.0.113.9")
    assert ip_cache_info().currsize == 0


def test_cache_is_bounded_and_hit_on_repeats() -> None:
    clear_ip_cache()
    assert is_ip_address("2001:db8::1")
    assert is_ip_address("2001:db8::1")
    info = ip_cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)

    for i in range(IP_CACHE_SIZE + 100):
        is_ip_address(f"2001:db8::{i // 65536:x}:{i % 65536:x}")
    assert ip_cache_info().currsize == IP_CACHE_SIZE
    clear_ip_cache()
    assert ip_cache_info().currsize == 0


def test_long_texts_are_not_cached() -> None:
    clear_ip_cache()
    assert not is_ip_address("1" * (MAX_CACHED_LENGTH + 1))
    assert ip_cache_info().currsize == 0
