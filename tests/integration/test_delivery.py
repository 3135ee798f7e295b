"""GraphDelivery against the Graph API emulator, over a real socket.

Waiting is faked (a clock that only moves when the delivery sleeps) so retries and throttling
cost no wall time; every request still goes through aiohttp to the emulator's HTTP server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from worker.capi.delivery import DeliveryReport, GraphDelivery
from worker.config import DestinationSettings, GraphSettings
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator, start_in_thread

pytestmark = pytest.mark.integration

PIXEL = "1111111111"
TOKEN = "EAAB-test-token-for-pixel-one"
PROOF_PIXEL = "2222222222"
PROOF_TOKEN = "EAAB-test-token-for-pixel-two"
APP_SECRET = "app-secret-of-pixel-two"
DAY = 86_400


class FakeTime:
    """A monotonic clock that advances only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 10_000.0
        self.sleeps: list[float] = []
        self.hold: asyncio.Event | None = None  # when set, sleeps block until the event fires

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.hold is not None:
            await self.hold.wait()
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with start_in_thread(
        tokens={PIXEL: TOKEN, PROOF_PIXEL: PROOF_TOKEN}, app_secrets={PROOF_PIXEL: APP_SECRET}
    ) as running:
        yield running


@pytest.fixture
def graph(emulator: RunningEmulator) -> GraphSettings:
    return GraphSettings(
        url=emulator.url,
        timeout_seconds=5,
        max_retry_seconds=60,
        initial_backoff_seconds=0.5,
        max_backoff_seconds=10,
    )


def destination(**overrides: Any) -> DestinationSettings:
    fields: dict[str, Any] = {"name": "shop", "pixel_id": PIXEL, "access_token": TOKEN}
    fields.update(overrides)
    return DestinationSettings(**fields)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def page_view(i: int, event_time: float | None = None) -> dict[str, Any]:
    return {
        "event_name": "PageView",
        "event_time": int(time.time() if event_time is None else event_time),
        "event_id": f"evt-{i}",
        "action_source": "website",
        "event_source_url": "https://shop.example/products/42",
        "user_data": {
            "em": [sha256(f"user{i}@example.com")],
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "client_ip_address": "203.0.113.7",
        },
    }


def batch(size: int) -> list[dict[str, Any]]:
    return [page_view(i) for i in range(size)]


def stale(i: int) -> dict[str, Any]:
    return page_view(i, event_time=time.time() - 8 * DAY)


def purchase_without_value(i: int) -> dict[str, Any]:
    event = page_view(i)
    event.update(event_name="Purchase", custom_data={"currency": "USD"})
    return event


Scenario = Callable[[GraphDelivery], Awaitable[Any]]


def run(graph: GraphSettings, fake: FakeTime, scenario: Scenario) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as session:
            delivery = GraphDelivery(graph, session, sleep=fake.sleep, clock=fake.clock)
            return await scenario(delivery)

    return asyncio.run(main())


def deliver(
    graph: GraphSettings,
    events: list[dict[str, Any]],
    dest: DestinationSettings | None = None,
    fake: FakeTime | None = None,
) -> DeliveryReport:
    report: DeliveryReport = run(
        graph, fake or FakeTime(), lambda delivery: delivery.deliver(dest or destination(), events)
    )
    return report


def halvings_to_isolate(index: int, size: int) -> int:
    start, stop, halvings = 0, size, 0
    while stop - start > 1:
        middle = start + (stop - start) // 2
        start, stop = (start, middle) if index < middle else (middle, stop)
        halvings += 1
    return halvings


def summary(client: EmulatorClient, pixel: str = PIXEL) -> dict[str, Any]:
    pixels: dict[str, Any] = client.received(pixel)["pixels"]
    return dict(pixels[pixel])


# --------------------------------------------------------------------------- success


