"""`custom_data`: value, currency, contents and the rest of a track call's properties.

- value: `revenue` (then `value`); for single-product events (Product Viewed, Product Added:
  ViewContent, AddToCart, AddToWishlist without a `products` array) the `value_field_identifier`
  property (default `price`, then `value`). Rounded to 2 decimals; unreadable is invalid. A
  Purchase needs one.
- net_revenue: `net_revenue`, read like value (rounded, unreadable is invalid).
- currency: upper-cased ISO 4217, default USD on commerce events and whenever there is a value.
- contents / content_ids / num_items: from `products[]`, or from the properties of a
  single-product event; each item has id, quantity, item_price, title (`name`), brand, category
  and delivery_category. content_type: `properties.content_type`, the integration option,
  `categories_to_content_types[category]`, else `product`; a ViewContent without any product id
  is a `product_group` whose content id is the category (a list view by category).
- Every other property is copied unchanged, except reserved keys, `products` (sent as contents),
  keys Meta gives a meaning to (set only from validated values) and PII properties (dropped or
  hashed per the destination's deny/allow lists). A property whose objects and arrays nest more
  than `MAX_PROPERTY_DEPTH` levels makes the event invalid (`invalid_properties`): no analytics
  property is that deep, and past ~250 levels the JSON encoder cannot write the event at all.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any, Final

from worker import reasons
from worker.mapping.build import COMPILED
from worker.mapping.currencies import CURRENCY_CODES
from worker.mapping.errors import InvalidEvent, shown
from worker.mapping.paths import first_present, get_path

if TYPE_CHECKING:  # the plan module builds its rules with `property_rules` below
    from worker.mapping.plan import DestinationPlan

DEFAULT_CURRENCY: Final = "USD"
MAX_PROPERTY_DEPTH: Final = 32  # levels of objects/arrays inside one property copied to custom_data
MAX_QUANTITY: Final = 2**31 - 1
DELIVERY_CATEGORIES: Final = frozenset({"in_store", "curbside", "home_delivery"})
PRODUCT_ID_KEYS: Final[tuple[str, ...]] = ("product_id", "sku", "id")

# Meta events about one product when no `products` array is sent.
SINGLE_PRODUCT_EVENTS: Final = frozenset({"ViewContent", "AddToCart", "AddToWishlist"})
# Standard events that always carry a currency and, when it applies, a content_type.
COMMERCE_EVENTS: Final = frozenset(
    {"Purchase", "AddToCart", "AddToWishlist", "ViewContent", "InitiateCheckout", "Search",
     "AddPaymentInfo"}
)  # fmt: skip

# Never copied from properties: read elsewhere (event_id, action_source, opt_out, fbp, fbc)...
RESERVED_PROPERTIES: Final = frozenset(
    {"action_source", "actionSource", "event_id", "opt_out", "fbp", "fbc"}
)
# ...or given a meaning by Meta, so only set from a validated value below.
_META_KEYS: Final = frozenset(
    {"value", "currency", "contents", "content_ids", "content_type", "content_category",
     "content_name", "num_items", "search_string", "status", "order_id", "delivery_category",
     "products", "net_revenue"}
)  # fmt: skip
_NOT_COPIED: Final = RESERVED_PROPERTIES | _META_KEYS
# Exact types that can hold no nested object or array (interpreted, one set lookup is much
# cheaper than an isinstance() that fails).
_FLAT_TYPES: Final = frozenset({str, int, float, bool, type(None)})
_NAME_KEYS: Final[tuple[str, ...]] = ("name", "product_name")


# The properties read by name below. The loop over the properties looks every key up once
# anyway (to leave out what must not be copied); it notes these in a list at their slot, which
# saves a `properties.get` per name and event. The names before `_FIRST_COPIED` are not copied
# into custom_data, the others are copied as well.
_READ_NAMES: Final[tuple[str, ...]] = (
    "products", "value", "net_revenue", "currency", "num_items", "content_type", "content_name",
    "status", "order_id", "delivery_category",
    "revenue", "category", "query",
)  # fmt: skip
_PRODUCTS: Final = 0
_VALUE: Final = 1
_NET_REVENUE: Final = 2
_CURRENCY: Final = 3
_NUM_ITEMS: Final = 4
_CONTENT_TYPE: Final = 5
_CONTENT_NAME: Final = 6
_STATUS: Final = 7
_ORDER_ID: Final = 8
_DELIVERY_CATEGORY: Final = 9
_FIRST_COPIED: Final = 10
_REVENUE: Final = 10
_CATEGORY: Final = 11
_QUERY: Final = 12
_NOT_READ: Final = -1
_HASHED: Final = -2
_DROPPED: Final = -3
# What the loop starts from: list() of it is cheaper than [None] * n when compiled.
_NONE_READ: Final[tuple[Any, ...]] = (None,) * len(_READ_NAMES)
# Property name -> its slot (_NOT_READ: not copied and not read), for every name the loop
# must not copy or reads.
_SLOT_OF: Final[dict[str, int]] = {
    **dict.fromkeys(_NOT_COPIED, _NOT_READ),
    **{name: slot for slot, name in enumerate(_READ_NAMES)},
}
assert all((name in _NOT_COPIED) == (slot < _FIRST_COPIED) for slot, name in enumerate(_READ_NAMES))


def property_rules(pii_actions: dict[str, bool]) -> dict[str, int]:
    """What `build_custom_data` does with a property, by name, for a destination whose PII
    rules are `pii_actions` (its plan keeps the answer): a slot of `_READ_NAMES`, `_NOT_READ`
    (not copied), or for a PII property it would copy `_HASHED` or `_DROPPED`. A name absent
    is copied as it is: one lookup per property. Names not copied are never PII-checked; for
    the names read and copied the loop asks `pii_actions` itself."""
    rules = {name: _HASHED if hash_it else _DROPPED for name, hash_it in pii_actions.items()}
    rules.update(_SLOT_OF)
    return rules


def build_custom_data(
    properties: dict[str, Any],
    event_name: str,
    plan: DestinationPlan,
    options: dict[str, Any],
    prehashed: bool,
) -> dict[str, Any]:
    """The custom_data object of a track or page event; may be empty."""
    # Most properties are copied: start from all of them and take out the others (a copy is
    # one allocation at the right size, where inserting them one by one grows the dict).
    custom = properties.copy()
    rules = plan.property_rules
    found = list(_NONE_READ)
    for key, item in properties.items():
        rule = rules.get(key)
        if rule is not None and _NOT_READ <= rule < _FIRST_COPIED:  # not copied
            if rule != _NOT_READ:
                found[rule] = item
            del custom[key]
            continue
        if COMPILED:  # isinstance() of built-in types: two flag tests in compiled code
            container = isinstance(item, (dict, list))
        else:  # interpreted, one set lookup is much cheaper than an isinstance() that fails
            container = type(item) not in _FLAT_TYPES and isinstance(item, (dict, list))
        if container and _nests_deeper(item, MAX_PROPERTY_DEPTH):
            raise InvalidEvent(
                reasons.INVALID_PROPERTIES,
                f"property {shown(key, 40)} nests objects or arrays more than "
                f"{MAX_PROPERTY_DEPTH} levels deep; flatten it or leave it out",
            )
        if rule is None:  # copied as it is
            continue
        if rule >= _FIRST_COPIED:  # read, and copied unless it is PII
            found[rule] = item
            hash_it = plan.pii_actions.get(key)
            if hash_it is None:
                continue
        else:
            hash_it = rule == _HASHED
        if hash_it and item is not None:
            custom[key] = _as_text(item) if prehashed else _sha256(item)
        else:
            del custom[key]

    products = _products(found[_PRODUCTS])
    single_product = products is None and event_name in SINGLE_PRODUCT_EVENTS
    commerce = event_name in COMMERCE_EVENTS

    if single_product:
        raw_value = get_path(properties, plan.value_field)
        source = ".".join(plan.value_field)
        if raw_value is None:
            raw_value, source = found[_VALUE], "value"
    else:
        raw_value, source = found[_REVENUE], "revenue"
        if raw_value is None:
            raw_value, source = found[_VALUE], "value"
    value = _money(raw_value, source)
    if value is not None:
        custom["value"] = value
    elif event_name == "Purchase":
        raise InvalidEvent(
            reasons.MISSING_VALUE,
            "a Purchase needs a value: send properties.revenue (or properties.value)",
        )

    net_revenue = _money(found[_NET_REVENUE], "net_revenue")
    if net_revenue is not None:
        custom["net_revenue"] = net_revenue

    currency = _currency(found[_CURRENCY])
    if currency is not None or value is not None or commerce:
        custom["currency"] = currency or DEFAULT_CURRENCY

    contents: list[dict[str, Any]] | None = None
    content_ids: list[str] | None = None
    if products is not None:
        contents, content_ids = [], []
        for product in products:
            product_id = _first_text(product, PRODUCT_ID_KEYS)
            if product_id is not None:
                contents.append(_content(product, product_id))
                content_ids.append(product_id)
        custom["num_items"] = len(contents)
    elif single_product:
        product_id = _first_text(properties, PRODUCT_ID_KEYS)
        if product_id is not None:
            contents, content_ids = [_content(properties, product_id)], [product_id]
    else:
        num_items = found[_NUM_ITEMS]
        if num_items is not None and isinstance(num_items, int) and not isinstance(num_items, bool):
            custom["num_items"] = num_items
    if contents:
        custom["contents"] = contents
        custom["content_ids"] = content_ids
    else:
        contents = None

    category = _category(found[_CATEGORY])
    if category is not None:
        custom["content_category"] = category

    content_type = _text(found[_CONTENT_TYPE])
    if content_type is None and options:
        content_type = _text(options.get("content_type", options.get("contentType")))
    if content_type is None and (contents is not None or commerce):
        mapping_key = category
        if mapping_key is None and products:
            mapping_key = _category(products[0].get("category"))
        if mapping_key is not None:
            content_type = plan.categories_to_content_types.get(mapping_key)
        if content_type is None:
            content_type = (
                "product" if contents is not None else _default_without_products(event_name)
            )
    if content_type is not None:
        custom["content_type"] = content_type
        if content_type == "product_group" and contents is None and category is not None:
            custom["content_ids"] = [category]

    content_name = _text(found[_CONTENT_NAME])
    if content_name is None and single_product:
        content_name = _text(first_present(properties, _NAME_KEYS))
    if content_name is not None:
        custom["content_name"] = content_name

    _put_text(custom, "search_string", found[_QUERY])
    _put_text(custom, "status", found[_STATUS])
    _put_text(custom, "order_id", found[_ORDER_ID])

    delivery = found[_DELIVERY_CATEGORY]
    if delivery is not None:
        custom["delivery_category"] = _delivery_category(delivery, "properties.")
    return custom


def _nests_deeper(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels in `value` (itself level 1).
    Iterative: the structure may be deeper than Python's recursion limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _default_without_products(event_name: str) -> str:
    return "product_group" if event_name == "ViewContent" else "product"


def _products(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidEvent(
            reasons.INVALID_PRODUCTS,
            f"properties.products must be a list of objects, got {type(value).__name__}",
        )
    for index, product in enumerate(value):
        if not isinstance(product, dict):
            raise InvalidEvent(
                reasons.INVALID_PRODUCTS,
                f"properties.products[{index}] must be an object, got {type(product).__name__}",
            )
    return value


def _content(product: dict[str, Any], product_id: str) -> dict[str, Any]:
    """One `contents` entry; `product_id`: `_first_text(product, PRODUCT_ID_KEYS)` (an entry
    needs one: Meta requires it)."""
    quantity = _quantity(product.get("quantity"))
    price = _number(product.get("price"))
    title = _first_text(product, _NAME_KEYS)
    brand = _scalar_text(product.get("brand"))
    category = product.get("category")
    if type(category) is str:  # the common case: _item_category without the call
        category = category.strip() or None
    elif category is not None:
        category = _item_category(category)
    delivery = product.get("delivery_category")
    if delivery is not None:
        delivery = _delivery_category(delivery, "products[].")
    elif price is not None and title is not None and brand is not None and category is not None:
        # The usual product, as one dict display: built at its size, not grown past 5 keys.
        return {
            "id": product_id,
            "quantity": quantity,
            "item_price": price,
            "title": title,
            "brand": brand,
            "category": category,
        }
    content: dict[str, Any] = {"id": product_id, "quantity": quantity}
    if price is not None:
        content["item_price"] = price
    if title is not None:
        content["title"] = title
    if brand is not None:
        content["brand"] = brand
    if category is not None:
        content["category"] = category
    if delivery is not None:
        content["delivery_category"] = delivery
    return content


def _first_text(source: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """`_scalar_text(first_present(source, keys))`, stripping a string once."""
    for key in keys:
        value = source.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            text = value.strip()
            if text:
                return text
            continue
        return _scalar_text(value)
    return None


def _put_text(data: dict[str, Any], key: str, value: Any) -> None:
    """data[key] = `value` as text (a trimmed string, a number or boolean as text), unless
    absent or blank."""
    text = _scalar_text(value)
    if text is not None:
        data[key] = text


# An int or a float, kept as it came. Not annotated `float | int`: mypy reads that as `float`,
# and compiled code (setup.py) would then turn 120 into 120.0, which changes the JSON sent.
Number = Any
# |x| below this: the cent count tried for x is an integer below 2**53, an exact double.
_CENTS_EXACT_BELOW: Final = 1e13


def _number(value: Any) -> Number:
    """A finite number from a number or numeric string; None when absent or unreadable."""
    kind = type(value)  # exact float and int first: the common cases, without isinstance
    if kind is float:
        # math.isfinite, which compiled code calls as a Python function: x - x is 0.0 for every
        # finite x, NaN for an infinity or a NaN.
        number: float = value
        return value if number - number == 0.0 else None
    if kind is int:
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if not text or "_" in text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _money(value: Any, source: str) -> Number:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(value)
    if number is None:
        raise InvalidEvent(
            reasons.INVALID_VALUE,
            f"properties.{source} must be a number, got {shown(value, 40)}",
        )
    return _round_cents(number)


def _round_cents(number: Any) -> Any:
    """round(number, 2), without its decimal conversion when the answer is `number` itself.

    An int rounds to itself. A float `x` that is the double nearest to c / 100 for an integer
    c (every price written with at most two decimals) rounds to itself: round(x, 2) is the
    two-decimal value nearest to x's exact value, which is c / 100 (x lies within half an ulp
    of it, far less than 0.005 below 1e13), converted back to the double nearest to it: x.
    The c tried is the integer nearest to x * 100; any integer c with float(c) / 100 == x proves
    it, and below 1e13 float(c) is exact (c < 2**53) and the division correctly rounded.
    """
    kind = type(number)
    if kind is int:
        return number
    if kind is float and _is_whole_cents(number):
        return number
    return round(number, 2)


def _is_whole_cents(x: float) -> bool:
    if not -_CENTS_EXACT_BELOW < x < _CENTS_EXACT_BELOW:
        return False
    cents = float(math.floor(x * 100.0 + 0.5))
    return cents / 100.0 == x


def _quantity(value: Any) -> int:
    """An integer quantity; 1 when absent, unreadable or out of range (Meta requires an integer).

    Out of range is beyond a 32-bit integer: no order holds that many of one product, and a
    float such as 1e20 would otherwise become an integer the JSON encoder cannot write.
    """
    if type(value) is int:  # the common case, compared as a machine integer when compiled
        return value if -MAX_QUANTITY <= value <= MAX_QUANTITY else 1
    number = _number(value)
    if number is None or abs(number) > MAX_QUANTITY:
        return 1
    return int(number)


def _currency(value: Any) -> str | None:
    if type(value) is str and value in CURRENCY_CODES:  # the common case: already a code
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    code = value.strip().upper() if isinstance(value, str) else None
    if code is None or code not in CURRENCY_CODES:
        raise InvalidEvent(
            reasons.INVALID_CURRENCY,
            f"properties.currency must be an ISO 4217 code such as USD, got {shown(value, 20)}",
        )
    return code


def _category(value: Any) -> str | None:
    """content_category: a string, a number as text, or a list joined with ','."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        if any(isinstance(item, (dict, list)) for item in value):
            raise InvalidEvent(
                reasons.INVALID_CATEGORY,
                "properties.category must be a string or a list of strings, got a list holding "
                "objects or lists",
            )
        joined = ",".join(str(item) for item in value if item is not None)
        return joined or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidEvent(
        reasons.INVALID_CATEGORY,
        f"properties.category must be a string or a list, got {type(value).__name__}",
    )


def _item_category(value: Any) -> str | None:
    """contents[].category: as content_category reads it, but a category it cannot read is
    left out rather than failing the event (only the event's own category is checked)."""
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return None
    if isinstance(value, dict | bool):
        return None
    return _category(value)


def _delivery_category(value: Any, where: str) -> str:
    if isinstance(value, str) and value in DELIVERY_CATEGORIES:
        return value
    raise InvalidEvent(
        reasons.INVALID_DELIVERY_CATEGORY,
        f"{where}delivery_category must be one of in_store, curbside, home_delivery, "
        f"got {shown(value, 30)}",
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if type(value) is int or type(value) is float:  # not a bool: no need for the checks below
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _as_text(value: Any) -> str:
    return _scalar_text(value) or str(value)


def _sha256(value: Any) -> str:
    return hashlib.sha256(_as_text(value).encode()).hexdigest()
