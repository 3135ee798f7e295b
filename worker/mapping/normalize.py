"""Meta's normalisation and SHA-256 hashing of user_data fields.

The rules follow `facebook_business.adobjects.serverside.normalize.Normalize` (Meta's Python
Business SDK), which `tests/unit/test_normalize_parity.py` checks row by row, except where
Meta's published parameter rules (and Meta's own Pixel / capi-param-builder normalisers) say
otherwise, or where the SDK would raise. Every difference is listed in docs/normalisation.md.

Public API:

* `normalize(field, value)`: the normalised plaintext (or an already-hashed value, lowercased),
  or None when nothing usable is left.
* `normalize_and_hash(field, value, *, prehashed=False)`: the lowercase SHA-256 hex of that,
  or None. Results are memoised in a bounded cache (`HASH_CACHE_SIZE` entries).
* `field_hasher(field)`: a `FieldHasher` whose `digest(value, prehashed)` is
  `normalize_and_hash(field, ...)` without finding the field's cache and rule per value.
* `is_sha256_hex(value)`, `hash_cache_info()`, `clear_hash_cache()`.

Neither function raises, whatever the input type: strings, ints and integral floats are
read (`15551234567`, `94103.0`); bools, None, NaN, containers and anything else give None.
Values longer than `MAX_VALUE_LENGTH` characters give None (no real identifier is that long,
and it keeps the cache's memory bounded).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Callable
from importlib import import_module
from typing import Any, Final, NamedTuple

from worker.mapping.build import COMPILED
from worker.mapping.geo import COUNTRY_BY_KEY, COUNTRY_CODES, US_STATE_BY_KEY, US_STATE_CODES
from worker.mapping.geo import name_key as _name_key

#: Entries kept in the (field, value) -> hash cache, all fields together.
HASH_CACHE_SIZE: Final = 65536
#: Longer inputs are dropped: no email, phone, name or id is this long.
MAX_VALUE_LENGTH: Final = 1024

_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


def _fastest_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (`_sha2` from 3.12, `_sha256` before), else hashlib's (OpenSSL).

    The same digests. On the short values hashed here (one 64-byte block) the built-in one is
    faster: OpenSSL's sets up, copies and frees an EVP context per value, which costs more than
    the compression itself."""
    for name in ("_sha2", "_sha256"):
        try:
            constructor: Callable[[bytes], Any] = import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return constructor
    return hashlib.sha256


_sha256: Final = _fastest_sha256()


def _openssl_sha256_hex_utf8() -> Callable[[str], str] | None:
    """`sha256_hex_utf8` of worker/mapping/_sha256_openssl.c (OpenSSL's SHA-256 of a str's
    UTF-8, the hex written by C: ~90 ns a value where `_sha256(text.encode()).hexdigest()`
    takes ~330), built by setup.py beside the compiled modules. For the compiled mapping only:
    the pure-Python path stays pure. None when this module runs from source or the extension
    was not built (no OpenSSL headers)."""
    if not COMPILED:
        return None
    try:
        sha256_hex_utf8: Callable[[str], str] = import_module(
            "worker.mapping._sha256_openssl"
        ).sha256_hex_utf8
    except (ImportError, AttributeError):
        return None
    return sha256_hex_utf8


_sha256_hex_utf8: Final = _openssl_sha256_hex_utf8()

#: Which SHA-256 hashes the misses: `OpenSSL` (the C extension), `CPython` (the built-in
#: `_sha256`), or `hashlib` (OpenSSL through hashlib, where CPython was built without it).
SHA256_IMPLEMENTATION: Final = (
    "OpenSSL"
    if _sha256_hex_utf8 is not None
    else "hashlib"
    if _sha256 is hashlib.sha256
    else "CPython"
)


# ph: a trailing extension, then separators people type, then "+", up to four leading zeros
# (the SDK strips `^\+?0{0,2}` twice) and at least 7 digits not starting with 0.
_PH_EXTENSION: Final = re.compile(r"\s*(?:;?ext(?:ension)?[.:=]?|x|#)\s*\d{1,6}\s*$")
_PH_SEPARATORS: Final = re.compile(r"[\s\-().\/\u2010-\u2015\u2212]+")
_PH_NUMBER: Final = re.compile(r"\+?0{0,4}([1-9]\d{6,})")