def test_a_valid_batch_is_delivered_in_one_request(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    report = deliver(graph, batch(50))
    assert report == DeliveryReport(
        delivered=50, failures=[], requests=1, retries=0, events_received=50, mismatch=False
    )
    seen = summary(client)
    assert seen["batch_sizes"] == [50]
    assert seen["unique_events"] == 50
    assert [e["event"]["event_id"] for e in seen["events"]] == [f"evt-{i}" for i in range(50)]


def test_empty_batch_makes_no_request(graph: GraphSettings, client: EmulatorClient) -> None:
    assert deliver(graph, []) == DeliveryReport(delivered=0, failures=[], requests=0)
    assert summary(client)["requests"] == 0


def test_test_event_code_is_sent(graph: GraphSettings, client: EmulatorClient) -> None:
    report = deliver(graph, batch(3), destination(test_event_code="TEST4242"))
    assert report.delivered == 3
    assert [e["test_event_code"] for e in summary(client)["events"]] == ["TEST4242"] * 3


def test_appsecret_proof_is_accepted_when_the_app_secret_is_configured(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    dest = destination(pixel_id=PROOF_PIXEL, access_token=PROOF_TOKEN, app_secret=APP_SECRET)
    report = deliver(graph, batch(4), dest)
    assert (report.delivered, report.failures) == (4, [])
    assert summary(client, PROOF_PIXEL)["unique_events"] == 4


def test_a_wrong_app_secret_fails_every_event_with_a_fix(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    dest = destination(pixel_id=PROOF_PIXEL, access_token=PROOF_TOKEN, app_secret="not-it")
    report = deliver(graph, batch(6), dest)
    assert report.requests == 1  # not bisected although Meta answers with code 100
    assert {f.reason for f in report.failures} == {"invalid_token"}
    assert "destinations.shop.app_secret" in report.failures[0].message
    assert summary(client, PROOF_PIXEL)["rejected_requests"] == 1


# --------------------------------------------------------------------------- retried failures


def test_throttled_then_success_waits_at_least_retry_after(
    graph: GraphSettings, client: EmulatorClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.inject_fault(count=1, status=400, error_code=4, retry_after=1)
    fake = FakeTime()
    with caplog.at_level(logging.WARNING, logger="worker.capi.delivery"):
        report = deliver(graph, batch(20), fake=fake)
    assert (report.delivered, report.failures) == (20, [])
    assert (report.requests, report.retries) == (2, 1)
    assert fake.sleeps and fake.sleeps[0] >= 1.0
    seen = summary(client)
    assert (seen["faulted_requests"], seen["requests"], seen["unique_events"]) == (1, 1, 20)
    [line] = [r.getMessage() for r in caplog.records]
    assert f"pixel={PIXEL}" in line and "code=4" in line and "attempt=1" in line
    assert "action=retry" in line and "events=20" in line
    assert TOKEN not in caplog.text and "evt-" not in caplog.text


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 503}, id="http-503-html"),
        pytest.param({"status": 500, "error_code": 2, "is_transient": True}, id="code-2"),
        pytest.param({"drop_connection": True}, id="dropped-connection"),
    ],
)
def test_transient_failure_then_success(
    graph: GraphSettings, client: EmulatorClient, fault: dict[str, Any]
) -> None:
    client.inject_fault(count=1, **fault)
    report = deliver(graph, batch(10))
    assert (report.delivered, report.failures) == (10, [])
    assert (report.requests, report.retries) == (2, 1)
    assert summary(client)["unique_events"] == 10


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        pytest.param({"status": 400, "error_code": 4}, "4", id="throttled-code-4"),
        pytest.param({"status": 500, "error_code": 2, "is_transient": True}, "2", id="code-2"),
        pytest.param({"status": 503}, "http_503", id="http-503-without-a-code"),
        pytest.param({"drop_connection": True}, "no_response", id="dropped-connection"),
    ],
)
def test_failed_requests_are_counted_by_graph_error_code(
    graph: GraphSettings, client: EmulatorClient, fault: dict[str, Any], code: str
) -> None:
    name = f"codes-{code}"  # a destination of its own: the counter is process-wide

    def failed(code: str) -> float:
        labels = {"destination": name, "code": code}
        return REGISTRY.get_sample_value("capi_graph_errors_total", labels) or 0.0

    client.inject_fault(count=2, **fault)
    report = deliver(graph, batch(5), dest=destination(name=name))
    assert (report.delivered, report.requests) == (5, 3)
    assert failed(code) == 2.0
    assert failed("190") == 0.0


