"""user_data: where each customer information parameter comes from, and what is hashed.

Expected hashes are computed with normalize_and_hash itself: these tests pin where values are
read from, not Meta's normalisation (tested with normalize).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from worker.config import DestinationSettings
from worker.mapping.event import map_event
from worker.mapping.normalize import normalize_and_hash
from worker.mapping.result import Mapped

NOW = 1_700_000_000.0
EVENT_MS = 1_699_999_990_123
HEX64 = "a" * 64


def destination(**settings: Any) -> DestinationSettings:
    return DestinationSettings(
        name="shop", pixel_id="1234567890", access_token=SecretStr("token"), **settings
    )


def message(context_traits: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "Signed Up",
        "messageId": "msg-1",
        "anonymousId": "anon-1",
        "timestamp": EVENT_MS,
        "context": {
            "userAgent": "Mozilla/5.0",
            "page": {"url": "https://shop.example/"},
            "traits": context_traits or {},
        },
        "properties": {},
    }
    event.update(fields)
    return event


def user_data(msg: dict[str, Any], settings: DestinationSettings | None = None) -> dict[str, Any]:
    result = map_event(msg, settings or destination(), NOW)
    assert isinstance(result, Mapped), result
    data: dict[str, Any] = result.event["user_data"]
    return data


def test_email_trait_is_hashed_into_em() -> None:
    data = user_data(message({"email": "Jane@Example.com"}))
    assert data["em"] == normalize_and_hash("em", "Jane@Example.com")


def test_phone_gender_and_birthday_traits_are_hashed() -> None:
    traits = {"phone": "+1 555 123 4567", "gender": "Female", "birthday": "1990-02-03"}
    data = user_data(message(traits))
    assert data["ph"] == normalize_and_hash("ph", "+1 555 123 4567")
    assert data["ge"] == normalize_and_hash("ge", "Female")
    assert data["db"] == normalize_and_hash("db", "1990-02-03")


def test_first_and_last_name_are_read_in_camel_case() -> None:
    data = user_data(message({"firstName": "Jane", "lastName": "Doe"}))
    assert data["fn"] == normalize_and_hash("fn", "Jane")
    assert data["ln"] == normalize_and_hash("ln", "Doe")


def test_first_and_last_name_are_read_in_snake_case() -> None:
    data = user_data(message({"first_name": "Jane", "last_name": "Doe"}))
    assert data["fn"] == normalize_and_hash("fn", "Jane")
    assert data["ln"] == normalize_and_hash("ln", "Doe")


def test_two_word_name_trait_gives_first_and_last_name() -> None:
    data = user_data(message({"name": "Jane Doe"}))
    assert data["fn"] == normalize_and_hash("fn", "Jane")
    assert data["ln"] == normalize_and_hash("ln", "Doe")


def test_address_fields_are_read_from_the_nested_address() -> None:
    address = {"city": "Menlo Park", "state": "CA", "postalCode": "94025", "country": "US"}
    data = user_data(message({"address": address}))
    assert data["ct"] == normalize_and_hash("ct", "Menlo Park")
    assert data["st"] == normalize_and_hash("st", "CA")
    assert data["zp"] == normalize_and_hash("zp", "94025")
    assert data["country"] == normalize_and_hash("country", "US")


def test_zip_is_read_from_postal_code_postalcode_or_zip() -> None:
    for key in ("postal_code", "postalCode", "zip"):
        data = user_data(message({"address": {key: "94025"}}))
        assert data["zp"] == normalize_and_hash("zp", "94025"), key


def test_top_level_traits_are_ignored_for_track_events() -> None:
    msg = message({"email": "ctx@example.com"}, traits={"email": "top@example.com"})
    assert user_data(msg)["em"] == normalize_and_hash("em", "ctx@example.com")


def test_identify_reads_top_level_traits_before_context_traits() -> None:
    msg = message({"email": "ctx@example.com", "phone": "5551234567"})
    msg.update(type="identify", traits={"email": "top@example.com"})
    data = user_data(msg, destination(forward_identify=True))
    assert data["em"] == normalize_and_hash("em", "top@example.com")
    assert data["ph"] == normalize_and_hash("ph", "5551234567")


def test_page_reads_top_level_traits() -> None:
    msg = message()
    msg.update(type="page", traits={"email": "top@example.com"})
    assert user_data(msg)["em"] == normalize_and_hash("em", "top@example.com")


def test_external_id_is_the_hashed_user_id() -> None:
    data = user_data(message(userId="user-42"))
    assert data["external_id"] == normalize_and_hash("external_id", "user-42")


def test_external_id_falls_back_to_anonymous_id() -> None:
    data = user_data(message())
    assert data["external_id"] == normalize_and_hash("external_id", "anon-1")


def test_external_id_field_setting_takes_precedence() -> None:
    settings = destination(external_id_field="properties.externalId")
    data = user_data(message(userId="user-42", properties={"externalId": "crm-7"}), settings)
    assert data["external_id"] == normalize_and_hash("external_id", "crm-7")


def test_external_id_field_missing_from_the_event_falls_back_to_user_id() -> None:
    settings = destination(external_id_field="context.traits.crmId")
    data = user_data(message(userId="user-42"), settings)
    assert data["external_id"] == normalize_and_hash("external_id", "user-42")


@pytest.mark.parametrize("user_id", [{"id": 1}, True, [], "   "])
def test_a_user_id_that_cannot_be_an_id_falls_back_to_anonymous_id(user_id: Any) -> None:
    data = user_data(message(userId=user_id))
    assert data["external_id"] == normalize_and_hash("external_id", "anon-1")


def test_external_id_field_holding_an_object_falls_back_to_user_id() -> None:
    settings = destination(external_id_field="properties.externalId")
    msg = message(userId="user-42", properties={"externalId": {"crm": 7}})
    assert user_data(msg, settings)["external_id"] == normalize_and_hash("external_id", "user-42")


def test_ip_and_user_agent_are_sent_as_they_are() -> None:
    msg = message()
    msg["context"]["ip"] = "2001:db8::1"
    data = user_data(msg)
    assert data["client_ip_address"] == "2001:db8::1"
    assert data["client_user_agent"] == "Mozilla/5.0"


def test_an_ip_that_is_not_an_ip_address_is_left_out() -> None:
    msg = message()
    msg["context"]["ip"] = "not-an-ip"
    assert "client_ip_address" not in user_data(msg)


def test_fbp_and_fbc_are_read_from_properties_unhashed() -> None:
    props = {"fbp": "fb.1.1596403881668.1116446470", "fbc": "fb.1.1554763741205.AbCd"}
    data = user_data(message(properties=props))
    assert data["fbp"] == props["fbp"]
    assert data["fbc"] == props["fbc"]


def test_fbp_and_fbc_are_read_from_context() -> None:
    msg = message()
    msg["context"].update(fbp="fb.1.1.2", fbc="fb.1.1.click")
    data = user_data(msg)
    assert (data["fbp"], data["fbc"]) == ("fb.1.1.2", "fb.1.1.click")


def test_fbp_and_fbc_are_read_from_context_cookies() -> None:
    msg = message()
    msg["context"]["cookies"] = {"_fbp": "fb.1.1.2", "_fbc": "fb.1.1.click"}
    data = user_data(msg)
    assert (data["fbp"], data["fbc"]) == ("fb.1.1.2", "fb.1.1.click")


def test_fbc_is_built_from_an_fbclid_in_the_page_url() -> None:
    msg = message()
    msg["context"]["page"]["url"] = "https://shop.example/?utm_source=fb&fbclid=IwAR2xyz"
    assert user_data(msg)["fbc"] == f"fb.1.{EVENT_MS}.IwAR2xyz"


def test_fbc_sent_by_the_source_wins_over_the_fbclid() -> None:
    msg = message(properties={"fbc": "fb.1.1.given"})
    msg["context"]["page"]["url"] = "https://shop.example/?fbclid=IwAR2xyz"
    assert user_data(msg)["fbc"] == "fb.1.1.given"


def test_pre_hashed_traits_are_passed_through_not_hashed_again() -> None:
    digest = "B" * 64
    msg = message({"email": digest}, integrations={"Facebook Conversions API": {"hashed": True}})
    assert user_data(msg)["em"] == normalize_and_hash("em", digest, prehashed=True)


def test_pre_hashed_flag_with_a_value_that_is_not_a_hash_drops_the_value() -> None:
    msg = message({"email": "jane@example.com"}, integrations={"FACEBOOK_PIXEL": {"hashed": True}})
    assert "em" not in user_data(msg)


def test_a_trait_that_normalises_to_nothing_is_dropped_without_failing_the_event() -> None:
    data = user_data(message({"email": "   ", "firstName": ""}))
    assert "em" not in data
    assert "fn" not in data


def test_object_valued_traits_are_ignored() -> None:
    assert "em" not in user_data(message({"email": {"work": "a@b.c"}}))


def test_hashed_values_are_64_lowercase_hex_characters() -> None:
    traits = {"email": "x@example.com", "phone": "5551234567", "lastName": "Doe"}
    data = user_data(message(traits, userId=HEX64))
    for field in ("em", "ph", "ln", "external_id"):
        assert len(data[field]) == 64
        assert data[field] == data[field].lower()
