"""Per-destination lookup tables, built once per `DestinationSettings` object and reused.

Settings are frozen, so a plan computed from one settings object stays right for its life. The
cache holds the settings object itself to make sure an id is never reused by another object.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.config import DEFAULT_PII_DENYLIST, DestinationSettings
from worker.mapping.paths import split_path

# Segment e-commerce spec names and their Meta standard events (the Segment destination's defaults).
DEFAULT_EVENTS_TO_STANDARD: dict[str, str] = {
    "Order Completed": "Purchase",
    "Product Added": "AddToCart",
    "Product List Viewed": "ViewContent",
    "Product Viewed": "ViewContent",
    "Products Searched": "Search",
    "Checkout Started": "InitiateCheckout",
}

# Destinations are few; the bound only guards against settings objects built per call.
_PLAN_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class DestinationPlan:
    # The settings the mapping reads for every event, copied here: reading a field of a slotted
    # dataclass is much cheaper than reading one of a pydantic model.
    forward_identify: bool
    forward_screen: bool
    page_event_naming: str
    default_action_source: str
    limited_data_use: bool
    processing_options: tuple[str, ...]
    processing_country: int
    processing_state: int
    events_exact: dict[str, str]
    events_folded: dict[str, str]
    categories_to_content_types: dict[str, str]
    value_field: tuple[str, ...]
    external_id_field: tuple[str, ...] | None
    drop_external_id: bool
    default_phone_country: str | None
    # property name -> True (hash it) or False (drop it); allowlisted names are absent.
    pii_actions: dict[str, bool]
    integration_names: tuple[str, ...]
    required_consent: tuple[str, ...]
    match_types: frozenset[str]
    match_names: frozenset[str]
    match_source_ids: frozenset[str]
    source_id_field: tuple[str, ...]
    source_id_header: str | None


def _build(destination: DestinationSettings) -> DestinationPlan:
    folded = {name.casefold(): meta for name, meta in DEFAULT_EVENTS_TO_STANDARD.items()}
    folded.update((name.casefold(), meta) for name, meta in destination.events_to_standard.items())
    value_field = destination.value_field_identifier.strip()
    if value_field.startswith("properties."):
        value_field = value_field[len("properties.") :]
    match = destination.match
    return DestinationPlan(
        forward_identify=destination.forward_identify,
        forward_screen=destination.forward_screen,
        page_event_naming=destination.page_event_naming,
        default_action_source=destination.default_action_source,
        limited_data_use=destination.limited_data_use,
        processing_options=tuple(destination.data_processing_options),
        processing_country=destination.data_processing_options_country,
        processing_state=destination.data_processing_options_state,
        events_exact=dict(destination.events_to_standard),
        events_folded=folded,
        categories_to_content_types=dict(destination.categories_to_content_types),
        value_field=split_path(value_field or "price"),
        external_id_field=(
            split_path(destination.external_id_field) if destination.external_id_field else None
        ),
        drop_external_id=destination.drop_external_id,
        default_phone_country=destination.default_phone_country,
        pii_actions=_pii_actions(destination),
        integration_names=tuple(destination.integration_names),
        required_consent=tuple(destination.required_consent_categories),
        match_types=frozenset(match.event_types),
        match_names=frozenset(match.event_names),
        match_source_ids=frozenset(match.source_ids),
        source_id_field=split_path(match.source_id_field),
        source_id_header=match.source_id_header,
    )


_plans: dict[int, tuple[DestinationSettings, DestinationPlan]] = {}


def _pii_actions(destination: DestinationSettings) -> dict[str, bool]:
    """Property name → hash it (True) or drop it (False): the default list plus the
    destination's own rules, less its allowlist."""
    actions = dict.fromkeys(DEFAULT_PII_DENYLIST, False)
    actions.update((rule.property, rule.hash) for rule in destination.pii_denylist)
    for name in destination.pii_allowlist:
        actions.pop(name, None)
    return actions


def plan_for(destination: DestinationSettings) -> DestinationPlan:
    """The lookup tables of `destination`, built on first use."""
    entry = _plans.get(id(destination))
    if entry is not None and entry[0] is destination:
        return entry[1]
    plan = _build(destination)
    if len(_plans) >= _PLAN_CACHE_SIZE:
        _plans.clear()
    _plans[id(destination)] = (destination, plan)
    return plan
