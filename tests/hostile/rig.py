"""What the hostile-input and secrets tests share: a config writer, the worker as a subprocess,
a raw producer for header keys no Kafka client lets you write, and a tiny schema registry."""

from __future__ import annotations

import ctypes
import glob
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.kafka_helpers import Record
from tests.support.rig import WorkerRig
from tests.support.schema_registry import Registry
from tests.support.worker import BLOG_PIXEL, BLOG_TOKEN, SHOP_PIXEL, SHOP_TOKEN, merged
from tests.support.worker import write_config as support_write_config

DLQ_PREFIX = "capi.dlq."


def write_config(path: Path, *, extra: Mapping[str, Any] | None = None, **topics: Any) -> Path:
    """`tests.support.worker.write_config` (`topics`: bootstrap, graph_url, source_topic,
    dead_letter_topic, group_id) with the tokens written in the file and the circuit breaker
    off: these tests feed runs of bad records on purpose."""
    return support_write_config(
        path,
        destinations=[
            {"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": SHOP_TOKEN},
            {"name": "blog", "pixel_id": BLOG_PIXEL, "access_token": BLOG_TOKEN},
        ],
        extra=merged({"circuit_breaker": {"enabled": False}}, extra or {}),
        **topics,
    )


class HostileRig(WorkerRig):
    """`WorkerRig` with this suite's configuration defaults (`write_config` above)."""

    write_config = staticmethod(write_config)


class Worker:
    """`capi-worker run` in a subprocess; stdout and stderr kept apart, each in a file."""

    def __init__(self, config: Path, directory: Path, env: Mapping[str, str] | None = None):
        self.stdout_path = directory / "worker.stdout"
        self.stderr_path = directory / "worker.stderr"
        self._out = self.stdout_path.open("wb")
        self._err = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", "--config", str(config)],
            stdout=self._out,
            stderr=self._err,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def output(self) -> str:
        """Everything the worker wrote, stdout then stderr."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self, timeout: float = 40) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._close()

    def stop_quietly(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close()

    def _close(self) -> None:
        self._out.close()
        self._err.close()


def dlq_headers(record: Record) -> dict[str, str]:
    return {
        k: (v or b"").decode("utf-8", errors="replace")
        for k, v in record.headers
        if k.startswith(DLQ_PREFIX)
    }


def event_ids(received: dict[str, Any], pixel: str) -> set[str]:
    summary = received.get("pixels", {}).get(pixel, {})
    return {str(e["event"].get("event_id")) for e in summary.get("events", [])}


# ----------------------------------------------------------------- a raw librdkafka producer


class _VU(ctypes.Structure):
    """rd_kafka_vu_t: the type, then a union padded to 64 bytes."""

    _fields_ = [
        ("vtype", ctypes.c_int),
        ("p1", ctypes.c_void_p),
        ("p2", ctypes.c_void_p),
        ("p3", ctypes.c_void_p),
        ("pad", ctypes.c_char * 40),
    ]


_VTYPE_END, _VTYPE_TOPIC, _VTYPE_PARTITION, _VTYPE_VALUE = 0, 1, 3, 4
_VTYPE_MSGFLAGS, _VTYPE_HEADERS = 7, 10
_MSG_F_COPY = 0x2


def _librdkafka() -> ctypes.CDLL | None:
    import confluent_kafka

    package = Path(confluent_kafka.__file__).resolve().parent
    found = sorted(glob.glob(str(package.parent / "confluent_kafka.libs" / "librdkafka*.so*")))
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    void_p = ctypes.c_void_p
    lib.rd_kafka_conf_new.restype = void_p
    lib.rd_kafka_conf_set.argtypes = [
        void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_new.restype = void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_headers_new.restype = void_p
    lib.rd_kafka_headers_new.argtypes = [ctypes.c_size_t]
    lib.rd_kafka_header_add.restype = ctypes.c_int
    lib.rd_kafka_header_add.argtypes = [
        void_p,
        ctypes.c_char_p,
        ctypes.c_ssize_t,
        ctypes.c_char_p,
        ctypes.c_ssize_t,
    ]
    lib.rd_kafka_produceva.restype = void_p
    lib.rd_kafka_produceva.argtypes = [void_p, ctypes.POINTER(_VU), ctypes.c_size_t]
    lib.rd_kafka_error_string.restype = ctypes.c_char_p
    lib.rd_kafka_error_string.argtypes = [void_p]
    lib.rd_kafka_flush.restype = ctypes.c_int
    lib.rd_kafka_flush.argtypes = [void_p, ctypes.c_int]
    lib.rd_kafka_destroy.argtypes = [void_p]
    return lib


RAW_LIBRDKAFKA = _librdkafka() if sys.platform.startswith("linux") else None


def produce_raw_headers(
    bootstrap: str,
    topic: str,
    partition: int,
    value: bytes,
    headers: list[tuple[bytes, bytes | None]],
) -> None:
    """Produce one record whose header keys are arbitrary bytes, through librdkafka's C API:
    confluent-kafka's `produce` turns a non-str key into its repr, so it cannot write a key
    that is not UTF-8, which other clients can."""
    lib = RAW_LIBRDKAFKA
    assert lib is not None, "librdkafka not found next to confluent_kafka"
    error = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    for name, setting in ((b"bootstrap.servers", bootstrap.encode()), (b"acks", b"all")):
        assert lib.rd_kafka_conf_set(conf, name, setting, error, 512) == 0, error.value
    producer = lib.rd_kafka_new(0, conf, error, 512)  # 0: RD_KAFKA_PRODUCER
    assert producer, error.value
    try:
        header_list = lib.rd_kafka_headers_new(len(headers))
        for key, header_value in headers:
            size = -1 if header_value is None else len(header_value)
            assert lib.rd_kafka_header_add(header_list, key, len(key), header_value, size) == 0
        topic_name = ctypes.create_string_buffer(topic.encode())
        payload = ctypes.create_string_buffer(value, len(value))
        fields = (_VU * 6)()
        fields[0].vtype, fields[0].p1 = _VTYPE_TOPIC, ctypes.cast(topic_name, ctypes.c_void_p)
        fields[1].vtype, fields[1].p1 = _VTYPE_PARTITION, partition
        fields[2].vtype = _VTYPE_VALUE
        fields[2].p1, fields[2].p2 = ctypes.cast(payload, ctypes.c_void_p), len(value)
        fields[3].vtype, fields[3].p1 = _VTYPE_HEADERS, header_list
        fields[4].vtype, fields[4].p1 = _VTYPE_MSGFLAGS, _MSG_F_COPY
        fields[5].vtype = _VTYPE_END
        failed = lib.rd_kafka_produceva(producer, fields, 5)
        assert not failed, lib.rd_kafka_error_string(failed)
        assert lib.rd_kafka_flush(producer, 15_000) == 0, "raw produce not delivered in 15 s"
    finally:
        lib.rd_kafka_destroy(producer)


# ----------------------------------------------------------------- a tiny schema registry


@contextmanager
def schema_registry(schemas: Mapping[int, dict[str, Any]]) -> Iterator[str]:
    """A Confluent-compatible registry on a real socket (`tests.support.schema_registry`):
    GET /schemas/ids/{id}, 404 otherwise. Yields its URL."""
    with Registry(dict(schemas)) as registry:
        yield registry.url
