"""Secrets and personal data never leak: a real worker run at DEBUG with a known access token,
app secret and Kafka password, and events carrying a known plain-text email, phone, name and
IP, some of them poison, one destination with a token Meta refuses. Nothing of it may appear in
the worker's output, the dead-letter headers, `/metrics`, the emulator's log or any URL the
emulator was asked for. Also the start-up error paths, with a token next to the mistake.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from tests.hostile.rig import HostileRig, Worker, dlq_headers, event_ids
from tests.kafka_helpers import produce, read_all
from tests.support.worker import BLOG_PIXEL, SHOP_PIXEL, wait_until
from worker.sandbox.broker import free_port
from worker.sandbox.graph_emulator import RunningEmulator, create_app
from worker.sandbox.sample_events import iso, sample_event

pytestmark = pytest.mark.integration

TOKEN = "EAAB-known-token-7f3c9a1d"
APP_SECRET = "app-secret-5d1e2b6f"
REFUSED_TOKEN = "EAAB-refused-token-0b8d4f2e"
BLOG_REAL_TOKEN = "EAAB-blog-real-token-61aa"
KAFKA_PASSWORD = "kafka-pw-9c2e71b4"
SECRETS = (TOKEN, APP_SECRET, REFUSED_TOKEN, KAFKA_PASSWORD)

EMAIL = " Jane.Secret@Example.org "
PHONE = "+1 (415) 555-0199"
FIRST_NAME = "Zebulonia"
IP = "198.51.100.77"
# As typed, and as normalised before hashing: neither may appear in clear.
PII = ("Jane.Secret@Example.org", "jane.secret@example.org", PHONE, "14155550199", "4155550199",
       FIRST_NAME, FIRST_NAME.lower(), IP)  # fmt: skip

ENV = {
    "CAPI_TOKEN": TOKEN,
    "CAPI_APP_SECRET": APP_SECRET,
    "BLOG_TOKEN": REFUSED_TOKEN,
    "KAFKA_PASSWORD": KAFKA_PASSWORD,
}


def leaks(text: str) -> list[str]:
    return [secret for secret in (*SECRETS, *PII) if secret in text]


class SeenRequests:
    """What the emulator was asked: method, path with query, and whether the Authorization
    header carried the known token (the token itself is not kept)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bool]] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        bearer = request.headers.get("Authorization") == f"Bearer {TOKEN}"
        self.requests.append((request.method, str(request.rel_url), bearer))
        response: web.StreamResponse = await handler(request)
        return response


@pytest.fixture
def emulator() -> Iterator[tuple[RunningEmulator, SeenRequests]]:
    seen = SeenRequests()
    app = create_app({SHOP_PIXEL: TOKEN, BLOG_PIXEL: BLOG_REAL_TOKEN}, {SHOP_PIXEL: APP_SECRET})
    app.middlewares.append(seen.middleware)  # the test's own observer; the emulator is as is
    with RunningEmulator(app).start() as running:
        yield running, seen


def with_pii(index: int, now: float, prefix: str, **changes: Any) -> dict[str, Any]:
    event = sample_event(index, now, random.Random(index), prefix=prefix)
    context = event["context"]
    context["ip"] = IP
    context["traits"].update(email=EMAIL, phone=PHONE, firstName=FIRST_NAME)
    if event["type"] == "track":
        event["properties"].update(email=EMAIL, phone=PHONE)
    event.update(changes)
    return event


