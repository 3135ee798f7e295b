"""The embedded Kafka-protocol broker (Tansu) and the test helpers, over real sockets."""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.conftest import TopicFactory
from tests.kafka_helpers import committed_offsets, end_offsets, produce, read_all, wait_for
from worker.sandbox.broker import BrokerError, EmbeddedBroker


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_broker_answers_metadata(kafka_broker: EmbeddedBroker) -> None:
    assert kafka_broker.running
    metadata = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(
        timeout=10
    )
    assert metadata.cluster_id == kafka_broker.cluster_id
    assert len(metadata.brokers) == 1


def test_topic_with_three_partitions(kafka_broker: EmbeddedBroker, topics: TopicFactory) -> None:
    name = topics("events")
    kafka_broker.create_topics({name: 3})
    kafka_broker.create_topics([name])  # exists already: accepted
    metadata = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(
        name, timeout=10
    )
    assert sorted(metadata.topics[name].partitions) == [0, 1, 2]
    assert end_offsets(kafka_broker.bootstrap_servers, name) == {0: 0, 1: 0, 2: 0}


def test_produce_with_headers_and_read_back(
    kafka_broker: EmbeddedBroker, topics: TopicFactory
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    name = topics.create("events", partitions=3)
    delivered = produce(
        bootstrap,
        name,
        [
            (b"k1", b'{"n": 1}', [("source", b"web"), ("trace", b"t-1")]),
            (b"k2", b'{"n": 2}', {"source": "app"}),
            (None, b'{"n": 3}', None),
        ],
        partition=1,
    )
    assert delivered == [(1, 0), (1, 1), (1, 2)]
    produce(bootstrap, name, [b"a", b"b"], partition=2)

    records = read_all(bootstrap, name)
    assert [(r.partition, r.offset, r.key, r.value) for r in records] == [
        (1, 0, b"k1", b'{"n": 1}'),
        (1, 1, b"k2", b'{"n": 2}'),
        (1, 2, None, b'{"n": 3}'),
        (2, 0, None, b"a"),
        (2, 1, None, b"b"),
    ]
    assert records[0].headers == [("source", b"web"), ("trace", b"t-1")]
    assert records[0].header("trace") == b"t-1"
    assert records[1].headers == [("source", b"app")]
    assert records[2].headers == []
    assert all(r.topic == name and r.timestamp > 1_600_000_000_000 for r in records)


def test_end_offsets_are_true_when_the_last_batch_holds_many_records(
    kafka_broker: EmbeddedBroker, topics: TopicFactory
) -> None:
    """Tansu's ListOffsets answers base offset of the last batch + 1; read_all must not care."""
    bootstrap = kafka_broker.bootstrap_servers
    name = topics.create("batched", partitions=2)
    values = [f"v{i}".encode() for i in range(50)]
    # One linger window, compressed: the 50 records travel in a single batch.
    produce(
        bootstrap,
        name,
        values,
        partition=0,
        config={"linger.ms": 200, "compression.type": "lz4"},
    )
    assert end_offsets(bootstrap, name) == {0: 50, 1: 0}
    assert [r.value for r in read_all(bootstrap, name)] == values


def test_consumer_group_commit_is_visible(
    kafka_broker: EmbeddedBroker, topics: TopicFactory
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    name = topics.create("grouped", partitions=3)
    for partition in range(3):
        produce(bootstrap, name, [b"x"] * (partition + 1), partition=partition)
    group = topics("group")
    assert committed_offsets(bootstrap, group, name) == {}

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    try:
        consumer.subscribe([name])
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while sum(seen.values()) < 6 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            seen[int(message.partition() or 0)] = seen.get(int(message.partition() or 0), 0) + 1
        assert seen == {0: 1, 1: 2, 2: 3}
        consumer.commit(
            offsets=[TopicPartition(name, 0, 1), TopicPartition(name, 2, 2)], asynchronous=False
        )
    finally:
        consumer.close()

    assert wait_for(lambda: committed_offsets(bootstrap, group, name), timeout=60) == {0: 1, 2: 2}


def test_stop_leaves_no_process() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    log_dir = broker.log_path.parent
    assert pid is not None and not process_gone(pid)
    bootstrap = broker.bootstrap_servers
    # A connected client must not keep the broker alive.
    AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    broker.stop()
    assert process_gone(pid)
    assert not broker.running
    assert not log_dir.exists()
    broker.stop()  # idempotent
    with pytest.raises(BrokerError, match="not running"):
        _ = broker.bootstrap_servers


def test_missing_binary_is_a_clear_error(tmp_path: os.PathLike[str]) -> None:
    broker = EmbeddedBroker(binary=os.path.join(tmp_path, "no-such-tansu"))
    with pytest.raises(BrokerError, match="cannot run the Tansu broker"):
        broker.start()
    assert not broker.running
    with pytest.raises(BrokerError, match="not been started"):
        _ = broker.log_path  # its temporary log directory is gone too
