"""Running the worker: one process (`capi-worker run`), or N supervised ones (`--processes N`).

One worker process uses about one core (the mapping stage is Python code under one GIL), so
`--processes N` starts N of them in one consumer group to use N cores of a pod or a machine:

- The parent (the supervisor) consumes nothing. It starts N children with multiprocessing's
  "spawn" context; each child runs the normal `Worker` with the same settings and group id, so
  Kafka shares the partitions out between them as between pods.
- SIGTERM or SIGINT to the parent is forwarded to every child as SIGTERM; each child stops
  fetching, flushes, commits and exits within `runtime.shutdown_timeout_seconds`, and the parent
  waits for them (a few seconds more, then SIGKILL). It exits 0 when they all stopped cleanly.
- A child exiting with 3 (circuit breaker open) or 2 (configuration refused) stops the others
  and the parent exits with that code: restarting would fail the same way.
- Any other exit (a crash, a kill by the OOM killer) is logged and the child is restarted after
  a backoff (0.5 s, doubling per recent restart of that child, at most 10 s). More than
  `MAX_RESTARTS` restarts within `RESTART_WINDOW_SECONDS` is a crash loop: everything stops and
  the parent exits 1.
- Health and metrics: the children serve /livez, /readyz and /metrics on ports of their own on
  127.0.0.1 and tell the parent which. The parent serves `metrics.host:metrics.port` as a single
  process would: /livez fails when a running child's /livez fails (a child being restarted does
  not fail it: the supervisor is on it), /readyz is ready when every child is running and ready,
  and /metrics holds every child's metrics with a `process` label (`1` ... `N`).
- SIGHUP to the parent is forwarded to every running child: each reloads its destinations
  (see destination_reload.py). A child (re)started later reads the destinations' files as
  they are at its start, so it maps like its siblings after their reloads.
- A child's log lines carry `process` = `i/N` (a JSON field, or `[process i/N]` in text).
- `group.instance.id` (static membership) gets the suffix `-i` per child: members of a group
  must not share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from worker.config import ConfigError, Settings
from worker.stream.destination_reload import ReloadSource, with_current_destinations
from worker.telemetry.logs import TEXT_FORMAT, JsonLinesFormatter, LogFormat, configure_logging

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1  # a child crash-looped, or did not stop within its budget
EXIT_CONFIG = 2
EXIT_CIRCUIT_OPEN = 3
FATAL_EXIT_CODES = frozenset({EXIT_CONFIG, EXIT_CIRCUIT_OPEN})

MAX_RESTARTS = 5  # restarts of any child within the window; one more is a crash loop
RESTART_WINDOW_SECONDS = 60.0
INITIAL_RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 10.0
STOP_GRACE_SECONDS = 5.0  # beyond runtime.shutdown_timeout_seconds, then SIGKILL
CHILD_PROBE_TIMEOUT_SECONDS = 2.0  # the chart's probes time out after 3 s
POLL_SECONDS = 0.1
PARENT_CHECK_SECONDS = 1.0


# --------------------------------------------------------------------------- one worker process


def run_worker(
    settings: Settings,
    *,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    on_health_port: Callable[[int], None] | None = None,
    parent_pid: int | None = None,
    reload_from: ReloadSource | None = None,
) -> int:
    """Run one Worker until a signal; the process exit code (0, 2 or 3).

    `parent_pid`: a supervised child also stops when its parent is gone (a parent killed with
    SIGKILL must not leave consumers behind). SIGHUP reloads the destinations from
    `reload_from`."""
    from worker.stream.breaker import CircuitOpen
    from worker.stream.runner import Worker, settle_garbage_collector

    settle_garbage_collector()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.add_signal_handler(signum, stop.set)
        worker = Worker(settings, on_health_port=on_health_port, reload_from=reload_from)
        loop.add_signal_handler(signal.SIGHUP, worker.request_reload)
        watcher = None
        if parent_pid is not None:
            watcher = asyncio.create_task(_stop_when_orphaned(parent_pid, stop))
        try:
            await worker.run(stop)
        finally:
            if watcher is not None:
                watcher.cancel()

    try:
        asyncio.run(main())
    except CircuitOpen as error:
        print(
            f"capi-worker: circuit breaker open: {error}; nothing past it was committed",
            file=sys.stderr,
        )
        return EXIT_CIRCUIT_OPEN
    except ConfigError as error:
        print(f"capi-worker: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
    log.error("The supervisor is gone; stopping")
    stop.set()


def tag_log_lines(tag: str) -> None:
    """Mark every log line of this process with `process` = tag (after configure_logging)."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonLinesFormatter):
            handler.setFormatter(_TaggedJsonFormatter(tag))
        else:
            handler.setFormatter(
                logging.Formatter(
                    TEXT_FORMAT.replace("%(message)s", f"[process {tag}] %(message)s")
                )
            )