def test_no_token_secret_password_or_personal_data_in_logs_headers_metrics_or_urls(
    kafka_broker: Any,
    emulator: tuple[RunningEmulator, SeenRequests],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    running, seen = emulator
    now = time.time()
    good = [with_pii(i, now, "pii") for i in range(40)]
    order = with_pii(5, now, "poison")
    deep: Any = PHONE
    for _ in range(40):
        deep = [deep]
    poison: list[tuple[bytes, str, str]] = [
        (orjson.dumps(with_pii(3, now, "old", timestamp=iso(now - 9 * 86_400))), "map",
         "event_time_too_old"),
        (orjson.dumps({**order, "properties": {"revenue": EMAIL}}), "map", "invalid_value"),
        (orjson.dumps({**order, "properties": {"revenue": 5, "currency": PHONE}}), "map",
         "invalid_currency"),
        (orjson.dumps({**order, "properties": {"revenue": 5, "delivery_category": IP}}), "map",
         "invalid_delivery_category"),
        (orjson.dumps(with_pii(3, now, "ts", timestamp=PHONE)), "map", "invalid_timestamp"),
        (orjson.dumps(with_pii(3, now, "as", properties={"action_source": EMAIL})), "map",
         "invalid_action_source"),
        (orjson.dumps(with_pii(3, now, "name", event=f"Sent a message to {EMAIL} earlier today")),
         "map", "event_name_too_long"),
        (orjson.dumps(with_pii(3, now, "ldu", integrations={
            "Facebook Conversions API": {"dataProcessingOptions": [[EMAIL], PHONE]}})),
         "map", "invalid_data_processing_options"),
        (orjson.dumps(with_pii(3, now, "deep", properties={EMAIL: deep})), "map",
         "invalid_properties"),
        (orjson.dumps(with_pii(3, now, "cat", properties={"category": [{"e": EMAIL}]})), "map",
         "invalid_category"),
        (b'{"type": "track", "email": "' + EMAIL.encode() + b'", ', "decode", "invalid_json"),
    ]  # fmt: skip
    records: list[bytes] = [orjson.dumps(e) for e in good]
    for index, (value, _, _) in enumerate(poison):
        records.insert(3 * index + 1, value)

    rig = HostileRig(kafka_broker, running.url, tmp_path, partitions=2)
    bootstrap, source, dlq = rig.bootstrap, rig.source, rig.dead_letters
    produce(bootstrap, source, records)
    port = free_port()
    config = rig.config(
        extra={
            # librdkafka keeps SASL settings without security.protocol SASL_* (it only warns),
            # so the password is really handed to the client. `debug: conf` makes librdkafka
            # print its configuration: it must redact the password.
            "kafka": {
                "client": {
                    "sasl.username": "capi-worker",
                    "sasl.password": "${KAFKA_PASSWORD}",
                    "debug": "conf",
                }
            },
            "logging": {"level": "DEBUG", "format": "json"},
            "metrics": {"port": port},
            "destinations": [
                {
                    "name": "shop",
                    "pixel_id": SHOP_PIXEL,
                    "access_token": "${CAPI_TOKEN}",
                    "app_secret": "${CAPI_APP_SECRET}",
                },
                {"name": "blog", "pixel_id": BLOG_PIXEL, "access_token": "${BLOG_TOKEN}"},
            ],
        },
    )
    assert not leaks(config.read_text()), "the configuration file names variables only"
    worker = Worker(config, tmp_path, env=ENV)
    try:
        expected = {e["messageId"] for e in good}

        def delivered() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            return event_ids(running_received(running), SHOP_PIXEL) >= expected

        wait_until(delivered, 120, "the good events at the shop pixel", worker.output)
        wait_until(rig.all_committed, 60, "commits", worker.output)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
        assert worker.terminate() == 0
    finally:
        worker.stop_quietly()

    output = worker.output()
    dead = read_all(bootstrap, dlq)

    # The run did what the assertions below rely on.
    assert "sasl.password = [redacted]" in output, "librdkafka printed its configuration"
    assert 'capi_events_delivered_total{destination="shop"' in metrics
    reasons = Counter(dlq_headers(record)["capi.dlq.reason"] for record in dead)
    assert reasons["invalid_token"] == len(good), "the refused token dead-letters blog's events"
    for _, stage, reason in poison:
        assert reasons[reason] == (1 if stage == "decode" else 2), reason
    value_message = next(
        dlq_headers(r)["capi.dlq.message"]
        for r in dead
        if dlq_headers(r)["capi.dlq.reason"] == "invalid_value"
    )
    assert "<not shown: looks like an email address>" in value_message
    # The test's own polling of /_emulator/* passes the same middleware: only the worker's posts.
    shop_posts = [
        (url, bearer)
        for method, url, bearer in seen.requests
        if method == "POST" and f"/{SHOP_PIXEL}/events" in url
    ]
    assert shop_posts and all(bearer for _, bearer in shop_posts), "token in the header"
    assert all("appsecret_proof=" in url for url, _ in shop_posts)
    assert "graph-emulator pixel=" in caplog.text, "the emulator's log was captured"

    assert leaks(output) == [], "worker output (stdout + stderr, DEBUG)"
    for record in dead:
        for key, value in record.headers:
            text = key + (value or b"").decode("utf-8", errors="replace")
            assert leaks(text) == [], f"dead-letter header {key}"
    assert leaks(metrics) == [], "/metrics"
    assert leaks(caplog.text) == [], "the emulator's log"
    for _, url, _ in seen.requests:
        assert leaks(url) == [], "a URL the emulator saw"
    # The dead-letter topic keeps the original record (the same data as the source topic).
    assert any(EMAIL.encode() in (record.value or b"") for record in dead)


def running_received(running: RunningEmulator) -> dict[str, Any]:
    from worker.sandbox.emulator_client import EmulatorClient

    return EmulatorClient(running.url).received(SHOP_PIXEL)


# ---------------------------------------------------------------- start-up error paths


def run_with(tmp_path: Path, config: dict[str, Any] | str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ENV},
    )


