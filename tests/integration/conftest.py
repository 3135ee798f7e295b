"""Fixtures of the integration tests: the Graph API emulator with the harness's two pixels.

A module that needs other tokens defines its own `emulator` fixture, which takes precedence.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.worker_harness import EMULATOR_TOKENS
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator, start_in_thread


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
