"""Meta throttles one pixel (code 17, Retry-After) for more than a minute.

That pixel's events wait (nothing dead-lettered, graph.max_retry_seconds is large) and are
delivered once the throttle lifts; the other pixel keeps flowing meanwhile; and memory stays
bounded: with the throttled pixel's events piling up, the worker pauses its partitions instead
of reading the stream into memory.
"""

from __future__ import annotations

import time
from typing import Any

from tests.faults.rig import FaultRig, Sampler, event_ids, metrics_port, scrape
from tests.kafka_helpers import produce
from tests.support.worker import BLOG_PIXEL, SHOP_PIXEL, valid_events
from worker.stream.runner import CONSUME_BATCH

THROTTLE_SECONDS = 62.0
# Deadlines of the waits inside the throttle: independent of its length, so a slow machine
# makes the throttle last longer instead of failing the test.
CONDITION_DEADLINE = 120
RETRY_AFTER_SECONDS = 5
MAX_PENDING = 1000
FIRST, SECOND = 400, 4000  # FIRST + FIRST's in flight stay under MAX_PENDING: no pause yet
IN_FLIGHT_BOUND = MAX_PENDING + CONSUME_BATCH * 2  # one consume batch, two destinations


def test_a_pixel_throttled_for_over_a_minute_waits_while_the_other_flows_in_bounded_memory(
    rig: FaultRig,
) -> None:
    graph = rig.graph
    graph.inject_fault(
        count=1_000_000,  # until cleared: every request for the pixel is throttled
        status=400,
        error_code=17,
        retry_after=RETRY_AFTER_SECONDS,
        pixel_id=SHOP_PIXEL,
    )
    first = event_ids("throttle-a", FIRST)
    second = event_ids("throttle-b", SECOND)
    produce(rig.bootstrap, rig.source, valid_events(FIRST, "throttle-a"))
    config = rig.config(
        batching={"max_events": 200, "max_pending_events": MAX_PENDING},
        graph={"max_retry_seconds": 600},
    )
    worker = rig.start_worker(config)
    port = metrics_port(worker)
    metrics = Sampler(lambda: scrape(port), interval=0.2)

    def throttled_requests() -> int:
        return sum(r.pixel_id == SHOP_PIXEL and r.status == 400 for r in rig.emulator.requests())

    try:
        rig.wait_until(lambda: throttled_requests() > 0, 120, "the first throttled request")
        throttle_ends = time.monotonic() + THROTTLE_SECONDS

        # The other pixel flows: all of its first events arrive while the shop waits.
        rig.wait_until(
            lambda: first <= rig.emulator.accepted_ids(BLOG_PIXEL),
            CONDITION_DEADLINE,
            "the blog pixel's events during the throttle",
        )
        assert rig.emulator.accepted_ids(SHOP_PIXEL) == set()

        # More of the stream: the shop's events pile up until the worker pauses.
        produce(rig.bootstrap, rig.source, valid_events(SECOND, "throttle-b"))

        def paused() -> bool:
            return scrape(port).get("capi_partitions_paused", 0) > 0

        rig.wait_until(
            lambda: "Backpressure: pausing" in worker.log() and paused(),
            CONDITION_DEADLINE,
            "backpressure to pause the partitions",
        )
        # The throttle lasts THROTTLE_SECONDS, or longer when the machine is slow to get here.
        time.sleep(max(throttle_ends - time.monotonic(), 0))
        # Still throttled, over a minute on: nothing for the shop, no dead letter.
        assert rig.emulator.accepted_ids(SHOP_PIXEL) == set()
        blog = rig.emulator.accepted_ids(BLOG_PIXEL)
        assert blog & second, "the blog pixel got events of the second part too"
        # Every record read holds one shop event in memory, so the records read (and the blog
        # events delivered) are bounded by what may be in flight: the rest stayed in Kafka.
        assert len(blog) <= IN_FLIGHT_BOUND, f"{len(blog)} records read during the throttle"
        assert throttled_requests() >= 2, "the throttled pixel was retried"
        graph.clear_faults()  # the throttle lifts

        rig.wait_until(
            lambda: rig.delivered_everywhere(first | second), 180, "every event after the throttle"
        )
        rig.wait_until(rig.all_committed, 60, "offsets committed to the end")
    finally:
        samples: list[dict[str, Any]] = metrics.stop()

    in_flight = [s["capi_events_in_flight"] for s in samples if "capi_events_in_flight" in s]
    assert in_flight and max(in_flight) >= MAX_PENDING, "the backlog reached the bound"
    assert max(in_flight) <= IN_FLIGHT_BOUND, f"{max(in_flight)} events in flight"
    assert any(s.get("capi_partitions_paused", 0) > 0 for s in samples)
    assert worker.terminate() == 0, worker.log()[-3000:]
    rig.assert_delivered_exactly(first | second)
    assert rig.dead_lettered() == [], "the throttled pixel's events were not given up"
    rig.assert_committed_to_the_end()
    log = worker.log()
    assert "kind=throttled" in log and "Backpressure: resumed" in log
