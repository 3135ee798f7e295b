"""The Graph API emulator over a real socket: Meta's contract, auth, faults and inspection."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from worker.capi.contract import Subcode
from worker.sandbox.emulator_client import EmulatorClient, EmulatorClientError
from worker.sandbox.graph_emulator import RunningEmulator, appsecret_proof, start_in_thread

pytestmark = pytest.mark.integration

PIXEL = "1111111111"
OTHER_PIXEL = "2222222222"
SECURED_PIXEL = "3333333333"
TOKEN = "EAAtoken-for-pixel-1"
OTHER_TOKEN = "EAAtoken-for-pixel-2"
SECURED_TOKEN = "EAAtoken-for-pixel-3"
APP_SECRET = "app-secret-3"
EMAIL_HASH = hashlib.sha256(b"jane@example.com").hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.json()["error"]
        return error


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    tokens = {PIXEL: TOKEN, OTHER_PIXEL: OTHER_TOKEN, SECURED_PIXEL: SECURED_TOKEN}
    with start_in_thread(tokens, {SECURED_PIXEL: APP_SECRET}) as running:
        yield running


def event(event_id: str | None = "order-1", name: str = "Purchase", **overrides: Any) -> Any:
    built: dict[str, Any] = {
        "event_name": name,
        "event_time": int(time.time()) - 5,
        "action_source": "website",
        "event_source_url": "https://shop.example/checkout",
        "user_data": {"em": [EMAIL_HASH], "client_user_agent": "Mozilla/5.0"},
        "custom_data": {"value": 19.99, "currency": "USD"},
    }
    if event_id is not None:
        built["event_id"] = event_id
    built.update(overrides)
    return built


def send(
    emulator: RunningEmulator,
    body: bytes,
    *,
    pixel: str = PIXEL,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    url = f"{emulator.url}/v25.0/{pixel}/events"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def post_json(
    emulator: RunningEmulator,
    payload: dict[str, Any],
    *,
    pixel: str = PIXEL,
    token: str | None = TOKEN,
    timeout: float = 10.0,
) -> Reply:
    """JSON body, token in the query string (the worker's way)."""
    query = {"access_token": token} if token is not None else None
    return send(
        emulator,
        json.dumps(payload).encode(),
        pixel=pixel,
        query=query,
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )


def post_form(emulator: RunningEmulator, fields: dict[str, Any], pixel: str = PIXEL) -> Reply:
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    return send(
        emulator,
        urllib.parse.urlencode(form).encode(),
        pixel=pixel,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def send_with_token(emulator: RunningEmulator, mode: str, token: str) -> Reply:
    payload = {"data": [event()]}
    json_headers = {"Content-Type": "application/json"}
    if mode == "query":
        return post_json(emulator, payload, token=token)
    if mode == "json body":
        return send(
            emulator, json.dumps({**payload, "access_token": token}).encode(), headers=json_headers
        )
    if mode == "form":
        return post_form(emulator, {**payload, "access_token": token})
    scheme = {"bearer header": "Bearer", "oauth header": "OAuth"}[mode]
    headers = {**json_headers, "Authorization": f"{scheme} {token}"}
    return send(emulator, json.dumps(payload).encode(), headers=headers)


AUTH_MODES = ["query", "json body", "form", "bearer header", "oauth header"]


# ----------------------------------------------------------------------------- success


def test_accepted_batch_answers_like_meta(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    reply = post_json(emulator, {"data": [event("a"), event("b")], "test_event_code": "TEST42"})

    assert reply.status == 200
    body = reply.json()
    assert body == {"events_received": 2, "messages": [], "fbtrace_id": body["fbtrace_id"]}
    assert body["fbtrace_id"] and reply.headers["x-fb-trace-id"] == body["fbtrace_id"]
    recorded = client.received(PIXEL)["pixels"][PIXEL]
    assert recorded["events_received"] == 2
    assert [e["test_event_code"] for e in recorded["events"]] == ["TEST42", "TEST42"]
    assert [e["event"]["event_id"] for e in recorded["events"]] == ["a", "b"]


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_every_auth_mode_is_accepted_with_the_right_token(
    emulator: RunningEmulator, client: EmulatorClient, mode: str
) -> None:
    reply = send_with_token(emulator, mode, TOKEN)

    assert reply.status == 200, reply.body
    assert reply.json()["events_received"] == 1


def test_sdk_style_form_with_events_as_json_strings_is_accepted(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    # facebook-business posts `data` as a JSON array whose items are JSON-encoded events.
    data = [json.dumps(event("x")), json.dumps(event("y"))]
    reply = post_form(emulator, {"data": data, "access_token": TOKEN})

    assert reply.status == 200, reply.body
    recorded = client.received(PIXEL)["pixels"][PIXEL]["events"]
    assert [e["event"]["event_id"] for e in recorded] == ["x", "y"]


def test_the_official_facebook_business_sdk_is_accepted(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    sdk = pytest.importorskip("facebook_business")
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.custom_data import CustomData
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.event_request import EventRequest
    from facebook_business.adobjects.serverside.user_data import UserData

    session = sdk.session.FacebookSession(access_token=SECURED_TOKEN, app_secret=APP_SECRET)
    session.GRAPH = emulator.url
    sdk.api.FacebookAdsApi.set_default_api(sdk.api.FacebookAdsApi(session))
    sdk_event = Event(
        event_name="Purchase",
        event_time=int(time.time()),
        event_id="sdk-1",
        action_source=ActionSource.WEBSITE,
        event_source_url="https://shop.example/",
        user_data=UserData(email="jane@example.com", client_user_agent="Mozilla/5.0"),
        custom_data=CustomData(value=12.5, currency="usd"),
    )

    response = EventRequest(pixel_id=SECURED_PIXEL, events=[sdk_event]).execute()

    assert response.events_received == 1
    recorded = client.received(SECURED_PIXEL)["pixels"][SECURED_PIXEL]["events"]
    assert recorded[0]["event"]["user_data"]["em"] == [EMAIL_HASH]


# ----------------------------------------------------------------------------- auth errors


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_wrong_token_is_refused_with_code_190_in_every_auth_mode(
    emulator: RunningEmulator, client: EmulatorClient, mode: str
) -> None:
    reply = send_with_token(emulator, mode, "EAAnot-a-real-token")

    assert reply.status == 400
    assert reply.error["code"] == 190
    assert reply.error["type"] == "OAuthException"
    assert reply.error["message"] == "Invalid OAuth access token - Cannot parse access token"
    assert reply.error["fbtrace_id"]
    assert client.received(PIXEL)["pixels"][PIXEL]["rejected_requests"] == 1


def test_another_pixels_token_is_refused(emulator: RunningEmulator, client: EmulatorClient) -> None:
    reply = post_json(emulator, {"data": [event()]}, token=OTHER_TOKEN)

    assert (reply.status, reply.error["code"]) == (400, 190)


def test_missing_token_is_refused(emulator: RunningEmulator, client: EmulatorClient) -> None:
    reply = post_json(emulator, {"data": [event()]}, token=None)

    assert reply.status == 400
    assert reply.error["code"] == 104


def test_registered_app_secret_requires_appsecret_proof(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    reply = post_json(emulator, {"data": [event()]}, pixel=SECURED_PIXEL, token=SECURED_TOKEN)

    assert (reply.status, reply.error["code"]) == (400, 100)
    assert "appsecret_proof" in reply.error["message"]


def test_wrong_appsecret_proof_is_refused(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    wrong = appsecret_proof(SECURED_TOKEN, "not-the-secret")
    query = {"access_token": SECURED_TOKEN, "appsecret_proof": wrong}
    body = json.dumps({"data": [event()]}).encode()

    reply = send(emulator, body, pixel=SECURED_PIXEL, query=query)

    assert (reply.status, reply.error["code"]) == (400, 100)
    assert reply.error["message"] == "Invalid appsecret_proof provided in the API argument"


@pytest.mark.parametrize("where", ["query", "json body"])
def test_correct_appsecret_proof_is_accepted(
    emulator: RunningEmulator, client: EmulatorClient, where: str
) -> None:
    proof = hmac.new(APP_SECRET.encode(), SECURED_TOKEN.encode(), hashlib.sha256).hexdigest()
    assert appsecret_proof(SECURED_TOKEN, APP_SECRET) == proof
    payload: dict[str, Any] = {"data": [event()], "access_token": SECURED_TOKEN}
    query = None
    if where == "query":
        query = {"appsecret_proof": proof}
    else:
        payload["appsecret_proof"] = proof

    reply = send(
        emulator,
        json.dumps(payload).encode(),
        pixel=SECURED_PIXEL,
        query=query,
        headers={"Content-Type": "application/json"},
    )

    assert reply.status == 200, reply.body


def test_the_token_never_reaches_the_log(
    emulator: RunningEmulator, client: EmulatorClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    post_json(emulator, {"data": [event(), event("2")]})
    post_json(emulator, {"data": [event()]}, token="EAAwrong-token")

    assert f"pixel={PIXEL} events=2 status=200" in caplog.text
    assert "status=400" in caplog.text
    assert TOKEN not in caplog.text
    assert "EAAwrong-token" not in caplog.text


# ----------------------------------------------------------------------------- contract


def test_more_than_1000_events_are_rejected(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    reply = post_json(emulator, {"data": [event(str(i)) for i in range(1001)]})

    assert reply.status == 400
    assert (reply.error["code"], reply.error["error_subcode"]) == (100, Subcode.TOO_MANY_EVENTS)
    assert client.received(PIXEL)["pixels"][PIXEL]["events_received"] == 0


def test_exactly_1000_events_are_accepted(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    reply = post_json(emulator, {"data": [event(str(i)) for i in range(1000)]})

    assert reply.status == 200
    assert reply.json()["events_received"] == 1000


def test_one_stale_event_rejects_the_whole_batch_and_names_its_index(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    stale = event("old", event_time=int(time.time()) - 8 * 24 * 3600)
    reply = post_json(emulator, {"data": [event("a"), event("b"), stale, event("c")]})

    assert reply.status == 400
    error = reply.error
    assert error["message"] == "Invalid parameter"
    assert error["type"] == "OAuthException"
    assert (error["code"], error["error_subcode"]) == (100, 2804003)
    assert error["is_transient"] is False
    assert error["error_user_title"] == "Event Timestamp Too Old"
    assert "index 2" in error["error_user_msg"]
    assert error["error_data"] == {"event_index": 2}
    assert error["fbtrace_id"]
    recorded = client.received(PIXEL)["pixels"][PIXEL]
    assert (recorded["requests"], recorded["rejected_requests"]) == (0, 1)
    assert recorded["events_received"] == 0


def test_an_app_event_without_app_data_rejects_the_batch(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    app_event = event("app-1", action_source="app")
    reply = post_json(emulator, {"data": [event("a"), app_event]})
    assert reply.status == 400
    assert (reply.error["code"], reply.error["error_subcode"]) == (100, Subcode.APP_DATA_MISSING)
    assert reply.error["error_data"] == {"event_index": 1}
    app_data = {
        "advertiser_tracking_enabled": 1,
        "application_tracking_enabled": 1,
        "extinfo": ["a2", "com.shop.app", "2.1", "210", "14", *[""] * 11],
    }
    reply = post_json(emulator, {"data": [event("a"), {**app_event, "app_data": app_data}]})
    assert reply.status == 200, reply.body
    assert client.received(PIXEL)["pixels"][PIXEL]["events_received"] == 2


def test_rejection_rule_refuses_the_batch_holding_a_listed_event_until_reset(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.reject_event_ids(["bad-one"], error_subcode=2804050)

    refused = post_json(emulator, {"data": [event("a"), event("bad-one"), event("b")]})
    accepted = post_json(emulator, {"data": [event("a"), event("b")]})
    client.reset()
    after_reset = post_json(emulator, {"data": [event("bad-one")]})

    assert refused.status == 400
    assert (refused.error["code"], refused.error["error_subcode"]) == (100, 2804050)
    assert refused.error["error_data"] == {"event_index": 1}
    assert (accepted.status, after_reset.status) == (200, 200)


def test_unparseable_body_is_an_invalid_parameter(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    reply = send(emulator, b"{not json", query={"access_token": TOKEN})

    assert (reply.status, reply.error["code"]) == (400, 100)


# ----------------------------------------------------------------------------- faults


def test_error_fault_returns_metas_shape_with_retry_after_then_normal_service(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=2, status=400, error_code=4, retry_after=7)

    first = post_json(emulator, {"data": [event("1")]})
    second = post_json(emulator, {"data": [event("2")]})
    third = post_json(emulator, {"data": [event("3")]})

    for reply in (first, second):
        assert reply.status == 400
        assert reply.headers["Retry-After"] == "7"
        assert reply.error["code"] == 4
        assert reply.error["message"] == "(#4) Application request limit reached"
        assert reply.error["type"] == "OAuthException"
        assert reply.error["is_transient"] is False
    assert third.status == 200
    recorded = client.received(PIXEL)["pixels"][PIXEL]
    assert recorded["faulted_requests"] == 2
    assert [e["event"]["event_id"] for e in recorded["events"]] == ["3"]
    assert client.pending_faults() == []


def test_transient_fault_is_marked_transient(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, status=503, error_code=2, error_subcode=99)

    reply = post_json(emulator, {"data": [event()]})

    assert reply.status == 503
    assert reply.error["is_transient"] is True
    assert reply.error["error_subcode"] == 99
    assert "Retry-After" not in reply.headers


def test_status_without_code_answers_like_a_proxy(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(status=502, retry_after=0.5)

    reply = post_json(emulator, {"data": [event()]})

    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.headers["Retry-After"] == "0.5"


def test_latency_fault_delays_then_processes_normally(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, latency_ms=300)

    started = time.monotonic()
    reply = post_json(emulator, {"data": [event()]})

    assert time.monotonic() - started >= 0.3
    assert reply.status == 200
    assert client.received(PIXEL)["pixels"][PIXEL]["events_received"] == 1


def test_latency_longer_than_the_client_timeout_times_out(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, latency_ms=2000)

    with pytest.raises((TimeoutError, urllib.error.URLError)):
        post_json(emulator, {"data": [event()]}, timeout=0.2)


def test_dropped_connection_gets_no_response(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, drop_connection=True)

    with pytest.raises(ConnectionError):
        post_json(emulator, {"data": [event()]})
    assert post_json(emulator, {"data": [event()]}).status == 200
    assert client.received(PIXEL)["pixels"][PIXEL]["events_received"] == 1


def test_faults_apply_in_the_order_they_were_queued(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, status=400, error_code=17)
    client.inject_fault(count=1, status=400, error_code=80004)

    codes = [post_json(emulator, {"data": [event()]}) for _ in range(3)]

    assert [reply.status for reply in codes] == [400, 400, 200]
    assert [reply.error["code"] for reply in codes[:2]] == [17, 80004]


def test_a_pixel_fault_leaves_other_pixels_alone(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=1, status=400, error_code=613, pixel_id=OTHER_PIXEL)

    assert post_json(emulator, {"data": [event()]}).status == 200
    other = post_json(emulator, {"data": [event()]}, pixel=OTHER_PIXEL, token=OTHER_TOKEN)
    assert (other.status, other.error["code"]) == (400, 613)


def test_clear_faults_restores_normal_service(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    client.inject_fault(count=5, status=500, error_code=1)

    assert client.clear_faults() == 1
    assert post_json(emulator, {"data": [event()]}).status == 200


@pytest.mark.parametrize(
    "fields",
    [
        {"count": 0, "error_code": 4},
        {"status": 503, "colour": "red"},
        {"count": 1},
        {"status": "x"},
    ],
)
def test_an_invalid_fault_is_refused(client: EmulatorClient, fields: dict[str, Any]) -> None:
    with pytest.raises(EmulatorClientError, match="HTTP 400"):
        client.inject_fault(**fields)


# ----------------------------------------------------------------------------- inspection


def test_inspection_counts_batches_and_duplicates(
    emulator: RunningEmulator, client: EmulatorClient
) -> None:
    post_json(emulator, {"data": [event("order-1"), event("order-2"), event(None, "PageView")]})
    post_json(emulator, {"data": [event("order-1"), event(None, "PageView")]})
    post_json(
        emulator,
        {"data": [event("order-1", name="AddToCart")]},
        pixel=OTHER_PIXEL,
        token=OTHER_TOKEN,
    )

    everything = client.received()["pixels"]
    summary = client.received(PIXEL, events=False)["pixels"][PIXEL]

    assert set(everything) == {PIXEL, OTHER_PIXEL}
    assert summary == {
        "requests": 2,
        "rejected_requests": 0,
        "faulted_requests": 0,
        "batch_sizes": [3, 2],
        "events_received": 5,
        "unique_events": 4,  # events without event_id are never deduplicated
        "duplicates": {"Purchase|order-1": 2},
    }
    assert everything[OTHER_PIXEL]["duplicates"] == {}
    assert len(everything[PIXEL]["events"]) == 5


def test_inspecting_an_unseen_pixel_answers_an_empty_record(client: EmulatorClient) -> None:
    record = client.received("999")["pixels"]["999"]

    assert (record["requests"], record["events_received"], record["events"]) == (0, 0, [])


def test_reset_forgets_events_and_faults(emulator: RunningEmulator, client: EmulatorClient) -> None:
    post_json(emulator, {"data": [event()]})
    client.inject_fault(count=3, status=400, error_code=4)

    client.reset()

    assert client.received()["pixels"] == {}
    assert client.pending_faults() == []
    assert post_json(emulator, {"data": [event()]}).status == 200


# ----------------------------------------------------------------------------- running it


def test_the_clock_can_be_injected() -> None:
    frozen_now = 1_600_000_000
    with start_in_thread({PIXEL: TOKEN}, now=lambda: float(frozen_now)) as frozen:
        then = post_json(frozen, {"data": [event(event_time=frozen_now - 10)]})
        today = post_json(frozen, {"data": [event(event_time=int(time.time()))]})

    assert then.status == 200
    assert (today.status, today.error["error_subcode"]) == (400, Subcode.EVENT_TIME_IN_FUTURE)


def test_serve_runs_until_interrupted_and_logs_without_the_token() -> None:
    port = _free_port()
    script = (
        "from worker.sandbox.graph_emulator import serve; "
        f"serve('127.0.0.1', {port}, {{'{PIXEL}': '{TOKEN}'}}, {{}})"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        served = _wait_for_port(port)
        reply = _post_to_port(port, {"data": [event()]})
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)

    assert served, output
    assert reply.status == 200
    assert process.returncode == 0, output
    assert f"pixel={PIXEL} events=1 status=200" in output
    assert TOKEN not in output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _post_to_port(port: int, payload: dict[str, Any]) -> Reply:
    url = f"http://127.0.0.1:{port}/v25.0/{PIXEL}/events?access_token={TOKEN}"
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return Reply(response.status, dict(response.headers), response.read())
