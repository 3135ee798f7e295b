"""Which Meta `event_name` a Segment call becomes.

Track: `events_to_standard` overrides the defaults (Order Completed -> Purchase, ...). The exact
event name is tried first, then a case-insensitive match (so `order completed` from a RudderStack
source is a Purchase too, as RudderStack maps it); a configured name beats a default at both
steps. Anything else is a custom event under its own name, at most 50 characters.
Page (and screen when forwarded): PageView, or `Viewed page {name}` / `Viewed screen {name}`
with `page_event_naming: viewed_page`. Identify (when forwarded): `identify`, as RudderStack's
advanced matching sends it.
"""

from __future__ import annotations

from typing import Any, Final

from worker import reasons
from worker.mapping.errors import InvalidEvent, shown
from worker.mapping.plan import DestinationPlan

MAX_EVENT_NAME_LENGTH: Final = 50
PAGE_VIEW: Final = "PageView"
IDENTIFY_EVENT_NAME: Final = "identify"


def track_event_name(event: Any, plan: DestinationPlan) -> str:
    """The Meta event name of a track call whose `event` field is `event`."""
    if event is None or (isinstance(event, str) and not event.strip()):
        raise InvalidEvent(reasons.MISSING_EVENT_NAME, "track call without `event`")
    if not isinstance(event, str):
        raise InvalidEvent(
            reasons.INVALID_EVENT_NAME, f"`event` must be a string, got {type(event).__name__}"
        )
    name = plan.events_exact.get(event) or plan.events_folded.get(event.casefold()) or event
    return _checked(name)


def page_event_name(kind: str, name: Any, naming: str) -> str:
    """`PageView`, or `Viewed {kind} {name}` (`Viewed {kind}` without a name) for viewed_page."""
    if naming != "viewed_page":
        return PAGE_VIEW
    if isinstance(name, str) and name.strip():
        return _checked(f"Viewed {kind} {name.strip()}")
    return f"Viewed {kind}"


def _checked(name: str) -> str:
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise InvalidEvent(
            reasons.EVENT_NAME_TOO_LONG,
            f"event name {shown(name, 60)} has {len(name)} characters, Meta allows "
            f"{MAX_EVENT_NAME_LENGTH}: shorten it or map it with events_to_standard",
        )
    return name
