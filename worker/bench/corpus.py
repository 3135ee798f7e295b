"""A fixed, seeded corpus of realistic Segment-spec events: what every benchmark feeds the worker.

The mix (see `KIND_WEIGHTS`): the six e-commerce events the mapping knows (Product Viewed,
Product Added, Checkout Started, Order Completed, Products Searched, Product List Viewed), custom
track events and page calls. Every event carries the 10 PII fields Meta matches on (email,
phone, first and last name, city, state, zip, country, the user id as external id, and a date
of birth or a gender) plus `context.ip`, `context.userAgent` and the `_fbp` cookie (`_fbc` for
visitors who came from an ad); product lists hold 1 to 5 products. Exactly 30 % of the events
come from repeating users (a pool whose users send 5 events each on average; the rest are
one-off visitors) and exactly 1 % are invalid, spread evenly over `INVALID_KINDS`: unparseable
JSON, a non-numeric revenue and a timestamp 9 days old. The worker dead-letters those.

The same (count, seed, now, prefix) gives the same bytes: `now` anchors the timestamps.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

INVALID_RATIO = 0.01
REPEATING_RATIO = 0.30
EVENTS_PER_REPEATING_USER = 5
INVALID_KINDS = ("invalid_json", "bad_revenue", "stale_timestamp")
# What the worker dead-letters each invalid kind as (stage/reason).
INVALID_REASONS = {
    "invalid_json": "decode/invalid_json",
    "bad_revenue": "map/invalid_value",
    "stale_timestamp": "map/event_time_too_old",
}
ECOMMERCE_EVENTS = (
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Products Searched",
    "Product List Viewed",
)
CUSTOM_EVENTS = ("Newsletter Subscribed", "Video Played", "Coupon Applied", "Store Locator Used")
# Share of each kind, in percent: browsing dominates, purchases are rare, as on a real shop.
KIND_WEIGHTS: dict[str, int] = {
    "Product Viewed": 22,
    "Product List Viewed": 10,
    "Products Searched": 9,
    "Product Added": 11,
    "Checkout Started": 6,
    "Order Completed": 5,
    "custom": 13,
    "page": 24,
}
MULTI_PRODUCT_EVENTS = frozenset({"Checkout Started", "Order Completed", "Product List Viewed"})
SINGLE_PRODUCT_EVENTS = frozenset({"Product Viewed", "Product Added"})
# The 10 PII fields every event carries, as (name, dotted path in the event).
PII_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("email", ("context", "traits", "email")),
    ("phone", ("context", "traits", "phone")),
    ("first_name", ("context", "traits", "firstName")),
    ("last_name", ("context", "traits", "lastName")),
    ("city", ("context", "traits", "address", "city")),
    ("state", ("context", "traits", "address", "state")),
    ("zip", ("context", "traits", "address", "postalCode")),
    ("country", ("context", "traits", "address", "country")),
    ("external_id", ("userId",)),
)
BIRTHDAY_OR_GENDER = (("context", "traits", "birthday"), ("context", "traits", "gender"))

FIRST_NAMES = (
    "Ana", "Björn", "Chloé", "Dmitri", "Emeka", "Fatima", "Grace", "Hiro", "Inès", "Jamal",
    "Keiko", "Lars", "María", "Nikhil", "Olga", "Pedro", "Qing", "Rosa", "Sven", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "García", "Müller", "O'Neil", "Nakamura", "Okafor", "Smith-Jones", "Dubois", "Kowalski",
    "Rossi", "Nguyen", "Haddad", "Johansson", "Silva", "Patel", "Cohen", "Brown",
)  # fmt: skip
PLACES = (  # city, state, postal code, country (as users type them)
    ("San Francisco", "CA", "94107-1234", "US"),
    ("Austin", "Texas", "78701", "United States"),
    ("New York", "NY", "10001", "us"),
    ("Berlin", "Berlin", "10115", "DE"),
    ("Paris", "Île-de-France", "75001", "France"),
    ("São Paulo", "SP", "01310-100", "BR"),
    ("Lagos", "Lagos", "100001", "NG"),
    ("Tokyo", "Tokyo", "100-0001", "JP"),
    ("London", "England", "SW1A 1AA", "GB"),
    ("Toronto", "ON", "M5H 2N2", "Canada"),
)
EMAIL_DOMAINS = ("Example.com", "mail.example.org", "EXAMPLE.net", "shop.example.co.uk")
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
)
CATEGORIES = ("Shoes", "Apparel", "Outerwear", "Accessories", "Camping", "Electronics")
ADJECTIVES = ("Trail", "Merino", "Rain", "Ultralight", "Alpine", "Urban", "Classic", "Pro")
NOUNS = ("Runner", "Tee", "Shell", "Bottle", "Head Lamp", "Backpack", "Tent", "Watch", "Fleece")
PRODUCTS: tuple[tuple[str, str, str, float], ...] = tuple(
    (
        f"sku-{1000 + n}",
        f"{ADJECTIVES[n % len(ADJECTIVES)]} {NOUNS[n % len(NOUNS)]} {n // 72 + 1}",
        CATEGORIES[n % len(CATEGORIES)],
        round(9.99 + (n * 7.31) % 240, 2),
    )
    for n in range(200)
)
PAGES = ("Home", "Category", "Product", "Cart", "Search", "Account", "Help")
SEARCHES = ("rain jacket", "trail shoes", "water bottle", "tent 2 person", "merino", "head lamp")


def iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class CorpusRecord:
    """One Kafka record of the corpus and what it is made of."""

    index: int
    key: bytes  # the user id: a user's events stay in one partition, as a real pipeline does
    value: bytes
    event_id: str  # messageId: the worker sends it as event_id
    kind: str  # event name, or "page"
    invalid: str | None  # one of INVALID_KINDS, or None for a valid event
    user_id: str
    repeating_user: bool
    products: int  # 1 to 5 in properties.products; 1 for Product Viewed/Added; else 0


def get_path(event: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(event, dict):
            return None
        event = event.get(key)
    return event


def pii_fields(event: dict[str, Any]) -> list[str]:
    """Which of the 10 promised PII fields the event carries (for the tests and the report)."""
    present = [name for name, path in PII_PATHS if get_path(event, path) not in (None, "")]
    if any(get_path(event, path) not in (None, "") for path in BIRTHDAY_OR_GENDER):
        present.append("birthday_or_gender")
    return present


class Corpus:
    """`count` records, planned at construction (which are invalid, which users repeat) and
    generated on iteration: a 500k-record corpus need not be held in memory at once."""

    def __init__(self, count: int, seed: int = 1, now: float = 0.0, prefix: str = "bench") -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self.count = count
        self.seed = seed
        self.now = now or datetime.now(UTC).timestamp()
        self.prefix = prefix
        plan = random.Random(f"plan-{seed}")
        invalid_count = round(count * INVALID_RATIO)
        self.invalid: dict[int, str] = {
            index: INVALID_KINDS[n % len(INVALID_KINDS)]
            for n, index in enumerate(plan.sample(range(count), invalid_count))
        }
        repeating_count = round(count * REPEATING_RATIO)
        pool = max(1, repeating_count // EVENTS_PER_REPEATING_USER)
        # Users handed out round the pool: every pool user sends at least 2 events (given
        # at least 2 repeating events), so exactly `repeating_count` events repeat a user.
        self.repeating: dict[int, int] = {
            index: n % pool for n, index in enumerate(plan.sample(range(count), repeating_count))
        }
        if repeating_count == 1:  # one event cannot repeat anybody
            self.repeating.clear()
        self.pool_size = pool

    @property
    def invalid_count(self) -> int:
        return len(self.invalid)

    @property
    def valid_count(self) -> int:
        return self.count - len(self.invalid)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[CorpusRecord]:
        rng = random.Random(f"events-{self.seed}")
        kinds = list(KIND_WEIGHTS)
        weights = list(KIND_WEIGHTS.values())
        for index in range(self.count):
            yield self._record(index, rng, rng.choices(kinds, weights)[0])

    def records(self) -> list[CorpusRecord]:
        return list(self)

    # ------------------------------------------------------------------ one event

    def _record(self, index: int, rng: random.Random, kind: str) -> CorpusRecord:
        invalid = self.invalid.get(index)
        pool_user = self.repeating.get(index)
        user = pool_user if pool_user is not None else self.pool_size + index
        user_id = f"user-{self.seed}-{user}"
        event_id = f"{self.prefix}-{self.seed}-{index}"
        if invalid == "bad_revenue":
            kind = "Order Completed"
        event = self._event(index, rng, kind, user, user_id, event_id)
        if invalid == "bad_revenue":
            event["properties"]["revenue"] = "twelve dollars"
        elif invalid == "stale_timestamp":
            event["timestamp"] = iso(self.now - 9 * 86400 - rng.uniform(0, 86400))
        value = orjson.dumps(event)
        if invalid == "invalid_json":
            value = value[: len(value) // 2]  # a truncated record
        products = event.get("properties", {}).get("products")
        return CorpusRecord(
            index=index,
            key=user_id.encode(),
            value=value,
            event_id=event_id,
            kind=kind if kind != "custom" else str(event["event"]),
            invalid=invalid,
            user_id=user_id,
            repeating_user=pool_user is not None,
            products=len(products)
            if isinstance(products, list)
            else int(kind in SINGLE_PRODUCT_EVENTS),
        )

    def _event(
        self, index: int, rng: random.Random, kind: str, user: int, user_id: str, event_id: str
    ) -> dict[str, Any]:
        at = self.now - rng.uniform(1, 3600)
        context = _context(rng, user, self.seed, at)
        base: dict[str, Any] = {
            "messageId": event_id,
            "timestamp": iso(at),
            "sentAt": iso(at + 0.4),
            "receivedAt": iso(at + 0.7),
            "userId": user_id,
            "anonymousId": f"anon-{self.seed}-{user}",
            "context": context,
            "integrations": {"All": True},
        }
        url = context["page"]["url"]
        if kind == "page":
            name = rng.choice(PAGES)
            props = {"url": url, "path": context["page"]["path"], "title": f"{name} | Shop"}
            return {**base, "type": "page", "name": name, "properties": props}
        if kind == "custom":
            name = rng.choice(CUSTOM_EVENTS)
            return {**base, "type": "track", "event": name, "properties": _custom(rng, name)}
        return {**base, "type": "track", "event": kind, "properties": _commerce(rng, kind, index)}


_MASK64 = (1 << 64) - 1


def _mix(value: int) -> int:
    """splitmix64: a well-spread 64-bit number from any integer (cheaper than a Random)."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


