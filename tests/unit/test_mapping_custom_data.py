"""custom_data: value, currency, contents, content_type, other properties and PII."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import NOW, destination, track_message
from worker import reasons
from worker.capi.contract import validate_event
from worker.config import DestinationSettings
from worker.mapping.custom_data import _money
from worker.mapping.errors import InvalidEvent
from worker.mapping.event import map_event
from worker.mapping.result import Invalid, Mapped


def message(event: str = "Coupon Applied", **properties: Any) -> dict[str, Any]:
    return track_message(event=event, properties=properties)


def custom_data(msg: dict[str, Any], settings: DestinationSettings | None = None) -> dict[str, Any]:
    result = map_event(msg, settings or destination(), NOW)
    assert isinstance(result, Mapped), result
    assert validate_event(result.event, NOW) is None
    data: dict[str, Any] = result.event.get("custom_data", {})
    return data


def invalid_reason(msg: dict[str, Any], settings: DestinationSettings | None = None) -> str:
    result = map_event(msg, settings or destination(), NOW)
    assert isinstance(result, Invalid), result
    return result.reason


# ---- value ------------------------------------------------------------------------------------


def test_purchase_value_is_the_revenue_rounded_to_two_decimals() -> None:
    data = custom_data(message("Order Completed", revenue=19.999))
    assert data["value"] == 20.0


PRICES = st.integers(-(10**15), 10**15).map(lambda cents: cents / 100)
NEAR_PRICES = PRICES.map(lambda price: math.nextafter(price, math.inf))
EXTREMES = st.sampled_from(
    [0.0, -0.0, 0.005, -0.005, 0.015, 0.125, 1e13, -1e13, 9999999999999.99, 1e300, 5e-324]
)


@settings(max_examples=2000)
@given(st.floats(allow_nan=False, allow_infinity=False) | PRICES | NEAR_PRICES | EXTREMES)
def test_money_is_round_to_two_decimals_exactly(number: float) -> None:
    """The shortcut for prices that are already whole cents gives round(x, 2) bit for bit."""
    rounded = _money(number, "value")
    expected = round(number, 2)
    assert type(rounded) is float
    assert rounded.hex() == expected.hex()  # the same double, the sign of a zero included


@given(st.integers(-(10**30), 10**30))
def test_money_keeps_integers(number: int) -> None:
    rounded = _money(number, "value")
    assert type(rounded) is int and rounded == number


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_money_refuses_what_is_not_finite(number: float) -> None:
    with pytest.raises(InvalidEvent):
        _money(number, "value")


def test_numeric_string_revenue_is_read_as_a_number() -> None:
    assert custom_data(message("Order Completed", revenue=" 12.345 "))["value"] == 12.35


def test_non_numeric_revenue_is_invalid() -> None:
    msg = message("Order Completed", revenue="twelve")
    assert invalid_reason(msg) == reasons.INVALID_VALUE


def test_boolean_revenue_is_invalid() -> None:
    assert invalid_reason(message("Order Completed", revenue=True)) == reasons.INVALID_VALUE


def test_purchase_without_value_is_invalid() -> None:
    assert invalid_reason(message("Order Completed", order_id="o-1")) == reasons.MISSING_VALUE


def test_value_falls_back_to_the_value_property() -> None:
    assert custom_data(message("Order Completed", value=7))["value"] == 7


def test_product_viewed_value_uses_value_field_identifier() -> None:
    msg = message("Product Viewed", product_id="p-1", price=9.5, value=99, revenue=100)
    assert custom_data(msg)["value"] == 9.5


def test_product_added_value_is_the_price_by_default() -> None:
    msg = message("Product Added", product_id="p-1", price="4.256", value=99, revenue=100)
    assert custom_data(msg)["value"] == 4.26


def test_product_added_value_uses_a_configured_value_field_identifier() -> None:
    settings = destination(value_field_identifier="value")
    msg = message("Product Added", product_id="p-1", price=9.5, value=12)
    assert custom_data(msg, settings)["value"] == 12


def test_value_field_identifier_may_be_written_with_the_properties_prefix() -> None:
    settings = destination(value_field_identifier="properties.value")
    msg = message("Product Added", product_id="p-1", price=9.5, value=12)
    assert custom_data(msg, settings)["value"] == 12


def test_product_viewed_with_unreadable_price_is_invalid() -> None:
    msg = message("Product Viewed", product_id="p-1", price="n/a")
    assert invalid_reason(msg) == reasons.INVALID_VALUE


def test_product_list_viewed_value_uses_revenue_not_price() -> None:
    msg = message("Product List Viewed", products=[{"product_id": "p", "price": 3}], revenue=8)
    assert custom_data(msg)["value"] == 8


def test_custom_event_value_is_the_revenue() -> None:
    assert custom_data(message("Trial Extended", revenue=3))["value"] == 3


# ---- currency ---------------------------------------------------------------------------------


def test_currency_defaults_to_usd_on_commerce_events() -> None:
    assert custom_data(message("Order Completed", revenue=1))["currency"] == "USD"


def test_currency_is_upper_cased() -> None:
    assert custom_data(message("Order Completed", revenue=1, currency="eur"))["currency"] == "EUR"


@pytest.mark.parametrize("currency", ["EURO", "XYZ", "$", 840, "US"])
def test_currency_that_is_not_an_iso_4217_code_is_invalid(currency: Any) -> None:
    msg = message("Order Completed", revenue=1, currency=currency)
    assert invalid_reason(msg) == reasons.INVALID_CURRENCY


def test_custom_event_without_value_or_currency_has_no_currency() -> None:
    assert "currency" not in custom_data(message("Coupon Applied", coupon="X"))


# ---- contents ---------------------------------------------------------------------------------


def test_order_products_become_contents_content_ids_and_num_items() -> None:
    products = [
        {"product_id": "p-1", "quantity": 2, "price": 10},
        {"sku": "sku-2", "price": "5.5"},
        {"id": 3},
    ]
    data = custom_data(message("Order Completed", revenue=25.5, products=products))
    assert data["contents"] == [
        {"id": "p-1", "quantity": 2, "item_price": 10},
        {"id": "sku-2", "quantity": 1, "item_price": 5.5},
        {"id": "3", "quantity": 1},
    ]
    assert data["content_ids"] == ["p-1", "sku-2", "3"]
    assert data["num_items"] == 3


def test_products_without_an_id_are_left_out_of_contents() -> None:
    products = [{"name": "mystery"}, {"product_id": "p-1"}]
    data = custom_data(message("Order Completed", revenue=1, products=products))
    assert data["content_ids"] == ["p-1"]


def test_product_id_is_preferred_over_sku_and_id() -> None:
    products = [{"id": "i", "sku": "s", "product_id": "p"}]
    assert custom_data(message("Checkout Started", products=products))["content_ids"] == ["p"]


def test_quantity_is_an_integer() -> None:
    products = [{"product_id": "p", "quantity": "3"}, {"product_id": "q", "quantity": 2.0}]
    data = custom_data(message("Checkout Started", products=products))
    assert [c["quantity"] for c in data["contents"]] == [3, 2]
    assert all(type(c["quantity"]) is int for c in data["contents"])


@pytest.mark.parametrize("quantity", [1e20, -1e20, 2**31, "1e300"])
def test_quantity_out_of_range_is_read_as_one(quantity: Any) -> None:
    # 1e20 as an int has more than 64 bits: the JSON encoder of `transform` and of the
    # batcher could not write the event.
    products = [{"product_id": "p", "quantity": quantity}]
    data = custom_data(message("Checkout Started", products=products))
    assert data["contents"] == [{"id": "p", "quantity": 1}]
    orjson.dumps(data)


def test_product_viewed_single_product_becomes_the_contents() -> None:
    msg = message("Product Viewed", product_id="p-1", price=9.5, quantity=1, name="Shoe")
    data = custom_data(msg)
    assert data["contents"] == [{"id": "p-1", "quantity": 1, "item_price": 9.5, "title": "Shoe"}]
    assert data["content_ids"] == ["p-1"]
    assert data["content_type"] == "product"
    assert data["content_name"] == "Shoe"
    assert "num_items" not in data


def test_products_that_is_not_a_list_is_invalid() -> None:
    msg = message("Order Completed", revenue=1, products={"product_id": "p"})
    assert invalid_reason(msg) == reasons.INVALID_PRODUCTS


def test_product_that_is_not_an_object_is_invalid() -> None:
    msg = message("Order Completed", revenue=1, products=["p-1"])
    assert invalid_reason(msg) == reasons.INVALID_PRODUCTS


def test_products_array_is_not_copied_into_custom_data() -> None:
    data = custom_data(message("Order Completed", revenue=1, products=[{"product_id": "p"}]))
    assert "products" not in data


def test_delivery_category_is_kept_on_contents_and_custom_data() -> None:
    products = [{"product_id": "p", "delivery_category": "curbside"}]
    msg = message("Order Completed", revenue=1, products=products, delivery_category="in_store")
    data = custom_data(msg)
    assert data["contents"][0]["delivery_category"] == "curbside"
    assert data["delivery_category"] == "in_store"


def test_unknown_delivery_category_is_invalid() -> None:
    msg = message("Order Completed", revenue=1, delivery_category="drone")
    assert invalid_reason(msg) == reasons.INVALID_DELIVERY_CATEGORY


# ---- content_type and category ------------------------------------------------------------------


def test_content_type_defaults_to_product_when_there_are_products() -> None:
    data = custom_data(message("Order Completed", revenue=1, products=[{"product_id": "p"}]))
    assert data["content_type"] == "product"


def test_view_event_without_products_is_a_product_group_of_its_category() -> None:
    data = custom_data(message("Product List Viewed", category="Shoes"))
    assert data["content_type"] == "product_group"
    assert data["content_ids"] == ["Shoes"]


def test_content_type_property_wins() -> None:
    msg = message("Order Completed", revenue=1, content_type="hotel", category="Rooms")
    assert custom_data(msg)["content_type"] == "hotel"


def test_content_type_property_wins_over_the_integration_option() -> None:
    msg = message("Order Completed", revenue=1, content_type="hotel", category="Rooms")
    msg["integrations"] = {"Facebook Conversions API": {"content_type": "destination"}}
    settings = destination(categories_to_content_types={"Rooms": "flight"})
    assert custom_data(msg, settings)["content_type"] == "hotel"


def test_content_type_integration_option_wins_over_category_mapping() -> None:
    msg = message("Order Completed", revenue=1, category="Rooms")
    msg["integrations"] = {"Facebook Conversions API": {"contentType": "destination"}}
    settings = destination(categories_to_content_types={"Rooms": "hotel"})
    assert custom_data(msg, settings)["content_type"] == "destination"


def test_categories_to_content_types_maps_the_category() -> None:
    settings = destination(categories_to_content_types={"Rooms": "hotel"})
    msg = message("Order Completed", revenue=1, category="Rooms")
    assert custom_data(msg, settings)["content_type"] == "hotel"


def test_categories_to_content_types_reads_the_first_product_category() -> None:
    settings = destination(categories_to_content_types={"Cars": "vehicle"})
    products = [{"product_id": "p", "category": "Cars"}]
    msg = message("Checkout Started", products=products)
    assert custom_data(msg, settings)["content_type"] == "vehicle"


def test_category_becomes_content_category() -> None:
    assert custom_data(message("Coupon Applied", category="Shoes"))["content_category"] == "Shoes"


def test_category_array_is_joined_with_commas() -> None:
    data = custom_data(message("Coupon Applied", category=["Shoes", "Running"]))
    assert data["content_category"] == "Shoes,Running"


def test_object_category_is_invalid() -> None:
    assert invalid_reason(message("Coupon Applied", category={"a": 1})) == reasons.INVALID_CATEGORY


def test_custom_event_without_products_has_no_content_type() -> None:
    assert "content_type" not in custom_data(message("Coupon Applied", coupon="X"))


# ---- other standard fields --------------------------------------------------------------------


def test_query_becomes_search_string() -> None:
    data = custom_data(message("Products Searched", query="red shoes"))
    assert data["search_string"] == "red shoes"


def test_status_and_order_id_are_copied_as_strings() -> None:
    data = custom_data(message("Order Completed", revenue=1, status="paid", order_id=1001))
    assert data["status"] == "paid"
    assert data["order_id"] == "1001"


def test_content_name_property_is_kept() -> None:
    assert custom_data(message("Coupon Applied", content_name="Spring"))["content_name"] == "Spring"


# ---- other properties, reserved keys and PII ----------------------------------------------------


def test_other_properties_are_copied_unchanged() -> None:
    data = custom_data(message("Coupon Applied", coupon="SAVE10", tier={"level": 2}))
    assert data["coupon"] == "SAVE10"
    assert data["tier"] == {"level": 2}


def test_reserved_keys_are_not_copied() -> None:
    msg = message("Coupon Applied", coupon="X", fbp="fb.1.1.1", fbc="fb.1.1.c", opt_out=False)
    data = custom_data(msg)
    assert data == {"coupon": "X"}


def test_default_pii_properties_are_dropped() -> None:
    props = {
        "email": "a@b.c",
        "firstName": "Jane",
        "phone": "555",
        "zip": "94025",
        "birthday": "1990-01-01",
        "coupon": "X",
    }
    assert custom_data(message("Coupon Applied", **props)) == {"coupon": "X"}


def test_allowlisted_pii_property_is_kept() -> None:
    settings = destination(pii_allowlist=["city"])
    assert custom_data(message("Coupon Applied", city="Paris"), settings) == {"city": "Paris"}


def test_denylisted_property_with_hash_is_hashed() -> None:
    settings = destination(pii_denylist=[{"property": "email", "hash": True}, "ssn"])
    data = custom_data(message("Coupon Applied", email="a@b.c", ssn="123", city="Paris"), settings)
    assert data["email"] == hashlib.sha256(b"a@b.c").hexdigest()
    assert "ssn" not in data
    assert "city" not in data  # the default list still applies


def test_a_custom_denylist_never_lets_default_pii_through() -> None:
    settings = destination(pii_denylist=[{"property": "ssn", "hash": True}])
    data = custom_data(message("Coupon Applied", email="a@b.c", phone="555", plan="pro"), settings)
    assert "email" not in data and "phone" not in data
    assert data == {"plan": "pro"}


def test_denylisted_property_of_a_pre_hashed_event_is_not_hashed_again() -> None:
    settings = destination(pii_denylist=[{"property": "email", "hash": True}])
    msg = message("Coupon Applied", email="f" * 64)
    msg["integrations"] = {"Facebook Conversions API": {"hashed": True}}
    assert custom_data(msg, settings)["email"] == "f" * 64


def test_page_properties_are_copied_into_custom_data() -> None:
    msg = message(title="Pricing", path="/pricing")
    msg.update(type="page")
    assert custom_data(msg) == {"title": "Pricing", "path": "/pricing"}


# ---- contents title, brand, category; net_revenue -----------------------------------------------


def test_contents_items_carry_title_brand_and_category_of_each_product() -> None:
    products = [
        {"product_id": "p-1", "name": " Runner ", "brand": "Acme", "category": "Shoes", "price": 5},
        {"sku": "p-2", "name": "Sock", "category": ["Apparel", "Socks"], "quantity": 2},
        {"id": "p-3", "brand": 7, "category": {"not": "readable"}},  # left out, not an error
    ]
    data = custom_data(message("Order Completed", revenue=9, products=products))
    assert data["contents"] == [
        {
            "id": "p-1",
            "quantity": 1,
            "item_price": 5,
            "title": "Runner",
            "brand": "Acme",
            "category": "Shoes",
        },
        {"id": "p-2", "quantity": 2, "title": "Sock", "category": "Apparel,Socks"},
        {"id": "p-3", "quantity": 1, "brand": "7"},
    ]


def test_single_product_title_is_the_name_property() -> None:
    msg = message("Product Added", product_id="p-1", price=5, name="Runner", brand="Acme")
    msg["properties"]["category"] = "Shoes"
    data = custom_data(msg)
    assert data["contents"] == [
        {
            "id": "p-1",
            "quantity": 1,
            "item_price": 5,
            "title": "Runner",
            "brand": "Acme",
            "category": "Shoes",
        }
    ]
    assert data["content_name"] == "Runner"
    assert data["brand"] == "Acme"  # still copied as before


def test_net_revenue_is_read_like_the_value() -> None:
    data = custom_data(message("Order Completed", revenue="20", net_revenue="17.456"))
    assert data["net_revenue"] == 17.46
    assert data["value"] == 20


def test_unreadable_net_revenue_is_invalid() -> None:
    msg = message("Order Completed", revenue=20, net_revenue="lots")
    assert invalid_reason(msg) == reasons.INVALID_VALUE


# ---- the order of keys (the JSON sent); properties read as well as copied ---------------------


def test_custom_data_keeps_the_properties_order_then_metas_keys() -> None:
    msg = message(
        "Order Completed",
        coupon="X",
        currency="eur",
        revenue=12,
        products=[{"product_id": "p", "price": 12, "name": "N", "brand": "B", "category": "C"}],
        order_id=7,
        tax=1,
        category="Shoes",
        query="q",
    )
    data = custom_data(msg)
    assert list(data) == [
        "coupon", "revenue", "tax", "category", "query",  # copied, in the event's order
        "value", "currency", "num_items", "contents", "content_ids", "content_category",
        "content_type", "search_string", "order_id",
    ]  # fmt: skip
    assert orjson.dumps(data["contents"]) == (
        b'[{"id":"p","quantity":1,"item_price":12,"title":"N","brand":"B","category":"C"}]'
    )


def test_contents_entry_keys_keep_their_order_when_some_are_absent() -> None:
    products = [
        {"delivery_category": "curbside", "brand": "B", "product_id": "p", "price": 3},
        {"category": "C", "name": "N", "product_id": "q", "price": 1, "brand": "B"},
        {"category": "C", "product_id": "r", "delivery_category": "in_store", "name": "N"},
    ]
    data = custom_data(message("Order Completed", revenue=1, products=products))
    assert [list(content) for content in data["contents"]] == [
        ["id", "quantity", "item_price", "brand", "delivery_category"],
        ["id", "quantity", "item_price", "title", "brand", "category"],
        ["id", "quantity", "title", "category", "delivery_category"],
    ]


def test_a_denylisted_property_that_the_mapping_reads_is_still_read() -> None:
    # category and revenue are copied and read: the PII rule applies to the copy only.
    settings = destination(
        pii_denylist=[{"property": "category", "hash": True}, {"property": "revenue"}]
    )
    data = custom_data(message("Order Completed", revenue=5, category="Shoes"), settings)
    assert data["category"] == hashlib.sha256(b"Shoes").hexdigest()
    assert "revenue" not in data
    assert data["value"] == 5
    assert data["content_category"] == "Shoes"
