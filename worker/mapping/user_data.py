"""`user_data`: the customer information parameters, normalised and hashed where Meta wants it.

- em, ph, fn, ln, ge, db from traits (email, phone, firstName/first_name/firstname, lastName/...,
  gender, birthday; a two-word `name` gives fn and ln when neither is set, as RudderStack does);
  ct, st, zp, country from `address.city`, `.state`, `.postal_code`/`.postalCode`/`.zip`,
  `.country`. Traits are `context.traits`; identify, page and screen also read top-level
  `traits`, which win. `integrations.<name>.hashed: true` marks them as already hashed.
- external_id: the `external_id_field` path, else userId, else anonymousId (the first that gives
  an id: an absent, blank or object value falls through); always hashed.
- client_ip_address (`context.ip`, dropped unless it parses as an IP address) and
  client_user_agent (`context.userAgent`) as they are.
- fbp / fbc, never hashed: `properties` (Segment's default), `context` (RudderStack's), the
  integration options, then `context.cookies._fbp` / `._fbc`. Without an fbc, an `fbclid` in the
  page URL gives `fb.1.<event time in ms>.<fbclid>` (RudderStack's deduceFbcParam).

A value that normalises to nothing is left out and never fails the event.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.capi.contract import is_sha256_hex
from worker.mapping.normalize import normalize_and_hash
from worker.mapping.paths import first_present, get_path

_TRAIT_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("em", ("email",)),
    ("ph", ("phone",)),
    ("fn", ("firstName", "first_name", "firstname")),
    ("ln", ("lastName", "last_name", "lastname")),
    ("ge", ("gender",)),
    ("db", ("birthday",)),
)
_ADDRESS_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ct", ("city",)),
    ("st", ("state",)),
    ("zp", ("postal_code", "postalCode", "zip")),
    ("country", ("country",)),
)
_COOKIE_NAMES = {"fbp": "_fbp", "fbc": "_fbc"}


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
) -> dict[str, Any]:
    """The user_data object; empty when nothing usable was found."""
    user_data: dict[str, Any] = {}

    for field, keys in _TRAIT_KEYS:
        value = _from_traits(trait_sources, keys)
        if value is not None:
            _put_hashed(user_data, field, value, prehashed)
    if "fn" not in user_data and "ln" not in user_data:
        _split_full_name(user_data, _from_traits(trait_sources, ("name",)), prehashed)

    addresses = tuple(
        address for source in trait_sources if isinstance(address := source.get("address"), dict)
    )
    if addresses:
        for field, keys in _ADDRESS_KEYS:
            value = _from_traits(addresses, keys)
            if value is not None:
                _put_hashed(user_data, field, value, prehashed)

    # The first candidate that gives an id wins: a configured path or a userId that is absent,
    # blank or of a type that cannot be an id (an object, a bool) falls through to the next.
    candidates = (
        get_path(message, external_id_field) if external_id_field is not None else None,
        message.get("userId"),
        message.get("anonymousId"),
    )
    for candidate in candidates:
        if candidate is not None:
            _put_hashed(user_data, "external_id", candidate, False)
            if "external_id" in user_data:
                break

    ip = _text(context.get("ip"))
    if ip is not None and _is_ip_address(ip):
        user_data["client_ip_address"] = ip
    user_agent = _text(context.get("userAgent"))
    if user_agent is not None:
        user_data["client_user_agent"] = user_agent

    for field in ("fbp", "fbc"):
        cookie = _browser_cookie(field, properties, context, options)
        if cookie is not None:
            user_data[field] = cookie
    if "fbc" not in user_data and page_url is not None:
        fbclid = _fbclid(page_url)
        if fbclid is not None:
            user_data["fbc"] = f"fb.1.{event_time_ms}.{fbclid}"
    return user_data


def has_customer_information(user_data: dict[str, Any]) -> bool:
    """True when user_data holds at least one customer information parameter.

    Every key this module sets is one, so any key will do; Meta rejects an empty user_data.
    """
    return bool(user_data)


def _from_traits(sources: tuple[dict[str, Any], ...], keys: tuple[str, ...]) -> Any:
    for source in sources:
        value = first_present(source, keys)
        if value is not None:
            return value
    return None


def _put_hashed(user_data: dict[str, Any], field: str, value: Any, prehashed: bool) -> None:
    if isinstance(value, list):
        hashed = [
            digest
            for item in value
            if item is not None and (digest := _hashed(field, item, prehashed)) is not None
        ]
        if len(hashed) == 1:
            user_data[field] = hashed[0]
        elif hashed:
            user_data[field] = hashed
        return
    if isinstance(value, dict | bool):
        return
    digest = _hashed(field, value, prehashed)
    if digest is not None:
        user_data[field] = digest


def _hashed(field: str, value: Any, prehashed: bool) -> str | None:
    digest = normalize_and_hash(field, value, prehashed=prehashed)
    # A value flagged as pre-hashed that is not a SHA-256 digest would make Meta reject the
    # whole batch: leave it out like any value that normalises to nothing.
    if prehashed and not is_sha256_hex(digest):
        return None
    return digest


def _split_full_name(user_data: dict[str, Any], name: Any, prehashed: bool) -> None:
    """`name: "Jane Doe"` gives fn and ln when it is exactly two words (as RudderStack does)."""
    if not isinstance(name, str):
        return
    parts = name.split()
    if len(parts) == 2:
        _put_hashed(user_data, "fn", parts[0], prehashed)
        _put_hashed(user_data, "ln", parts[1], prehashed)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _browser_cookie(
    field: str, properties: dict[str, Any], context: dict[str, Any], options: dict[str, Any]
) -> str | None:
    """fbp / fbc from properties, context, integration options, then context.cookies (_fbp)."""
    for source in (properties, context, options):
        value = _text(source.get(field))
        if value is not None:
            return value
    cookies = context.get("cookies")
    if isinstance(cookies, dict):
        return _text(cookies.get(_COOKIE_NAMES[field]))
    return None


def _fbclid(url: str) -> str | None:
    if "fbclid=" not in url:
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    values = parse_qs(query).get("fbclid")
    if not values:
        return None
    return values[0].strip() or None
