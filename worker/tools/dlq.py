"""`capi-worker dlq inspect|stats|redrive`: look into the dead-letter topic and send records again.

- `inspect` lists dead letters (a table, or JSON lines with every header, the key and the value).
- `stats` counts them by (stage, reason) and by pixel.
- `redrive --to source` re-publishes each record to the topic it came from: key and value byte
  for byte, its own headers without `capi.dlq.*`, plus `capi.redrive.count` (refused past
  `--max-redrives`, so a record that keeps failing cannot loop forever) and, when it was
  dead-lettered for one destination of a fan-out, `capi.redrive.only_destination` so that the
  worker sends it to that destination only.
- `redrive --to pixel` maps the record with the current configuration and delivers it straight
  to its pixel; what fails again is reported, not dead-lettered again.

Nothing is ever deleted from the dead-letter topic (Kafka cannot delete single records). All
commands read with `assign()`: no consumer group is joined and no offset is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from worker.config import DestinationSettings, Settings
from worker.destination_set import DestinationSet
from worker.pipeline import REDRIVE_ONLY_DESTINATION_HEADER
from worker.tools.dlq_reader import (
    REDRIVE_COUNT_HEADER,
    DeadLetter,
    DeadLetterFilter,
    DeadLetterReader,
    DeadLetterReadError,
    Header,
    format_time,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_MAX_REDRIVES = 3
MESSAGE_WIDTH = 72


# ---------------------------------------------------------------------------- entry point


def run_dlq_command(settings: Settings, args: argparse.Namespace) -> int:
    """Dispatch `capi-worker dlq <action>`; returns the exit code."""
    try:
        flt = build_filter(args, time.time())
    except ValueError as error:
        print(f"capi-worker dlq: {error}", file=sys.stderr)
        return EXIT_USAGE
    limit: int | None = args.limit
    if limit is not None and limit < 1:
        print("capi-worker dlq: --limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    reader = DeadLetterReader(settings)
    out = sys.stdout
    try:
        if args.dlq_command == "inspect":
            return inspect(reader, flt, limit, args.format, out)
        if args.dlq_command == "stats":
            return stats(reader, flt, limit, args.format, out)
        if args.max_redrives < 1:
            print("capi-worker dlq: --max-redrives must be at least 1", file=sys.stderr)
            return EXIT_USAGE
        records = collect(reader, flt, limit)
        if args.to == "pixel":
            return redrive_to_pixel(settings, records, reader.topic, args.dry_run, out)
        return redrive_to_source(
            settings, records, reader.topic, args.max_redrives, args.dry_run, out
        )
    except DeadLetterReadError as error:
        print(f"capi-worker dlq: {error}", file=sys.stderr)
        return EXIT_FAILED


def build_filter(args: argparse.Namespace, now: float) -> DeadLetterFilter:
    from worker.tools.timeparse import parse_time

    since = None if args.since is None else parse_time(args.since, now)
    until = None if args.until is None else parse_time(args.until, now)
    if since is not None and until is not None and until < since:
        raise ValueError("--until is before --since")
    return DeadLetterFilter(
        reasons=_names(args.reason),
        stages=_names(args.stage),
        pixels=_names(args.pixel),
        since=since,
        until=until,
    )


def _names(values: Sequence[str] | None) -> frozenset[str]:
    """Repeatable flags; each may also hold a comma-separated list."""
    return frozenset(
        part.strip() for value in values or [] for part in value.split(",") if part.strip()
    )


# ---------------------------------------------------------------------------- reading


@contextmanager
def _progress(topic: str) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal (large topics take a while)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    with RichProgress(
        TextColumn(f"reading {topic}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("read", total=None)

        def update(done: int, estimate: int | None) -> None:
            total = None if estimate is None else max(estimate, done)
            bar.update(task, completed=done, total=total)

        yield update


def scan(
    reader: DeadLetterReader, flt: DeadLetterFilter, limit: int | None
) -> Iterator[DeadLetter]:
    with _progress(reader.topic) as update:
        yield from reader.read(flt.matches, limit, update)


def collect(reader: DeadLetterReader, flt: DeadLetterFilter, limit: int | None) -> list[DeadLetter]:
    return list(scan(reader, flt, limit))


# ---------------------------------------------------------------------------- inspect


def _text(data: bytes | None) -> tuple[str | None, str | None]:
    """(text, encoding): UTF-8 text when it is, else base64; (None, None) for null."""
    if data is None:
        return None, None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def record_json(record: DeadLetter) -> dict[str, Any]:
    """One dead letter as a JSON object: the capi.dlq.* fields, then key, value and headers."""
    key, key_encoding = _text(record.key)
    value, value_encoding = _text(record.value)
    headers = []
    for name, raw in record.headers:
        text, encoding = _text(raw)
        headers.append({"name": name, "value": text, "encoding": encoding})
    moment = record.time
    return {
        "dlq_topic": record.topic,
        "dlq_partition": record.partition,
        "dlq_offset": record.offset,
        "time": format_time(moment) if moment is not None else None,
        "time_epoch": moment,
        "stage": record.stage,
        "reason": record.reason,
        "message": record.message,
        "destination": record.destination,
        "pixel_id": record.pixel_id,
        "graph_code": record.dlq_int("graph_code"),
        "graph_subcode": record.dlq_int("graph_subcode"),
        "fbtrace_id": record.dlq("fbtrace_id"),
        "source_topic": record.source_topic,
        "source_partition": record.source_partition,
        "source_offset": record.source_offset,
        "attempts": record.attempts,
        "timestamp_ms": record.timestamp_ms,
        "key": key,
        "key_encoding": key_encoding,
        "value": value,
        "value_encoding": value_encoding,
        "headers": headers,
    }


def _short(text: str | None, width: int = MESSAGE_WIDTH) -> str:
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _pixel_label(record: DeadLetter) -> str:
    if record.pixel_id and record.destination:
        return f"{record.pixel_id} ({record.destination})"
    return record.pixel_id or record.destination or "-"


def _write_json(out: IO[str], row: dict[str, Any]) -> None:
    out.write(orjson.dumps(row).decode() + "\n")


def _console(out: IO[str]) -> Console:
    return Console(file=out, highlight=False, soft_wrap=False)


def inspect(
    reader: DeadLetterReader,
    flt: DeadLetterFilter,
    limit: int | None,
    fmt: str,
    out: IO[str],
) -> int:
    if fmt == "jsonl":
        for record in scan(reader, flt, limit):
            _write_json(out, record_json(record))
        out.flush()
        return EXIT_OK
    table = Table(title=None, show_lines=False)
    for column in ("time", "stage", "reason", "pixel", "source", "attempts", "message"):
        table.add_column(column, overflow="fold" if column == "message" else "ellipsis")
    count = 0
    for record in scan(reader, flt, limit):
        count += 1
        attempts = record.attempts
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    format_time(record.time),
                    record.stage or "-",
                    record.reason or "-",
                    _pixel_label(record),
                    record.source_position(),
                    "-" if attempts is None else str(attempts),
                    _short(record.message),
                )
            )
        )
    console = _console(out)
    if count:
        console.print(table)
    console.print(Text(f"{count} dead letter(s) shown, {reader.scanned} read from {reader.topic}"))
    return EXIT_OK


# ---------------------------------------------------------------------------- stats


@dataclass(slots=True)
class _Group:
    count: int = 0
    first: float | None = None
    last: float | None = None

    def add(self, moment: float | None) -> None:
        self.count += 1
        if moment is not None:
            self.first = moment if self.first is None else min(self.first, moment)
            self.last = moment if self.last is None else max(self.last, moment)


def stats(
    reader: DeadLetterReader,
    flt: DeadLetterFilter,
    limit: int | None,
    fmt: str,
    out: IO[str],
) -> int:
    by_reason: dict[tuple[str, str], _Group] = {}
    by_pixel: dict[tuple[str, str], _Group] = {}
    total = 0
    for record in scan(reader, flt, limit):
        total += 1
        moment = record.time
        reason_key = (record.stage or "-", record.reason or "-")
        by_reason.setdefault(reason_key, _Group()).add(moment)
        pixel_key = (record.pixel_id or "-", record.destination or "-")
        by_pixel.setdefault(pixel_key, _Group()).add(moment)
    reasons = sorted(by_reason.items(), key=lambda item: (-item[1].count, item[0]))
    pixels = sorted(by_pixel.items(), key=lambda item: (-item[1].count, item[0]))
    if fmt == "jsonl":
        for (stage, reason), group in reasons:
            _write_json(
                out,
                {
                    "by": "reason",
                    "stage": stage,
                    "reason": reason,
                    "count": group.count,
                    "first": format_time(group.first),
                    "last": format_time(group.last),
                },
            )
        for (pixel_id, destination), group in pixels:
            _write_json(
                out,
                {
                    "by": "pixel",
                    "pixel_id": None if pixel_id == "-" else pixel_id,
                    "destination": None if destination == "-" else destination,
                    "count": group.count,
                },
            )
        _write_json(out, {"by": "total", "count": total, "read": reader.scanned})
        out.flush()
        return EXIT_OK
    console = _console(out)
    reason_table = Table(title="by stage and reason")
    for column in ("stage", "reason", "count", "first", "last"):
        reason_table.add_column(column, justify="right" if column == "count" else "left")
    for (stage, reason), group in reasons:
        reason_table.add_row(
            *(
                Text(cell)
                for cell in (
                    stage,
                    reason,
                    str(group.count),
                    format_time(group.first),
                    format_time(group.last),
                )
            )
        )
    pixel_table = Table(title="by pixel")
    for column in ("pixel_id", "destination", "count"):
        pixel_table.add_column(column, justify="right" if column == "count" else "left")
    for (pixel_id, destination), group in pixels:
        pixel_table.add_row(Text(pixel_id), Text(destination), Text(str(group.count)))
    if total:
        console.print(reason_table)
        console.print(pixel_table)
    console.print(
        Text(f"{total} dead letter(s) counted, {reader.scanned} read from {reader.topic}")
    )
    return EXIT_OK


# ---------------------------------------------------------------------------- redrive: source


@dataclass(slots=True)
class SourcePlan:
    """What `redrive --to source` does with one dead letter."""

    record: DeadLetter
    topic: str | None
    headers: list[Header]
    count: int
    only_destination: str | None
    refused: str | None = None  # refused by --max-redrives
    error: str | None = None  # cannot be redriven at all
    result: str | None = None  # after publishing: "topic[partition]@offset"


def previous_redrives(record: DeadLetter) -> int | None:
    """`capi.redrive.count` of the original record (0 when absent, None when unreadable)."""
    raw = record.original_header(REDRIVE_COUNT_HEADER)
    if raw is None:
        return 0
    try:
        count = int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return count if count >= 0 else None


def redrive_headers(record: DeadLetter, count: int, only_destination: str | None) -> list[Header]:
    """The original headers without `capi.dlq.*`, with the redrive headers set anew."""
    ours = {REDRIVE_COUNT_HEADER, REDRIVE_ONLY_DESTINATION_HEADER}
    headers = [(k, v) for k, v in record.original_headers() if k not in ours]
    headers.append((REDRIVE_COUNT_HEADER, str(count).encode()))
    if only_destination is not None:
        headers.append((REDRIVE_ONLY_DESTINATION_HEADER, only_destination.encode()))
    return headers


def plan_source_redrive(
    record: DeadLetter, destinations: Sequence[DestinationSettings], max_redrives: int
) -> SourcePlan:
    previous = previous_redrives(record)
    count = (previous or 0) + 1
    # Dead-lettered for one destination: that one only. Dead-lettered at decode (no
    # destination) after an earlier redrive for one destination: still that one only.
    only = record.destination
    if only is None:
        earlier = record.original_header(REDRIVE_ONLY_DESTINATION_HEADER)
        only = earlier.decode("utf-8", errors="replace") if earlier is not None else None
    plan = SourcePlan(
        record=record,
        topic=record.source_topic,
        headers=redrive_headers(record, count, only),
        count=count,
        only_destination=only,
    )
    if previous is None:
        plan.refused = f"unreadable {REDRIVE_COUNT_HEADER} header; not redriven"
    elif count > max_redrives:
        plan.refused = (
            f"already redriven {previous} time(s); one more would pass --max-redrives "
            f"{max_redrives}"
        )
    elif not plan.topic:
        plan.error = "no capi.dlq.source_topic header: the source topic is unknown"
    elif only is not None and only not in {d.name for d in destinations}:
        plan.error = (
            f"destination {only!r} is not in this configuration: the worker would skip the "
            "record (add the destination back, or pass the configuration that has it)"
        )
    return plan


def redrive_to_source(
    settings: Settings,
    records: Sequence[DeadLetter],
    dlq_topic: str,
    max_redrives: int,
    dry_run: bool,
    out: IO[str],
) -> int:
    plans = [plan_source_redrive(r, settings.destinations, max_redrives) for r in records]
    ready = [p for p in plans if p.refused is None and p.error is None]
    unknown_topics = sorted(
        {p.topic for p in ready if p.topic and p.topic not in settings.kafka.topics}
    )
    if unknown_topics:
        print(
            "capi-worker dlq: warning: not among kafka.topics of this configuration: "
            + ", ".join(unknown_topics),
            file=sys.stderr,
        )
    if not dry_run and ready:
        _publish(settings, ready)
    console = _console(out)
    for plan in plans:
        console.print(Text(_source_line(plan, dry_run)))
    redriven = sum(1 for p in ready if p.error is None)
    refused = sum(1 for p in plans if p.refused is not None)
    failed = sum(1 for p in plans if p.error is not None)
    verb = "would be redriven" if dry_run else "redriven"
    console.print(
        Text(
            f"{len(plans)} dead letter(s) matched: {redriven} {verb} to their source topic, "
            f"{refused} refused by --max-redrives {max_redrives}, {failed} failed"
        )
    )
    if dry_run:
        console.print(Text("dry run: nothing was written"))
    elif redriven:
        console.print(
            Text(
                f"The dead letters stay in {dlq_topic} (Kafka cannot delete single records); "
                "redriven copies carry capi.redrive.count."
            )
        )
    return EXIT_FAILED if failed else EXIT_OK


def _source_line(plan: SourcePlan, dry_run: bool) -> str:
    record = plan.record
    what = f"{record.position()} {record.stage or '-'}/{record.reason or '-'}"
    if plan.refused is not None:
        return f"refused   {what}: {plan.refused}"
    if plan.error is not None:
        return f"failed    {what}: {plan.error}"
    only = f" only_destination={plan.only_destination}" if plan.only_destination else ""
    target = plan.result or plan.topic
    status = "would redrive " if dry_run else "redriven  "
    return f"{status}{what} -> {target} redrive_count={plan.count}{only}"


def _publish(settings: Settings, plans: Sequence[SourcePlan]) -> None:
    """Produce every plan, wait for the acknowledgements; failures land in `plan.error`."""
    from confluent_kafka import KafkaError, Message, Producer

    from worker.kafka_config import producer_config

    producer = Producer({"acks": "all", "linger.ms": 20, **producer_config(settings)})

    def acknowledged(plan: SourcePlan) -> Any:
        def callback(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                plan.error = f"publishing to {plan.topic} failed: {error.str()}"
            else:
                plan.result = f"{message.topic()}[{message.partition()}]@{message.offset()}"

        return callback

    pending: list[SourcePlan] = []
    for plan in plans:
        assert plan.topic is not None
        headers: list[tuple[str, str | bytes | None]] = list(plan.headers)
        while True:
            try:
                producer.produce(
                    plan.topic,
                    key=plan.record.key,
                    value=plan.record.value,
                    headers=headers,
                    on_delivery=acknowledged(plan),
                )
                pending.append(plan)
                break
            except BufferError:
                producer.poll(0.5)
            except Exception as error:  # KafkaException: unknown topic, record too large...
                plan.error = f"publishing to {plan.topic} failed: {error}"
                break
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        for plan in pending:
            if plan.result is None and plan.error is None:
                plan.error = "not acknowledged by the broker within 60s (it may still arrive)"


# ---------------------------------------------------------------------------- redrive: pixel


@dataclass(slots=True)
class _Target:
    """One (dead letter, destination) pair of `redrive --to pixel`."""

    destination: str
    pixel_id: str | None
    status: str  # deliver | delivered | failed | skipped
    detail: str = ""
    event: dict[str, Any] | None = None
    test_event_code: str | None = None  # the event's own (batched apart)


@dataclass(slots=True)
class _PixelPlan:
    record: DeadLetter
    targets: list[_Target] = field(default_factory=list)

    def outcome(self) -> str:
        statuses = {t.status for t in self.targets}
        if "failed" in statuses or not self.targets:
            return "failed"
        if statuses == {"skipped"}:
            return "skipped"
        return "redriven"


def plan_pixel_redrive(
    record: DeadLetter,
    settings: Settings,
    decoder: Any,
    now: float,
    destination_set: DestinationSet | None = None,
) -> _PixelPlan:
    """Decode and map `record` with the current configuration, for its destination only (or
    every routed destination when it was dead-lettered before routing, at decode)."""
    from worker.mapping.result import Invalid, Mapped, Skipped
    from worker.pipeline import decode_record, map_for_destinations

    plan = _PixelPlan(record)
    destinations = destination_set or DestinationSet.from_settings(settings)
    wanted = record.destination
    if wanted is not None and destinations.get(wanted) is None:
        plan.targets.append(
            _Target(wanted, record.pixel_id, "failed", "destination is not in this configuration")
        )
        return plan
    decoded = decode_record(decoder, record.value)
    if isinstance(decoded, Invalid):
        name = wanted or "(every destination)"
        detail = f"decode/{decoded.reason}: {decoded.message}"
        plan.targets.append(_Target(name, record.pixel_id, "failed", detail))
        return plan
    headers: Any = record.original_headers()
    results = map_for_destinations(decoded, headers, destinations, now)
    for destination, result in zip(destinations, results, strict=True):
        if wanted is not None and destination.name != wanted:
            continue
        target = _Target(destination.name, destination.pixel_id, "deliver")
        if isinstance(result, Mapped):
            target.event = result.event
            target.test_event_code = result.test_event_code
        elif isinstance(result, Skipped):
            target.status, target.detail = "skipped", result.reason
        else:
            target.status = "failed"
            target.detail = f"{result.stage}/{result.reason}: {result.message}"
        plan.targets.append(target)
    return plan


async def _deliver(settings: Settings, plans: Sequence[_PixelPlan]) -> None:
    import aiohttp

    from worker.capi.delivery import GraphDelivery

    by_destination: dict[tuple[str, str | None], list[_Target]] = {}
    for plan in plans:
        for target in plan.targets:
            if target.status == "deliver":
                key = (target.destination, target.test_event_code)
                by_destination.setdefault(key, []).append(target)
    destinations = {d.name: d for d in settings.destinations}
    chunk = settings.batching.max_events
    timeout = aiohttp.ClientTimeout(total=settings.graph.timeout_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        delivery = GraphDelivery(settings.graph, session)
        for (name, test_event_code), targets in by_destination.items():
            destination = destinations[name]
            for start in range(0, len(targets), chunk):
                part = targets[start : start + chunk]
                events = [t.event for t in part if t.event is not None]
                report = await delivery.deliver(destination, events, test_event_code)
                failed = {failure.index: failure for failure in report.failures}
                for index, target in enumerate(part):
                    failure = failed.get(index)
                    if failure is None:
                        target.status = "delivered"
                    else:
                        target.status = "failed"
                        target.detail = f"deliver/{failure.reason}: {failure.message}"


def redrive_to_pixel(
    settings: Settings,
    records: Sequence[DeadLetter],
    dlq_topic: str,
    dry_run: bool,
    out: IO[str],
) -> int:
    from worker.decode import build_decoder

    decoder = build_decoder(settings.decoding)
    now = time.time()
    destinations = DestinationSet.from_settings(settings)
    plans = [plan_pixel_redrive(record, settings, decoder, now, destinations) for record in records]
    if not dry_run:
        asyncio.run(_deliver(settings, plans))
    console = _console(out)
    for plan in plans:
        for target in plan.targets:
            console.print(Text(_pixel_line(plan.record, target, dry_run)))
    outcomes = Counter(plan.outcome() for plan in plans)
    verb = "would be delivered" if dry_run else "redriven"
    console.print(
        Text(
            f"{len(plans)} dead letter(s) matched: {outcomes['redriven']} {verb} to their "
            f"pixel, {outcomes['skipped']} skipped, 0 refused (--max-redrives applies to "
            f"--to source only), {outcomes['failed']} failed"
        )
    )
    if dry_run:
        console.print(Text("dry run: nothing was sent"))
    else:
        if outcomes["failed"]:
            console.print(
                Text(
                    "Events that failed again were NOT dead-lettered again: their dead letters "
                    f"are still in {dlq_topic}; fix the cause and redrive them again."
                )
            )
        if outcomes["redriven"]:
            console.print(
                Text(
                    f"The dead letters stay in {dlq_topic} (Kafka cannot delete single "
                    "records); Meta deduplicates a repeat by event_name + event_id within 48 h."
                )
            )
    return EXIT_FAILED if outcomes["failed"] else EXIT_OK


def _pixel_line(record: DeadLetter, target: _Target, dry_run: bool) -> str:
    pixel = f"/{target.pixel_id}" if target.pixel_id else ""
    where = f"{record.position()} -> {target.destination}{pixel}"
    if target.status in ("deliver", "delivered"):
        event = target.event or {}
        what = f"{event.get('event_name', '?')} event_id={event.get('event_id', '-')}"
        return f"{'would deliver ' if dry_run else 'delivered '}{where} {what}"
    label = "skipped   " if target.status == "skipped" else "failed    "
    return f"{label}{where}: {target.detail}"
