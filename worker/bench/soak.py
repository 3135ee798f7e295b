"""Soak benchmark: the real worker on a large stream with poison records and Graph API faults.

    capi-worker bench --only soak [--events N] [--poison-ratio 0.01] [--seed S]
                      [--compression lz4|none] [--no-faults] [--max-seconds 7200] [--out FILE]
    make soak [SOAK_ARGS="--events 200000"]

What it does, each part in its own process:

1. starts the embedded Kafka-protocol broker (Tansu) and the Graph API emulator
   (`capi-worker graph-emulator`), creates the source topic (6 partitions) and a dead-letter
   topic;
2. produces N records (default 1,000,000) with one producer. A seeded share of them
   (`--poison-ratio`, 1% by default) is poison, spread evenly over four kinds: invalid JSON,
   a stale timestamp, a non-numeric revenue and a track call without an event name. Every
   record's Kafka key is its id (the valid events' `messageId` too), so the dead-letter topic
   can be checked record by record. True end offsets come from the delivery reports and are
   checked by reading each partition's tail (Tansu's ListOffsets answer is too low);
3. runs `capi-worker run` with two destinations (two pixels, both taking every event, so every
   valid record is two Graph events) and the circuit breaker disabled, while a thread injects
   seeded bursts of emulator faults: 5xx pages, throttling (codes 4, 17, 80004 with
   Retry-After 1-2 s), latency (100-800 ms) and dropped connections;
4. samples the worker's RSS every second, watches the group's committed offsets every few
   seconds and sends SIGTERM once they reach the end offsets of every partition;
5. prints a table, writes `bench/results/soak-<date>.json` and exits 1 unless the accounting
   holds.

Accounting, per pixel: every produced record is counted exactly once for each pixel, as
  * delivered: its event's unique `event_name|event_id` was accepted by the emulator for that
    pixel (`unique_events`), or
  * dead-lettered for that pixel: a dead-letter record with `capi.dlq.pixel_id` = the pixel
    (mapping failures are dead-lettered once per destination), or
  * dead-lettered before routing: a dead-letter record without a pixel (decode failures are
    dead-lettered once, for all destinations), counted for every pixel.
So for each pixel: unique_events + dead_lettered(pixel) + dead_lettered(no pixel) = produced.
The run also requires: unique_events = valid records for each pixel, the dead-lettered keys are
exactly the poison keys (each map-stage one once per pixel, each decode one once), grouped by
the expected stage/reason, the committed offsets equal the end offsets and the worker exits 0.
Duplicates (the same event accepted twice by the emulator) are reported, not failed on: the
worker promises at-least-once delivery.

Memory: the emulator keeps every event it accepts (for its duplicate counts), about 3.4 KB
each: ~7 GB for the default run. The worker's RSS is what this benchmark judges.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Consumer, KafkaError, TopicPartition
from rich.console import Console
from rich.table import Table

from worker.bench.kafka_io import CommitWatcher, Produced, Record, produce_records, tail_check
from worker.bench.machine import machine, rss_kib, uptime
from worker.bench.stack import cli_command, start_emulator, stop_process, worker_config
from worker.sandbox.broker import EmbeddedBroker
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.sample_events import iso, sample_event

SOURCE_TOPIC = "soak.events"
DEAD_LETTER_TOPIC = "soak.dlq"
PARTITIONS = 6
PIXELS = {"shop": ("1111111111", "soak-shop-token"), "blog": ("2222222222", "soak-blog-token")}
RESULTS_DIR = Path("bench") / "results"
# The emulator keeps every event it accepts (measured: ~6.6 GB for 2M events).
EMULATOR_KIB_PER_EVENT = 3.5

# Poison kind -> (stage, reason) the worker must dead-letter it with, and whether it is
# dead-lettered once per destination (map stage) or once for the record (decode stage).
POISON_KINDS: dict[str, tuple[str, str, bool]] = {
    "invalid_json": ("decode", "invalid_json", False),
    "stale_timestamp": ("map", "event_time_too_old", True),
    "non_numeric_revenue": ("map", "invalid_value", True),
    "missing_event_name": ("map", "missing_event_name", True),
}

console = Console(highlight=False)


def log(message: str) -> None:
    console.print(f"[dim]{datetime.now().strftime('%H:%M:%S')}[/] {message}")


# --------------------------------------------------------------------------- the stream


def poison_plan(events: int, ratio: float, rng: random.Random) -> dict[int, str]:
    """Which record indexes are poison and of which kind: seeded, evenly spread over kinds."""
    count = round(events * ratio)
    indexes = rng.sample(range(events), count)
    kinds = list(POISON_KINDS)
    return {index: kinds[n % len(kinds)] for n, index in enumerate(indexes)}


def record_value(
    index: int, record_id: str, kind: str | None, now: float, rng: random.Random
) -> bytes:
    event = sample_event(index, now, rng, prefix="")
    event["messageId"] = record_id
    if kind is None:
        return orjson.dumps(event)
    if kind == "invalid_json":
        return (
            f'{{"type": "track", "messageId": "{record_id}", "event": "Order Completed", '.encode()
        )
    if kind == "stale_timestamp":
        event["timestamp"] = iso(now - 9 * 86400)
    elif kind == "non_numeric_revenue":
        event.update(type="track", event="Order Completed")
        event["properties"] = {**event.get("properties", {}), "revenue": "twelve dollars"}
    elif kind == "missing_event_name":
        event["type"] = "track"
        event.pop("event", None)
        event.pop("name", None)
    return orjson.dumps(event)


@dataclass
class SoakProduced(Produced):
    poison_keys: dict[str, set[str]] = field(default_factory=dict)  # kind -> keys


def produce(bootstrap: str, events: int, ratio: float, seed: int, compression: str) -> SoakProduced:
    rng = random.Random(seed)
    plan = poison_plan(events, ratio, rng)
    now = time.time()
    result = SoakProduced(poison_keys={kind: set() for kind in POISON_KINDS})
    prefix = f"soak{seed}"

    def records() -> Iterator[Record]:
        for index in range(events):
            record_id = f"{prefix}-{index}"
            kind = plan.get(index)
            value = record_value(index, record_id, kind, now, rng)
            if kind is not None:
                result.poison_keys[kind].add(record_id)
            yield record_id.encode(), value, index % PARTITIONS

    produce_records(
        bootstrap,
        SOURCE_TOPIC,
        records(),
        compression=compression,
        into=result,
        progress=lambda index: log(f"produced {index:,} records"),
    )
    if sum(result.per_partition.values()) != events and not result.errors:
        result.errors.append(
            f"{events - sum(result.per_partition.values())} records without a delivery report"
        )
    return result


# --------------------------------------------------------------------------- processes


def soak_worker_config(bootstrap: str, graph_url: str, group: str) -> dict[str, Any]:
    config = worker_config(
        bootstrap,
        graph_url,
        group,
        SOURCE_TOPIC,
        DEAD_LETTER_TOPIC,
        PIXELS,
        circuit_breaker=False,
    )
    config["kafka"]["commit_interval_ms"] = 1000
    return config


# --------------------------------------------------------------------------- background threads


@dataclass
class Sample:
    t: float  # seconds since the worker started
    worker_kib: int | None
    emulator_kib: int | None
    broker_kib: int | None
    load1: float


class Sampler(threading.Thread):
    """RSS of the worker (and, for context, emulator and broker) plus load, every second."""

    def __init__(self, pids: dict[str, int], started: float) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pids = pids
        self.started = started
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(
                Sample(
                    t=time.monotonic() - self.started,
                    worker_kib=rss_kib(self.pids["worker"]),
                    emulator_kib=rss_kib(self.pids["emulator"]),
                    broker_kib=rss_kib(self.pids["broker"]),
                    load1=os.getloadavg()[0],
                )
            )
            self.stop.wait(1.0)


class FaultInjector(threading.Thread):
    """Seeded bursts of emulator faults: 5xx, throttling, latency, dropped connections."""

    MAX_PENDING = 6  # do not pile faults up faster than requests consume them

    def __init__(self, url: str, seed: int, pixels: list[str]) -> None:
        super().__init__(name="fault-injector", daemon=True)
        self.client = EmulatorClient(url, timeout=5)
        self.rng = random.Random(seed + 1)
        self.pixels = pixels
        self.stop = threading.Event()
        self.injected: Counter[str] = Counter()  # kind -> faulted requests queued
        self.bursts = 0
        self.errors: list[str] = []

    def fault(self) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        kind = rng.choice(("5xx", "throttle", "latency", "drop"))
        spec: dict[str, Any] = {"pixel_id": rng.choice([None, *self.pixels])}
        if kind == "5xx":
            spec.update(count=rng.randint(1, 5), status=rng.choice((500, 502, 503)))
        elif kind == "throttle":
            code = rng.choice((4, 17, 80004))
            spec.update(
                count=rng.randint(1, 3),
                status=400,
                error_code=code,
                retry_after=round(rng.uniform(1.0, 2.0), 1),
            )
            if code == 80004:
                spec["error_subcode"] = 2446079
        elif kind == "latency":
            spec.update(count=rng.randint(5, 30), latency_ms=rng.randint(100, 800))
        else:
            spec.update(count=rng.randint(1, 3), drop_connection=True)
        return kind, spec

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(2.0, 6.0)):
            try:
                if len(self.client.pending_faults()) > self.MAX_PENDING:
                    continue
                self.bursts += 1
                for _ in range(self.rng.randint(1, 3)):
                    kind, spec = self.fault()
                    self.client.inject_fault(**spec)
                    self.injected[kind] += spec["count"]
            except Exception as error:  # keep injecting; report at the end
                if len(self.errors) < 10:
                    self.errors.append(repr(error))


# --------------------------------------------------------------------------- measuring


@dataclass
class DeadLetters:
    records: int = 0
    by_stage_reason: Counter[str] = field(default_factory=Counter)
    by_pixel: Counter[str] = field(default_factory=Counter)  # "" = no pixel (decode stage)
    keys: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)


def read_dead_letters(bootstrap: str, expected: int, timeout: float = 120.0) -> DeadLetters:
    """Read the dead-letter topic dry (at least `expected` records, then EOF and a settle)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"soak-dlq-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
    )
    metadata = consumer.list_topics(DEAD_LETTER_TOPIC, timeout=10).topics[DEAD_LETTER_TOPIC]
    partitions = sorted(metadata.partitions)
    consumer.assign([TopicPartition(DEAD_LETTER_TOPIC, p, 0) for p in partitions])
    result = DeadLetters()
    dry: set[int] = set()
    last_arrival = time.monotonic()
    deadline = last_arrival + timeout
    try:
        while time.monotonic() < deadline:
            settled = time.monotonic() - last_arrival > 1.0
            if len(dry) == len(partitions) and result.records >= expected and settled:
                break
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    dry.add(int(message.partition() or 0))
                continue
            dry.discard(int(message.partition() or 0))
            last_arrival = time.monotonic()
            headers: dict[str, Any] = dict(message.headers() or [])
            stage = _text(headers.get("capi.dlq.stage"))
            reason = _text(headers.get("capi.dlq.reason"))
            pixel = _text(headers.get("capi.dlq.pixel_id"))
            result.records += 1
            result.by_stage_reason[f"{stage}/{reason}"] += 1
            result.by_pixel[pixel] += 1
            key = (message.key() or b"").decode(errors="replace")
            result.keys.setdefault((stage, reason, pixel), []).append(key)
    finally:
        consumer.close()
    return result


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def rss_at(samples: list[Sample], fraction: float, duration: float) -> int | None:
    target = duration * fraction
    usable = [s for s in samples if s.worker_kib is not None and s.t <= duration]
    if not usable:
        return None
    return min(usable, key=lambda s: abs(s.t - target)).worker_kib


