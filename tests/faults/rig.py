"""The fault suite's test rig: topics, worker processes, a recording Graph API emulator, metrics.

Builds on tests/support (the real `capi-worker run` in a subprocess, `WorkerRig`) and adds what
the fault tests need to assert exact outcomes:

- `RecordingEmulator`: the project's Graph API emulator (`create_app` + `RunningEmulator`) with
  a middleware that logs every `POST .../events` request: pixel, status, the event ids it
  carried, how long the emulator took and whether the client had gone by the time the answer
  was ready (an unacknowledged request, whose events may be sent again).
- `FaultRig`: a `WorkerRig` with the recording emulator, and the checks the tests share.
- `Sampler`: calls a function in a background thread until stopped (metrics, offsets).
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.kafka_helpers import Record, read_all
from tests.support.rig import WorkerRig
from tests.support.worker import (
    BLOG_PIXEL,
    EMULATOR_TOKENS,
    SHOP_PIXEL,
    WorkerProcess,
    wait_until,
)
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator, create_app

PIXELS = (SHOP_PIXEL, BLOG_PIXEL)
DLQ_PREFIX = "capi.dlq."

# --------------------------------------------------------------------------- the emulator


@dataclass(frozen=True)
class EventsRequest:
    """One `POST /{version}/{pixel_id}/events` as the emulator saw it."""

    pixel_id: str
    status: int | None  # None: no answer (connection dropped)
    event_ids: tuple[str, ...]
    elapsed: float  # seconds the emulator spent on it
    client_gone: bool  # the connection was closed before the answer could be written

    @property
    def accepted(self) -> bool:
        return self.status == 200


_EVENTS_PATH = re.compile(r"^/v\d+\.\d+/(\d+)/events$")


def _event_ids(body: bytes) -> tuple[str, ...]:
    try:
        data = orjson.loads(body).get("data") or []
    except (orjson.JSONDecodeError, AttributeError):
        return ()
    return tuple(str(e.get("event_id")) for e in data if isinstance(e, dict))


class RecordingEmulator:
    """The Graph API emulator in a thread of this process, with every events request logged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[EventsRequest] = []
        self._in_progress = 0
        app = create_app(EMULATOR_TOKENS)
        app.middlewares.append(self._middleware)
        self._running = RunningEmulator(app).start()
        self.url = self._running.url
        self.client = EmulatorClient(self.url, timeout=60)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        match = _EVENTS_PATH.match(request.path)
        if request.method != "POST" or match is None:
            return await handler(request)
        body = await request.read()  # aiohttp keeps it: the handler reads it again
        started = time.monotonic()
        status: int | None = None
        self._in_progress += 1  # only ever touched on the emulator's event loop
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        finally:
            entry = EventsRequest(
                pixel_id=match.group(1),
                status=status,
                event_ids=_event_ids(body) if status == 200 else (),
                elapsed=time.monotonic() - started,
                client_gone=request.transport is None or request.transport.is_closing(),
            )
            with self._lock:
                self._requests.append(entry)
            self._in_progress -= 1

    def requests(self) -> list[EventsRequest]:
        with self._lock:
            return list(self._requests)

    def settle(self, quiet: float = 0.5, timeout: float = 30) -> None:
        """Wait until no events request is being handled and none arrived for `quiet` seconds:
        a killed worker's requests still in flight are finished (and recorded) by then."""
        deadline = time.monotonic() + timeout
        seen, since = len(self.requests()), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            count = len(self.requests())
            if count != seen or self._in_progress:
                seen, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise AssertionError(f"the emulator was still busy after {timeout}s")

    def reset(self) -> None:
        self.client.reset()
        with self._lock:
            self._requests.clear()

    def stop(self) -> None:
        self._running.stop()

    # -- what was accepted ------------------------------------------------------------------

    def accepted_ids(self, pixel_id: str) -> set[str]:
        """Event ids the pixel accepted so far (the request log: cheap to ask often)."""
        accepted = (r for r in self.requests() if r.accepted and r.pixel_id == pixel_id)
        return {event_id for request in accepted for event_id in request.event_ids}

    def unique_count(self, pixel_id: str) -> int:
        return len(self.accepted_ids(pixel_id))

    def received_ids(self) -> dict[str, Counter[str]]:
        """From the emulator's own record (`received(events=True)`): pixel -> event id -> times
        accepted. The authoritative answer for the final assertions."""
        pixels = self.client.received(events=True)["pixels"]
        return {
            pixel: Counter(str(item["event"]["event_id"]) for item in summary["events"])
            for pixel, summary in pixels.items()
        }


