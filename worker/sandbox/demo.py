"""`capi-worker demo`: the whole pipeline on this machine, end to end, in well under a minute.

Starts the embedded Kafka-protocol broker and the Graph API emulator, produces realistic traffic
for two pixels (plus bad records of every kind), runs the real worker until it has drained the
topic, and prints what happened. Leaves nothing running.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.capi.match_quality import ordered_shares
from worker.config import Settings, parse_settings
from worker.sandbox.broker import EmbeddedBroker
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import start_in_thread
from worker.sandbox.sample_events import (
    bad_revenue_event,
    identify_event,
    sample_event,
    stale_event,
)
from worker.stream.runner import Worker

SOURCE_TOPIC = "events.raw"
DEAD_LETTER_TOPIC = "events.dlq"
SHOP = ("shop", "1111111111", "shop-demo-token")
BLOG = ("blog", "2222222222", "blog-demo-token")
# A destination whose token Meta no longer accepts: its events are dead-lettered, nobody else's.
LEGACY = ("legacy-shop", "3333333333", "revoked-token")
LEGACY_SOURCE = "legacy-storefront"


def demo_settings(bootstrap: str, graph_url: str) -> Settings:
    def destination(name: str, pixel: str, token: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "pixel_id": pixel, "access_token": token, **extra}

    return parse_settings(
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "group_id": "capi-worker-demo",
                "topics": [SOURCE_TOPIC],
                "dead_letter_topic": DEAD_LETTER_TOPIC,
                "consumer": {"session.timeout.ms": 6000},
                "commit_interval_ms": 500,
            },
            "graph": {"url": graph_url, "api_version": "v25.0"},
            "batching": {"max_events": 500, "linger_ms": 100},
            "metrics": {"host": "127.0.0.1", "port": 0},
            "destinations": [
                destination(*SHOP),
                destination(*BLOG, match={"event_types": ["page"]}),
                destination(*LEGACY, match={"source_ids": [LEGACY_SOURCE]}),
            ],
        },
        env={},
    )


def demo_records(events: int, now: float) -> tuple[list[bytes], Counter[str]]:
    """The traffic, and what the demo expects to happen to it (for the closing check)."""
    rng = random.Random(7)
    records: list[bytes] = []
    for index in range(events):
        event = sample_event(index, now, rng)
        if index % 150 == 0:
            event["context"]["sourceId"] = LEGACY_SOURCE
        records.append(orjson.dumps(event))
    bad = {
        "undecodable": [b'{"type": "track", "event": "Order Completed", ', b"\xff\xfe not json"],
        "stale": [orjson.dumps(stale_event(i, now)) for i in range(3)],
        "bad_revenue": [orjson.dumps(bad_revenue_event(i, now)) for i in range(3)],
        "identify": [orjson.dumps(identify_event(i, now)) for i in range(20)],
    }
    for group in bad.values():
        for record in group:
            records.insert(rng.randrange(len(records)), record)
    return records, Counter({name: len(group) for name, group in bad.items()})


def produce(bootstrap: str, records: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for index, value in enumerate(records):
        producer.produce(SOURCE_TOPIC, value=value, key=str(index % 97).encode())
        if index % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(30)
    producer.close()
    if remaining:
        raise RuntimeError(f"{remaining} demo records were not acknowledged by the broker")


async def drain_with_worker(
    settings: Settings, total: int, deadline: float, console: Console
) -> Worker:
    worker = Worker(settings)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    columns = (
        TextColumn("[bold]worker"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records  {task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("drain", total=total, detail="")
        while time.monotonic() < deadline and not running.done():
            stats = worker.stats
            detail = (
                f"delivered={sum(stats.delivered.values())} dlq={sum(stats.dead_lettered.values())}"
            )
            progress.update(task, completed=stats.consumed, detail=detail)
            if stats.consumed >= total and worker.outstanding_events == 0:
                break
            await asyncio.sleep(0.1)
        progress.update(task, completed=worker.stats.consumed)
    stop.set()
    await running
    return worker


def read_dead_letters(bootstrap: str, expected: int, timeout: float = 10.0) -> Counter[str]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "capi-worker-demo-inspect",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(DEAD_LETTER_TOPIC, 0, 0)])
    reasons: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    try:
        while sum(reasons.values()) < expected and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error():
                    continue
                headers = dict(message.headers() or [])
                reasons[
                    f"{_text(headers.get('capi.dlq.stage'))}/{_text(headers.get('capi.dlq.reason'))}"
                ] += 1
    finally:
        consumer.close()
    return reasons


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def summary_table(worker: Worker, received: dict[str, Any], dead_letters: Counter[str]) -> Table:
    stats = worker.stats
    table = Table(title="capi-worker demo", show_lines=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("records consumed", str(stats.consumed))
    for name, pixel, _ in (SHOP, BLOG, LEGACY):
        seen = received.get("pixels", {}).get(pixel, {})
        table.add_row(
            f"delivered to {name} (pixel {pixel})",
            f"{stats.delivered[name]} (emulator: {seen.get('unique_events', 0)} unique, "
            f"{seen.get('requests', 0)} requests)",
        )
    for reason, count in sorted(stats.skipped.items()):
        label = "routed to no destination (match filters)" if reason == "not_routed" else reason
        table.add_row(f"skipped: {label}", str(count))
    for reason, count in sorted(dead_letters.items()):
        table.add_row(f"dead-lettered: {reason}", str(count))
    return table


def match_quality_table(worker: Worker) -> Table:
    """Per pixel that received events, the share of them carrying each user_data key."""
    stats = worker.stats
    names = [name for name, _, _ in (SHOP, BLOG, LEGACY) if stats.delivered[name]]
    table = Table(title="match quality: delivered events carrying each user_data key")
    table.add_column("key")
    for name in names:
        table.add_column(name, justify="right")
    shares = {
        name: {
            key: share
            for key, _, share in ordered_shares(
                stats.user_data_keys.get(name, Counter()), stats.delivered[name]
            )
        }
        for name in names
    }
    every_key: Counter[str] = Counter()
    for name in names:
        every_key.update(stats.user_data_keys.get(name, Counter()))
    keys = [key for key, _, _ in ordered_shares(every_key, 1)]
    for key in keys:
        table.add_row(key, *(f"{shares[name].get(key, 0.0):.1%}" for name in names))
    return table


def run_demo(events: int = 3000, seconds: float = 50.0) -> int:
    console = Console()
    started = time.monotonic()
    deadline = started + seconds
    now = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="capi-demo-") as workdir,
        EmbeddedBroker(log_dir=Path(workdir)) as broker,
    ):
        tokens = {pixel: token for _, pixel, token in (SHOP, BLOG)}
        with start_in_thread(tokens) as emulator:
            console.print(
                f"broker {broker.bootstrap_servers} · Graph API emulator {emulator.url} · "
                f"topics {SOURCE_TOPIC} → {DEAD_LETTER_TOPIC}"
            )
            broker.create_topics({SOURCE_TOPIC: 6, DEAD_LETTER_TOPIC: 1})
            records, bad = demo_records(events, now)
            produce(broker.bootstrap_servers, records)
            console.print(f"produced {len(records)} records ({events} valid events, {dict(bad)})")
            settings = demo_settings(broker.bootstrap_servers, emulator.url)
            worker = asyncio.run(drain_with_worker(settings, len(records), deadline, console))
            expected_dead = sum(worker.stats.dead_lettered.values())
            dead_letters = read_dead_letters(broker.bootstrap_servers, expected_dead)
            received = EmulatorClient(emulator.url).received(events=False)
    console.print(summary_table(worker, received, dead_letters))
    console.print(match_quality_table(worker))
    console.print(
        "Where to look: dead-letter records are in topic "
        f"[bold]{DEAD_LETTER_TOPIC}[/] with headers capi.dlq.stage/reason/message/pixel_id; "
        "the emulator's GET /_emulator/events shows what Meta would have received."
    )
    elapsed = time.monotonic() - started
    complete = worker.stats.consumed >= len(records) and worker.outstanding_events == 0
    console.print(f"done in {elapsed:.1f}s" + ("" if complete else " [red](timed out)[/]"))
    return 0 if complete else 1
