"""Parity of worker.mapping.normalize with Meta's Python Business SDK, row by row.

Each row is a realistic input. Rows without `difference` must hash exactly as the SDK's
`Normalize.normalize(field, value, True)` does, computed live from the installed SDK. Rows
with a `difference` are where we deliberately part from the SDK (see docs/normalisation.md):
they state our normalised plaintext (`expected`, None = dropped) explicitly, and a third test
checks the SDK really does something else, so a row cannot stay mislabelled after an SDK
upgrade.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from facebook_business.adobjects.serverside.normalize import Normalize

from worker.capi.rules import HASHED_FIELDS
from worker.mapping.normalize import is_sha256_hex, normalize, normalize_and_hash

# Why a row differs from the SDK.
SDK_RAISES = "SDK raises on it; we drop the value (None) and never raise"
NOT_STR = "SDK needs a str (len() of an int raises); we read ints and integral floats"
EMPTY = "nothing left after normalising: we drop it, the SDK hashes the empty string"
EMAIL_SHAPE = "not one address (space inside, two @): we drop it, the SDK hashes it"
PHONE_FORMAT = "dots, slashes, an extension: we strip them, the SDK raises"
PHONE_TRUNK = "'(0)' trunk prefix after the country code dropped; the SDK keeps the 0"
GENDER = "spelled-out gender mapped to m/f, anything else dropped; the SDK hashes it as typed"
DOB = "date of birth rewritten to YYYYMMDD; the SDK hashes it as typed"
DOB_INVALID = "not a calendar date: we drop it, the SDK hashes it as typed"
LETTERS = "letters only: apostrophes, commas, spaces go (Meta: no punctuation); SDK keeps them"
UNICODE_NFC = "decomposed accents composed (NFC) so both encodings hash alike; SDK hashes bytes"
US_STATE = "US state name mapped to its 2-letter code (Meta asks for the code)"
ZIP = "US ZIP+4 without dash cut to 5; non-US dashes removed, not cut (SDK keeps part 1)"
COUNTRY = "country name, alpha-3 or alias mapped to ISO alpha-2; the SDK raises"
MD5 = "32-hex value hashed with SHA-256; the SDK passes MD5-looking values through"


@dataclass(frozen=True)
class Row:
    id: str
    field: str
    value: Any
    difference: str | None = None
    expected: str | None = None  # our normalised plaintext on difference rows; None = dropped


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


H_EMAIL = _sha("john.smith@example.com")
H_PHONE = _sha("15551234567")
H_NAME = _sha("john")

ROWS: tuple[Row, ...] = (
    # em
    Row("em-plain", "em", "john.smith@example.com"),
    Row("em-mixed-case-padded", "em", "  John.Smith@Example.COM  "),
    Row("em-plus-tag", "em", "Jane.Doe+newsletter@Gmail.com"),
    Row("em-co-uk", "em", "first_last@mail.example.co.uk"),
    Row("em-tab-newline", "em", "\tALICE@EXAMPLE.ORG\n"),
    Row("em-accented", "em", "José.Müller@exämple.de"),
    Row("em-no-at", "em", "john.smith", difference=SDK_RAISES, expected=None),
    Row("em-no-dot-in-domain", "em", "john@localhost", difference=SDK_RAISES, expected=None),
    Row("em-blank", "em", "   ", difference=SDK_RAISES, expected=None),
    Row("em-space-inside", "em", "john smith@example.com", difference=EMAIL_SHAPE, expected=None),
    Row("em-two-at", "em", "john@smith@example.com", difference=EMAIL_SHAPE, expected=None),
    # ph
    Row("ph-e164", "ph", "+15551234567"),
    Row("ph-us-parens-dashes", "ph", "+1 (555) 123-4567"),
    Row("ph-us-dashes", "ph", "1-555-123-4567"),
    Row("ph-digits", "ph", "15551234567"),
    Row("ph-uk-plus", "ph", "+44 20 7946 0958"),
    Row("ph-uk-00", "ph", "0044 20 7946 0958"),
    Row("ph-de-00-dashes", "ph", "0049-30-1234567"),
    Row("ph-fr-spaces", "ph", "+33 6 12 34 56 78"),
    Row("ph-in", "ph", "+91 98765 43210"),
    Row("ph-br-parens", "ph", "+55 (11) 91234-5678"),
    Row("ph-au", "ph", "+61 4 1234 5678"),
    Row("ph-nbsp", "ph", "+1\u00a0555\u00a0123\u00a04567"),
    Row("ph-national-trunk-zero", "ph", "020 7946 0958"),
    Row("ph-int", "ph", 15551234567, difference=NOT_STR, expected="15551234567"),
    Row("ph-float", "ph", 15551234567.0, difference=NOT_STR, expected="15551234567"),
    Row("ph-dots", "ph", "555.123.4567", difference=PHONE_FORMAT, expected="5551234567"),
    Row("ph-slash", "ph", "+49 30/1234567", difference=PHONE_FORMAT, expected="49301234567"),
    Row(
        "ph-extension",
        "ph",
        "+1 555 123 4567 ext. 89",
        difference=PHONE_FORMAT,
        expected="15551234567",
    ),
    Row(
        "ph-uk-bracketed-trunk",
        "ph",
        "+44 (0)20 7946 0958",
        difference=PHONE_TRUNK,
        expected="442079460958",
    ),
    Row("ph-too-short", "ph", "12345", difference=SDK_RAISES, expected=None),
    Row("ph-words", "ph", "call me maybe", difference=SDK_RAISES, expected=None),
    Row("ph-six-leading-zeros", "ph", "000000155512345", difference=SDK_RAISES, expected=None),
    # ge
    Row("ge-m", "ge", "m"),
    Row("ge-upper-f-padded", "ge", " F "),
    Row("ge-male", "ge", "Male", difference=GENDER, expected="m"),
    Row("ge-female-upper", "ge", "FEMALE", difference=GENDER, expected="f"),
    Row("ge-female-padded", "ge", " female ", difference=GENDER, expected="f"),
    Row("ge-other", "ge", "other", difference=GENDER, expected=None),
    Row("ge-x", "ge", "X", difference=GENDER, expected=None),
    # db
    Row("db-yyyymmdd", "db", "19900115"),
    Row("db-yyyymmdd-padded", "db", " 19851231 "),
    Row("db-iso-date", "db", "1990-01-15", difference=DOB, expected="19900115"),
    Row("db-iso-datetime", "db", "1990-01-15T00:00:00.000Z", difference=DOB, expected="19900115"),
    Row("db-us-slashes", "db", "01/15/1990", difference=DOB, expected="19900115"),
    Row("db-day-first-slashes", "db", "15/01/1990", difference=DOB, expected="19900115"),
    Row("db-german-dots", "db", "15.01.1990", difference=DOB, expected="19900115"),
    Row("db-year-first-slashes-short", "db", "1990/1/5", difference=DOB, expected="19900105"),
    Row("db-month-name-first", "db", "January 15, 1990", difference=DOB, expected="19900115"),
    Row("db-day-month-abbrev", "db", "15 Jan 1990", difference=DOB, expected="19900115"),
    Row("db-int", "db", 19900115, difference=NOT_STR, expected="19900115"),
    Row("db-feb-30", "db", "1990-02-30", difference=DOB_INVALID, expected=None),
    Row("db-words", "db", "yesterday", difference=DOB_INVALID, expected=None),
    # ct
    Row("ct-two-words", "ct", "Menlo Park"),
    Row("ct-upper-padded", "ct", "  SAN FRANCISCO "),
    Row("ct-abbreviation-dot", "ct", "St. Louis"),
    Row("ct-hyphen", "ct", "Winston-Salem"),
    Row("ct-tilde", "ct", "São Paulo"),
    Row("ct-umlaut", "ct", "Zürich"),
    Row("ct-accent-hyphen", "ct", "Saint-Étienne"),
    Row("ct-parentheses", "ct", "Frankfurt (Oder)"),
    Row("ct-digits", "ct", "New York 10001"),
    Row("ct-dotted-capital-i", "ct", "İstanbul"),
    Row("ct-devanagari", "ct", "मुंबई"),
    Row("ct-apostrophe", "ct", "Coeur d'Alene", difference=LETTERS, expected="coeurdalene"),
    Row("ct-comma", "ct", "Washington, D.C.", difference=LETTERS, expected="washingtondc"),
    Row(
        "ct-decomposed-accent",
        "ct",
        "Sa\u0303o Paulo",
        difference=UNICODE_NFC,
        expected="s\u00e3opaulo",
    ),
    Row("ct-digits-only", "ct", "12345", difference=EMPTY, expected=None),
    # st
    Row("st-code", "st", "CA"),
    Row("st-code-padded", "st", " ny "),
    Row("st-code-dotted", "st", "N.Y."),
    Row("st-non-us", "st", "Bavaria"),
    Row("st-non-us-accent-hyphen", "st", "Île-de-France"),
    Row("st-california", "st", "California", difference=US_STATE, expected="ca"),
    Row("st-new-york", "st", "New York", difference=US_STATE, expected="ny"),
    Row(
        "st-district-of-columbia", "st", "district of columbia", difference=US_STATE, expected="dc"
    ),
    Row("st-iso-3166-2", "st", "US-TX", difference=US_STATE, expected="tx"),
    Row("st-hawaii-okina", "st", "Hawai\u02bbi", difference=US_STATE, expected="hi"),
    # zp
    Row("zp-us5", "zp", "94103"),
    Row("zp-us-zip4", "zp", "94103-1234"),
    Row("zp-padded", "zp", " 10001 "),
    Row("zp-uk", "zp", "SW1A 1AA"),
    Row("zp-canada", "zp", "H0H 0H0"),
    Row("zp-france", "zp", "75008"),
    Row("zp-us-zip4-no-dash", "zp", "941031234", difference=ZIP, expected="94103"),
    Row("zp-us-zip4-space", "zp", "94103 1234", difference=ZIP, expected="94103"),
    Row("zp-brazil-cep", "zp", "01310-100", difference=ZIP, expected="01310100"),
    Row("zp-japan", "zp", "100-0001", difference=ZIP, expected="1000001"),
    Row("zp-int", "zp", 94103, difference=NOT_STR, expected="94103"),
    # country
    Row("country-us", "country", "US"),
    Row("country-gb-padded", "country", " gb "),
    Row("country-de-lower", "country", "de"),
    Row("country-dotted", "country", "U.S."),
    Row("country-mixed-case", "country", "Fr"),
    Row("country-united-states", "country", "United States", difference=COUNTRY, expected="us"),
    Row("country-germany", "country", "Germany", difference=COUNTRY, expected="de"),
    Row("country-united-kingdom", "country", "United Kingdom", difference=COUNTRY, expected="gb"),
    Row("country-usa", "country", "USA", difference=COUNTRY, expected="us"),
    Row("country-uk", "country", "UK", difference=COUNTRY, expected="gb"),
    Row("country-alpha3", "country", "DEU", difference=COUNTRY, expected="de"),
    Row(
        "country-accents-apostrophe", "country", "Côte d'Ivoire", difference=COUNTRY, expected="ci"
    ),
    Row("country-the-netherlands", "country", "the Netherlands", difference=COUNTRY, expected="nl"),
    Row("country-unknown-code", "country", "XX", difference=SDK_RAISES, expected=None),
    Row("country-unknown-name", "country", "Atlantis", difference=SDK_RAISES, expected=None),
    # fn / ln
    Row("fn-plain", "fn", "John"),
    Row("fn-upper-padded", "fn", "  MARY "),
    Row("fn-accent", "fn", "José"),
    Row("fn-diaeresis", "fn", "Zoë"),
    Row("ln-vietnamese", "ln", "Nguyễn"),
    Row("ln-umlaut", "ln", "Müller"),
    Row("ln-polish", "ln", "Łukasiewicz"),
    Row("fn-hyphen", "fn", "Mary-Jane", difference=LETTERS, expected="maryjane"),
    Row("fn-space", "fn", "Mary Ann", difference=LETTERS, expected="maryann"),
    Row("ln-apostrophe", "ln", "O'Brien", difference=LETTERS, expected="obrien"),
    Row("ln-typographic-apostrophe", "ln", "O\u2019Brien", difference=LETTERS, expected="obrien"),
    Row("ln-particles", "ln", "van der Berg", difference=LETTERS, expected="vanderberg"),
    Row("ln-accent-hyphen", "ln", "García-Márquez", difference=LETTERS, expected="garcíamárquez"),
    Row("fn-blank", "fn", "   ", difference=EMPTY, expected=None),
    # external_id
    Row("external_id-plain", "external_id", "user_123"),
    Row("external_id-padded-upper", "external_id", "  ABC-123  "),
    Row("external_id-uuid", "external_id", "3F2504E0-4F89-11D3-9A0C-0305E82C3301"),
    Row("external_id-prefixed", "external_id", "anon:1a2b3c"),
    Row("external_id-int", "external_id", 123456, difference=NOT_STR, expected="123456"),
    Row(
        "external_id-md5",
        "external_id",
        "5F4DCC3B5AA765D61D8327DEB882CF99",
        difference=MD5,
        expected="5f4dcc3b5aa765d61d8327deb882cf99",
    ),
    # already hashed (64 hex): lowercased, never hashed again
    Row("em-prehashed-upper", "em", H_EMAIL.upper()),
    Row("em-prehashed-lower", "em", H_EMAIL),
    Row("ph-prehashed-padded", "ph", f"  {H_PHONE}\n"),
    Row("fn-prehashed-upper", "fn", H_NAME.upper()),
    Row("ct-prehashed", "ct", H_NAME),
    Row("country-prehashed", "country", H_NAME.upper()),
    Row("external_id-prehashed", "external_id", H_EMAIL),
)

PARITY = [pytest.param(row, id=row.id) for row in ROWS if row.difference is None]
DIFFERENT = [pytest.param(row, id=row.id) for row in ROWS if row.difference is not None]


def _sdk(field: str, value: Any, *, hashed: bool) -> str | None:
    return Normalize.normalize(field, value, hashed)


def test_table_is_large_and_covers_every_field() -> None:
    assert len(ROWS) >= 60
    assert len({row.id for row in ROWS}) == len(ROWS)
    assert {row.field for row in ROWS} == set(HASHED_FIELDS)
    assert {row.field for row in ROWS if row.difference is None} == set(HASHED_FIELDS)


@pytest.mark.parametrize("row", PARITY)
def test_matches_sdk(row: Row) -> None:
    assert normalize_and_hash(row.field, row.value) == _sdk(row.field, row.value, hashed=True)
    assert normalize(row.field, row.value) == _sdk(row.field, row.value, hashed=False)


@pytest.mark.parametrize("row", DIFFERENT)
def test_deliberate_difference(row: Row) -> None:
    assert normalize(row.field, row.value) == row.expected
    if row.expected is None:
        expected_hash = None
    elif is_sha256_hex(row.expected):
        expected_hash = row.expected
    else:
        expected_hash = _sha(row.expected)
    assert normalize_and_hash(row.field, row.value) == expected_hash


@pytest.mark.parametrize("row", DIFFERENT)
def test_difference_is_real(row: Row) -> None:
    try:
        sdk: str | None = _sdk(row.field, row.value, hashed=True)
    except Exception as exc:  # the SDK raises TypeError / ValueError on what it rejects
        sdk = f"raises {type(exc).__name__}"
    assert normalize_and_hash(row.field, row.value) != sdk
