"""`user_data`: the customer information parameters, normalised and hashed where Meta wants it.

- em, ph, fn, ln, ge, db from traits (email, phone, firstName/first_name/firstname, lastName/...,
  gender, birthday; a two-word `name` gives fn and ln when neither is set); a national phone
  number gets the calling code of the address's country, else of `default_phone_country`
  (`worker.mapping.phone`);
  ct, st, zp, country from `address.city`, `.state`, `.postal_code`/`.postalCode`/`.zip`,
  `.country`. Traits are `context.traits`; identify, page and screen also read top-level
  `traits`, which win. `integrations.<name>.hashed: true` marks them as already hashed.
- external_id: the `external_id_field` path, else userId, else anonymousId (the first that gives
  an id: an absent, blank or object value falls through); always hashed; none at all with
  `drop_external_id`.
- client_ip_address (`context.ip`, dropped unless it parses as an IP address) and
  client_user_agent (`context.userAgent`) as they are.
- fbp / fbc, never hashed: `properties` (Segment's default), `context` (RudderStack's), the
  integration options, then `context.cookies._fbp` / `._fbc`. Without an fbc, an `fbclid` in the
  page URL gives `fb.1.<event time in ms>.<fbclid>` (RudderStack's deduceFbcParam).
- partner_id, partner_name, subscription_id, lead_id, fb_login_id, anon_id, madid from
  `integrations.<name>.user_data`, unhashed, as given.

A value that normalises to nothing is left out and never fails the event.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from worker.mapping.ip_address import is_ip_address
from worker.mapping.normalize import FieldHasher, field_hasher
from worker.mapping.paths import get_path
from worker.mapping.phone import phone_region, with_calling_code

# Where each trait is read, in the order of preference. `phone` is read on its own (it may be
# completed with a calling code first).
_EMAIL_KEYS: Final[tuple[str, ...]] = ("email",)
_FIRST_NAME_KEYS: Final[tuple[str, ...]] = ("firstName", "first_name", "firstname")
_LAST_NAME_KEYS: Final[tuple[str, ...]] = ("lastName", "last_name", "lastname")
_GENDER_KEYS: Final[tuple[str, ...]] = ("gender",)
_BIRTHDAY_KEYS: Final[tuple[str, ...]] = ("birthday",)
_PHONE_KEYS: Final[tuple[str, ...]] = ("phone",)
_NAME_KEYS: Final[tuple[str, ...]] = ("name",)
# ... and in `address`:
_CITY_KEYS: Final[tuple[str, ...]] = ("city",)
_STATE_KEYS: Final[tuple[str, ...]] = ("state",)
_ZIP_KEYS: Final[tuple[str, ...]] = ("postal_code", "postalCode", "zip")
_COUNTRY_KEYS: Final[tuple[str, ...]] = ("country",)
# Meta's user_data parameters an event may carry in `integrations.<name>.user_data`, sent as
# given (Meta takes them unhashed).
PASS_THROUGH_KEYS: Final[tuple[str, ...]] = (
    "partner_id",
    "partner_name",
    "subscription_id",
    "lead_id",
    "fb_login_id",
    "anon_id",
    "madid",
)
_NO_COOKIES: Final[dict[str, Any]] = {}
# One hasher per hashed key: its cache and rule found once, not per value.
_EM: Final = field_hasher("em")
_FN: Final = field_hasher("fn")
_LN: Final = field_hasher("ln")
_GE: Final = field_hasher("ge")
_DB: Final = field_hasher("db")
_PH: Final = field_hasher("ph")
_CT: Final = field_hasher("ct")
_ST: Final = field_hasher("st")
_ZP: Final = field_hasher("zp")
_COUNTRY: Final = field_hasher("country")
_EXTERNAL_ID: Final = field_hasher("external_id")


def build_user_data(
    message: dict[str, Any],
    context: dict[str, Any],
    properties: dict[str, Any],
    trait_sources: tuple[dict[str, Any], ...],
    options: dict[str, Any],
    external_id_field: tuple[str, ...] | None,
    page_url: str | None,
    event_time_ms: int,
    prehashed: bool,
    drop_external_id: bool = False,
    default_phone_country: str | None = None,
) -> dict[str, Any]:
    """The user_data object; empty when nothing usable was found."""
    user_data: dict[str, Any] = {}

    _put_hashed(user_data, _EM, _first_present(trait_sources, _EMAIL_KEYS), prehashed)
    named = _put_hashed(user_data, _FN, _first_present(trait_sources, _FIRST_NAME_KEYS), prehashed)
    named |= _put_hashed(user_data, _LN, _first_present(trait_sources, _LAST_NAME_KEYS), prehashed)
    _put_hashed(user_data, _GE, _first_present(trait_sources, _GENDER_KEYS), prehashed)
    _put_hashed(user_data, _DB, _first_present(trait_sources, _BIRTHDAY_KEYS), prehashed)
    addresses = _addresses(trait_sources)
    phone = _first_present(trait_sources, _PHONE_KEYS)
    if phone is not None and not prehashed:
        phone = _completed_phone(phone, addresses, default_phone_country)
    # A phone given as text is normalised and hashed even when the traits are flagged as hashed
    # (unlike the other traits, which are then taken only as SHA-256 digests).
    _put_hashed(user_data, _PH, phone, prehashed and type(phone) is not str)
    if not named:
        _split_full_name(user_data, _first_present(trait_sources, _NAME_KEYS), prehashed)
    if addresses:
        _put_hashed(user_data, _CT, _first_present(addresses, _CITY_KEYS), prehashed)
        _put_hashed(user_data, _ST, _first_present(addresses, _STATE_KEYS), prehashed)
        _put_hashed(user_data, _ZP, _first_present(addresses, _ZIP_KEYS), prehashed)
        _put_hashed(user_data, _COUNTRY, _first_present(addresses, _COUNTRY_KEYS), prehashed)

    if not drop_external_id:
        _put_external_id(user_data, message, external_id_field)

    ip = _text(context.get("ip"))
    if ip is not None and is_ip_address(ip):
        user_data["client_ip_address"] = ip
    user_agent = _text(context.get("userAgent"))
    if user_agent is not None:
        user_data["client_user_agent"] = user_agent

    cookies = context.get("cookies")
    if cookies is None or not isinstance(cookies, dict):
        cookies = _NO_COOKIES
    fbp = _browser_id("fbp", "_fbp", properties, context, options, cookies)
    if fbp is not None:
        user_data["fbp"] = fbp
    fbc = _browser_id("fbc", "_fbc", properties, context, options, cookies)
    if fbc is None and page_url is not None and "fbclid=" in page_url:
        fbclid = _fbclid(page_url)
        if fbclid is not None:
            fbc = f"fb.1.{event_time_ms}.{fbclid}"
    if fbc is not None:
        user_data["fbc"] = fbc
    if options:
        given = options.get("user_data")
        if given is not None and isinstance(given, dict):
            _put_given(user_data, given)
    return user_data


def has_customer_information(user_data: dict[str, Any]) -> bool:
    """True when user_data holds at least one customer information parameter.

    Every key this module sets is one except Meta's partner fields; Meta rejects a user_data
    without one.
    """
    partner_fields = ("partner_id" in user_data) + ("partner_name" in user_data)
    return len(user_data) > partner_fields


def _completed_phone(
    phone: Any, addresses: tuple[dict[str, Any], ...], default_country: str | None
) -> Any:
    """`phone` with the calling code of the user's country when it is a national number;
    otherwise `phone` unchanged. The country is the address's, else `default_country`."""
    if type(phone) is str and phone.lstrip().startswith("+"):
        return phone  # international already: with_calling_code would leave it alone
    region = None
    country = _first_present(addresses, _COUNTRY_KEYS) if addresses else None
    if type(country) is str:
        region = phone_region(country)
    if region is None:
        region = default_country
        if region is None:
            return phone
    if type(phone) is str:
        return with_calling_code(phone, region) or phone
    if type(phone) is int:
        return with_calling_code(str(phone), region) or phone
    if isinstance(phone, list):
        return [
            (with_calling_code(item, region) or item) if type(item) is str else item
            for item in phone
        ]
    return phone


