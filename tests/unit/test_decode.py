"""Decoding of record values: JSON, schemaless Avro and the Confluent wire format.

The Confluent tests talk to a real (tiny) schema registry served over a real socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.avro import encode_avro, encode_confluent
from tests.support.schema_registry import Registry
from worker.config import DEFAULT_AVRO_SCHEMA, DecodingSettings
from worker.decode import (
    DecodeError,
    SchemaRegistryClient,
    build_decoder,
    load_avro_schema,
)

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "msg-1",
    "timestamp": "2024-05-01T12:00:00.000Z",
    "userId": "user-1",
    "anonymousId": "anon-1",
    "properties": {
        "revenue": 42.5,
        "currency": "eur",
        "products": [{"product_id": "p1", "price": 42.5, "quantity": 1}],
    },
    "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0", "traits": {"email": "a@b.co"}},
    "integrations": {"Facebook Conversions API": {"action_source": "website"}},
}

SCHEMA_ID = 7


def reason_of(decoder: Any, value: bytes | None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decoder(value)
    return info.value


# ---------------------------------------------------------------------------- JSON


@pytest.fixture
def json_decoder() -> Any:
    return build_decoder(DecodingSettings(format="json"))


def test_json_object_is_decoded(json_decoder: Any) -> None:
    assert json_decoder(orjson.dumps(EVENT)) == EVENT


@pytest.mark.parametrize("value", [b"{", b"not json", b"{'a': 1}", b"\xff\xfe", b"   "])
def test_json_invalid(json_decoder: Any, value: bytes) -> None:
    error = reason_of(json_decoder, value)
    assert error.reason == "invalid_json"
    assert not error.retryable
    assert error.message


@pytest.mark.parametrize(
    ("value", "kind"),
    [(b"[1, 2]", "array"), (b'"track"', "string"), (b"42", "number"), (b"null", "null")],
)
def test_json_not_an_object(json_decoder: Any, value: bytes, kind: str) -> None:
    error = reason_of(json_decoder, value)
    assert error.reason == "not_an_object"
    assert kind in error.message


@pytest.mark.parametrize("value", [b"", None])
def test_json_empty_value(json_decoder: Any, value: bytes | None) -> None:
    assert reason_of(json_decoder, value).reason == "empty_value"


# ---------------------------------------------------------------------------- Avro


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return load_avro_schema(DEFAULT_AVRO_SCHEMA)


@pytest.fixture
def avro_decoder() -> Any:
    return build_decoder(DecodingSettings(format="avro"))


def test_avro_round_trip_gives_the_json_shape(avro_decoder: Any, schema: dict[str, Any]) -> None:
    value = encode_avro(EVENT, schema)
    assert avro_decoder(value) == EVENT


def test_avro_schema_path_and_raw_dict_are_accepted(avro_decoder: Any) -> None:
    raw = orjson.loads(DEFAULT_AVRO_SCHEMA.read_bytes())
    assert encode_avro(EVENT, DEFAULT_AVRO_SCHEMA) == encode_avro(EVENT, raw)


def test_avro_nulls_are_left_out(avro_decoder: Any, schema: dict[str, Any]) -> None:
    assert avro_decoder(encode_avro({"type": "page", "properties": ""}, schema)) == {"type": "page"}


def test_avro_settings_schema_file(tmp_path: Path, schema: dict[str, Any]) -> None:
    path = tmp_path / "event.avsc"
    path.write_bytes(DEFAULT_AVRO_SCHEMA.read_bytes())
    decoder = build_decoder(DecodingSettings(format="avro", avro_schema=path))
    assert decoder(encode_avro(EVENT, schema)) == EVENT


@pytest.mark.parametrize(
    "value",
    [
        b"\x0atra",  # string longer than the data
        b"\x0atrack\x09",  # union branch that does not exist
        b"\x02\xc3\x28",  # invalid UTF-8
    ],
)
def test_avro_invalid(avro_decoder: Any, value: bytes) -> None:
    error = reason_of(avro_decoder, value)
    assert error.reason == "invalid_avro"
    assert not error.retryable


def test_avro_trailing_bytes_are_invalid(avro_decoder: Any, schema: dict[str, Any]) -> None:
    error = reason_of(avro_decoder, encode_avro(EVENT, schema) + b"\x00\x00")
    assert error.reason == "invalid_avro"
    assert "2 bytes left" in error.message


@pytest.mark.parametrize("value", [b"", None])
def test_avro_empty_value(avro_decoder: Any, value: bytes | None) -> None:
    assert reason_of(avro_decoder, value).reason == "empty_value"


@pytest.mark.parametrize(
    ("field", "text", "detail"),
    [
        ("properties", "{not json", "not valid JSON"),
        ("context", "[1, 2]", "must hold a JSON object, got array"),
        ("traits", '"x"', "got string"),
    ],
)
def test_avro_invalid_embedded_json(
    avro_decoder: Any, schema: dict[str, Any], field: str, text: str, detail: str
) -> None:
    error = reason_of(avro_decoder, encode_avro({"type": "track", field: text}, schema))
    assert error.reason == "invalid_embedded_json"
    assert field in error.message
    assert detail in error.message


def test_avro_embedded_json_null_is_absent(avro_decoder: Any, schema: dict[str, Any]) -> None:
    assert avro_decoder(encode_avro({"type": "track", "traits": "null"}, schema)) == {
        "type": "track"
    }


# ---------------------------------------------------------------------------- Confluent


@pytest.fixture
def registry() -> Iterator[Registry]:
    raw = orjson.loads(DEFAULT_AVRO_SCHEMA.read_bytes())
    with Registry({SCHEMA_ID: raw}) as server:
        yield server


def confluent_decoder(url: str) -> Any:
    return build_decoder(DecodingSettings(format="avro-confluent", schema_registry_url=url))


def test_confluent_wire_format_through_a_real_registry(
    registry: Registry, schema: dict[str, Any]
) -> None:
    decoder = confluent_decoder(registry.url)
    value = encode_confluent(EVENT, SCHEMA_ID, schema)
    assert value[:5] == b"\x00\x00\x00\x00\x07"
    assert decoder(value) == EVENT
    assert decoder(value) == EVENT
    assert registry.requests == [f"/schemas/ids/{SCHEMA_ID}"], "the schema is cached per id"


def test_confluent_writer_schema_evolution(registry: Registry, schema: dict[str, Any]) -> None:
    """A producer's newer schema (an extra field) is read with its own writer schema."""
    raw = orjson.loads(DEFAULT_AVRO_SCHEMA.read_bytes())
    raw["fields"].append({"name": "version", "type": ["null", "int"], "default": None})
    registry.schemas[8] = raw
    decoder = confluent_decoder(registry.url)
    assert decoder(encode_confluent({**EVENT, "version": 2}, 8, raw)) == {**EVENT, "version": 2}