class _Bits:
    """Draws small numbers from a user's two 64-bit hashes."""

    def __init__(self, seed: int) -> None:
        self._value = _mix(seed) | (_mix(seed + 1) << 64)

    def below(self, limit: int) -> int:
        value = self._value % limit
        self._value //= limit
        return value


def _user_profile(user: int, seed: int) -> dict[str, Any]:
    """The same user always has the same profile (what makes repeated users' hashes cacheable)."""
    bits = _Bits(user * 1_000_003 + seed * 7_919)
    first, last = FIRST_NAMES[bits.below(len(FIRST_NAMES))], LAST_NAMES[bits.below(len(LAST_NAMES))]
    city, state, postal, country = PLACES[bits.below(len(PLACES))]
    local = f"{first}.{last}{user}".replace("'", "")
    traits: dict[str, Any] = {
        "email": f"  {local}@{EMAIL_DOMAINS[bits.below(len(EMAIL_DOMAINS))]} ",
        "phone": f"+1 ({201 + bits.below(789)}) 555-{bits.below(10000):04d}",
        "firstName": first,
        "lastName": last,
        "address": {"city": city, "state": state, "postalCode": postal, "country": country},
    }
    if user % 2:
        year, month, day = 1950 + bits.below(56), 1 + bits.below(12), 1 + bits.below(28)
        traits["birthday"] = f"{year}-{month:02d}-{day:02d}"
    else:
        traits["gender"] = ("female", "male", "F", "M")[bits.below(4)]
    ip = f"{11 + bits.below(213)}.{bits.below(256)}.{bits.below(256)}.{1 + bits.below(254)}"
    return {
        "traits": traits,
        "ip": ip,
        "userAgent": USER_AGENTS[bits.below(len(USER_AGENTS))],
        "fbp": f"fb.1.{1_700_000_000_000 + user * 7919}.{1_000_000_000 + bits.below(9 * 10**9)}",
        "from_ad": bits.below(10) < 4,
    }


