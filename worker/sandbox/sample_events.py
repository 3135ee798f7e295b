"""Realistic Segment-spec events for the demo, the tests and the benchmark."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

FIRST_NAMES = ("Ana", "Björn", "Chloé", "Dmitri", "Emeka", "Fatima", "Grace", "Hiro", "Inès")
LAST_NAMES = ("García", "Müller", "O'Neil", "Nakamura", "Okafor", "Smith-Jones", "Dubois")
CITIES = ("San Francisco", "Berlin", "Lagos", "São Paulo", "Tokyo", "Paris", "Austin")
PRODUCTS = (
    ("sku-1001", "Trail Runner 2", "Shoes", 89.99),
    ("sku-1002", "Merino Tee", "Apparel", 39.5),
    ("sku-1003", "Rain Shell", "Apparel", 149.0),
    ("sku-1004", "Water Bottle", "Accessories", 12.25),
    ("sku-1005", "Head Lamp", "Accessories", 29.0),
)
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)


def iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _context(rng: random.Random, user: int, url: str) -> dict[str, Any]:
    first, last = FIRST_NAMES[user % len(FIRST_NAMES)], LAST_NAMES[user % len(LAST_NAMES)]
    traits: dict[str, Any] = {
        "email": f"  {first}.{last}{user}@Example.com ".replace("'", ""),
        "firstName": first,
        "lastName": last,
        "address": {"city": CITIES[user % len(CITIES)], "postalCode": "94107-1234"},
    }
    # Like real traffic, not every user left a phone number or kept the pixel's cookie.
    if user % 3:
        traits["phone"] = f"+1 (415) 555-{user % 10000:04d}"
    context: dict[str, Any] = {
        "ip": f"203.0.113.{user % 250 + 1}",
        "userAgent": USER_AGENT,
        "page": {"url": url, "path": url.split(".com", 1)[-1], "title": "Shop"},
        "traits": traits,
    }
    if user % 2:
        context["cookies"] = {"_fbp": f"fb.1.1700000000000.{100000 + user}"}
    return context


def _products(rng: random.Random, count: int) -> list[dict[str, Any]]:
    chosen = rng.sample(PRODUCTS, count)
    return [
        {
            "product_id": sku,
            "name": name,
            "category": cat,
            "price": price,
            "quantity": rng.randint(1, 3),
        }
        for sku, name, cat, price in chosen
    ]


def sample_event(
    index: int, now: float, rng: random.Random, prefix: str = "demo"
) -> dict[str, Any]:
    """A valid, routable event; the kind cycles so every default mapping shows up."""
    user = rng.randrange(500)
    timestamp = iso(now - rng.uniform(5, 3600))
    url = f"https://shop.example.com/p/{index}"
    base: dict[str, Any] = {
        "messageId": f"{prefix}-{index}",
        "timestamp": timestamp,
        "userId": f"user-{user}",
        "anonymousId": f"anon-{user}",
        "context": _context(rng, user, url),
    }
    kind = index % 8
    if kind == 0:
        return {**base, "type": "page", "name": "Home", "properties": {"url": url}}
    if kind == 1:
        sku, name, category, price = PRODUCTS[index % len(PRODUCTS)]
        props = {"product_id": sku, "name": name, "category": category, "price": price}
        return {**base, "type": "track", "event": "Product Viewed", "properties": props}
    if kind == 2:
        sku, name, category, price = PRODUCTS[index % len(PRODUCTS)]
        props = {"product_id": sku, "name": name, "price": price, "quantity": 1}
        return {**base, "type": "track", "event": "Product Added", "properties": props}
    if kind == 3:
        props = {"query": rng.choice(("rain jacket", "trail shoes", "bottle"))}
        return {**base, "type": "track", "event": "Products Searched", "properties": props}
    if kind == 4:
        products = _products(rng, 2)
        revenue = round(sum(p["price"] * p["quantity"] for p in products), 2)
        props = {"value": revenue, "revenue": revenue, "currency": "USD", "products": products}
        return {**base, "type": "track", "event": "Checkout Started", "properties": props}
    if kind == 5:
        products = _products(rng, rng.randint(1, 3))
        revenue = round(sum(p["price"] * p["quantity"] for p in products), 2)
        props = {
            "order_id": f"order-{index}",
            "revenue": revenue,
            "currency": rng.choice(("USD", "eur", "GBP")),
            "products": products,
        }
        return {**base, "type": "track", "event": "Order Completed", "properties": props}
    if kind == 6:
        props = {"category": "Apparel", "products": _products(rng, 3)}
        return {**base, "type": "track", "event": "Product List Viewed", "properties": props}
    props = {"plan": rng.choice(("weekly", "monthly")), "source": "footer"}
    return {**base, "type": "track", "event": "Newsletter Subscribed", "properties": props}


def identify_event(index: int, now: float, prefix: str = "demo") -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"{prefix}-identify-{index}",
        "timestamp": iso(now - 10),
        "userId": f"user-{index}",
        "traits": {"email": f"user{index}@example.com", "plan": "pro"},
    }


def stale_event(index: int, now: float, prefix: str = "demo") -> dict[str, Any]:
    event = sample_event(index * 8 + 5, now, random.Random(index), prefix=f"{prefix}-stale")
    event["timestamp"] = iso(now - 9 * 86400)
    return event


def bad_revenue_event(index: int, now: float, prefix: str = "demo") -> dict[str, Any]:
    event = sample_event(index * 8 + 5, now, random.Random(index), prefix=f"{prefix}-badrev")
    event["properties"]["revenue"] = "twelve dollars"
    return event
