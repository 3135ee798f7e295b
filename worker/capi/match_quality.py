"""Match quality: which user_data keys the events carry, per destination.

Meta matches an event to a person through its user_data; the more keys (em, ph, external_id,
fbp, fbc, ...) the better. Each mapped event is reduced to its *signature*, the tuple of its
user_data keys, plus `fbp_or_fbc` when it has either browser id (a union that per-key counts
cannot give). Signatures are interned: events of the same shape share one tuple, so a batch
keeps one reference per event. Counting happens once per batch, not per event.

Used by the worker (`capi_user_data_keys_total` beside `capi_events_delivered_total`),
`capi-worker transform --summary` and the demo's summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping, Sequence
from typing import Any

from worker.capi.rules import HASHED_FIELDS

#: A pseudo-key counted when an event carries fbp, fbc or both.
BROWSER_ID_KEY = "fbp_or_fbc"
# Listed even when no event carries them: their absence is what a reader looks for.
CORE_KEYS: tuple[str, ...] = (
    "em",
    "ph",
    "external_id",
    "client_ip_address",
    "client_user_agent",
    "fbp",
    "fbc",
    BROWSER_ID_KEY,
)
# The order shares are listed in; keys not listed here follow, alphabetically.
KEY_ORDER: tuple[str, ...] = (
    *HASHED_FIELDS,
    *CORE_KEYS[3:],
    "madid",
    "anon_id",
    "fb_login_id",
    "lead_id",
    "subscription_id",
    "partner_id",
    "partner_name",
)
_RANK = {key: rank for rank, key in enumerate(KEY_ORDER)}
_MAX_SIGNATURES = 4096  # distinct shapes are few; the bound only guards against surprises
# The keys of a user_data, in order -> its signature (those keys, plus `fbp_or_fbc` when fbp
# or fbc is among them): a shape seen before costs one lookup.
_signatures: dict[tuple[str, ...], tuple[str, ...]] = {}


def user_data_signature(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The user_data keys of a mapped Conversions API event (interned), with `fbp_or_fbc`."""
    user_data = event.get("user_data")
    if not isinstance(user_data, dict):
        return ()
    keys = tuple(user_data)
    signature = _signatures.get(keys)
    if signature is None:
        signature = keys
        if "fbp" in user_data or "fbc" in user_data:
            signature += (BROWSER_ID_KEY,)
        if len(_signatures) >= _MAX_SIGNATURES:
            _signatures.clear()
        _signatures[keys] = signature
    return signature


def count_keys(
    signatures: Sequence[tuple[str, ...]], left_out: Container[int] = ()
) -> Counter[str]:
    """Events carrying each key, over the events whose signatures are given, except those at
    the positions in `left_out` (the events of a batch that were not delivered)."""
    if left_out:
        signatures = [keys for i, keys in enumerate(signatures) if i not in left_out]
    keys: Counter[str] = Counter()
    for signature, events in Counter(signatures).items():
        for key in signature:
            keys[key] += events
    return keys


def ordered_shares(keys: Mapping[str, int], events: int) -> list[tuple[str, int, float]]:
    """(key, events carrying it, share of `events`) for CORE_KEYS and every key counted, in
    KEY_ORDER, then the others alphabetically."""
    listed = set(CORE_KEYS).union(keys)
    ordered = sorted(listed, key=lambda key: (_RANK.get(key, len(_RANK)), key))
    shares = []
    for key in ordered:
        count = keys.get(key, 0)
        shares.append((key, count, count / events if events else 0.0))
    return shares
