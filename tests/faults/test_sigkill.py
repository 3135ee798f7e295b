"""The worker is SIGKILLed at random moments (seeded) of a 20,000-record stream and restarted
each time: every event reaches both pixels at least once, nothing is dead-lettered, and the
committed offsets end at the true end of every partition."""

from __future__ import annotations

import random
import time

from tests.faults.rig import PIXELS, FaultRig, event_ids
from tests.kafka_helpers import produce
from tests.support.worker import valid_events

SEED = 4_2024
EVENTS = 20_000
# One kill in each of these stretches of the stream (share of all events delivered).
KILL_WINDOWS = ((0.05, 0.2), (0.25, 0.4), (0.45, 0.6), (0.65, 0.8))
MIN_PROGRESS = 1000  # new events each worker delivers before it may be killed


def test_sigkill_at_random_moments_loses_nothing_and_dead_letters_nothing(rig: FaultRig) -> None:
    rng = random.Random(SEED)
    # Every request takes a while and few are in flight, so a kill lands with batches in flight
    # and the stream lasts long enough for four kills however fast the worker maps.
    rig.graph.inject_fault(count=1_000_000, latency_ms=300)
    expected = event_ids("sigkill", EVENTS)
    produce(rig.bootstrap, rig.source, valid_events(EVENTS, "sigkill"))
    config = rig.config(batching={"max_events": 500}, graph={"max_concurrent_requests": 2})
    total = EVENTS * len(PIXELS)

    def delivered() -> int:
        return sum(rig.emulator.unique_count(pixel) for pixel in PIXELS)

    kills: list[tuple[int, int]] = []  # (target, events delivered when killed)
    for low, high in KILL_WINDOWS:
        worker = rig.start_worker(config)
        # Each worker gets past what its predecessor delivered before it dies (a restart
        # re-sends from the committed offsets first, and needs ~10 s to rejoin the group).
        target = max(int(rng.uniform(low, high) * total), delivered() + MIN_PROGRESS)
        rig.wait_until(lambda: delivered() >= target, 120, f"{target} events delivered")  # noqa: B023
        time.sleep(rng.uniform(0, 0.5))
        worker.kill()
        rig.emulator.settle()  # what it had in flight is recorded before the next one starts
        kills.append((target, delivered()))
    assert kills[-1][1] < total, f"the last kill came after the end of the stream: {kills}"
    for killed in rig.workers:
        assert "Batch done" in killed.log(), "each worker delivered before it was killed"

    last = rig.start_worker(config)
    rig.wait_until(lambda: rig.delivered_everywhere(expected), 180, "every event, after the kills")
    rig.wait_until(rig.all_committed, 120, "offsets committed to the end")
    assert last.terminate() == 0, last.log()[-3000:]

    rig.assert_delivered_exactly(expected)
    assert rig.dead_lettered() == [], "nothing was dead-lettered"
    rig.assert_committed_to_the_end()