# zp: whitespace and dashes go; nine digits are a US ZIP+4, which keeps its first five.
_ZIP_SEPARATORS: Final = re.compile(r"[\s\-]+")

# ct / st / fn / ln: ASCII fast path of "letters only".
_NOT_A_TO_Z: Final = re.compile(r"[^a-z]+")
_US_ISO_SUBDIVISION: Final = re.compile(r"us-([a-z]{2})")

# db: the layouts we read; everything is lowercased before matching.
_DB_COMPACT: Final = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DB_YEAR_FIRST: Final = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[t\s].*)?")
_DB_YEAR_LAST: Final = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})")
_DB_DAY_MONTHNAME: Final = re.compile(
    r"(\d{1,2})(?:st|nd|rd|th)?[\s\-/.]*([a-z]+)\.?,?[\s\-/.]*(\d{4})"
)
_DB_MONTHNAME_DAY: Final = re.compile(
    r"([a-z]+)\.?[\s\-/.]*(\d{1,2})(?:st|nd|rd|th)?,?[\s\-/.]*(\d{4})"
)
_DB_MIN_YEAR: Final = 1900
_DB_MAX_YEAR: Final = 2099
_MONTH_NAMES: Final = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTHS: Final = {
    **{name: number for number, name in enumerate(_MONTH_NAMES, 1)},
    **{name[:3]: number for number, name in enumerate(_MONTH_NAMES, 1)},
    "sept": 9,
}

_GENDERS: Final = {"m": "m", "male": "m", "f": "f", "female": "f"}


def is_sha256_hex(text: str) -> bool:
    """True when `text` is exactly 64 lowercase hex characters (lowercase it first)."""
    return len(text) == 64 and _SHA256_HEX.fullmatch(text) is not None


# --------------------------------------------------------------------------- field rules
# Each rule takes the trimmed, lowercased, non-empty, not-already-hashed text and returns
# the normalised plaintext, or None (the SDK would raise, or nothing usable is left).


def _letters(text: str) -> str:
    """Letters only: ASCII a-z, or for other scripts Unicode letters and combining marks (NFC).

    Spaces, digits and punctuation go; accents stay, as UTF-8 (Meta: "if using special
    characters, the text must be encoded in UTF-8").
    """
    if text.isascii():
        return text if text.isalpha() else _NOT_A_TO_Z.sub("", text)
    text = unicodedata.normalize("NFC", text)
    return "".join(c for c in text if c.isalpha() or unicodedata.category(c)[0] == "M")


def _email(text: str) -> str | None:
    r"""The regex `[^\s@]+@[^\s@]+\.[^\s@]+` (one @, no whitespace, a dot inside the domain;
    the SDK's `.+@.+\..+` also takes inner spaces and several @, which can never be an
    address Meta knows), matched without the regex engine: one "@" after at least one
    character, a "." neither first nor last after it, and no whitespace at all (str.split()
    and the regex's \s agree on what whitespace is; without any, split() gives back the text
    itself in a list of one, no copy)."""
    at = text.find("@")
    if at <= 0 or text.find("@", at + 1) != -1 or text.find(".", at + 2, len(text) - 1) == -1:
        return None
    words = text.split()
    return text if len(words) == 1 and len(words[0]) == len(text) else None


def _phone(text: str) -> str | None:
    if "x" in text or "#" in text:  # an extension needs one of them: skip a slow search
        text = _PH_EXTENSION.sub("", text)
    if "(0)" in text:  # "+44 (0)20 ...": the bracketed trunk zero is not dialled from abroad
        text = text.replace("(0)", "")
    if COMPILED:
        number = _typed_phone_number(text)
        if number is not None:
            return number or None
    return _phone_by_replace(text)


def _phone_by_replace(text: str) -> str | None:
    # The usual shapes ("+1 (415) 555-0100", "415.555.0100") without the regex engine: once
    # the common separators are gone, only ASCII digits after an optional "+" are left, which
    # is what _PH_SEPARATORS would leave too; anything else takes the regexes.
    digits = text.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    digits = digits.replace(".", "")
    plain = digits[1:] if digits.startswith("+") else digits
    if plain.isascii() and plain.isdigit():
        number = plain.lstrip("0")
        return number if len(plain) - len(number) <= 4 and len(number) >= 7 else None
    match = _PH_NUMBER.fullmatch(_PH_SEPARATORS.sub("", text))
    return match.group(1) if match else None


