"""The decode stage of the worker: schema fetches run off the event loop, and while the worker
waits for the schema registry it keeps beating its heartbeat and says so in its readiness."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.support.avro import encode_confluent
from tests.support.schema_registry import Registry
from tests.unit.test_decode import EVENT, SCHEMA_ID
from worker.config import DEFAULT_AVRO_SCHEMA, DecodingSettings
from worker.decode import SchemaNotCached, load_avro_schema
from worker.mapping.result import Invalid
from worker.stream.decoding import DecodeStage

SCHEMA = load_avro_schema(DEFAULT_AVRO_SCHEMA)
DEADLINE_SECONDS = 30.0  # generous: the machine may be busy


@pytest.fixture
def registry() -> Iterator[Registry]:
    with Registry({SCHEMA_ID: orjson.loads(DEFAULT_AVRO_SCHEMA.read_bytes())}) as server:
        yield server


class Beats:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def stage_for(registry: Registry, beats: Beats) -> DecodeStage:
    settings = DecodingSettings(format="avro-confluent", schema_registry_url=registry.url)
    return DecodeStage(settings, heartbeat=beats, stopping=asyncio.Event())


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_schema_is_fetched_off_the_loop_while_the_heartbeat_goes_on(
    registry: Registry,
) -> None:
    registry.hold = threading.Event()
    beats = Beats()
    stage = stage_for(registry, beats)
    value = encode_confluent(EVENT, SCHEMA_ID, SCHEMA)
    with pytest.raises(SchemaNotCached) as not_cached:
        stage.decode(value)  # the hot path never fetches: it asks for the fetch

    async def scenario() -> Any:
        recovering = asyncio.create_task(stage.recover(value, not_cached.value))
        ticks = 0

        def loop_turns_and_beats() -> bool:
            nonlocal ticks
            ticks += 1  # counted by this coroutine: the loop is free while the fetch waits
            return beats.count >= 2 and ticks >= 10

        await until(loop_turns_and_beats, "the loop to turn and the heartbeat to beat")
        assert stage.waiting_for_registry
        assert not recovering.done()
        assert registry.hold is not None
        registry.hold.set()
        return await recovering

    try:
        assert asyncio.run(scenario()) == EVENT
    finally:
        registry.hold.set()
        stage.close()
    assert not stage.waiting_for_registry
    assert stage.decode(value) == EVENT  # cached: decoded on the loop from now on
    assert registry.requests == [f"/schemas/ids/{SCHEMA_ID}"]


class KeepAlive:
    """Stands in for the paused consumer the worker keeps polling while the stage waits."""

    def __init__(self) -> None:
        self.polls = 0
        self.released = 0

    async def poll_while_held(self) -> None:
        self.polls += 1

    def release(self) -> None:
        self.released += 1


def test_a_registry_outage_is_waited_out_with_the_heartbeat_going_on(registry: Registry) -> None:
    registry.fail_with = 503
    beats = Beats()
    stage = stage_for(registry, beats)
    keep_alive = KeepAlive()
    stage.keep_alive = keep_alive
    value = encode_confluent(EVENT, SCHEMA_ID, SCHEMA)

    async def scenario() -> Any:
        with pytest.raises(SchemaNotCached) as not_cached:
            stage.decode(value)
        recovering = asyncio.create_task(stage.recover(value, not_cached.value))
        await until(lambda: len(registry.requests) >= 1 and beats.count >= 1, "a failed fetch")
        await until(lambda: stage.waiting_for_registry, "the stage to wait")
        await until(lambda: keep_alive.polls >= 1, "the consumer to be polled while waiting")
        assert not recovering.done()  # not dead-lettered: the record is fine, the registry not
        registry.fail_with = None
        return await recovering

    try:
        assert asyncio.run(scenario()) == EVENT
    finally:
        stage.close()
    assert len(registry.requests) >= 2
    assert keep_alive.released >= 1  # partitions resume once the wait is over


def test_an_unknown_schema_id_is_a_reason_to_dead_letter(registry: Registry) -> None:
    stage = stage_for(registry, Beats())
    value = encode_confluent(EVENT, 99, SCHEMA)
    with pytest.raises(SchemaNotCached) as not_cached:
        stage.decode(value)
    try:
        result = asyncio.run(stage.recover(value, not_cached.value))
    finally:
        stage.close()
    assert isinstance(result, Invalid)
    assert (result.reason, result.stage) == ("unknown_schema_id", "decode")
