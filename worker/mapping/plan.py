"""Per-destination lookup tables for the mapping, built once when a destination set is loaded
(`worker.destination_set`) and handed to `map_event` with the event. No cache: a set of any
size keeps exactly one plan per destination, for as long as the set lives."""

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
    integration_name_set: frozenset[str]
    required_consent: tuple[str, ...]
    # Check every built event against Meta's contract (worker.capi.contract) before it is
    # handed on: `mapping.verify_contract` in the worker; always for a plan built by map_event.
    verify_contract: bool = False


def build_plan(
    destination: DestinationSettings, *, verify_contract: bool = False
) -> DestinationPlan:
    folded = {name.casefold(): meta for name, meta in DEFAULT_EVENTS_TO_STANDARD.items()}
    folded.update((name.casefold(), meta) for name, meta in destination.events_to_standard.items())
    value_field = destination.value_field_identifier.strip()
    if value_field.startswith("properties."):
        value_field = value_field[len("properties.") :]
    return DestinationPlan(
        forward_identify=destination.forward_identify,
        forward_screen=destination.forward_screen,
        page_event_naming=destination.page_event_naming,
        default_action_source=destination.default_action_source,
        limited_data_use=destination.limited_data_use,
        processing_options=tuple(destination.data_processing_options),
        processing_country=destination.data_processing_options_country,
        processing_state=destination.data_processing_options_state,
        # The defaults by their exact names too, with what the folded lookup would answer for
        # them (a configured name of the same folding included): the usual event is then
        # found without casefolding its name. Configured exact names still come first.
        events_exact={
            **{name: folded[name.casefold()] for name in DEFAULT_EVENTS_TO_STANDARD},
            **destination.events_to_standard,
        },
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
        integration_name_set=frozenset(destination.integration_names),
        required_consent=tuple(destination.required_consent_categories),
        verify_contract=verify_contract,
    )


def _pii_actions(destination: DestinationSettings) -> dict[str, bool]:
    """Property name → hash it (True) or drop it (False): the default list plus the
    destination's own rules, less its allowlist."""
    actions = dict.fromkeys(DEFAULT_PII_DENYLIST, False)
    actions.update((rule.property, rule.hash) for rule in destination.pii_denylist)
    for name in destination.pii_allowlist:
        actions.pop(name, None)
    return actions
