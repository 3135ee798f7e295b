"""The processes a benchmark drives: the embedded broker, the Graph API emulator and workers.

Each runs in its own process (the worker as `capi-worker run`, exactly as deployed), so the
CPU and memory figures of the worker are its own.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from worker.sandbox.broker import EmbeddedBroker, free_port
from worker.sandbox.emulator_client import EmulatorClient

Log = Callable[[str], None]

BENCH_PIXEL = "1234567890"
BENCH_TOKEN = "bench-token"  # the emulator's, not a secret


def _no_log(message: str) -> None:
    del message


def cli_command() -> list[str]:
    """How to run `capi-worker` from this environment (the console script beside python)."""
    script = Path(sys.executable).with_name("capi-worker")
    if script.exists():
        return [str(script)]
    found = shutil.which("capi-worker")
    if found is None:
        raise SystemExit("capi-worker is not installed in this environment (pip install -e .)")
    return [found]


def stop_process(
    process: subprocess.Popen[bytes], name: str, timeout: float = 10.0, log: Log = _no_log
) -> int:
    """SIGTERM, then SIGKILL after `timeout` s; reaps the process and answers its exit code."""
    if process.poll() is not None:
        return int(process.returncode)
    process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"[yellow]{name} ignored SIGTERM for {timeout:g}s; killing it[/]")
        process.kill()
        return process.wait()


class BenchEmulatorClient(EmulatorClient):
    """The emulator client plus the hooks benchmarks use: lean recording, acceptance times."""

    def store_events(self, store: bool) -> None:
        """False: the emulator keeps counts, ids and acceptance times, not every event."""
        self._call("POST", "/_emulator/settings", {"store_events": store})

    def acceptances(self, pixel_id: str) -> dict[str, float]:
        """event_id -> when the emulator first accepted it (Unix seconds, its wall clock)."""
        summary = self._call(
            "GET", f"/_emulator/events?pixel_id={pixel_id}&events=0&acceptances=1"
        )["pixels"][pixel_id]
        accepted: dict[str, float] = {}
        for request in summary["acceptances"]:
            at = float(request["accepted_at"])
            for event_id in request["event_ids"]:
                if event_id is not None and event_id not in accepted:
                    accepted[event_id] = at
        return accepted


def start_emulator(
    workdir: Path, tokens: Mapping[str, str], log_name: str = "emulator.log"
) -> tuple[subprocess.Popen[bytes], str]:
    """`capi-worker graph-emulator --log-level WARNING` on a free port; answers (process, url)."""
    port = free_port()
    command = [*cli_command(), "graph-emulator", "--port", str(port), "--log-level", "WARNING"]
    for pixel, token in tokens.items():
        command += ["--token", f"{pixel}={token}"]
    log_file = open(workdir / log_name, "wb")  # noqa: SIM115 (kept open by the child)
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
    )
    log_file.close()  # the child holds its own descriptor
    url = f"http://127.0.0.1:{port}"
    client = EmulatorClient(url, timeout=2)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.pending_faults()
            return process, url
        except (OSError, urllib.error.URLError):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process, "emulator")
                raise SystemExit(
                    f"the Graph API emulator did not start; see {workdir / log_name}"
                ) from None
            time.sleep(0.1)


def worker_config(
    bootstrap: str,
    graph_url: str,
    group: str,
    topic: str,
    dead_letter_topic: str,
    destinations: Mapping[str, tuple[str, str]],
    *,
    batching: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
    circuit_breaker: bool = True,
    log_level: str = "INFO",
) -> dict[str, Any]:
    """A worker configuration for a local run. `destinations`: name -> (pixel id, token).

    Everything not given keeps the worker's defaults; `consumer` adds librdkafka consumer
    settings. The metrics port is a free one so that several workers can run side by side.
    """
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "topics": [topic],
            "dead_letter_topic": dead_letter_topic,
            "consumer": {"session.timeout.ms": 6000, **(consumer or {})},
        },
        "graph": {"url": graph_url, "api_version": "v25.0"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": log_level, "format": "json"},
        "circuit_breaker": {"enabled": circuit_breaker},
        "destinations": [
            {"name": name, "pixel_id": pixel, "access_token": token}
            for name, (pixel, token) in destinations.items()
        ],
    }
    if batching:
        config["batching"] = dict(batching)
    return config


def start_worker(config: Mapping[str, Any], workdir: Path, name: str) -> subprocess.Popen[bytes]:
    """`capi-worker run` with `config` written beside its log (`<name>.yaml`, `<name>.log`)."""
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(dict(config)))
    with open(workdir / f"{name}.log", "wb") as log_file:
        return subprocess.Popen(
            [*cli_command(), "run", "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def worker_mapping_build(workdir: Path, name: str) -> str | None:
    """`compiled` or `pure Python`: what the worker `name` said at start-up in its log
    (`mapping: ...`, see worker/compiled.py), or None when the line is not there."""
    try:
        text = (workdir / f"{name}.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"mapping: (compiled|pure Python)", text)
    return found[1] if found else None


class Stack:
    """The embedded broker and the Graph API emulator, each in its own process (context manager).

    The emulator keeps counts, event ids and acceptance times only (`store_events` false):
    a benchmark sends it millions of events.
    """

    def __init__(
        self,
        workdir: Path,
        tokens: Mapping[str, str] | None = None,
        log: Log = _no_log,
        store_events: bool = False,
    ) -> None:
        self.workdir = workdir
        self.tokens = dict(tokens or {BENCH_PIXEL: BENCH_TOKEN})
        self.log = log
        self.store_events = store_events
        self.broker = EmbeddedBroker(log_dir=workdir / "broker")
        self.emulator: subprocess.Popen[bytes] | None = None
        self.graph_url = ""

    def __enter__(self) -> Stack:
        self.broker.start()
        try:
            self.emulator, self.graph_url = start_emulator(self.workdir, self.tokens)
            self.client().store_events(self.store_events)
        except BaseException:
            self.close()
            raise
        self.log(
            f"broker {self.bootstrap} (pid {self.broker.pid}) · emulator {self.graph_url} "
            f"(pid {self.emulator.pid})"
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.emulator is not None:
            stop_process(self.emulator, "emulator", timeout=60, log=self.log)
            self.emulator = None
        self.broker.stop()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def broker_pid(self) -> int:
        assert self.broker.pid is not None
        return self.broker.pid

    @property
    def emulator_pid(self) -> int:
        assert self.emulator is not None
        return self.emulator.pid

    def client(self, timeout: float = 120.0) -> BenchEmulatorClient:
        return BenchEmulatorClient(self.graph_url, timeout=timeout)

    def create_topics(self, topics: Mapping[str, int]) -> None:
        self.broker.create_topics(dict(topics))

    def new_run(
        self,
        label: str,
        topic: str,
        dead_letter_topic: str,
        *,
        batching: Mapping[str, Any] | None = None,
        consumer: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Empty the emulator and answer a new consumer group and the worker configuration
        that reads `topic` in it for the bench pixel."""
        self.client().reset()
        group = f"bench-{label}-{uuid.uuid4().hex[:8]}"
        config = worker_config(
            self.bootstrap,
            self.graph_url,
            group,
            topic,
            dead_letter_topic,
            {"shop": (BENCH_PIXEL, self.tokens[BENCH_PIXEL])},
            batching=batching,
            consumer=consumer,
        )
        return group, config


def stop_workers(
    workers: list[subprocess.Popen[bytes]], timeout: float = 60.0, log: Log = _no_log
) -> list[int]:
    """SIGTERM every worker at once, then wait for each (killing one that overstays)."""
    for process in workers:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    codes = []
    deadline = time.monotonic() + timeout
    for number, process in enumerate(workers):
        try:
            codes.append(process.wait(max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            log(f"[red]worker {number} did not exit within {timeout:g}s of SIGTERM; killing it[/]")
            process.kill()
            codes.append(process.wait())
    return codes
