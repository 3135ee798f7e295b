"""The Graph API answers 500s, hangs past graph.timeout_seconds and drops connections.

Everything is retried and delivered. Duplicates are allowed only for events of requests the
worker never got an answer to although the emulator processed them (a hang past the timeout:
the emulator records the request after its delay, the worker has given up and sends it again).
"""

from __future__ import annotations

from collections import Counter

from tests.faults.rig import PIXELS, EventsRequest, FaultRig, duplicates, event_ids
from tests.kafka_helpers import produce
from tests.support.worker import BLOG_PIXEL, valid_events

TIMEOUT_SECONDS = 2.0
HANG_MS = 5000  # well past the timeout: the worker gives up, the emulator still records it


def test_500s_hangs_and_dropped_connections_are_retried_until_everything_is_delivered(
    rig: FaultRig,
) -> None:
    graph = rig.graph
    # Faults go to the next matching requests, in this order.
    graph.inject_fault(count=2, status=500)
    graph.inject_fault(count=2, latency_ms=HANG_MS)
    graph.inject_fault(count=2, drop_connection=True)
    graph.inject_fault(count=1, status=503, error_code=2, is_transient=True)
    graph.inject_fault(count=2, latency_ms=HANG_MS, pixel_id=BLOG_PIXEL)
    graph.inject_fault(count=1, latency_ms=3000, drop_connection=True)  # hangs, then drops
    graph.inject_fault(count=1, status=502)
    faults = 11
    expected = event_ids("graphfaults", 1500)
    produce(rig.bootstrap, rig.source, valid_events(1500, "graphfaults"))
    worker = rig.start_worker(
        rig.config(batching={"max_events": 100}, graph={"timeout_seconds": TIMEOUT_SECONDS})
    )

    rig.wait_until(lambda: rig.delivered_everywhere(expected), 120, "every event at both pixels")
    rig.wait_until(rig.all_committed, 60, "offsets committed to the end")
    assert worker.terminate() == 0, worker.log()[-3000:]
    assert graph.pending_faults() == [], "every injected fault was met"

    def hangs() -> list[EventsRequest]:
        """Answered 200 by the emulator after the worker had stopped waiting."""
        return [r for r in rig.emulator.requests() if r.accepted and r.elapsed >= TIMEOUT_SECONDS]

    # The emulator finishes a hung request after its delay, maybe after the worker is done.
    rig.wait_until(lambda: len(hangs()) == 4, 60, "the emulator to finish the hung requests")
    assert all(r.client_gone for r in hangs()), hangs()

    received = rig.assert_delivered_exactly(expected)
    assert rig.dead_lettered() == [], "nothing was dead-lettered"
    rig.assert_committed_to_the_end()

    requests = rig.emulator.requests()
    faulted = [r for r in requests if r.status != 200 or r.elapsed >= TIMEOUT_SECONDS]
    assert len(faulted) == faults, faulted
    # Events the emulator accepted in a request whose answer never reached the worker.
    unacknowledged: dict[str, set[str]] = {pixel: set() for pixel in PIXELS}
    for request in requests:
        if request.accepted and request.client_gone:
            unacknowledged[request.pixel_id].update(request.event_ids)
    for pixel in PIXELS:
        counts: Counter[str] = received[pixel]
        extra = duplicates(counts) - unacknowledged[pixel]
        assert not extra, f"pixel {pixel}: duplicates no lost answer explains: {sorted(extra)[:5]}"
        assert all(n <= 2 for n in counts.values()), "an event was sent more than twice"
    retried = [line for line in worker.log().splitlines() if "action=retry" in line]
    assert len(retried) >= faults, "every failed request is logged and retried"
