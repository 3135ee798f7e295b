"""Shared fixtures: the embedded Kafka-protocol broker, unique topic names, and the Graph API
emulator with the harness's two pixels (a module that needs other tokens defines its own
`emulator` fixture, which takes precedence).

Tests under tests/integration get the `integration` marker automatically
(`pytest -m "not integration"` runs the pure tests only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_helpers import unique_topic
from tests.support.worker import EMULATOR_TOKENS
from worker.sandbox.broker import EmbeddedBroker
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator, start_in_thread

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).resolve().is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    """One embedded broker (Tansu, in memory) for the whole session; topics keep tests apart."""
    with EmbeddedBroker() as broker:
        yield broker


class TopicFactory:
    """Makes unique topic names; `create` also creates them on the session broker.

    topics("events") -> "events-1a2b3c..." (name only)
    topics.create("events", partitions=3) -> name of a topic that exists
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.names: list[str] = []

    def __call__(self, prefix: str = "test") -> str:
        name = unique_topic(prefix)
        self.names.append(name)
        return name

    def create(self, prefix: str = "test", partitions: int = 1) -> str:
        name = self(prefix)
        broker: EmbeddedBroker = self._request.getfixturevalue("kafka_broker")
        broker.create_topics({name: partitions})
        return name


@pytest.fixture
def topics(request: pytest.FixtureRequest) -> TopicFactory:
    return TopicFactory(request)


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with start_in_thread(EMULATOR_TOKENS) as running:
        yield running


@pytest.fixture
def graph(emulator: RunningEmulator) -> EmulatorClient:
    """A client of the module's emulator, emptied for this test."""
    client = EmulatorClient(emulator.url)
    client.reset()
    return client


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[EmulatorClient]:
    """Like `graph`, and emptied again after the test."""
    client = EmulatorClient(emulator.url)
    client.reset()
    yield client
    client.reset()