def quarter_means(samples: list[Sample], duration: float) -> list[float | None]:
    """Mean worker RSS (MiB) in each quarter of the run: flat memory gives flat quarters."""
    means: list[float | None] = []
    for quarter in range(4):
        low, high = duration * quarter / 4, duration * (quarter + 1) / 4
        values = [s.worker_kib or 0 for s in samples if low <= s.t < high]
        means.append(round(sum(values) / len(values) / 1024, 1) if values else None)
    return means


def memory_check(events: int) -> None:
    """Warn when the machine may not hold the emulator's record of every accepted event."""
    available_kib = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                available_kib = int(line.split()[1])
    needed_kib = events * len(PIXELS) * EMULATOR_KIB_PER_EVENT + 1_500_000
    if available_kib and available_kib < needed_kib:
        log(
            f"[yellow]warning: the emulator keeps every accepted event (~{needed_kib / 2**20:.1f} "
            f"GiB for this run with the broker and worker), {available_kib / 2**20:.1f} GiB is "
            "available; use a smaller --events if the machine starts swapping[/]"
        )


_KEPT_FIELDS = ("status", "code", "kind", "action", "reason", "error")


def message_kind(message: str) -> str:
    """A log message without its varying values: the text before the first `key=value`,
    plus the values of a few fields that say what kind of problem it was."""
    words = message.replace(";", " ").split()
    head = " ".join(w for w in itertools.takewhile(lambda w: "=" not in w, words))
    fields = dict(w.split("=", 1) for w in words if "=" in w)
    kept = " ".join(f"{k}={fields[k]}" for k in _KEPT_FIELDS if k in fields)
    return f"{head} {kept}".strip()


