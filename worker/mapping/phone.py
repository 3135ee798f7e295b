"""National phone numbers completed with the calling code of the user's country.

Meta matches `ph` on the full international number. A number typed the national way
(`020 7946 0958`, `(415) 555-0100`) gets the calling code of its country (`address.country`
of the traits, else the destination's `default_phone_country`) with the national trunk prefix
removed: `442079460958`, `14155550100`. The calling codes, trunk prefixes and number patterns
come from libphonenumber's metadata (`phonenumbers`), read once per country; completed numbers
are memoised, so the metadata is consulted once per distinct (number, country).

A number with a `+` or `00` prefix, a country without a calling code, or digits that fit
neither the country's national plan nor its plan behind its own calling code are left alone
(and normalised as before).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from phonenumbers import PhoneMetadata

from worker.mapping.normalize import normalize

#: Entries kept in the (number, country) -> completed number LRU cache.
COMPLETION_CACHE_SIZE: Final = 16384

# Separators people type between digits, and a trailing extension (as `normalize` reads them).
_SEPARATORS: Final = re.compile(r"[\s\-().\/\u2010-\u2015\u2212]+")
_EXTENSION: Final = re.compile(r"\s*(?:;?ext(?:ension)?[.:=]?|x|#)\s*\d{1,6}\s*$")


@dataclass(frozen=True, slots=True)
class _NumberingPlan:
    """What completing a national number of one country needs from libphonenumber."""

    calling_code: str
    trunk_prefix: str
    national_number: re.Pattern[str]


@lru_cache(maxsize=512)
def _plan(region: str) -> _NumberingPlan | None:
    """The numbering plan of ISO 3166-1 alpha-2 `region` (upper case), or None."""
    if len(region) != 2 or not region.isalpha():
        return None
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or not metadata.country_code:
        return None
    pattern = metadata.general_desc.national_number_pattern if metadata.general_desc else None
    if not pattern:
        return None
    return _NumberingPlan(
        str(metadata.country_code), metadata.national_prefix or "", re.compile(pattern)
    )


def has_calling_code(region: str) -> bool:
    """True when `region` (ISO 3166-1 alpha-2, upper case) has a telephone numbering plan."""
    return _plan(region) is not None


@lru_cache(maxsize=4096)
def phone_region(country: str) -> str | None:
    """The ISO 3166-1 alpha-2 code (upper case) of a country as traits give it (`GB`, `gb`,
    `United Kingdom`, as `country` is normalised), when it has a calling code; else None."""
    code = normalize("country", country)
    if code is None or len(code) != 2:
        return None
    region = code.upper()
    return region if has_calling_code(region) else None


@lru_cache(maxsize=COMPLETION_CACHE_SIZE)
def with_calling_code(number: str, region: str) -> str | None:
    """`number` as digits with `region`'s calling code, when it is a national number of that
    country; None when it is not (an international prefix, a hashed value, other text, or
    digits that fit no plan), so that the caller uses the number as it is."""
    plan = _plan(region)
    if plan is None:
        return None
    text = number.strip().lower()
    if "x" in text or "#" in text:
        text = _EXTENSION.sub("", text)
    digits = _SEPARATORS.sub("", text)
    if not (digits.isascii() and digits.isdigit()) or digits.startswith("00"):
        return None
    trunk, pattern = plan.trunk_prefix, plan.national_number
    if trunk and digits.startswith(trunk) and pattern.fullmatch(digits[len(trunk) :]):
        return plan.calling_code + digits[len(trunk) :]
    if pattern.fullmatch(digits):
        return plan.calling_code + digits
    code = plan.calling_code
    if digits.startswith(code) and pattern.fullmatch(digits[len(code) :]):
        return digits  # the calling code without its `+`
    return None
