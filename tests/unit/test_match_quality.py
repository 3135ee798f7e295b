"""Match quality: user_data signatures, key counts over delivered events, shares in order."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import REGISTRY

from worker.capi.match_quality import (
    BROWSER_ID_KEY,
    CORE_KEYS,
    count_keys,
    ordered_shares,
    user_data_signature,
)
from worker.stream.stats import WorkerStats


def test_signature_is_the_user_data_keys_plus_fbp_or_fbc() -> None:
    assert user_data_signature({"user_data": {"em": "h", "external_id": "h"}}) == (
        "em",
        "external_id",
    )
    for browser_ids in ({"fbp": "x"}, {"fbc": "y"}, {"fbp": "x", "fbc": "y"}):
        signature = user_data_signature({"user_data": {"em": "h", **browser_ids}})
        assert signature.count(BROWSER_ID_KEY) == 1
    assert user_data_signature({"event_name": "PageView"}) == ()


def test_events_of_the_same_shape_share_one_signature_object() -> None:
    first = user_data_signature({"user_data": {"em": "a", "ph": "b"}})
    second = user_data_signature({"user_data": {"em": "c", "ph": "d"}})
    assert first is second


def test_keys_are_counted_over_the_delivered_events_only() -> None:
    signatures = [("em", "ph"), ("em",), ("em", "fbp", BROWSER_ID_KEY), ("ph",)]
    assert count_keys(signatures) == Counter({"em": 3, "ph": 2, "fbp": 1, BROWSER_ID_KEY: 1})
    assert count_keys(signatures, {0, 2}) == Counter({"em": 1, "ph": 1})


def test_shares_list_the_core_keys_even_at_zero_then_the_others_in_meta_order() -> None:
    shares = ordered_shares(Counter({"madid": 1, "em": 3, "zz_unknown": 2}), 4)
    keys = [key for key, _, _ in shares]
    assert keys[0] == "em" and set(CORE_KEYS) <= set(keys)
    assert keys.index("madid") > keys.index(BROWSER_ID_KEY)
    assert keys[-1] == "zz_unknown"
    assert dict((key, (count, share)) for key, count, share in shares)["em"] == (3, 0.75)
    assert dict((key, share) for key, _, share in shares)["fbp"] == 0.0
    assert all(share == 0.0 for _, _, share in ordered_shares(Counter(), 0))


@pytest.mark.parametrize("keys", [Counter({"em": 2, "fbp": 1}), None])
def test_delivered_events_count_their_keys_beside_the_delivered_total(
    keys: Counter[str] | None,
) -> None:
    def sample(key: str) -> float:
        value = REGISTRY.get_sample_value(
            "capi_user_data_keys_total", {"destination": "match-quality-test", "key": key}
        )
        return value or 0.0

    before = sample("em")
    stats = WorkerStats()
    stats.count_delivered("match-quality-test", "1", 2, keys)
    expected = 2.0 if keys else 0.0
    assert sample("em") - before == expected
    assert stats.user_data_keys.get("match-quality-test", Counter())["em"] == expected