def _typed_phone_number(text: str) -> str | None:
    """What the replace() path of `_phone` gives for text made only of ASCII digits, " ", "-",
    "(", ")", "." and one "+" before the first digit, as "" for its None; None for any other text.

    One pass over the code points (mypyc reads them from the string's buffer) instead of five
    replace() calls: the digits are read as an int, whose str() is the number without its
    leading zeros."""
    value = 0
    digits = 0
    plus = False
    for index in range(len(text)):
        code = ord(text[index])
        if 48 <= code <= 57:
            # value * 10, as shifts: compiled, a product over 2**30 (a 10-digit number) leaves
            # the native path for Python ints (mypyc's overflow test of * is that rough); a
            # shift is tested exactly, native up to 2**62.
            value = (value << 3) + (value << 1) + (code - 48)
            digits += 1
        elif code == 43:  # "+": once, before the first digit
            if plus or digits:
                return None
            plus = True
        elif code != 32 and code != 45 and code != 40 and code != 41 and code != 46:  # " -()."
            return None
    if not digits:
        return None
    number = str(value) if value else ""
    return number if digits - len(number) <= 4 and len(number) >= 7 else ""


def _gender(text: str) -> str | None:
    return _GENDERS.get(text)


def _is_date_of_birth(year: int, month: int, day: int) -> bool:
    """A real calendar date, in a year we take for a birth year."""
    if not (_DB_MIN_YEAR <= year <= _DB_MAX_YEAR and 1 <= month <= 12 and day >= 1):
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    # (Not a tuple of month lengths: compiled, indexing one boxes all twelve into a new tuple.)
    return day <= (30 if month == 4 or month == 6 or month == 9 or month == 11 else 31)


def _ymd(year: int, month: int, day: int) -> str | None:
    if not _is_date_of_birth(year, month, day):
        return None
    return "%04d%02d%02d" % (year, month, day)  # noqa: UP031 (twice as fast as an f-string)


