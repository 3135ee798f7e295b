"""Figure 1: the mapping stage alone, in process, on one core.

Per record, exactly what the worker does between `poll()` and the batcher: decode the value
(`worker.pipeline.decode_record` with the configured decoder), route it and map it for each
destination it is routed to (`map_routed`: normalise, hash, validate) and serialise each resulting
Conversions API event with orjson. No Kafka, no HTTP: pure CPU, one thread. The hash cache
(a bounded dict) is emptied before each pass, so every pass starts cold like a fresh worker.
The figure is a pass with nothing else in the loop; the split by stage comes from a second,
instrumented pass (`run_mapping`).
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.compiled import mapping_build
from worker.config import Settings, parse_settings
from worker.decode import build_decoder
from worker.destination_set import DestinationSet
from worker.mapping.normalize import clear_hash_cache, hash_cache_info
from worker.mapping.result import Invalid, Mapped, MapResult, Skipped
from worker.pipeline import NOT_ROUTED, Decoder, decode_record, map_routed

from .stack import BENCH_PIXEL, BENCH_TOKEN, worker_config


def bench_settings(batching: dict[str, Any] | None = None) -> Settings:
    """The worker settings the mapping stage runs with: the bench's one destination."""
    raw = worker_config(
        "127.0.0.1:9",
        "http://127.0.0.1:9",
        "bench",
        "bench.events",
        "bench.dlq",
        {"shop": (BENCH_PIXEL, BENCH_TOKEN)},
        batching=batching,
    )
    return parse_settings(raw, env={})


@dataclass
class MappingRun:
    events: int
    seconds: float
    cpu_seconds: float
    decode_seconds: float
    map_seconds: float
    serialise_seconds: float
    outcomes: Counter[str] = field(default_factory=Counter)
    values_hashed: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def events_per_cpu_second(self) -> float:
        """Events per second of this process's CPU time: what a busy machine disturbs least."""
        return self.events / self.cpu_seconds if self.cpu_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        per_event = 1e6 / self.events if self.events else 0.0
        # The stages are timed on the wall clock in a second pass (a CPU clock read costs more
        # than a stage); their shares, applied to the first pass's CPU time, give CPU µs per
        # stage.
        to_cpu = self.cpu_seconds / self.seconds if self.seconds else 0.0
        return {
            "events": self.events,
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "events_per_second": round(self.events_per_second, 1),
            "events_per_cpu_second": round(self.events_per_cpu_second, 1),
            "microseconds_per_event": round(self.seconds * per_event, 2),
            "cpu_microseconds_per_event": round(self.cpu_seconds * per_event, 2),
            "stage_cpu_microseconds_per_event": {
                "decode": round(self.decode_seconds * to_cpu * per_event, 2),
                "route_map": round(self.map_seconds * to_cpu * per_event, 2),
                "serialise": round(self.serialise_seconds * to_cpu * per_event, 2),
            },
            "stage_microseconds_per_event": {
                "decode": round(self.decode_seconds * per_event, 2),
                "route_map": round(self.map_seconds * per_event, 2),
                "serialise": round(self.serialise_seconds * per_event, 2),
            },
            "outcomes": dict(sorted(self.outcomes.items())),
            "values_hashed": self.values_hashed,
        }


def run_mapping(
    values: list[bytes],
    settings: Settings,
    now: float,
    destinations: DestinationSet | None = None,
    *,
    stages: bool = True,
) -> MappingRun:
    """Decode + map + serialise every value; `destinations`: the set of `settings`, when the
    caller built it already.

    The figure comes from a pass timed as a whole, with nothing but the worker's own work in
    the loop. With `stages`, a second pass reads the clock around each stage: its split (the
    share of each stage) is applied to the first pass's time. The clock reads of that pass cost
    about 0.2 µs per event, which the figure must not include (the Meta SDK peer's loop has
    none). Each pass starts with an empty hash cache, like a fresh worker."""
    decoder = build_decoder(settings.decoding)
    if destinations is None:
        destinations = DestinationSet.from_settings(settings)
    clear_hash_cache()
    gc.collect()
    cpu_started = time.process_time()
    started = time.perf_counter()
    outcomes = _map_all(values, decoder, destinations, now)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    values_hashed = hash_cache_info().misses
    split = (0.0, 0.0, 0.0)  # no split measured
    if stages:
        clear_hash_cache()
        gc.collect()
        split = _stage_split(values, decoder, destinations, now)
    return MappingRun(
        events=len(values),
        seconds=seconds,
        cpu_seconds=cpu,
        decode_seconds=seconds * split[0],
        map_seconds=seconds * split[1],
        serialise_seconds=seconds * split[2],
        outcomes=outcomes,
        values_hashed=values_hashed,
    )