def _context(rng: random.Random, user: int, seed: int, at: float) -> dict[str, Any]:
    profile = _user_profile(user, seed)
    path = f"/p/{rng.choice(PRODUCTS)[0]}"
    url = f"https://shop.example.com{path}"
    context: dict[str, Any] = {
        "ip": profile["ip"],
        "userAgent": profile["userAgent"],
        "locale": "en-US",
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "page": {
            "url": url,
            "path": path,
            "title": "Shop",
            "referrer": "https://www.example.com/",
        },
        "traits": profile["traits"],
        "cookies": {"_fbp": profile["fbp"]},
    }
    if profile["from_ad"]:
        click = f"IwAR{rng.randint(10**12, 10**13 - 1)}"
        context["cookies"]["_fbc"] = f"fb.1.{int(at * 1000) - 60_000}.{click}"
    return context


def _product(rng: random.Random, quantity: bool = True) -> dict[str, Any]:
    sku, name, category, price = rng.choice(PRODUCTS)
    product: dict[str, Any] = {
        "product_id": sku,
        "sku": sku,
        "name": name,
        "category": category,
        "brand": "Example Outdoor",
        "price": price,
    }
    if quantity:
        product["quantity"] = rng.randint(1, 3)
    return product


def _products(rng: random.Random) -> list[dict[str, Any]]:
    return [_product(rng) for _ in range(rng.randint(1, 5))]


