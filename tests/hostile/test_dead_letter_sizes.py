"""Dead-letter copies of records the dead-letter topic cannot take, and headers the client cannot
read: the real DeadLetterWriter on the embedded broker, fed records read back from it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from tests.hostile.rig import RAW_LIBRDKAFKA, dlq_headers, produce_raw_headers
from tests.kafka_helpers import produce, read_all
from worker.decode import read_headers, read_record_headers
from worker.stream.dead_letter import DeadLetterReason, DeadLetterWriter

pytestmark = pytest.mark.integration

BIG_PRODUCER = {"message.max.bytes": 20_000_000}
WHY = DeadLetterReason(stage="decode", reason="invalid_json", message="the value is not JSON")


def consume(bootstrap: str, topic: str, count: int) -> list[Message]:
    """The first `count` records of partition 0, as librdkafka Message objects."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"hostile-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Message] = []
    try:
        for _ in range(400):
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                messages.append(message)
                if len(messages) == count:
                    return messages
    finally:
        consumer.close()
    raise AssertionError(f"read {len(messages)} of {count} records from {topic}")


def dead_letter(bootstrap: str, topic: str, sources: list[Any], why: DeadLetterReason) -> None:
    """Write each source with a writer on the default producer settings (1 MB records)."""

    async def write_all() -> None:
        writer = DeadLetterWriter(
            {"bootstrap.servers": bootstrap}, topic, asyncio.get_running_loop()
        )
        try:
            for source in sources:
                await asyncio.wait_for(writer.write(source, why), timeout=30)
        finally:
            writer.close()

    asyncio.run(write_all())


def test_a_value_larger_than_the_dead_letter_producer_takes_is_left_out_not_retried_forever(
    kafka_broker: Any, topics: Any
) -> None:
    source, dlq = topics.create("big-src"), topics.create("big-dlq")
    bootstrap = kafka_broker.bootstrap_servers
    big = b"x" * 3_000_000
    record = (b"user-7", big, [("trace", b"abc"), ("none", None)])
    produce(bootstrap, source, [record], config=BIG_PRODUCER)
    dead_letter(bootstrap, dlq, consume(bootstrap, source, 1), WHY)

    [copy] = read_all(bootstrap, dlq)
    assert copy.value is None
    assert copy.key == b"user-7"
    assert copy.headers[:2] == [("trace", b"abc"), ("none", None)], "original headers, in order"
    headers = dlq_headers(copy)
    assert headers["capi.dlq.value_omitted"] == str(len(big))
    assert (headers["capi.dlq.stage"], headers["capi.dlq.reason"]) == ("decode", "invalid_json")
    assert headers["capi.dlq.message"].startswith("the value is not JSON [this copy leaves out")
    assert "value (3000000 bytes)" in headers["capi.dlq.message"]
    assert "MSG_SIZE_TOO_LARGE" in headers["capi.dlq.message"]
    assert "capi.dlq.headers_omitted" not in headers
    assert headers["capi.dlq.source_offset"] == "0"


def test_huge_headers_are_left_out_first_when_they_are_the_largest_part(
    kafka_broker: Any, topics: Any
) -> None:
    source, dlq = topics.create("hdr-src"), topics.create("hdr-dlq")
    bootstrap = kafka_broker.bootstrap_servers
    value = b'{"not": "a track call"'
    huge = [("blob", b"h" * 1_500_000), ("trace", b"abc")]
    produce(bootstrap, source, [(b"k", value, huge)], config=BIG_PRODUCER)
    dead_letter(bootstrap, dlq, consume(bootstrap, source, 1), WHY)

    [copy] = read_all(bootstrap, dlq)
    assert copy.value == value, "the value was small: it is kept"
    assert copy.key == b"k"
    assert all(k.startswith("capi.dlq.") for k, _ in copy.headers)
    headers = dlq_headers(copy)
    assert int(headers["capi.dlq.headers_omitted"]) > 1_500_000
    assert "capi.dlq.value_omitted" not in headers


def test_a_record_too_large_in_every_part_is_written_without_value_headers_and_key(
    kafka_broker: Any, topics: Any
) -> None:
    source, dlq = topics.create("all-src"), topics.create("all-dlq")
    bootstrap = kafka_broker.bootstrap_servers
    record = (b"k" * 1_100_000, b"v" * 1_200_000, [("h", b"h" * 1_300_000)])
    produce(bootstrap, source, [record], config=BIG_PRODUCER)
    dead_letter(bootstrap, dlq, consume(bootstrap, source, 1), WHY)

    [copy] = read_all(bootstrap, dlq)
    assert (copy.key, copy.value) == (None, None)
    headers = dlq_headers(copy)
    assert headers["capi.dlq.value_omitted"] == "1200000"
    assert headers["capi.dlq.key_omitted"] == "1100000"
    assert int(headers["capi.dlq.headers_omitted"]) == 1_300_001


needs_raw_producer = pytest.mark.skipif(
    RAW_LIBRDKAFKA is None, reason="writes header keys through librdkafka's C API (Linux only)"
)


@needs_raw_producer
def test_header_keys_that_are_not_utf8_are_left_out_and_counted_never_crashing(
    kafka_broker: Any, topics: Any
) -> None:
    source, dlq = topics.create("raw-src"), topics.create("raw-dlq")
    bootstrap = kafka_broker.bootstrap_servers
    garbage = [(b"ok", b"\x00\xff"), (b"\xff\xfe", b"x"), (b"none", None), (b"\xc3", None)]
    produce_raw_headers(bootstrap, source, 0, b"not json", garbage)
    [message] = consume(bootstrap, source, 1)

    # confluent-kafka raises SystemError on the first headers() and hands back NULL keys after:
    # read_record_headers must survive both, any number of times.
    for _ in range(3):
        assert read_record_headers(message) == ([("ok", b"\x00\xff"), ("none", None)], 2)
    assert read_headers(message) == [("ok", b"\x00\xff"), ("none", None)]

    dead_letter(bootstrap, dlq, [message], WHY)
    [copy] = read_all(bootstrap, dlq)
    assert copy.value == b"not json"
    assert copy.headers[:2] == [("ok", b"\x00\xff"), ("none", None)]
    assert dlq_headers(copy)["capi.dlq.headers_dropped"] == "2"