# --------------------------------------------------------------------------- metrics


_PORT_LINE = re.compile(r"Health and metrics port open; port=(\d+)")


def metrics_port(worker: WorkerProcess, timeout: float = 60) -> int:
    """The port the worker bound for /metrics (config port 0), read from its log."""
    found: list[int] = []

    def bound() -> bool:
        match = _PORT_LINE.search(worker.log())
        if match:
            found.append(int(match.group(1)))
        return bool(found)

    wait_until(bound, timeout, "the worker's metrics port", worker.log)
    return found[0]


def scrape(port: int) -> dict[str, float]:
    """Prometheus text from /metrics: metric name -> value summed over its label sets.
    Empty when the worker does not answer (not started yet, or gone)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_and_labels, _, value = line.rpartition(" ")
        name = name_and_labels.split("{", 1)[0]
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values


class Sampler:
    """Calls `sample()` every `interval` seconds in a thread until `stop()`; keeps the
    results. An exception in `sample` is kept and re-raised by `stop()`."""

    def __init__(self, sample: Callable[[], Any], interval: float = 0.25) -> None:
        self.samples: list[Any] = []
        self._sample = sample
        self._interval = interval
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fault-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.samples.append(self._sample())
            except BaseException as error:
                self._error = error
                return
            self._stopping.wait(self._interval)

    def stop(self) -> list[Any]:
        self._stopping.set()
        self._thread.join(30)
        if self._error is not None:
            raise self._error
        return self.samples


# --------------------------------------------------------------------------- one test's rig


def event_ids(prefix: str, count: int, start: int = 0) -> set[str]:
    """The event ids of valid_events(count, prefix): messageId "<prefix>-<index>"."""
    return {f"{prefix}-{index}" for index in range(start, start + count)}


def dead_letter_headers(record: Record) -> dict[str, str]:
    return {
        name: (value or b"").decode()
        for name, value in record.headers
        if name.startswith(DLQ_PREFIX)
    }


class FaultRig(WorkerRig):
    """Topics, configuration and worker processes of one fault test, with the recording
    emulator."""

    def __init__(
        self,
        broker: Any,
        emulator: RecordingEmulator,
        tmp_path: Path,
        *,
        partitions: int = 4,
        create_dead_letter_topic: bool = True,
    ) -> None:
        super().__init__(
            broker,
            emulator.url,
            tmp_path,
            partitions=partitions,
            create_dead_letter_topic=create_dead_letter_topic,
        )
        self.emulator = emulator
        self.graph = emulator.client

    # -- progress ---------------------------------------------------------------------------

    def delivered_everywhere(self, expected: set[str]) -> bool:
        """Every expected event id accepted by both pixels (cheap: the request log)."""
        return all(expected <= self.emulator.accepted_ids(pixel) for pixel in PIXELS)

    # -- final checks -----------------------------------------------------------------------

    def assert_delivered_exactly(self, expected: set[str]) -> dict[str, Counter[str]]:
        """Each pixel accepted exactly the expected event ids (duplicates allowed); returns the
        emulator's counts for further checks."""
        received = self.emulator.received_ids()
        for pixel in PIXELS:
            got = set(received.get(pixel, Counter()))
            missing, unexpected = expected - got, got - expected
            assert not missing, f"pixel {pixel}: missing {len(missing)}: {sorted(missing)[:5]}"
            assert not unexpected, f"pixel {pixel}: unexpected events {sorted(unexpected)[:5]}"
        return received

    def dead_lettered(self, timeout: float = 30) -> list[Record]:
        return read_all(self.bootstrap, self.dead_letters, timeout=timeout)

    def assert_committed_to_the_end(self) -> None:
        ends = self.end_offsets()
        committed = self.committed()
        assert committed == {p: e for p, e in ends.items() if e > 0}, (
            f"committed {committed} != end offsets {ends}"
        )


def duplicates(counts: Mapping[str, int]) -> set[str]:
    return {event_id for event_id, count in counts.items() if count > 1}


def by_partition(
    positions: Iterable[tuple[int, int]], ids: list[str]
) -> dict[int, list[tuple[int, str]]]:
    """(partition, offset) of each produced record and its event id -> per partition, the
    (offset, event id) pairs in offset order."""
    result: dict[int, list[tuple[int, str]]] = {}
    for (partition, offset), event_id in zip(positions, ids, strict=True):
        result.setdefault(partition, []).append((offset, event_id))
    for records in result.values():
        records.sort()
    return result
