"""The real worker as the tests run it: the pixels and tokens the Graph API emulator knows, the
one configuration writer, `capi-worker run` in a subprocess, and waiting for a condition."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.sample_events import sample_event

SHOP_PIXEL, SHOP_TOKEN = "1111111111", "shop-token"
BLOG_PIXEL, BLOG_TOKEN = "2222222222", "blog-token"
EMULATOR_TOKENS = {SHOP_PIXEL: SHOP_TOKEN, BLOG_PIXEL: BLOG_TOKEN}


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, nested mappings key by key (a copy)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_config(
    path: Path,
    *,
    bootstrap: str,
    graph_url: str,
    source_topic: str,
    dead_letter_topic: str,
    group_id: str,
    destinations: list[dict[str, Any]] | None = None,
    batching: Mapping[str, Any] | None = None,
    graph: Mapping[str, Any] | None = None,
    decoding: dict[str, Any] | None = None,
    metrics_port: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """The worker's YAML file for the tests: the two pixels, quick retries and commits.
    `batching` and `graph` add to the defaults; `extra` is merged in depth (so `kafka.client`
    can be set without repeating the rest of `kafka`)."""
    config = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "topics": [source_topic],
            "dead_letter_topic": dead_letter_topic,
            "consumer": {"session.timeout.ms": 6000},
            "commit_interval_ms": 200,
        },
        "graph": {
            "url": graph_url,
            "api_version": "v25.0",
            "initial_backoff_seconds": 0.05,
            "max_backoff_seconds": 1.0,
            **(graph or {}),
        },
        "batching": {"max_events": 1000, "linger_ms": 100, **(batching or {})},
        "decoding": decoding or {"format": "json"},
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "destinations": destinations
        or [
            {"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"},
            {"name": "blog", "pixel_id": BLOG_PIXEL, "access_token": BLOG_TOKEN},
        ],
    }
    path.write_text(yaml.safe_dump(merged(config, extra or {})))
    return path


class WorkerProcess:
    """`capi-worker run --config FILE` in its own process, logs kept for failure messages."""

    def __init__(self, config: Path, log_path: Path, args: Sequence[str] = ()) -> None:
        self.log_path = log_path
        env = {**os.environ, "SHOP_TOKEN": SHOP_TOKEN, "PYTHONUNBUFFERED": "1"}
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", "--config", str(config), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 40) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self._wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self._wait(10)

    def _wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def stop_quietly(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    detail = f"\n--- worker log ---\n{log()[-4000:]}" if log else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


def valid_events(count: int, prefix: str, now: float | None = None) -> list[bytes]:
    rng = random.Random(prefix)
    moment = time.time() if now is None else now
    return [orjson.dumps(sample_event(i, moment, rng, prefix=prefix)) for i in range(count)]


def unique_events(received: dict[str, Any], pixel: str) -> int:
    return int(received.get("pixels", {}).get(pixel, {}).get("unique_events", 0))


def unique_at(graph: EmulatorClient, pixel: str) -> int:
    """Unique events (by event_name and event_id) the emulator accepted for `pixel` so far."""
    return unique_events(graph.received(events=False), pixel)


def delivered_to_both(graph: EmulatorClient, count: int) -> bool:
    """Both pixels accepted exactly `count` unique events."""
    received = graph.received(events=False)
    return all(unique_events(received, pixel) == count for pixel in (SHOP_PIXEL, BLOG_PIXEL))