def test_an_invalid_token_is_counted_as_code_190(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    name = "codes-token"
    deliver(graph, batch(5), dest=destination(name=name, access_token="EAAB-expired"))
    labels = {"destination": name, "code": "190"}
    assert REGISTRY.get_sample_value("capi_graph_errors_total", labels) == 1.0


def test_retries_stop_after_max_retry_seconds(graph: GraphSettings, client: EmulatorClient) -> None:
    client.inject_fault(count=1000, status=503)
    fake = FakeTime()
    short = graph.model_copy(update={"max_retry_seconds": 5.0, "max_backoff_seconds": 2.0})
    report = deliver(short, batch(7), fake=fake)
    assert report.delivered == 0
    assert [f.index for f in report.failures] == list(range(7))
    failure = report.failures[0]
    assert failure.reason == "retries_exhausted"
    assert failure.attempts == report.requests > 1
    assert "HTTP 503" in failure.message and "graph.max_retry_seconds=5" in failure.message
    assert fake.now - 10_000.0 <= 5.0 + 1e-9  # never slept past the budget
    assert summary(client)["faulted_requests"] == report.requests


def test_retry_after_beyond_the_budget_gives_up_without_waiting(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, status=400, error_code=80004, retry_after=600)
    fake = FakeTime()
    report = deliver(graph, batch(2), fake=fake)
    assert [f.reason for f in report.failures] == ["retries_exhausted"] * 2
    assert report.failures[0].graph_code == 80004
    assert (report.requests, fake.sleeps) == (1, [])


def test_a_throttled_pixel_holds_back_its_other_batches(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, status=400, error_code=613, retry_after=30)
    fake = FakeTime()

    async def scenario(delivery: GraphDelivery) -> list[Any]:
        fake.hold = asyncio.Event()
        first = asyncio.create_task(delivery.deliver(destination(), batch(5)))
        while not fake.sleeps:  # the first batch was throttled and is backing off
            await asyncio.sleep(0.01)
        second = asyncio.create_task(delivery.deliver(destination(), [page_view(99)]))
        while len(fake.sleeps) < 2:  # the second batch waits at the pixel's gate
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        held = summary(client)
        fake.hold.set()
        reports = await asyncio.gather(first, second)
        assert delivery._throttled_until == {}  # the gate is gone once its time has passed
        return [held, *reports]

    held, first, second = run(graph, fake, scenario)
    assert (held["faulted_requests"], held["requests"]) == (1, 0)  # nothing sent while held
    assert fake.sleeps[0] >= 30 and fake.sleeps[1] == pytest.approx(30)
    assert (first.delivered, first.retries, second.delivered, second.retries) == (5, 1, 1, 0)
    assert summary(client)["unique_events"] == 6


def test_a_destination_whose_settings_change_is_sent_with_the_new_ones(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    """A reload hands over new settings under the same name: a rotated token is used at once."""

    async def scenario(delivery: GraphDelivery) -> list[DeliveryReport]:
        return [
            await delivery.deliver(destination(), batch(2)),
            await delivery.deliver(destination(access_token="EAAB-rotated-elsewhere"), batch(2)),
            await delivery.deliver(destination(test_event_code="TEST42"), batch(2)),
        ]

    first, rotated, with_code = run(graph, FakeTime(), scenario)
    assert first.delivered == 2
    assert [f.reason for f in rotated.failures] == ["invalid_token"] * 2
    assert with_code.delivered == 2
    stored = client.received(PIXEL)["pixels"][PIXEL]["events"]
    assert [entry["test_event_code"] for entry in stored] == [None, None, "TEST42", "TEST42"]


# --------------------------------------------------------------------------- not retried


def test_invalid_token_fails_every_event_without_retry(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    report = deliver(graph, batch(12), destination(access_token="EAAB-revoked-token"))
    assert (report.delivered, report.requests, report.retries) == (0, 1, 0)
    assert [f.index for f in report.failures] == list(range(12))
    failure = report.failures[0]
    assert (failure.reason, failure.graph_code, failure.attempts) == ("invalid_token", 190, 1)
    assert failure.fbtrace_id
    assert "pixel 1111111111 (destination shop)" in failure.message
    assert "renew destinations.shop.access_token" in failure.message
    assert "EAAB-revoked-token" not in failure.message
    seen = summary(client)
    assert (seen["rejected_requests"], seen["requests"]) == (1, 0)  # no second request


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        pytest.param({"status": 403, "error_code": 200}, "permission_denied", id="code-200"),
        pytest.param({"status": 403, "error_code": 10}, "permission_denied", id="code-10"),
        pytest.param({"status": 400, "error_code": 3}, "graph_rejected", id="code-3"),
    ],
)
def test_permanent_errors_are_not_retried(
    graph: GraphSettings, client: EmulatorClient, fault: dict[str, Any], reason: str
) -> None:
    client.inject_fault(count=1, **fault)
    report = deliver(graph, batch(3))
    assert (report.delivered, report.requests) == (0, 1)
    assert {(f.reason, f.graph_code, f.attempts) for f in report.failures} == {
        (reason, fault["error_code"], 1)
    }
    assert summary(client)["faulted_requests"] == 1


# --------------------------------------------------------------------------- bisection


def test_one_stale_event_among_300_is_isolated(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    events = batch(300)
    events[137] = stale(137)
    report = deliver(graph, events)
    assert report.delivered == 299
    [failure] = report.failures
    assert (failure.index, failure.reason) == (137, "invalid_parameter")
    assert (failure.graph_code, failure.graph_subcode) == (100, 2804003)
    assert failure.attempts == halvings_to_isolate(137, 300) + 1  # one request per level
    assert "fix the event" in failure.message
    assert report.requests == 2 * failure.attempts - 1  # both halves of every split level
    seen = summary(client)
    assert (seen["unique_events"], seen["duplicates"]) == (299, {})
    assert "evt-137" not in {e["event"]["event_id"] for e in seen["events"]}


def test_two_bad_events_far_apart_are_both_isolated(
    graph: GraphSettings, client: EmulatorClient
) -> None:
    events = batch(300)
    events[3] = stale(3)
    events[281] = purchase_without_value(281)
    report = deliver(graph, events)
    assert report.delivered == 298
    assert [(f.index, f.reason, f.graph_subcode) for f in report.failures] == [
        (3, "invalid_parameter", 2804003),
        (281, "invalid_parameter", 2804009),
    ]
    assert summary(client)["unique_events"] == 298
