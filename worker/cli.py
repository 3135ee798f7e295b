"""Command line: `capi-worker run|transform|graph-emulator|demo` (DESIGN.md section 7)."""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

import orjson

from worker import __version__
from worker.compiled import mapping_line
from worker.config import ConfigError, DestinationSettings, Settings, load_settings
from worker.telemetry.logs import configure_logging

if TYPE_CHECKING:
    from worker.tools.transform_summary import TransformSummary

EXIT_CONFIG = 2
EXIT_CIRCUIT_OPEN = 3  # `run`: see worker/stream/supervisor.py


def _pairs(values: Sequence[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"{flag} expects PIXEL=VALUE, got {item.split('=')[0]}=...")
        pairs[key] = value
    return pairs


def _load(path: str) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as error:
        print(f"capi-worker: {error}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def command_run(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from worker.stream.destination_reload import ReloadSource
    from worker.stream.supervisor import run_supervisor, run_worker

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker listens: reload, not exit
    settings = _load(args.config)
    level = args.log_level or settings.logging.level
    log_format = args.log_format or settings.logging.format
    configure_logging(level, log_format)
    logging.getLogger(__name__).info("%s", mapping_line())
    config_path = Path(args.config)
    if args.processes > 1:
        return run_supervisor(settings, args.processes, level, log_format, config_path)
    return run_worker(settings, reload_from=ReloadSource(config_path, settings))


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def transform_lines(
    settings: Settings,
    lines: IO[bytes],
    out: IO[bytes],
    now: float,
    show_unrouted: bool = False,
    summary: TransformSummary | None = None,
) -> None:
    """One output line per (input line, destination it is routed to), using the worker's own
    mapping stage; with `show_unrouted`, one per (input line, destination). Each result is
    also counted in `summary` when given."""
    from worker.decode import build_decoder
    from worker.destination_set import DestinationSet
    from worker.mapping.result import Invalid, Mapped, MapResult, Skipped
    from worker.pipeline import decode_record, map_for_destinations, map_routed

    decode_json = build_decoder(settings.decoding.model_copy(update={"format": "json"}))
    destinations = DestinationSet.from_settings(settings)
    every = destinations.destinations
    for raw_line in lines:
        line = raw_line.rstrip(b"\r\n")
        if not line.strip():
            continue
        decoded = decode_record(decode_json, line)
        results: Sequence[tuple[DestinationSettings | None, MapResult]]
        if isinstance(decoded, Invalid):
            results = [(d, decoded) for d in every] if show_unrouted else [(None, decoded)]
        elif show_unrouted:
            results = list(
                zip(every, map_for_destinations(decoded, None, destinations, now), strict=True)
            )
        else:
            routed = map_routed(decoded, None, destinations, now)
            results = [(None, routed)] if isinstance(routed, Invalid) else routed
        for destination, result in results:
            if summary is not None:
                summary.add(destination, result)
            row: dict[str, Any]
            if isinstance(result, Mapped):
                assert destination is not None
                row = {"pixel_id": destination.pixel_id, "event": result.event}
                if result.test_event_code is not None:
                    row["test_event_code"] = result.test_event_code
            elif isinstance(result, Skipped):
                row = {"skipped": result.reason}
            else:
                error = {"stage": result.stage, "reason": result.reason, "message": result.message}
                row = {"error": error}
                if destination is not None:
                    row = {"pixel_id": destination.pixel_id, **row}
            out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


def command_transform(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    now = float(args.now) if args.now is not None else time.time()
    from worker.tools.transform_summary import TransformSummary

    summary = TransformSummary() if args.summary else None
    transform_lines(settings, sys.stdin.buffer, sys.stdout.buffer, now, args.show_unrouted, summary)
    sys.stdout.flush()
    if summary is not None:
        sys.stderr.write(summary.render())
    return 0


def command_replay(args: argparse.Namespace) -> int:
    from worker.tools.replay import run_replay
    from worker.tools.timeparse import parse_time

    settings = _load(args.config)
    configure_logging("WARNING", settings.logging.format)
    now = time.time()
    try:
        start = parse_time(args.from_time, now)
        end = None if args.to_time is None else parse_time(args.to_time, now)
    except ValueError as error:
        print(f"capi-worker: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if end is not None and end <= start:
        print("capi-worker: --to must be after --from", file=sys.stderr)
        return EXIT_CONFIG
    return run_replay(settings, start, end, args.group, args.topic, args.dry_run)


def command_graph_emulator(args: argparse.Namespace) -> int:
    from worker.sandbox.graph_emulator import serve

    configure_logging(args.log_level, args.log_format)
    tokens = _pairs(args.token, "--token")
    secrets = _pairs(args.app_secret, "--app-secret")
    serve(args.host, args.port, tokens, secrets)
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from worker.sandbox.demo import run_demo

    configure_logging("WARNING")
    return run_demo(events=args.events, seconds=args.timeout)


# ---- dlq: dead-letter inspect | stats | redrive (worker/tools/dlq.py) ---------------------------


def command_dlq(args: argparse.Namespace) -> int:
    from worker.tools.dlq import run_dlq_command

    settings = _load(args.config)
    configure_logging("WARNING", settings.logging.format)
    return run_dlq_command(settings, args)


def _add_dlq_parser(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq", help="inspect, count and redrive the dead-letter topic (reads, never commits)"
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--config", required=True, help="YAML configuration file")
    filters.add_argument(
        "--reason", action="append", metavar="R", help="capi.dlq.reason (repeatable)"
    )
    filters.add_argument("--stage", action="append", metavar="S", help="decode|route|map|deliver")
    filters.add_argument(
        "--pixel", action="append", metavar="P", help="pixel id or destination name (repeatable)"
    )
    filters.add_argument(
        "--since", metavar="TIME", help="dead-lettered at or after: ISO-8601, Unix seconds, 2h"
    )
    filters.add_argument("--until", metavar="TIME", help="dead-lettered at or before")
    filters.add_argument("--limit", type=int, metavar="N", help="at most N matching records")

    inspect = actions.add_parser("inspect", parents=[filters], help="list dead letters")
    inspect.add_argument("--format", choices=["table", "jsonl"], default="table")
    stats = actions.add_parser("stats", parents=[filters], help="count by reason and pixel")
    stats.add_argument("--format", choices=["table", "jsonl"], default="table")
    redrive = actions.add_parser(
        "redrive", parents=[filters], help="send dead letters again (source topic or pixel)"
    )
    redrive.add_argument(
        "--to",
        choices=["source", "pixel"],
        default="source",
        help="source: re-publish to the source topic (default); pixel: deliver directly",
    )
    redrive.add_argument(
        "--max-redrives",
        type=int,
        default=3,
        metavar="N",
        help="refuse records already redriven this often (loop protection; --to source)",
    )
    redrive.add_argument("--dry-run", action="store_true", help="show what would be done")
    dlq.set_defaults(handler=command_dlq)


# ---- end of dlq -------------------------------------------------------------------------------


def version_text() -> str:
    """`capi-worker 0.1.0 (mapping: compiled (SHA-256: OpenSSL); CPython 3.11.7)`."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"capi-worker {__version__} ({mapping_line()}; {python})"


class _VersionAction(argparse.Action):
    """`--version`, computed when asked: it imports the mapping to see which build loads."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capi-worker",
        description="Forward Segment/RudderStack-spec events from Kafka to Meta's Conversions API.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="version, and which build of the mapping runs"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the worker (a consumer-group member)")
    run.add_argument("--config", required=True, help="YAML configuration file")
    run.add_argument("--log-level", help="overrides logging.level of the configuration")
    run.add_argument(
        "--log-format", choices=["auto", "json", "text"], help="overrides logging.format"
    )
    run.add_argument(
        "--processes",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="consumer processes in the group, supervised by this one (one per core; default 1)",
    )
    run.set_defaults(handler=command_run)

    transform = commands.add_parser(
        "transform", help="map JSON-lines events from stdin to CAPI events on stdout"
    )
    transform.add_argument("--config", required=True)
    transform.add_argument("--now", type=float, help="the current time, Unix seconds")
    transform.add_argument(
        "--show-unrouted",
        action="store_true",
        help='also print {"skipped": "not_routed"} for each destination an event is not routed to',
    )
    transform.add_argument(
        "--summary",
        action="store_true",
        help="print to stderr, per destination, events mapped/skipped/errored by reason and the "
        "share of mapped events carrying each user_data key",
    )
    transform.set_defaults(handler=command_transform)

    replay = commands.add_parser(
        "replay", help="backfill a time window in a separate consumer group (progress bar)"
    )
    replay.add_argument("--config", required=True)
    replay.add_argument(
        "--from", dest="from_time", required=True, help="ISO-8601, Unix seconds or an age (7d)"
    )
    replay.add_argument("--to", dest="to_time", help="end of the window (default: now)")
    replay.add_argument("--group", help="replay group (default: <group_id>-replay-<from>)")
    replay.add_argument("--topic", action="append", help="topic to replay (default: kafka.topics)")
    replay.add_argument("--dry-run", action="store_true", help="count only; send nothing")
    replay.set_defaults(handler=command_replay)

    emulator = commands.add_parser("graph-emulator", help="run the local Graph API emulator")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8089)
    emulator.add_argument("--token", action="append", metavar="PIXEL=TOKEN")
    emulator.add_argument("--app-secret", action="append", metavar="PIXEL=SECRET")
    emulator.add_argument("--log-level", default="INFO")
    emulator.add_argument("--log-format", choices=["auto", "json", "text"], default="auto")
    emulator.set_defaults(handler=command_graph_emulator)

    demo = commands.add_parser("demo", help="embedded broker + emulator + worker + sample traffic")
    demo.add_argument("--events", type=int, default=3000, help="valid events to produce")
    demo.add_argument("--timeout", type=float, default=50.0, help="give up after this long")
    demo.set_defaults(handler=command_demo)
    _add_dlq_parser(commands)
    _add_bench_parser(commands)
    return parser


def _add_bench_parser(commands: Any) -> None:
    from worker.bench.arguments import add_bench_parser

    add_bench_parser(commands)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
