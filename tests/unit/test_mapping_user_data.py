"""user_data: where each customer information parameter comes from, and what is hashed.

Expected hashes are computed with normalize_and_hash itself: these tests pin where values are
read from, not Meta's normalisation (tested with normalize).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.builders import NOW, destination, track_message
from worker.config import DestinationSettings
from worker.mapping.event import map_event
from worker.mapping.normalize import normalize_and_hash
from worker.mapping.result import Mapped

EVENT_MS = 1_699_999_990_123
HEX64 = "a" * 64


def message(context_traits: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    context = {
        "userAgent": "Mozilla/5.0",
        "page": {"url": "https://shop.example/"},
        "traits": context_traits or {},
    }
    return track_message(
        **{"event": "Signed Up", "timestamp": EVENT_MS, "context": context, **fields}
    )


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


# ---- drop_external_id ---------------------------------------------------------------------------


def test_drop_external_id_sends_no_external_id_at_all() -> None:
    msg = message({"email": "jane@example.com", "externalId": "x-1"}, userId="user-1")
    data = user_data(msg, destination(drop_external_id=True, external_id_field="traits.externalId"))
    assert "external_id" not in data
    assert data["em"] == normalize_and_hash("em", "jane@example.com")
    assert "external_id" in user_data(msg)  # default: kept


# ---- national phone numbers completed with the calling code -------------------------------------


@pytest.mark.parametrize(
    ("phone", "country", "international"),
    [
        ("020 7946 0958", "GB", "442079460958"),
        ("020 7946 0958", "United Kingdom", "442079460958"),
        ("07911 123456", "gb", "447911123456"),
        ("(415) 555-0100", "US", "14155550100"),
        ("(415) 555-0100", "United States", "14155550100"),
        ("1 415 555 0100", "US", "14155550100"),  # the trunk prefix 1 is not doubled
        ("44 20 7946 0958", "GB", "442079460958"),  # the calling code without its +
        ("06 1234 5678", "IT", "390612345678"),  # Italy keeps its leading 0
    ],
)
def test_national_phone_gets_the_calling_code_of_the_address_country(
    phone: str, country: str, international: str
) -> None:
    data = user_data(message({"phone": phone, "address": {"country": country}}))
    assert data["ph"] == normalize_and_hash("ph", international)


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "0044 20 7946 0958", "+1 (415) 555-0100"])
def test_international_phone_is_left_as_it_is(phone: str) -> None:
    data = user_data(message({"phone": phone, "address": {"country": "US"}}))
    assert data["ph"] == normalize_and_hash("ph", phone)


def test_default_phone_country_completes_numbers_without_an_address_country() -> None:
    settings = destination(default_phone_country="gb")
    data = user_data(message({"phone": "020 7946 0958"}), settings)
    assert data["ph"] == normalize_and_hash("ph", "442079460958")
    # The address's own country wins over the setting.
    data = user_data(message({"phone": "4155550100", "address": {"country": "US"}}), settings)
    assert data["ph"] == normalize_and_hash("ph", "14155550100")


@pytest.mark.parametrize(
    ("traits", "settings"),
    [
        ({"phone": "020 7946 0958"}, {}),  # no country anywhere
        ({"phone": "020 7946 0958", "address": {"country": "Atlantis"}}, {}),
        ({"phone": "12", "address": {"country": "US"}}, {}),  # fits no plan
        ({"phone": HEX64, "address": {"country": "US"}}, {}),  # already hashed
    ],
)
def test_phone_without_a_known_country_or_plan_stays_as_today(
    traits: dict[str, Any], settings: dict[str, Any]
) -> None:
    data = user_data(message(traits), destination(**settings))
    expected = normalize_and_hash("ph", traits["phone"])
    assert data.get("ph") == expected


def test_phone_numbers_in_a_list_and_as_integers_are_completed() -> None:
    data = user_data(
        message({"phone": ["020 7946 0958", "+33 1 23 45 67 89"]}),
        destination(default_phone_country="GB"),
    )
    assert data["ph"] == [
        normalize_and_hash("ph", "442079460958"),
        normalize_and_hash("ph", "+33 1 23 45 67 89"),
    ]
    data = user_data(message({"phone": 4155550100, "address": {"country": "US"}}))
    assert data["ph"] == normalize_and_hash("ph", "14155550100")


def test_pre_hashed_phone_is_never_completed() -> None:
    options = {"Facebook Conversions API": {"hashed": True}}
    msg = message({"phone": HEX64, "address": {"country": "US"}}, integrations=options)
    assert user_data(msg)["ph"] == HEX64


@pytest.mark.parametrize("country", ["XX", "GBR", "", "1"])
def test_default_phone_country_must_have_a_calling_code(country: str) -> None:
    with pytest.raises(ValueError, match="default_phone_country"):
        destination(default_phone_country=country)


# ---- user_data parameters passed through from the integration options --------------------------


def test_pass_through_user_data_options_are_sent_as_given_unhashed() -> None:
    given = {
        "partner_id": " p-1 ",
        "partner_name": "liveramp",
        "subscription_id": "sub-9",
        "lead_id": 1234567890123456,
        "fb_login_id": 98765,
        "anon_id": "anon-xyz",
        "madid": "38400000-8cf0-11bd-b23e-10b96e40000d",
        "em": "jane@example.com",  # not a pass-through key: ignored
        "unknown": "x",
    }
    data = user_data(message(integrations={"Facebook Conversions API": {"user_data": given}}))
    assert {key: data[key] for key in given if key in data} == {
        "partner_id": "p-1",
        "partner_name": "liveramp",
        "subscription_id": "sub-9",
        "lead_id": 1234567890123456,
        "fb_login_id": 98765,
        "anon_id": "anon-xyz",
        "madid": "38400000-8cf0-11bd-b23e-10b96e40000d",
    }


@pytest.mark.parametrize("value", [True, None, " ", {"id": 1}, [1], 1.5])
def test_pass_through_values_that_are_neither_text_nor_integers_are_left_out(value: Any) -> None:
    options = {"Facebook Conversions API": {"user_data": {"lead_id": value}}}
    assert "lead_id" not in user_data(message(integrations=options))


def test_partner_fields_alone_are_not_customer_information() -> None:
    from worker import reasons
    from worker.mapping.result import Invalid

    options = {"Facebook Conversions API": {"user_data": {"partner_id": "p", "partner_name": "n"}}}
    msg = message(integrations=options, properties={"action_source": "chat"})
    del msg["context"]["userAgent"]
    result = map_event(msg, destination(drop_external_id=True), NOW)
    assert isinstance(result, Invalid) and result.reason == reasons.MISSING_USER_DATA
    options["Facebook Conversions API"]["user_data"]["lead_id"] = "lead-1"
    assert isinstance(map_event(msg, destination(drop_external_id=True), NOW), Mapped)
