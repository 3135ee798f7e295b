"""Behaviour of worker.mapping.normalize beyond SDK parity: odd inputs, hashes, cache, tables."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import unicodedata
from decimal import Decimal
from typing import Any

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.capi.rules import HASHED_FIELDS
from worker.mapping import geo
from worker.mapping import normalize as normalize_module
from worker.mapping.normalize import (
    HASH_CACHE_SIZE,
    MAX_VALUE_LENGTH,
    _phone,
    _phone_by_replace,
    _typed_phone_number,
    clear_hash_cache,
    hash_cache_info,
    is_sha256_hex,
    normalize,
    normalize_and_hash,
)

HASH = hashlib.sha256(b"john.smith@example.com").hexdigest()
MD5 = hashlib.md5(b"john.smith@example.com").hexdigest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_the_sha256_used_gives_hashlibs_digests(data: bytes) -> None:
    """CPython's built-in SHA-256 where there is one: the same digests as hashlib's, on inputs
    of one block and of several."""
    assert normalize_module._sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_the_built_in_sha256_is_used_when_python_has_one() -> None:
    built_in = importlib.util.find_spec("_sha2") or importlib.util.find_spec("_sha256")
    assert (normalize_module._sha256 is not hashlib.sha256) is (built_in is not None)


def test_pinned_public_interface() -> None:
    assert HASHED_FIELDS == (
        "em",
        "ph",
        "fn",
        "ln",
        "ge",
        "db",
        "ct",
        "st",
        "zp",
        "country",
        "external_id",
    )
    assert normalize_and_hash("em", "John@Example.com") == sha("john@example.com")


# ------------------------------------------------------------------ never raises, any input

ODD_VALUES = [
    pytest.param(None, id="none"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param([], id="empty-list"),
    pytest.param(["john@example.com"], id="list"),
    pytest.param({"email": "john@example.com"}, id="dict"),
    pytest.param(("a",), id="tuple"),
    pytest.param({"a"}, id="set"),
    pytest.param(b"john@example.com", id="bytes"),
    pytest.param(Decimal("15551234567"), id="decimal"),
    pytest.param(object(), id="object"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(-float("inf"), id="minus-inf"),
    pytest.param(10**5000, id="huge-int"),  # str() of it raises ValueError (max str digits)
    pytest.param("", id="empty"),
    pytest.param(" \t\n", id="whitespace"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param("x" * (MAX_VALUE_LENGTH + 1), id="too-long"),
]


@pytest.mark.parametrize("field", HASHED_FIELDS)
@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("prehashed", [False, True], ids=["plain", "prehashed"])
def test_odd_inputs_give_none(field: str, value: Any, prehashed: bool) -> None:
    assert normalize_and_hash(field, value, prehashed=prehashed) is None
    assert normalize(field, value) is None


@given(
    field=st.sampled_from([*HASHED_FIELDS, "client_ip_address", "", "EM"]),
    value=st.one_of(
        st.text(),
        st.integers(),
        st.floats(),
        st.none(),
        st.booleans(),
        st.binary(),
        st.lists(st.text(), max_size=2),
        st.dictionaries(st.text(), st.text(), max_size=2),
    ),
    prehashed=st.booleans(),
)
def test_never_raises_and_returns_a_sha256_or_none(field: str, value: Any, prehashed: bool) -> None:
    result = normalize_and_hash(field, value, prehashed=prehashed)
    assert result is None or is_sha256_hex(result)
    plain = normalize(field, value)
    if not prehashed:
        if plain is None:
            assert result is None
        else:
            assert result == (plain if is_sha256_hex(plain) else sha(plain))


@given(st.text())
def test_letter_fields_keep_only_letters(value: str) -> None:
    for field in ("fn", "ln", "ct"):
        plain = normalize(field, value)
        if plain is not None and not is_sha256_hex(plain):
            assert all(c.isalpha() or unicodedata.category(c).startswith("M") for c in plain)


# The email rule as docs/normalisation.md states it: one @, no whitespace, a dot inside the domain.
EMAIL_RULE = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
EMAIL_PARTS = st.text(alphabet=st.sampled_from(list("a.é@ \t\x1c\x00\xa0\u3000")), max_size=4)
EMAIL_LIKE = st.tuples(EMAIL_PARTS, st.sampled_from(["@", ""]), EMAIL_PARTS).map("".join)


@settings(max_examples=500)
@given(st.emails() | EMAIL_LIKE)
def test_email_is_kept_exactly_when_it_matches_the_rule(value: str) -> None:
    # normalize's email check skips the regex for texts without whitespace: same answers.
    text = value.lower().strip()
    expected = text if text and EMAIL_RULE.fullmatch(text) else None
    assert normalize("em", value) == expected


def test_lone_surrogates_never_reach_the_hash() -> None:
    # json.loads accepts "\\ud800"; such a string cannot be encoded as UTF-8 to hash it.
    assert normalize_and_hash("em", "a\ud800@example.com") is None
    assert normalize("em", "a\ud800@example.com") is None
    assert normalize_and_hash("external_id", "id-\ud800") is None
    assert normalize_and_hash("fn", "Jo\ud800hn") == sha("john")  # not a letter: removed


def test_unknown_field_gives_none() -> None:
    assert normalize_and_hash("client_ip_address", "1.2.3.4") is None
    assert normalize_and_hash("email", "john@example.com") is None
    assert normalize("EM", "john@example.com") is None


# ------------------------------------------------------------------ numbers as inputs


@pytest.mark.parametrize(
    ("field", "value", "plain"),
    [
        ("ph", 15551234567, "15551234567"),
        ("ph", 15551234567.0, "15551234567"),
        ("zp", 94103, "94103"),
        ("db", 19900115, "19900115"),
        ("external_id", 42, "42"),
        ("external_id", 1.5, "1.5"),
        ("external_id", -7, "-7"),
    ],
)
def test_numbers_are_read_as_text(field: str, value: Any, plain: str) -> None:
    assert normalize(field, value) == plain
    assert normalize_and_hash(field, value) == sha(plain)


# ------------------------------------------------------------------ already hashed values


@pytest.mark.parametrize("field", HASHED_FIELDS)
def test_sha256_hex_passes_through_lowercased(field: str) -> None:
    assert normalize_and_hash(field, HASH) == HASH
    assert normalize_and_hash(field, HASH.upper()) == HASH
    assert normalize_and_hash(field, f"  {HASH.upper()}\n") == HASH
    assert normalize(field, HASH.upper()) == HASH


def test_md5_and_other_hex_lengths_are_hashed() -> None:
    assert normalize_and_hash("external_id", MD5) == sha(MD5)
    assert normalize_and_hash("external_id", MD5.upper()) == sha(MD5)
    assert normalize_and_hash("external_id", HASH[:63]) == sha(HASH[:63])
    assert normalize_and_hash("external_id", HASH + "0") == sha(HASH + "0")


def test_a_64_digit_phone_is_a_hash_not_a_number() -> None:
    # Same rule as the SDK: the already-hashed test runs before any field rule.
    digits = "1" * 64
    assert normalize_and_hash("ph", digits) == digits


# ------------------------------------------------------------------ prehashed=True


@pytest.mark.parametrize("field", HASHED_FIELDS)
def test_prehashed_passes_sha256_through(field: str) -> None:
    assert normalize_and_hash(field, HASH, prehashed=True) == HASH
    assert normalize_and_hash(field, f" {HASH.upper()} ", prehashed=True) == HASH


@pytest.mark.parametrize(
    "value", ["john.smith@example.com", MD5, HASH[:63], HASH + "a", "", "   ", 15551234567]
)
def test_prehashed_drops_anything_that_is_not_a_sha256(value: Any) -> None:
    assert normalize_and_hash("em", value, prehashed=True) is None


def test_prehashed_with_unknown_field_gives_none() -> None:
    assert normalize_and_hash("fbp", HASH, prehashed=True) is None


# ------------------------------------------------------------------ cache


def test_cache_is_bounded_and_hit_on_repeats() -> None:
    clear_hash_cache()
    info = hash_cache_info()
    assert info.maxsize == HASH_CACHE_SIZE == 65536
    assert info.currsize == 0

    first = normalize_and_hash("em", "repeat@example.com")
    assert normalize_and_hash("em", "repeat@example.com") == first
    assert normalize_and_hash("em", "not an email") is None
    assert normalize_and_hash("em", "not an email") is None  # "nothing usable" is cached too
    info = hash_cache_info()
    assert (info.misses, info.currsize) == (2, 2)

    for i in range(HASH_CACHE_SIZE + 500):
        normalize_and_hash("external_id", f"user-{i}")
        assert hash_cache_info().currsize <= HASH_CACHE_SIZE
    # Full, it was emptied once and filled again: the values are still right.
    assert normalize_and_hash("external_id", "user-3") == sha("user-3")
    assert normalize_and_hash("em", "repeat@example.com") == first
    assert hash_cache_info().misses == HASH_CACHE_SIZE + 500 + 4
    clear_hash_cache()
    assert hash_cache_info() == (0, HASH_CACHE_SIZE, 0)


def test_cache_keys_on_field_as_well_as_value() -> None:
    clear_hash_cache()
    assert normalize_and_hash("ct", "Paris") == sha("paris")
    assert normalize_and_hash("em", "Paris") is None
    assert normalize_and_hash("ge", "f") == sha("f")
    assert normalize_and_hash("fn", "f") == sha("f")
    assert normalize_and_hash("country", "de") == sha("de")
    assert normalize_and_hash("st", "de") == sha("de")


def test_values_over_the_length_limit_do_not_fill_the_cache() -> None:
    clear_hash_cache()
    assert normalize_and_hash("external_id", "x" * (MAX_VALUE_LENGTH + 1)) is None
    assert hash_cache_info().currsize == 0


def test_prehashed_values_do_not_fill_the_cache() -> None:
    clear_hash_cache()
    normalize_and_hash("em", HASH, prehashed=True)
    assert hash_cache_info().currsize == 0


# ------------------------------------------------------------------ field rules


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("+1 (555) 123-4567", "15551234567"),
        ("+1 555 123 4567 x89", "15551234567"),
        ("+1 555 123 4567 #89", "15551234567"),
        ("+1 555 123 4567;ext=89", "15551234567"),
        ("+1\u2013555\u2013123\u20134567", "15551234567"),  # en dashes
        ("0000 44 20 7946 0958", "442079460958"),  # four zeros: the SDK strips them too
        ("+1 555 CALL NOW", None),
        ("+1 555 123 4567 ext. 1234567", None),  # not an extension: 7 digits
        ("1+5551234567", None),
    ],
)
def test_phone(value: str, plain: str | None) -> None:
    assert normalize("ph", value) == plain


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("2000-02-29", "20000229"),  # leap year
        ("1900-02-29", None),  # not a leap year
        ("1990-13-01", None),
        ("1990-04-31", None),
        ("1899-12-31", None),  # outside 1900-2099
        ("2100-01-01", None),
        ("03/04/1990", "19900304"),  # "/" reads month first
        ("03.04.1990", "19900403"),  # "." reads day first
        ("03-04-1990", "19900403"),  # "-" reads day first
        ("13/04/1990", "19900413"),  # month 13 impossible: day first instead
        ("04-13-1990", "19900413"),  # day-first impossible: month first instead
        ("1990-01-15 08:30:00", "19900115"),
        ("15th January 1990", "19900115"),
        ("Sept 9, 1990", "19900909"),
        ("15 Foo 1990", None),
        ("15011990", None),  # DDMMYYYY is not read: ambiguous with MMDDYYYY
    ],
)
def test_date_of_birth(value: str, plain: str | None) -> None:
    assert normalize("db", value) == plain


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("Georgia", "ga"),  # in `st` the US state wins over the country
        ("WASHINGTON", "wa"),
        ("Washington, D.C.", "dc"),
        ("Puerto Rico", "pr"),
        ("US-ZZ", None),
        ("Québec", "québec"),  # non-US: letters only, accents kept
    ],
)
def test_state(value: str, plain: str | None) -> None:
    assert normalize("st", value) == plain


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("Türkiye", "tr"),
        ("Turkey", "tr"),
        ("Trinidad & Tobago", "tt"),
        ("St. Lucia", "lc"),
        ("Korea, Republic of", "kr"),
        ("South Korea", "kr"),
        ("Viet Nam", "vn"),
        ("Vietnam", "vn"),
        ("Deutschland", "de"),
        ("U.S.A.", "us"),
        ("Georgia", "ge"),  # in `country` it is the country
        ("the", None),
        ("XK", None),  # Kosovo: not in ISO 3166-1, the SDK rejects it too
    ],
)
def test_country(value: str, plain: str | None) -> None:
    assert normalize("country", value) == plain


def test_country_codes_match_the_iso_list_the_sdk_validates_against() -> None:
    assert {c.alpha_2.lower() for c in pycountry.countries} == geo.COUNTRY_CODES
    assert {c.alpha_3.lower(): c.alpha_2.lower() for c in pycountry.countries} == {
        row[1]: row[0] for row in geo.COUNTRIES
    }


@pytest.mark.parametrize("row", geo.COUNTRIES, ids=lambda row: row[0])
def test_every_iso_country_name_and_alpha3_maps_to_its_code(row: tuple[str, ...]) -> None:
    alpha2, alpha3, *names = row
    assert normalize("country", alpha2.upper()) == alpha2
    assert normalize("country", alpha3.upper()) == alpha2
    for name in names:
        assert normalize("country", name) == alpha2, name


def test_every_us_state_name_maps_to_its_code() -> None:
    assert len(geo.US_STATE_CODES) == 56  # 50 states, DC and 5 inhabited territories
    for name, code in geo.US_STATES.items():
        assert normalize("st", name) == code
        assert normalize("st", name.upper()) == code
        assert normalize("st", code.upper()) == code


@pytest.mark.parametrize(
    ("value", "plain"),
    [("Male", "m"), ("MALE", "m"), ("f", "f"), ("Female", "f"), ("n", None), ("", None)],
)
def test_gender(value: str, plain: str | None) -> None:
    assert normalize("ge", value) == plain


def test_decomposed_and_composed_accents_hash_alike() -> None:
    composed, decomposed = "Jos\u00e9", "Jose\u0301"
    assert normalize_and_hash("fn", composed) == normalize_and_hash("fn", decomposed)
    assert normalize("fn", decomposed) == "jos\u00e9"


def test_zip() -> None:
    assert normalize("zp", "94103-1234") == "94103"
    assert normalize("zp", "m1 1ae") == "m11ae"
    assert normalize("zp", " - ") is None


ISO_DATE_CHARACTERS = st.sampled_from(list("0123456789") * 4 + ["٣", "²", "a", " ", "-", "+"])


@settings(max_examples=500, deadline=None)
@given(st.lists(ISO_DATE_CHARACTERS, min_size=8, max_size=8))
def test_typed_iso_dates_read_as_slices_and_int(characters: list[str]) -> None:
    """The compiled path of a YYYY-MM-DD birthday reads the same number as the interpreted one
    (isascii, three slices, isdigit, int), and refuses what it refuses."""
    digits = "".join(characters)
    text = f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    expected = int(digits) if digits.isascii() and digits.isdigit() else -1
    assert normalize_module._typed_iso_date(text) == expected
    if expected >= 0 and len(str(expected)) == 8:
        year, month, day = expected // 10000, expected // 100 % 100, expected % 100
        valid = normalize_module._is_date_of_birth(year, month, day)
        assert normalize("db", text) == (digits if valid else None)


@pytest.mark.parametrize(
    ("year", "month", "days"),
    [
        (1990, 1, 31),
        (1990, 2, 28),
        (1992, 2, 29),
        (1900, 2, 28),
        (2000, 2, 29),
        (1990, 4, 30),
        (1990, 6, 30),
        (1990, 9, 30),
        (1990, 11, 30),
        (1990, 12, 31),
        (2099, 7, 31),
    ],
)
def test_month_lengths(year: int, month: int, days: int) -> None:
    assert normalize_module._is_date_of_birth(year, month, days)
    assert not normalize_module._is_date_of_birth(year, month, days + 1)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0000123456789 -().+x٣a\t", max_size=30))
def test_typed_phone_numbers_read_as_by_replace(text: str) -> None:
    # Compiled, _phone reads the usual typed shapes in one pass over the code points.
    typed = _typed_phone_number(text)
    if typed is not None:
        assert (typed or None) == _phone_by_replace(text)
    if "x" not in text and "#" not in text and "(0)" not in text:
        assert _phone(text) == _phone_by_replace(text)


@pytest.mark.parametrize(
    "text",
    ["+1 (415) 555-0100", "00044 20 7946 0958", "0000044207946095", "+", "()", "1+4155550100"],
)
def test_typed_phone_number_shapes(text: str) -> None:
    assert _phone(text) == _phone_by_replace(text)