class _TaggedJsonFormatter(JsonLinesFormatter):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self._field = f',"process":"{tag}"}}'

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)  # one JSON object: ends with "}"
        return line[:-1] + self._field


def child_settings(settings: Settings, index: int) -> Settings:
    """A child's settings: health port on 127.0.0.1 (any free port; the parent serves the
    configured one) and its own `group.instance.id`, if one is set."""
    kafka = settings.kafka
    updates: dict[str, Any] = {}
    for section in ("client", "consumer"):
        librdkafka = getattr(kafka, section)
        if "group.instance.id" in librdkafka:
            instance = f"{librdkafka['group.instance.id']}-{index}"
            updates[section] = {**librdkafka, "group.instance.id": instance}
    metrics = settings.metrics.model_copy(update={"host": "127.0.0.1", "port": 0})
    return settings.model_copy(
        update={"kafka": kafka.model_copy(update=updates), "metrics": metrics}
    )


def _child_main(
    settings: Settings,
    index: int,
    count: int,
    log_level: str,
    log_format: LogFormat,
    port_writer: Connection,
    parent_pid: int,
    config_path: Path | None,
) -> None:
    """Entry point of a child process (spawned: a fresh interpreter)."""
    # A terminal's ^C reaches every process of the group; the parent forwards it as SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A SIGHUP forwarded before the worker listens for it must not end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(log_level, log_format)
    tag_log_lines(f"{index}/{count}")

    def tell_port(port: int) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: the orphan check stops us
            port_writer.send(port)

    reload_from = None
    if config_path is not None:
        settings = with_current_destinations(settings, config_path)
        reload_from = ReloadSource(config_path, settings)
    code = run_worker(
        child_settings(settings, index),
        signals=(signal.SIGTERM,),
        on_health_port=tell_port,
        parent_pid=parent_pid,
        reload_from=reload_from,
    )
    port_writer.close()
    sys.exit(code)


# --------------------------------------------------------------------------- the supervisor


@dataclass
class _Child:
    index: int  # 1-based
    process: BaseProcess | None = None
    port_reader: Connection | None = None
    port: int | None = None  # its health port, once it said so
    restart_at: float | None = None
    restarts: deque[float] = field(default_factory=deque)  # when it was restarted


