"""Produce sample Segment-spec events to a Kafka topic: sandbox traffic for docker-compose.

    python -m worker.sandbox.produce_samples --bootstrap kafka:9092 --topic events.raw --count 500

`--count` valid events (every default mapping: pages, product views, carts, searches, checkouts,
orders, custom events), plus a few records the worker must dead-letter, one of each kind per
started 100 events: an undecodable value, an event older than Meta's 7-day window and an order
whose revenue is not a number. `--no-bad-records` leaves those out. Event ids are prefixed with
the run's start time, so a second run is new traffic rather than duplicates for Meta to drop.
Never point this at a worker that delivers to a real pixel.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence

import orjson
from confluent_kafka import KafkaError, Message, Producer

from worker.sandbox.sample_events import bad_revenue_event, sample_event, stale_event

UNDECODABLE = b'{"type": "track", "event": "Order Completed", "properties": '

Record = tuple[bytes | None, bytes]  # (key, value)


def sample_records(count: int, now: float, prefix: str, bad_records: bool = True) -> list[Record]:
    """The records to produce, keyed by user id like a real source; bad ones interleaved."""
    rng = random.Random(now)
    records: list[Record] = []
    for index in range(count):
        event = sample_event(index, now, rng, prefix=prefix)
        records.append((event["userId"].encode(), orjson.dumps(event)))
    if bad_records:
        for index in range(max(1, -(-count // 100))):
            bad = [
                (None, UNDECODABLE),
                (None, orjson.dumps(stale_event(index, now, prefix=prefix))),
                (None, orjson.dumps(bad_revenue_event(index, now, prefix=prefix))),
            ]
            for record in bad:
                records.insert(rng.randrange(len(records) + 1), record)
    return records


def produce(bootstrap: str, topic: str, records: Sequence[Record], timeout: float) -> int:
    """Produces and waits for the broker's acknowledgements. Returns how many failed."""
    failed = 0

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        nonlocal failed
        if error is not None:
            failed += 1
            print(f"produce_samples: delivery failed: {error}", file=sys.stderr)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        producer.poll(0)
    unacknowledged = producer.flush(timeout)
    return failed + unacknowledged


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker.sandbox.produce_samples", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default="events.raw")
    parser.add_argument("--count", type=int, default=500, help="valid events to produce")
    parser.add_argument(
        "--bad-records",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also produce a few records the worker dead-letters (default: yes)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for acks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 0:
        raise SystemExit("--count must not be negative")
    now = time.time()
    records = sample_records(args.count, now, f"sandbox-{int(now)}", args.bad_records)
    failed = produce(args.bootstrap, args.topic, records, args.timeout)
    bad = len(records) - args.count
    print(
        f"produced {len(records) - failed} of {len(records)} records to {args.topic} "
        f"at {args.bootstrap} ({args.count} valid events, {bad} to be dead-lettered)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