def base_config(**destination: Any) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["a"], "dead_letter_topic": "d"},
        "metrics": {"enabled": False},
        "destinations": [{"name": "shop", "pixel_id": SHOP_PIXEL, **destination}],
    }


def _with_client(**client: Any) -> dict[str, Any]:
    config = base_config(access_token="${CAPI_TOKEN}")
    config["kafka"]["client"] = client
    return config


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(base_config(access_token=TOKEN, acess_token=TOKEN), id="misspelt-key"),
        pytest.param(base_config(access_token=TOKEN, app_secret=[APP_SECRET]), id="bad-type"),
        pytest.param(base_config(access_token=[TOKEN]), id="token-not-a-string"),
        pytest.param(
            _with_client(**{"sasl.password": "${KAFKA_PASSWORD}", "bootstrap.servers": "x"}),
            id="reserved-librdkafka-key",
        ),
        pytest.param(
            {**base_config(access_token="${CAPI_TOKEN}", pixel_id="shop"), "surplus": TOKEN},
            id="unknown-top-level-key",
        ),
    ],
)
def test_a_configuration_error_next_to_a_secret_names_the_key_not_the_secret(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    result = run_with(tmp_path, config)
    assert result.returncode == 2, result.stderr
    assert "invalid configuration" in result.stderr
    assert leaks(result.stdout + result.stderr) == []


def test_a_registry_url_with_credentials_is_not_echoed_when_it_is_refused(tmp_path: Path) -> None:
    config = base_config(access_token="${CAPI_TOKEN}")
    config["decoding"] = {
        "format": "avro-confluent",
        "schema_registry_url": "ftp://registry-user:${KAFKA_PASSWORD}@registry.example",
    }
    result = run_with(tmp_path, config)
    assert result.returncode != 0
    assert "schema registry URL must be http(s)" in result.stderr
    assert leaks(result.stdout + result.stderr) == []


def test_a_yaml_syntax_error_on_the_line_of_a_literal_token_does_not_echo_it(
    tmp_path: Path,
) -> None:
    text = yaml.safe_dump(base_config(access_token="PLACEHOLDER"))
    text = text.replace("PLACEHOLDER", f"{TOKEN}: oops")
    result = run_with(tmp_path, text)
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr
    assert leaks(result.stderr) == []
