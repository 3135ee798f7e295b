"""Fixtures of the fault suite: one recording Graph API emulator, one rig per test.

Every test here runs the real `capi-worker run` against the embedded broker and the emulator,
so each is marked `integration` (`pytest -m "not integration"` skips them) and `faults`
(`pytest -m faults` runs only them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import FaultRig, RecordingEmulator

FAULTS_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault suite (tests/faults), slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).resolve().is_relative_to(FAULTS_DIR):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def recording_emulator() -> Iterator[RecordingEmulator]:
    emulator = RecordingEmulator()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def emulator(recording_emulator: RecordingEmulator) -> RecordingEmulator:
    """The session's emulator, emptied: no recorded request, no queued fault."""
    recording_emulator.reset()
    return recording_emulator


@pytest.fixture
def make_rig(
    kafka_broker: Any, emulator: RecordingEmulator, tmp_path: Path
) -> Iterator[Callable[..., FaultRig]]:
    """FaultRig(...) with this test's broker, emulator and tmp_path; workers stopped after."""
    rigs: list[FaultRig] = []

    def make(**options: Any) -> FaultRig:
        rigs.append(FaultRig(kafka_broker, emulator, tmp_path, **options))
        return rigs[-1]

    try:
        yield make
    finally:
        for running in rigs:
            running.stop()
        emulator.client.clear_faults()


@pytest.fixture
def rig(make_rig: Callable[..., FaultRig]) -> FaultRig:
    return make_rig()
