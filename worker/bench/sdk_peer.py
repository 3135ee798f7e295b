"""The peer of the mapping stage: the same corpus through Meta's own Python SDK objects.

What an integrator would write with `facebook_business` (Meta's Business SDK) instead of this
worker: decode the record, build `UserData` / `CustomData` / `Content` / `Event` from the same
fields, let the SDK normalise and hash them (`Event.normalize()`), serialise the result. It
covers the fields of the bench corpus only (the worker's rules do much more: routing, consent,
PII filtering, time windows, LDU); it is a yardstick for the cost per event, not a second
implementation. The SDK is a test dependency, not one of the worker: without it this part is
left out of the report. An event the SDK refuses (it raises on a value it cannot normalise, or
on a stale or unparseable timestamp checked below) counts as invalid, like in the mapping run.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from worker.mapping.geo import COUNTRY_BY_KEY, name_key
from worker.mapping.plan import DEFAULT_EVENTS_TO_STANDARD as STANDARD_NAMES

MAX_AGE_SECONDS = 7 * 86_400


def sdk_available() -> bool:
    try:
        import facebook_business.adobjects.serverside.event  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class SdkRun:
    events: int
    cpu_seconds: float
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def events_per_cpu_second(self) -> float:
        return self.events / self.cpu_seconds if self.cpu_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "cpu_seconds": round(self.cpu_seconds, 4),
            "events_per_cpu_second": round(self.events_per_cpu_second, 1),
            "cpu_microseconds_per_event": round(self.cpu_seconds / self.events * 1e6, 2)
            if self.events
            else None,
            "outcomes": dict(sorted(self.outcomes.items())),
        }


def section(runs: list[SdkRun], mapping_runs: list[Any]) -> dict[str, Any]:
    """The report's `mapping.sdk_peer`: the peer's figures and the mapping's ratio to them
    (run by run: run i of each was measured back to back)."""
    from .report import summarise

    ratios = [
        mapping.events_per_cpu_second / run.events_per_cpu_second
        for mapping, run in zip(mapping_runs, runs, strict=True)
        if run.events_per_cpu_second
    ]
    return {
        "events_per_cpu_second": summarise([run.events_per_cpu_second for run in runs], 0),
        "ratio": summarise(ratios, 2),
        "outcomes": runs[0].outcomes,
        "run_details": [run.as_dict() for run in runs],
    }


def run_sdk(values: list[bytes], now: float) -> SdkRun:
    """Decode + build the SDK objects + normalise + serialise every value once (CPU time)."""
    sdk = load_sdk()
    outcomes: Counter[str] = Counter()
    gc.collect()
    started = time.process_time()
    for value in values:
        try:
            message = orjson.loads(value)
            event = sdk_event(message, now, sdk)
            orjson.dumps(event.normalize())
        except Exception:
            outcomes["invalid"] += 1
        else:
            outcomes["mapped"] += 1
    return SdkRun(len(values), time.process_time() - started, outcomes)


@dataclass(frozen=True, slots=True)
class Sdk:
    """The SDK classes the peer uses, imported once, before the clock starts, as an
    integrator's module would import them. (An import statement run per event, even of a
    module already imported, costs ~0.6 µs: seven of them made the peer ~4 µs slower per
    event than such code, and the ratio to it that much flattering.)"""

    action_source: Any
    content: Any
    custom_data: Any
    event: Any
    gender: Any
    user_data: Any


def load_sdk() -> Sdk:
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.content import Content
    from facebook_business.adobjects.serverside.custom_data import CustomData
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.gender import Gender
    from facebook_business.adobjects.serverside.user_data import UserData

    return Sdk(ActionSource, Content, CustomData, Event, Gender, UserData)


def sdk_event(message: dict[str, Any], now: float, sdk: Sdk) -> Any:
    """The Conversions API event of one Segment-spec `message`, as SDK objects."""
    context = message.get("context") or {}
    traits = context.get("traits") or {}
    address = traits.get("address") or {}
    cookies = context.get("cookies") or {}
    properties = message.get("properties") or {}
    event_time = int(datetime.fromisoformat(message["timestamp"]).timestamp())
    if now - event_time > MAX_AGE_SECONDS:
        raise ValueError("event_time too old")
    birthday = traits.get("birthday")
    user_data = sdk.user_data(
        email=traits.get("email"),
        phone=traits.get("phone"),
        first_name=traits.get("firstName"),
        last_name=traits.get("lastName"),
        gender=_gender(traits.get("gender"), sdk.gender),
        date_of_birth=birthday.replace("-", "") if birthday else None,
        city=address.get("city"),
        state=address.get("state"),
        zip_code=address.get("postalCode"),
        # The SDK takes ISO codes only: an integrator maps names with a table (ours, here).
        country_code=_country_code(address.get("country")),
        external_id=message.get("userId") or message.get("anonymousId"),
        client_ip_address=context.get("ip"),
        client_user_agent=context.get("userAgent"),
        fbp=cookies.get("_fbp"),
        fbc=cookies.get("_fbc"),
    )
    if message.get("type") == "page":
        name, custom_data = "PageView", None
    else:
        event_name = message.get("event") or ""
        name = STANDARD_NAMES.get(event_name, event_name)
        custom_data = _custom_data(properties, sdk.custom_data, sdk.content)
    return sdk.event(
        event_name=name,
        event_time=event_time,
        event_id=message.get("messageId"),
        event_source_url=(context.get("page") or {}).get("url"),
        action_source=sdk.action_source.WEBSITE,
        user_data=user_data,
        custom_data=custom_data,
    )


def _country_code(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    return COUNTRY_BY_KEY.get(name_key(value), value)


def _gender(value: Any, gender: Any) -> Any:
    if not value:
        return None
    return gender.FEMALE if value.strip().lower().startswith("f") else gender.MALE


def _custom_data(properties: dict[str, Any], custom_data: Any, content: Any) -> Any:
    products = properties.get("products")
    if products is None and "product_id" in properties:
        products = [properties]
    contents = [
        content(
            product_id=str(p.get("product_id") or p.get("sku")),
            quantity=int(p.get("quantity", 1)),
            item_price=p.get("price"),
        )
        for p in products or ()
    ]
    value = properties.get("revenue", properties.get("price"))
    return custom_data(
        value=float(value) if value is not None else None,
        currency=(properties.get("currency") or "USD").lower(),
        contents=contents or None,
        content_ids=[c.product_id for c in contents] or None,
        content_type="product" if contents else None,
        num_items=len(contents) or None,
        order_id=properties.get("order_id"),
        search_string=properties.get("query"),
    )