class Supervisor:
    """Starts, watches, restarts and stops the worker processes (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        processes: int,
        log_level: str,
        log_format: LogFormat,
        *,
        clock: Callable[[], float] = time.monotonic,
        config_path: Path | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.settings = settings
        self._config_path = config_path  # handed to the children, which reload from it
        self._count = processes
        self._log_level = log_level
        self._log_format = log_format
        self._clock = clock
        self._context = multiprocessing.get_context("spawn")
        self._children = [_Child(index) for index in range(1, processes + 1)]
        self._restarts: deque[float] = deque()  # every restart within the window
        self.health_port: int | None = None

    def run(self) -> int:
        return asyncio.run(self.run_async())

    async def run_async(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._forward_reload)
        health = await self._start_health_server()
        log.info(
            "Supervisor started; processes=%d group=%s",
            self._count,
            self.settings.kafka.group_id,
        )
        exit_code: int | None = None
        try:
            for child in self._children:
                self._start(child)
            while exit_code is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_SECONDS)
                if stop.is_set():
                    log.info("Stopping every process; signal received")
                    break
                exit_code = self._check_children()
        finally:
            stopped = await self._stop_all()
            if health is not None:
                await health.cleanup()
        code = stopped if exit_code is None else exit_code
        log.info("Supervisor stopped; exit_code=%d", code)
        return code

    # -- children ------------------------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main,
            name=f"capi-worker-{child.index}",
            args=(
                self.settings,
                child.index,
                self._count,
                self._log_level,
                self._log_format,
                writer,
                os.getpid(),
                self._config_path,
            ),
        )
        process.start()
        writer.close()  # the child holds its end
        child.process, child.port_reader, child.port = process, reader, None
        child.restart_at = None
        log.info("Process started; process=%d/%d pid=%s", child.index, self._count, process.pid)

    def _forward_reload(self) -> None:
        running = [c.process for c in self._children if c.process is not None]
        for process in running:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)
        log.info("Reload requested; forwarded to processes=%d", len(running))

    def _check_children(self) -> int | None:
        """Handle exits and due restarts; an exit code when everything must stop."""
        now = self._clock()
        for child in self._children:
            self._read_port(child)
            process = child.process
            if process is not None and process.exitcode is not None:
                code = process.exitcode
                self._forget(child)
                if code in FATAL_EXIT_CODES:
                    log.error(
                        "Process stopped with exit code %d (%s); stopping every process; "
                        "process=%d/%d",
                        code,
                        "circuit breaker open" if code == EXIT_CIRCUIT_OPEN else "configuration",
                        child.index,
                        self._count,
                    )
                    return code
                verdict = self._schedule_restart(child, code, now)
                if verdict is not None:
                    return verdict
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                self._start(child)
        return None

    def _schedule_restart(self, child: _Child, code: int, now: float) -> int | None:
        window_start = now - RESTART_WINDOW_SECONDS
        while self._restarts and self._restarts[0] < window_start:
            self._restarts.popleft()
        while child.restarts and child.restarts[0] < window_start:
            child.restarts.popleft()
        if len(self._restarts) >= MAX_RESTARTS:
            log.critical(
                "Crash loop: more than %d restarts within %gs; stopping every process; "
                "process=%d/%d exit_code=%s",
                MAX_RESTARTS,
                RESTART_WINDOW_SECONDS,
                child.index,
                self._count,
                _describe_exit(code),
            )
            return EXIT_FAILED
        delay = min(
            MAX_RESTART_DELAY_SECONDS, INITIAL_RESTART_DELAY_SECONDS * 2 ** len(child.restarts)
        )
        self._restarts.append(now)
        child.restarts.append(now)
        child.restart_at = now + delay
        log.error(
            "Process exited unexpectedly, restarting; process=%d/%d exit_code=%s "
            "restart_in=%.1fs restarts_in_window=%d",
            child.index,
            self._count,
            _describe_exit(code),
            delay,
            len(self._restarts),
        )
        return None

    def _read_port(self, child: _Child) -> None:
        reader = child.port_reader
        if reader is None or child.port is not None:
            return
        try:
            if reader.poll():
                child.port = int(reader.recv())
        except (EOFError, OSError):  # the child died before it said
            pass

    def _forget(self, child: _Child) -> None:
        if child.process is not None:
            child.process.join()
            child.process.close()
        if child.port_reader is not None:
            child.port_reader.close()
        child.process, child.port_reader, child.port = None, None, None

    async def _stop_all(self) -> int:
        """SIGTERM every running child, wait for them (their own budget plus a grace), SIGKILL
        the late ones. The exit code that sums them up."""
        running = [c for c in self._children if c.process is not None]
        for child in running:
            assert child.process is not None
            if child.process.exitcode is None:
                child.process.terminate()
        deadline = (
            self._clock() + self.settings.runtime.shutdown_timeout_seconds + STOP_GRACE_SECONDS
        )
        while self._clock() < deadline and any(
            c.process is not None and c.process.exitcode is None for c in running
        ):
            await asyncio.sleep(POLL_SECONDS)
        codes: list[int] = []
        for child in running:
            process = child.process
            assert process is not None
            if process.exitcode is None:
                log.error(
                    "Process did not stop in time, killing it; process=%d/%d",
                    child.index,
                    self._count,
                )
                process.kill()
                process.join()
                codes.append(EXIT_FAILED)
            else:
                code = process.exitcode
                # Killed by the signal that stops it before it could handle it (start-up).
                stopped_by_signal = code in (-signal.SIGTERM, -signal.SIGINT)
                codes.append(EXIT_OK if stopped_by_signal else code)
                if code not in (EXIT_OK,) and not stopped_by_signal:
                    log.error(
                        "Process stopped with exit code %s; process=%d/%d",
                        _describe_exit(code),
                        child.index,
                        self._count,
                    )
            self._forget(child)
        for fatal in (EXIT_CIRCUIT_OPEN, EXIT_CONFIG):
            if fatal in codes:
                return fatal
        return EXIT_FAILED if any(codes) else EXIT_OK

    # -- health and metrics --------------------------------------------------------------------

    async def _start_health_server(self) -> Any:
        metrics = self.settings.metrics
        if not metrics.enabled:
            return None
        from aiohttp import ClientSession, ClientTimeout, web

        session: ClientSession | None = None

        async def client() -> ClientSession:
            nonlocal session
            if session is None:
                session = ClientSession(timeout=ClientTimeout(total=CHILD_PROBE_TIMEOUT_SECONDS))
            return session

        async def probe(path: str) -> web.Response:
            ok, detail = await self._probe(await client(), path)
            return web.Response(
                status=200 if ok else 503, text=f"{'ok' if ok else 'fail'}:\n{detail}\n"
            )

        async def livez(_request: web.Request) -> web.Response:
            return await probe("/livez")

        async def readyz(_request: web.Request) -> web.Response:
            return await probe("/readyz")

        async def metrics_page(_request: web.Request) -> web.Response:
            from prometheus_client import CONTENT_TYPE_LATEST

            body = await self._metrics(await client())
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def close_client(_app: web.Application) -> None:
            if session is not None:
                await session.close()

        app = web.Application()
        app.router.add_get("/livez", livez)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics_page)
        app.on_cleanup.append(close_client)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, metrics.host, metrics.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.health_port = sockets[0].getsockname()[1] if sockets else metrics.port
        log.info("Health and metrics port open; port=%d", self.health_port)
        return runner

    async def _ask(self, session: Any, child: _Child, path: str) -> tuple[int | None, str]:
        import aiohttp

        try:
            async with session.get(f"http://127.0.0.1:{child.port}{path}") as response:
                return response.status, (await response.text()).strip()
        except (aiohttp.ClientError, TimeoutError) as error:
            return None, f"no answer ({type(error).__name__})"

    async def _probe(self, session: Any, path: str) -> tuple[bool, str]:
        """All children's answers to `path` (/livez or /readyz)."""
        ready = path == "/readyz"

        async def one(child: _Child) -> tuple[bool, str]:
            if child.process is None:  # waiting for its restart
                return not ready, "restarting"
            if child.port is None:
                return not ready, "starting"
            status, text = await self._ask(session, child, path)
            return status == 200, text

        answers = await asyncio.gather(*(one(child) for child in self._children))
        lines = [
            f"process {child.index}/{self._count}: {text}"
            for child, (_, text) in zip(self._children, answers, strict=True)
        ]
        return all(ok for ok, _ in answers), "\n".join(lines)

    async def _metrics(self, session: Any) -> bytes:
        """Every running child's /metrics, each sample labelled `process`."""
        children = [c for c in self._children if c.process is not None and c.port is not None]
        answers = await asyncio.gather(*(self._ask(session, c, "/metrics") for c in children))
        return merge_metrics(
            (str(child.index), text)
            for child, (status, text) in zip(children, answers, strict=True)
            if status == 200
        )


def merge_metrics(pages: Iterable[tuple[str, str]]) -> bytes:
    """Prometheus text pages (process label, page) as one page, every sample labelled."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    for process, text in pages:
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            for sample in family.samples:
                merged.add_sample(
                    sample.name,
                    {**sample.labels, "process": process},
                    sample.value,
                    sample.timestamp,
                    sample.exemplar,
                )

    class _Pages:
        def collect(self) -> Iterable[Metric]:
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Pages())
    return generate_latest(registry)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"{code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


def run_supervisor(
    settings: Settings,
    processes: int,
    log_level: str,
    log_format: LogFormat,
    config_path: Path | None = None,
) -> int:
    return Supervisor(settings, processes, log_level, log_format, config_path=config_path).run()