def _date_of_birth(text: str) -> str | None:
    """YYYYMMDD from the layouts people send; None when it is not a real calendar date.

    Year first: YYYYMMDD, YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD, ISO date-times (the date part is
    taken as written, no time-zone shift). Year last: `/` reads month first (US: MM/DD/YYYY),
    `.` and `-` read day first (DD.MM.YYYY, DD-MM-YYYY); when that reading is not a valid date
    and the other one is, the other one is used (15/01/1990 is 15 January). Month names:
    "15 Jan 1990", "January 15, 1990". Years outside 1900-2099 are dropped.
    """
    if len(text) == 10 and text[4] == text[7] == "-":  # YYYY-MM-DD, the usual
        # Already zero-padded: the digits as written are the YYYYMMDD that _ymd would format.
        if COMPILED:
            number = _typed_iso_date(text)
            if number >= 0:
                valid = _is_date_of_birth(number // 10000, number // 100 % 100, number % 100)
                # A valid year is 1900-2099: str() of the number is its eight digits.
                return str(number) if valid else None
        elif text.isascii():
            yyyy, mm, dd = text[:4], text[5:7], text[8:]
            if yyyy.isdigit() and mm.isdigit() and dd.isdigit():
                valid = _is_date_of_birth(int(yyyy), int(mm), int(dd))
                return yyyy + mm + dd if valid else None
    if match := _DB_COMPACT.fullmatch(text):
        return _ymd(int(match[1]), int(match[2]), int(match[3]))
    if match := _DB_YEAR_FIRST.fullmatch(text):
        return _ymd(int(match[1]), int(match[3]), int(match[4]))
    if match := _DB_YEAR_LAST.fullmatch(text):
        first, second, year = int(match[1]), int(match[3]), int(match[4])
        if match[2] == "/":
            return _ymd(year, first, second) or _ymd(year, second, first)
        return _ymd(year, second, first) or _ymd(year, first, second)
    if match := _DB_DAY_MONTHNAME.fullmatch(text):
        month = _MONTHS.get(match[2])
        return _ymd(int(match[3]), month, int(match[1])) if month else None
    if match := _DB_MONTHNAME_DAY.fullmatch(text):
        month = _MONTHS.get(match[1])
        return _ymd(int(match[3]), month, int(match[2])) if month else None
    return None


def _typed_iso_date(text: str) -> int:
    """YYYY-MM-DD (ten characters, "-" at 4 and 7) read as the int YYYYMMDD, or -1 when one of
    the other eight characters is not an ASCII digit: what the interpreted path of
    `_date_of_birth` reads with isascii(), three slices, isdigit() and int(), in one pass over
    the code points (compiled only: interpreted, the loop costs more)."""
    number = 0
    for index in range(10):
        if index != 4 and index != 7:
            code = ord(text[index])
            if code < 48 or code > 57:
                return -1
            number = number * 10 + (code - 48)
    return number


def _city(text: str) -> str | None:
    return _letters(text) or None


def _state(text: str) -> str | None:
    if text.startswith("us-") and (match := _US_ISO_SUBDIVISION.fullmatch(text)):  # "US-CA"
        code = match[1]
        return code if code in US_STATE_CODES else None
    letters = _letters(text)
    if not letters:
        return None
    return US_STATE_BY_KEY.get(letters if letters.isascii() else _name_key(letters), letters)


def _zip(text: str) -> str | None:
    text = text.replace("-", "")
    if not text.isalnum():  # whitespace left (or other characters): the regex decides
        text = _ZIP_SEPARATORS.sub("", text)
    if len(text) == 9 and text.isdigit() and text.isascii():
        return text[:5]
    return text or None


def _country(text: str) -> str | None:
    key = _letters(text) if text.isascii() else _name_key(text)
    if key in COUNTRY_CODES:
        return key
    code = COUNTRY_BY_KEY.get(key)
    if code is None and key.startswith("the"):
        code = COUNTRY_BY_KEY.get(key[3:])
    return code


def _name(text: str) -> str | None:
    return _letters(text) or None


def _external_id(text: str) -> str | None:
    return text


_RULES: Final[dict[str, Callable[[str], str | None]]] = {
    "em": _email,
    "ph": _phone,
    "fn": _name,
    "ln": _name,
    "ge": _gender,
    "db": _date_of_birth,
    "ct": _city,
    "st": _state,
    "zp": _zip,
    "country": _country,
    "external_id": _external_id,
}


# --------------------------------------------------------------------------- public API


def _as_text(value: Any) -> str | None:
    """The string to normalise, or None for types that cannot carry an identifier."""
    if type(value) is str:
        text = value
    elif isinstance(value, bool):
        return None
    elif isinstance(value, str):
        text = str(value)
    elif isinstance(value, int):
        if not -(10**30) < value < 10**30:  # no identifier is that long; str() could raise
            return None
        text = str(int(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = str(int(value)) if value.is_integer() and abs(value) < 1e30 else repr(value)
    else:
        return None
    return text if len(text) <= MAX_VALUE_LENGTH else None


def _normalised(rule: Callable[[str], str | None], text: str) -> tuple[str | None, bool]:
    """(`text` lowercased and trimmed, True) when that is a SHA-256 hex already; else (the
    rule's plaintext of it or None when nothing usable is left, False)."""
    lowered = text.lower().strip()
    if len(lowered) == 64 and is_sha256_hex(lowered):
        return lowered, True
    return (rule(lowered) if lowered else None), False


def _hex_digest(plain: str | None) -> str | None:
    """The SHA-256 hex of `plain`'s UTF-8; None for nothing, or for text with a lone surrogate
    ("\\ud800" escapes in JSON), which is no text."""
    if not plain:
        return None
    try:
        sha256_hex_utf8 = _sha256_hex_utf8
        if sha256_hex_utf8 is not None:
            return sha256_hex_utf8(plain)
        digest: str = _sha256(plain.encode()).hexdigest()
    except UnicodeEncodeError:
        return None
    return digest


def normalize(field: str, value: Any) -> str | None:
    """Meta's normalised plaintext of `value` for user_data key `field`, or None.

    A value that is already 64 hex characters (any case) comes back lowercased, untouched.
    An unknown `field` gives None. Never raises.
    """
    rule = _RULES.get(field)
    text = _as_text(value)
    if rule is None or text is None:
        return None
    normalised, hashed = _normalised(rule, text)
    if hashed or (normalised and _is_utf8(normalised)):
        return normalised
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: no text
        return False
    return True


class HashCacheInfo(NamedTuple):
    misses: int  # values normalised and hashed since the cache was last emptied by hand
    maxsize: int
    currsize: int


# field -> value as received -> its digest, or "" when nothing usable is left. A plain dict per
# field (no key tuple, no LRU bookkeeping); all of them together hold at most HASH_CACHE_SIZE
# entries and are emptied together when full: the identifiers that repeat (a returning user, a
# city, a country) are back after one event each.
_hash_caches: Final[dict[str, dict[str, str]]] = {field: {} for field in _RULES}


class _CacheStats:
    """Entries in all the caches, and values hashed since clear_hash_cache(). A class rather
    than a list: compiled, its int attributes are native."""

    def __init__(self) -> None:
        self.entries = 0
        self.misses = 0


_cache_stats: Final = _CacheStats()


def _hash_miss(cache: dict[str, str], rule: Callable[[str], str | None], text: str) -> str | None:
    normalised, hashed = _normalised(rule, text)
    digest = normalised if hashed else _hex_digest(normalised)
    stats = _cache_stats
    if stats.entries >= HASH_CACHE_SIZE:
        _empty_caches()
    stats.entries += 1
    stats.misses += 1
    cache[text] = digest or ""
    return digest


def normalize_and_hash(field: str, value: Any, *, prehashed: bool = False) -> str | None:
    """Return the lowercase SHA-256 hex of the normalised value, or None when nothing is left.

    `field` is a user_data key from HASHED_FIELDS (any other key gives None). A value already
    64 hex characters long is lowercased and never hashed again (32 hex characters, an MD5 or
    a dashless UUID, is hashed like any other value: Meta's Conversions API takes SHA-256).

    `prehashed=True` (the source says its traits arrive hashed): the value is trimmed and
    lowercased and passed through only if it is a SHA-256 hex; anything else gives None. We
    never hash it ourselves then, because a value flagged as hashed that is not a SHA-256 hex is
    either another digest (hashing it again can never match) or a contract breach we should
    not guess about. Never raises.
    """
    hasher = _hashers.get(field)
    return None if hasher is None else hasher.digest(value, prehashed)


class FieldHasher:
    """`normalize_and_hash` for one field, found once (the mapping keeps one per user_data key
    it hashes: no lookup of the field's cache and rule per value)."""

    __slots__ = ("cache", "field", "rule")

    def __init__(self, field: str) -> None:
        self.field = field
        self.cache = _hash_caches[field]  # emptied in place, never replaced
        self.rule = _RULES[field]

    def digest(self, value: Any, prehashed: bool = False) -> str | None:
        """`normalize_and_hash(self.field, value, prehashed=prehashed)`."""
        cache = self.cache
        if type(value) is str and not prehashed and len(value) <= MAX_VALUE_LENGTH:
            digest = cache.get(value)  # the common case
            if digest is not None:
                return digest or None
            return _hash_miss(cache, self.rule, value)
        text = _as_text(value)
        if text is None:
            return None
        if prehashed:
            text = text.strip().lower()
            return text if is_sha256_hex(text) else None
        digest = cache.get(text)
        if digest is not None:
            return digest or None
        return _hash_miss(cache, self.rule, text)


_hashers: Final[dict[str, FieldHasher]] = {field: FieldHasher(field) for field in _RULES}


def field_hasher(field: str) -> FieldHasher:
    """The hasher of user_data key `field` (one of HASHED_FIELDS; KeyError otherwise)."""
    return _hashers[field]


def hash_cache_info() -> HashCacheInfo:
    """Values hashed (misses), maxsize and current size of the hash cache (bench and tests)."""
    return HashCacheInfo(_cache_stats.misses, HASH_CACHE_SIZE, _cache_stats.entries)


def clear_hash_cache() -> None:
    """Empty the hash cache and reset its miss count."""
    _empty_caches()
    _cache_stats.misses = 0


def _empty_caches() -> None:
    for cache in _hash_caches.values():
        cache.clear()
    _cache_stats.entries = 0