def worker_log_summary(path: Path) -> dict[str, Any]:
    """Warnings and errors of the worker's log, grouped by message head, and its last line."""
    levels: Counter[str] = Counter()
    heads: Counter[str] = Counter()
    stopped = ""
    paused = 0
    with contextlib.suppress(OSError), open(path, "rb") as lines:
        for raw in lines:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                levels["unparsed"] += 1
                continue
            if not isinstance(line, dict):
                continue
            level, message = str(line.get("level")), str(line.get("message", ""))
            levels[level] += 1
            if message.startswith("Worker stopped"):
                stopped = message
            if message.startswith("Backpressure: pausing"):
                paused += 1
            if level in {"WARNING", "ERROR", "CRITICAL"}:
                heads[f"{level}: {message_kind(message)}"] += 1
    return {
        "lines_by_level": dict(levels),
        "warnings_and_errors": dict(heads.most_common(20)),
        "backpressure_pauses": paused,
        "final_line": stopped,
    }


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> int:
    date = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="capi-soak-"))
    log(f"soak: {args.events:,} records, poison ratio {args.poison_ratio}, seed {args.seed}")
    log(f"logs in {workdir}")
    memory_check(args.events)
    uptime_before = uptime()
    log(f"uptime before: {uptime_before}")
    emulator: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    with EmbeddedBroker(log_dir=workdir / "broker") as broker:
        try:
            bootstrap = broker.bootstrap_servers
            broker.create_topics({SOURCE_TOPIC: PARTITIONS, DEAD_LETTER_TOPIC: 1})
            emulator, graph_url = start_emulator(
                workdir, {pixel: token for pixel, token in PIXELS.values()}
            )
            log(
                f"broker {bootstrap} (pid {broker.pid}) · emulator {graph_url} (pid {emulator.pid})"
            )

            produced = produce(
                bootstrap, args.events, args.poison_ratio, args.seed, args.compression
            )
            if produced.errors:
                log(f"[red]produce failed: {produced.errors}[/]")
                return 1
            rate = produced.records / produced.seconds
            log(
                f"produced {produced.records:,} records ({produced.bytes / 1e6:.0f} MB, "
                f"{args.compression}) in {produced.seconds:.1f}s ({rate:,.0f} records/s)"
            )
            true_ends = tail_check(bootstrap, SOURCE_TOPIC, PARTITIONS, produced.ends)
            if true_ends != produced.ends:
                log(f"[red]end offsets: delivery reports {produced.ends}, read {true_ends}[/]")
                return 1

            group = f"capi-worker-soak-{uuid.uuid4().hex[:8]}"
            config_path = workdir / "worker.yaml"
            config_path.write_text(yaml.safe_dump(soak_worker_config(bootstrap, graph_url, group)))
            worker_log = open(workdir / "worker.log", "wb")  # noqa: SIM115 (child's stderr)
            started = time.monotonic()
            worker = subprocess.Popen(
                [*cli_command(), "run", "--config", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
            assert broker.pid is not None
            pids = {"worker": worker.pid, "emulator": emulator.pid, "broker": broker.pid}
            sampler = Sampler(pids, started)
            sampler.start()
            injector = FaultInjector(graph_url, args.seed, [p for p, _ in PIXELS.values()])
            if not args.no_faults:
                injector.start()

            watcher = CommitWatcher(bootstrap, group, SOURCE_TOPIC, PARTITIONS)
            offsets: dict[int, int] = {}
            reached = False
            last_report = 0.0
            stuck_since: tuple[int, float] = (-1, time.monotonic())
            while True:
                time.sleep(args.check_seconds)
                elapsed = time.monotonic() - started
                if worker.poll() is not None:
                    log(f"[red]the worker exited on its own with code {worker.returncode}[/]")
                    break
                offsets = watcher.committed()
                done = sum(max(offsets.get(p, 0), 0) for p in range(PARTITIONS))
                if done != stuck_since[0]:
                    stuck_since = (done, time.monotonic())
                if all(offsets.get(p, -1) >= end for p, end in true_ends.items()):
                    reached = True
                    break
                if elapsed - last_report >= 15:
                    last_report = elapsed
                    last = sampler.samples[-1] if sampler.samples else None
                    rss = (last.worker_kib or 0) if last else 0
                    emulator_rss = (last.emulator_kib or 0) if last else 0
                    log(
                        f"{elapsed:6.0f}s committed {done:,}/{produced.records:,} "
                        f"({done / elapsed:,.0f} records/s) RSS worker {rss / 1024:.0f} MiB "
                        f"emulator {emulator_rss / 1024:.0f} MiB, load "
                        f"{os.getloadavg()[0]:.2f}, faulted requests queued "
                        f"{sum(injector.injected.values())}"
                    )
                if elapsed > args.max_seconds:
                    log(f"[red]gave up after {elapsed:.0f}s: committed offsets {offsets}[/]")
                    break
            drained_seconds = time.monotonic() - started
            injector.stop.set()
            with contextlib.suppress(Exception):
                EmulatorClient(graph_url).clear_faults()
            log(
                f"committed offsets reached the end offsets after {drained_seconds:.1f}s"
                if reached
                else "[red]committed offsets did not reach the end offsets[/]"
            )
            stop_started = time.monotonic()
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            try:
                exit_code = worker.wait(60)
            except subprocess.TimeoutExpired:
                log("[red]the worker did not exit within 60 s of SIGTERM; killing it[/]")
                worker.kill()
                exit_code = worker.wait()
            stop_seconds = time.monotonic() - stop_started
            sampler.stop.set()
            sampler.join()
            if injector.is_alive():  # never started with --no-faults
                injector.join(timeout=10)
            worker_log.close()
            final_offsets = watcher.committed()
            watcher.close()

            received = EmulatorClient(graph_url, timeout=120).received(events=False)["pixels"]
            poison_total = sum(len(keys) for keys in produced.poison_keys.values())
            expected_dlq = sum(
                len(produced.poison_keys[kind]) * (len(PIXELS) if per_pixel else 1)
                for kind, (_, _, per_pixel) in POISON_KINDS.items()
            )
            dead = read_dead_letters(bootstrap, expected_dlq)
            report = build_report(
                args=args,
                date=date,
                produced=produced,
                true_ends=true_ends,
                final_offsets=final_offsets,
                received=received,
                dead=dead,
                poison_total=poison_total,
                sampler=sampler,
                injector=injector,
                drained_seconds=drained_seconds,
                stop_seconds=stop_seconds,
                exit_code=exit_code,
                reached=reached,
                worker_log=worker_log_summary(workdir / "worker.log"),
                uptime_before=uptime_before,
                workdir=workdir,
            )
        finally:
            if worker is not None and worker.poll() is None:
                stop_process(worker, "worker", log=log)
            if emulator is not None:
                # It holds every accepted event (gigabytes): freeing them takes a while.
                stop_process(emulator, "emulator", timeout=60, log=log)
    report["uptime_after"] = uptime()
    log(f"uptime after: {report['uptime_after']}")
    print_report(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = args.output or RESULTS_DIR / f"soak-{date.strftime('%Y%m%d-%H%M%S')}.json"
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    log(f"results written to {path}")
    ok = bool(report["accounting_holds"])
    if ok and not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log(f"logs kept in {workdir}")
    return 0 if ok else 1


def build_report(
    *,
    args: argparse.Namespace,
    date: datetime,
    produced: SoakProduced,
    true_ends: dict[int, int],
    final_offsets: dict[int, int],
    received: dict[str, Any],
    dead: DeadLetters,
    poison_total: int,
    sampler: Sampler,
    injector: FaultInjector,
    drained_seconds: float,
    stop_seconds: float,
    exit_code: int,
    reached: bool,
    worker_log: dict[str, Any],
    uptime_before: str,
    workdir: Path,
) -> dict[str, Any]:
    valid_records = produced.records - poison_total
    failures: list[str] = []

    # Dead letters: exactly the poison, by stage/reason and record by record.
    expected_by_reason: Counter[str] = Counter()
    for kind, (stage, reason, per_pixel) in POISON_KINDS.items():
        expected_by_reason[f"{stage}/{reason}"] += len(produced.poison_keys[kind]) * (
            len(PIXELS) if per_pixel else 1
        )
    if dead.by_stage_reason != expected_by_reason:
        failures.append(
            f"dead letters by stage/reason {dict(dead.by_stage_reason)} "
            f"!= expected {dict(expected_by_reason)}"
        )
    for kind, (stage, reason, per_pixel) in POISON_KINDS.items():
        for pixel in [p for p, _ in PIXELS.values()] if per_pixel else [""]:
            keys = dead.keys.get((stage, reason, pixel), [])
            if len(keys) != len(set(keys)) or set(keys) != produced.poison_keys[kind]:
                extra = len(set(keys) - produced.poison_keys[kind])
                missing = len(produced.poison_keys[kind] - set(keys))
                failures.append(
                    f"{kind} for pixel {pixel or '-'}: {len(keys)} dead letters, "
                    f"{extra} unexpected keys, {missing} missing, "
                    f"{len(keys) - len(set(keys))} repeated"
                )
    unexpected = set(dead.keys) - {
        (stage, reason, pixel)
        for stage, reason, per_pixel in POISON_KINDS.values()
        for pixel in ([p for p, _ in PIXELS.values()] if per_pixel else [""])
    }
    if unexpected:
        failures.append(f"unexpected dead letters: {sorted(unexpected)}")

    # Per pixel: unique delivered + dead-lettered for it + dead-lettered before routing.
    pixels: dict[str, Any] = {}
    for name, (pixel, _) in PIXELS.items():
        seen = received.get(pixel, {})
        unique = int(seen.get("unique_events", 0))
        duplicate_counts = seen.get("duplicates", {})
        dlq_pixel = dead.by_pixel.get(pixel, 0)
        dlq_unrouted = dead.by_pixel.get("", 0)
        total = unique + dlq_pixel + dlq_unrouted
        pixels[name] = {
            "pixel_id": pixel,
            "delivered_unique": unique,
            "events_received": int(seen.get("events_received", 0)),
            "duplicate_event_ids": len(duplicate_counts),
            "duplicates_sent": sum(count - 1 for count in duplicate_counts.values()),
            "requests": seen.get("requests", 0),
            "faulted_requests": seen.get("faulted_requests", 0),
            "rejected_requests": seen.get("rejected_requests", 0),
            "dead_lettered_for_pixel": dlq_pixel,
            "dead_lettered_before_routing": dlq_unrouted,
            "accounted": total,
            "accounting_holds": total == produced.records and unique == valid_records,
        }
        if unique != valid_records:
            failures.append(
                f"{name}: delivered unique {unique:,} != valid records {valid_records:,}"
            )
        if total != produced.records:
            failures.append(f"{name}: accounted {total:,} != produced {produced.records:,}")

    partitions = {
        str(p): {"end": end, "committed": final_offsets.get(p)}
        for p, end in sorted(true_ends.items())
    }
    if not reached or any(final_offsets.get(p) != end for p, end in true_ends.items()):
        failures.append("final committed offsets differ from the end offsets")
    if exit_code != 0:
        failures.append(f"the worker exited with code {exit_code} after SIGTERM")

    samples = [s for s in sampler.samples if s.worker_kib is not None]
    rss = {
        "peak_mib": round(max((s.worker_kib or 0) for s in samples) / 1024, 1) if samples else None,
        **{
            f"at_{int(f * 100)}pct_mib": round((rss_at(samples, f, drained_seconds) or 0) / 1024, 1)
            for f in (0.1, 0.5, 0.9)
        },
        "emulator_peak_mib": round(max((s.emulator_kib or 0) for s in sampler.samples) / 1024, 1)
        if sampler.samples
        else None,
        "broker_peak_mib": round(max((s.broker_kib or 0) for s in sampler.samples) / 1024, 1)
        if sampler.samples
        else None,
        "mean_mib_by_quarter": quarter_means(samples, drained_seconds),
        "samples": len(samples),
        "series_mib": [
            [round(s.t, 1), round((s.worker_kib or 0) / 1024, 1)]
            for s in samples[:: max(1, len(samples) // 120)]
        ],
    }
    loads = [s.load1 for s in sampler.samples]
    delivered_events = sum(p["delivered_unique"] for p in pixels.values())
    return {
        "date": date.isoformat(timespec="seconds"),
        "command": " ".join(["capi-worker", *sys.argv[1:]]),
        "machine": machine(),
        "uptime_before": uptime_before,
        "load1_during_run": {
            "mean": round(sum(loads) / len(loads), 2) if loads else None,
            "max": round(max(loads), 2) if loads else None,
        },
        "settings": {
            "events": args.events,
            "poison_ratio": args.poison_ratio,
            "seed": args.seed,
            "partitions": PARTITIONS,
            "destinations": len(PIXELS),
            "compression": args.compression,
            "faults": not args.no_faults,
        },
        "produced_records": produced.records,
        "produced_mb": round(produced.bytes / 1e6, 1),
        "produce_seconds": round(produced.seconds, 1),
        "valid_records": valid_records,
        "valid_events": valid_records * len(PIXELS),
        "poison_records": poison_total,
        "poison_by_kind": {kind: len(keys) for kind, keys in produced.poison_keys.items()},
        "dead_lettered": dead.records,
        "dead_lettered_expected": sum(expected_by_reason.values()),
        "dead_lettered_by_stage_reason": dict(sorted(dead.by_stage_reason.items())),
        "pixels": pixels,
        "duplicates_sent": sum(p["duplicates_sent"] for p in pixels.values()),
        "faults_injected": {
            "bursts": injector.bursts,
            "faulted_requests_queued_by_kind": dict(injector.injected),
            "injector_errors": injector.errors,
        },
        "rss": rss,
        "wall_seconds": round(drained_seconds, 1),
        "sigterm_to_exit_seconds": round(stop_seconds, 1),
        "records_per_second": round(produced.records / drained_seconds, 1),
        "events_per_second": round(delivered_events / drained_seconds, 1),
        "offsets": partitions,
        "worker_exit_code": exit_code,
        "worker_log": worker_log,
        "log_dir": str(workdir),
        "failures": failures,
        "accounting_holds": not failures,
    }


def print_report(report: dict[str, Any]) -> None:
    table = Table(title=f"capi-worker soak, {report['date']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("produced records", f"{report['produced_records']:,}")
    table.add_row(
        "valid records / events (x2 pixels)",
        f"{report['valid_records']:,} / {report['valid_events']:,}",
    )
    table.add_row("poison records", f"{report['poison_records']:,} {report['poison_by_kind']}")
    for name, pixel in report["pixels"].items():
        table.add_row(
            f"{name} ({pixel['pixel_id']}): delivered unique",
            f"{pixel['delivered_unique']:,} ({pixel['requests']:,} requests, "
            f"{pixel['faulted_requests']:,} faulted)",
        )
        table.add_row(
            f"{name}: unique + DLQ(pixel) + DLQ(no pixel) = produced?",
            f"{pixel['delivered_unique']:,} + {pixel['dead_lettered_for_pixel']:,} + "
            f"{pixel['dead_lettered_before_routing']:,} = {pixel['accounted']:,} "
            + ("[green]yes[/]" if pixel["accounting_holds"] else "[red]NO[/]"),
        )
    table.add_row("duplicates sent", f"{report['duplicates_sent']:,}")
    table.add_row(
        "dead-lettered (expected)",
        f"{report['dead_lettered']:,} ({report['dead_lettered_expected']:,})",
    )
    for reason, count in report["dead_lettered_by_stage_reason"].items():
        table.add_row(f"  {reason}", f"{count:,}")
    rss = report["rss"]
    table.add_row(
        "worker RSS peak / 10% / 50% / 90%",
        f"{rss['peak_mib']} / {rss['at_10pct_mib']} / {rss['at_50pct_mib']} / "
        f"{rss['at_90pct_mib']} MiB",
    )
    table.add_row(
        "emulator / broker RSS peak", f"{rss['emulator_peak_mib']} / {rss['broker_peak_mib']} MiB"
    )
    table.add_row("faults", f"{report['faults_injected']['faulted_requests_queued_by_kind']}")
    table.add_row("wall time (worker start -> all committed)", f"{report['wall_seconds']} s")
    table.add_row(
        "throughput",
        f"{report['records_per_second']:,.0f} records/s, "
        f"{report['events_per_second']:,.0f} events/s",
    )
    table.add_row(
        "SIGTERM -> exit",
        f"{report['sigterm_to_exit_seconds']} s (code {report['worker_exit_code']})",
    )
    for partition, offsets in report["offsets"].items():
        table.add_row(
            f"partition {partition}: committed / end", f"{offsets['committed']} / {offsets['end']}"
        )
    table.add_row("load average (1 min) mean / max", f"{report['load1_during_run']}")
    console.print(table)
    if report["failures"]:
        for failure in report["failures"]:
            console.print(f"[red]FAIL[/] {failure}")
    else:
        console.print("[green]accounting holds[/]")
