"""Fuzz: random bytes, random JSON and mutated real records through the worker's stateless stage
(decode, then route + map for several destinations). Whatever comes in, the result is a decoded
record or a decode error with a known reason, then one result per destination: a Meta-valid
event, a skip with a known reason or an error with a known reason. Never an exception.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.avro import encode_avro, encode_confluent
from worker import reasons
from worker.capi.contract import validate_event
from worker.config import DEFAULT_AVRO_SCHEMA, DestinationSettings
from worker.decode import (
    DecodeError,
    SchemaRegistryClient,
    decode_json,
    load_avro_schema,
    make_avro_decoder,
    make_confluent_decoder,
)
from worker.mapping.result import Invalid, Mapped, Skipped
from worker.pipeline import (
    REDRIVE_OTHER_DESTINATION,
    Decoder,
    decode_record,
    map_for_destinations,
)
from worker.sandbox.sample_events import sample_event

NOW = 1_760_000_000.0
SCHEMA = load_avro_schema(DEFAULT_AVRO_SCHEMA)
SCHEMA_ID = 7
DECODE_REASONS = set(reasons.DECODE_REASONS) - {"schema_registry_unavailable"}  # offline


class OfflineRegistry(SchemaRegistryClient):
    """Knows schema id 7; every other id is unknown, without a network round trip."""

    def __init__(self) -> None:
        super().__init__("http://registry.invalid")
        self.schemas[SCHEMA_ID] = SCHEMA

    def _fetch(self, schema_id: int) -> dict[str, Any]:
        raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not in the registry")


DECODERS: dict[str, Decoder] = {
    "json": decode_json,
    "avro": make_avro_decoder(SCHEMA),
    "avro-confluent": make_confluent_decoder(OfflineRegistry()),
}
DESTINATIONS = [
    DestinationSettings(name="shop", pixel_id="1", access_token="t"),  # type: ignore[arg-type]
    DestinationSettings(  # type: ignore[call-arg]
        name="app",
        pixel_id="2",
        access_token="t",  # type: ignore[arg-type]
        forward_identify=True,
        forward_screen=True,
        limited_data_use=True,
        required_consent_categories=["Advertising"],
    ),
]


def _sample_values() -> list[bytes]:
    rng = random.Random(5)
    now = time.time()
    return [orjson.dumps(sample_event(i, now, rng, prefix="fuzz")) for i in range(8)]


SAMPLES = _sample_values()
AVRO_SAMPLES = [encode_avro(orjson.loads(value), SCHEMA) for value in SAMPLES]
CONFLUENT_SAMPLES = [encode_confluent(orjson.loads(value), SCHEMA_ID, SCHEMA) for value in SAMPLES]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what orjson writes
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
headers = st.none() | st.lists(
    st.tuples(
        st.sampled_from(["capi.redrive.only_destination", "trace", ""]) | st.text(max_size=8),
        st.none() | st.binary(max_size=12) | st.sampled_from([b"shop", b"app", b"\xff"]),
    ),
    max_size=3,
)


def mutate(value: bytes, data: st.DataObject) -> bytes:
    """A real record with a few bytes overwritten, inserted or cut off."""
    buffer = bytearray(value)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(len(buffer) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "insert", "truncate"]))
        if action == "flip" and buffer:
            buffer[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            buffer[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del buffer[at:]
    return bytes(buffer)


def run_stage(decoder: Decoder, value: bytes | None, header_list: Any = None) -> None:
    decoded = decode_record(decoder, value)
    if isinstance(decoded, Invalid):
        assert decoded.stage == "decode"
        assert decoded.reason in DECODE_REASONS, decoded
        assert decoded.message
        return
    assert isinstance(decoded, dict)
    results = map_for_destinations(decoded, header_list, DESTINATIONS, NOW)
    assert len(results) == len(DESTINATIONS)
    for result in results:
        if isinstance(result, Mapped):
            assert validate_event(result.event, NOW) is None, result.event
            orjson.dumps(result.event)
        elif isinstance(result, Skipped):
            assert result.reason in {*reasons.SKIP_REASONS, REDRIVE_OTHER_DESTINATION.reason}
        else:
            assert isinstance(result, Invalid)
            assert result.reason not in (
                reasons.MAPPING_FAILED,
                reasons.META_CONTRACT_VIOLATION,
            ), result.message
            assert result.stage in ("route", "map")
            assert result.message


@settings(max_examples=400, deadline=None)
@given(value=st.binary(max_size=300), fmt=st.sampled_from(sorted(DECODERS)))
def test_random_bytes_give_a_decode_error_or_a_result_never_an_exception(
    value: bytes, fmt: str
) -> None:
    run_stage(DECODERS[fmt], value)


@settings(max_examples=400, deadline=None)
@given(value=json_values, header_list=headers)
def test_random_json_gives_a_reason_or_a_valid_event_never_an_exception(
    value: Any, header_list: Any
) -> None:
    run_stage(decode_json, orjson.dumps(value), header_list)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), fmt=st.sampled_from(sorted(DECODERS)))
def test_mutated_real_records_give_a_reason_or_a_valid_event_never_an_exception(
    data: st.DataObject, fmt: str
) -> None:
    samples = {"json": SAMPLES, "avro": AVRO_SAMPLES, "avro-confluent": CONFLUENT_SAMPLES}[fmt]
    value = mutate(data.draw(st.sampled_from(samples)), data)
    run_stage(DECODERS[fmt], value, data.draw(headers))


def test_the_unmutated_samples_map_to_events_in_every_format() -> None:
    """The fuzz starts from records that do map, so mutations explore near real events."""
    for fmt, samples in (
        ("json", SAMPLES),
        ("avro", AVRO_SAMPLES),
        ("avro-confluent", CONFLUENT_SAMPLES),
    ):
        for value in samples:
            decoded = decode_record(DECODERS[fmt], value)
            assert isinstance(decoded, dict), (fmt, decoded)
            [shop, _] = map_for_destinations(decoded, None, DESTINATIONS, time.time())
            assert isinstance(shop, Mapped), (fmt, shop)