def test_confluent_unknown_schema_id(registry: Registry, schema: dict[str, Any]) -> None:
    decoder = confluent_decoder(registry.url)
    value = encode_confluent(EVENT, 99, schema)
    error = reason_of(decoder, value)
    assert error.reason == "unknown_schema_id"
    assert not error.retryable
    assert "99" in error.message
    assert reason_of(decoder, value).reason == "unknown_schema_id"
    assert registry.requests == ["/schemas/ids/99"], "an unknown id is remembered for a while"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_confluent_registry_down_is_retryable(schema: dict[str, Any]) -> None:
    decoder = confluent_decoder(f"http://127.0.0.1:{free_port()}")
    error = reason_of(decoder, encode_confluent(EVENT, SCHEMA_ID, schema))
    assert error.reason == "schema_registry_unavailable"
    assert error.retryable


def test_confluent_registry_error_is_retryable_then_recovers(
    registry: Registry, schema: dict[str, Any]
) -> None:
    decoder = confluent_decoder(registry.url)
    value = encode_confluent(EVENT, SCHEMA_ID, schema)
    registry.fail_with = 503
    error = reason_of(decoder, value)
    assert (error.reason, error.retryable) == ("schema_registry_unavailable", True)
    assert "503" in error.message
    registry.fail_with = None
    assert decoder(value) == EVENT


@pytest.mark.parametrize(
    ("value", "detail"),
    [(b"\x01\x00\x00\x00\x07\x0atrack", "0x01"), (b"{}", "0x7b"), (b"\x00\x00\x07", "shorter")],
)
def test_confluent_bad_magic_byte(registry: Registry, value: bytes, detail: str) -> None:
    error = reason_of(confluent_decoder(registry.url), value)
    assert error.reason == "not_confluent_wire_format"
    assert detail in error.message
    assert registry.requests == []


def test_confluent_invalid_datum(registry: Registry) -> None:
    value = b"\x00" + SCHEMA_ID.to_bytes(4, "big") + b"\x0atra"
    assert reason_of(confluent_decoder(registry.url), value).reason == "invalid_avro"


def test_confluent_empty_value(registry: Registry) -> None:
    assert reason_of(confluent_decoder(registry.url), b"").reason == "empty_value"


def test_registry_credentials_are_sent_but_not_shown() -> None:
    client = SchemaRegistryClient("https://alice:s3cret@registry.example.com:8081/")
    assert client.url == "https://registry.example.com:8081"
    assert "s3cret" not in client.url
    with pytest.raises(ValueError, match="http"):
        SchemaRegistryClient("registry:8081")