def _put_given(user_data: dict[str, Any], given: dict[str, Any]) -> None:
    """Meta's unhashed user_data parameters from the integration options, sent as given: a
    non-blank string (trimmed) or an integer; anything else is left out."""
    for key in PASS_THROUGH_KEYS:
        value = given.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            value = value.strip()
            if value:
                user_data[key] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            user_data[key] = value


def _first_present(sources: tuple[dict[str, Any], ...], keys: tuple[str, ...]) -> Any:
    """The first value of `keys` in the first of `sources` holding one that is neither None
    nor a blank string."""
    for source in sources:
        for key in keys:
            value = source.get(key)
            # Blank: empty or whitespace only (`not value.strip()`, without the stripped copy).
            if value is not None and not (
                isinstance(value, str) and (not value or value.isspace())
            ):
                return value
    return None


def _addresses(trait_sources: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    if len(trait_sources) == 1:  # track: context.traits only (no list built)
        address = trait_sources[0].get("address")
        return (address,) if address is not None and isinstance(address, dict) else ()
    addresses = []
    for source in trait_sources:
        address = source.get("address")
        if address is not None and isinstance(address, dict):
            addresses.append(address)
    return tuple(addresses)


def _put_external_id(
    user_data: dict[str, Any], message: dict[str, Any], field_path: tuple[str, ...] | None
) -> None:
    """The first candidate that gives an id wins: a configured path or a userId that is absent,
    blank or of a type that cannot be an id (an object, a bool) falls through to the next."""
    if field_path is not None and _put_hashed(
        user_data, _EXTERNAL_ID, get_path(message, field_path), False
    ):
        return
    if not _put_hashed(user_data, _EXTERNAL_ID, message.get("userId"), False):
        _put_hashed(user_data, _EXTERNAL_ID, message.get("anonymousId"), False)


def _put_hashed(
    user_data: dict[str, Any], hasher: FieldHasher, value: Any, prehashed: bool
) -> bool:
    """user_data[hasher.field] = the digest(s) of `value` (as found in the event: any JSON
    value), unless nothing usable is left; whether it was set."""
    # With `prehashed`, only a SHA-256 digest comes back: a value flagged as hashed that is not
    # one would make Meta reject the whole batch, so it is left out.
    if type(value) is not str:  # a failing isinstance() is slow: skip them for plain strings
        if value is None:
            return False
        if isinstance(value, list):
            digests = _hashed_list(hasher, value, prehashed)
            if not digests:
                return False
            user_data[hasher.field] = digests[0] if len(digests) == 1 else digests
            return True
        if isinstance(value, (dict, bool)):
            return False
    digest = hasher.digest(value, prehashed)
    if digest is None:
        return False
    user_data[hasher.field] = digest
    return True


def _hashed_list(hasher: FieldHasher, values: list[Any], prehashed: bool) -> list[str]:
    digests = []
    for item in values:
        if item is not None:
            digest = hasher.digest(item, prehashed)
            if digest is not None:
                digests.append(digest)
    return digests


def _split_full_name(user_data: dict[str, Any], name: Any, prehashed: bool) -> None:
    """`name: "Jane Doe"` gives fn and ln when it is exactly two words (as RudderStack does)."""
    if not isinstance(name, str):
        return
    parts = name.split()
    if len(parts) == 2:
        _put_hashed(user_data, _FN, parts[0], prehashed)
        _put_hashed(user_data, _LN, parts[1], prehashed)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _browser_id(
    field: str,
    cookie: str,
    properties: dict[str, Any],
    context: dict[str, Any],
    options: dict[str, Any],
    cookies: dict[str, Any],
) -> str | None:
    """fbp / fbc from properties, context, the integration options, then the _fbp / _fbc
    cookie: the first that is a non-blank string (trimmed)."""
    text = _text(properties.get(field))
    if text is None:
        text = _text(context.get(field))
    if text is None and options:
        text = _text(options.get(field))
    if text is None:
        text = _text(cookies.get(cookie))
    return text


def _fbclid(url: str) -> str | None:
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    values = parse_qs(query).get("fbclid")
    if not values:
        return None
    return values[0].strip() or None