def _map_all(
    values: list[bytes], decoder: Decoder, destinations: DestinationSet, now: float
) -> Counter[str]:
    """The measured loop: per record, what the worker does between poll() and the batcher."""
    outcomes: Counter[str] = Counter()
    for value in values:
        decoded = decode_record(decoder, value)
        if isinstance(decoded, Invalid):
            outcomes[f"invalid:{decoded.stage}/{decoded.reason}"] += 1
            continue
        routed = map_routed(decoded, None, destinations, now)
        if isinstance(routed, Invalid):
            outcomes[f"invalid:{routed.stage}/{routed.reason}"] += 1
            continue
        if not routed:
            outcomes[f"skipped:{NOT_ROUTED.reason}"] += 1
        for _, result in routed:
            _count(outcomes, result)
    return outcomes


def _stage_split(
    values: list[bytes], decoder: Decoder, destinations: DestinationSet, now: float
) -> tuple[float, float, float]:
    """The same loop with a clock read between the stages: each stage's share of the time."""
    clock = time.perf_counter_ns
    decode_ns = map_ns = serialise_ns = 0
    outcomes: Counter[str] = Counter()
    for value in values:
        t0 = clock()
        decoded = decode_record(decoder, value)
        t1 = clock()
        decode_ns += t1 - t0
        if isinstance(decoded, Invalid):
            continue
        routed = map_routed(decoded, None, destinations, now)
        t2 = clock()
        map_ns += t2 - t1
        if isinstance(routed, Invalid):
            continue
        for _, result in routed:
            _count(outcomes, result)
        serialise_ns += clock() - t2
    total = decode_ns + map_ns + serialise_ns
    if not total:
        return (0.0, 0.0, 0.0)
    return (decode_ns / total, map_ns / total, serialise_ns / total)


def _count(outcomes: Counter[str], result: MapResult) -> None:
    """Serialise a mapped event (as the worker does, once, for its batch) and count the
    outcome."""
    if isinstance(result, Mapped):
        orjson.dumps(result.event)
        outcomes["mapped"] += 1
    elif isinstance(result, Skipped):
        outcomes[f"skipped:{result.reason}"] += 1
    else:
        outcomes[f"invalid:{result.stage}/{result.reason}"] += 1


def section(runs: list[MappingRun]) -> dict[str, Any]:
    """The report's `mapping` section: figures summarised over the runs."""
    from .report import summarise

    stages = ("decode", "route_map", "serialise")
    details = [run.as_dict() for run in runs]
    return {
        "mapping_build": mapping_build()[0],
        "events": runs[0].events,
        "events_per_second": summarise([run.events_per_second for run in runs], 0),
        "events_per_cpu_second": summarise([run.events_per_cpu_second for run in runs], 0),
        "microseconds_per_event": summarise([d["microseconds_per_event"] for d in details], 2),
        "cpu_microseconds_per_event": summarise(
            [d["cpu_microseconds_per_event"] for d in details], 2
        ),
        "stage_cpu_microseconds_per_event": {
            stage: summarise([d["stage_cpu_microseconds_per_event"][stage] for d in details], 2)
            for stage in stages
        },
        "stage_microseconds_per_event": {
            stage: summarise([d["stage_microseconds_per_event"][stage] for d in details], 2)
            for stage in stages
        },
        "outcomes": details[0]["outcomes"],
        "run_details": details,
    }
