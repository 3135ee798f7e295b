"""Consent gate: with required categories, an event is sent only when every one is granted."""

from __future__ import annotations

from typing import Any


def has_consent(context: Any, required: tuple[str, ...]) -> bool:
    """True when `context.consent.categoryPreferences` grants (is `true` for) every category.

    Nothing required means consent is not checked. A missing or malformed consent object grants
    nothing.
    """
    if not required:
        return True
    if not isinstance(context, dict):
        return False
    consent = context.get("consent")
    if not isinstance(consent, dict):
        return False
    preferences = consent.get("categoryPreferences")
    if not isinstance(preferences, dict):
        return False
    return all(preferences.get(category) is True for category in required)