def _commerce(rng: random.Random, kind: str, index: int) -> dict[str, Any]:
    if kind in ("Product Viewed", "Product Added"):
        single = _product(rng)
        single.update(currency="USD", url=f"https://shop.example.com/p/{single['sku']}")
        if kind == "Product Added":
            single["cart_id"] = f"cart-{index}"
        return single
    if kind == "Products Searched":
        return {"query": rng.choice(SEARCHES)}
    products = _products(rng)
    total = round(sum(p["price"] * p["quantity"] for p in products), 2)
    if kind == "Product List Viewed":
        return {
            "list_id": f"list-{index % 50}",
            "category": products[0]["category"],
            "products": products,
        }
    props: dict[str, Any] = {
        "order_id": f"order-{index}",
        "value": total,
        "revenue": total,
        "currency": rng.choice(("USD", "usd", "EUR", "GBP")),
        "products": products,
    }
    if kind == "Order Completed":
        props.update(
            checkout_id=f"checkout-{index}",
            shipping=round(rng.uniform(0, 15), 2),
            tax=round(total * 0.08, 2),
            coupon=rng.choice((None, "SPRING10")),
        )
    return props


def _custom(rng: random.Random, name: str) -> dict[str, Any]:
    if name == "Video Played":
        return {"video_id": f"v-{rng.randint(1, 300)}", "position": rng.randint(0, 600)}
    if name == "Coupon Applied":
        return {"coupon_id": "SPRING10", "discount": 10, "value": round(rng.uniform(5, 50), 2)}
    if name == "Store Locator Used":
        return {"radius_km": rng.choice((5, 10, 25)), "results": rng.randint(0, 12)}
    return {"plan": rng.choice(("weekly", "monthly")), "source": "footer"}


class Mix:
    """The corpus's mix as records go by (a large corpus is generated while produced)."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.kinds: dict[str, int] = {}
        self.invalid: dict[str, int] = dict.fromkeys(INVALID_KINDS, 0)
        self.products: dict[int, int] = dict.fromkeys(range(6), 0)
        self.bytes = 0
        self.records = 0
        self.repeating = 0

    def add(self, record: CorpusRecord) -> CorpusRecord:
        self.kinds[record.kind] = self.kinds.get(record.kind, 0) + 1
        if record.invalid is not None:
            self.invalid[record.invalid] += 1
        self.repeating += record.repeating_user
        self.products[min(record.products, 5)] += 1
        self.bytes += len(record.value)
        self.records += 1
        return record

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.records,
            "seed": self.corpus.seed,
            "valid": self.records - sum(self.invalid.values()),
            "invalid_by_kind": self.invalid,
            "repeating_user_events": self.repeating,
            "repeating_users": self.corpus.pool_size if self.repeating else 0,
            "events_by_kind": dict(sorted(self.kinds.items(), key=lambda item: -item[1])),
            "events_by_product_count": {str(n): c for n, c in self.products.items() if c},
            "mean_bytes": round(self.bytes / self.records, 1) if self.records else 0.0,
        }


def summary(corpus: Corpus, records: list[CorpusRecord] | None = None) -> dict[str, Any]:
    """The corpus's mix, for the report (generates it when `records` is not given)."""
    mix = Mix(corpus)
    for record in records if records is not None else corpus:
        mix.add(record)
    return mix.as_dict()
