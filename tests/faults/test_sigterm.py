"""SIGTERM with about 1000 events in flight to a slow Graph API: the worker flushes them all,
commits, and exits 0 inside runtime.shutdown_timeout_seconds; a restart re-sends nothing."""

from __future__ import annotations

import time

from tests.faults.rig import PIXELS, FaultRig, by_partition, event_ids, metrics_port, scrape
from tests.kafka_helpers import produce
from tests.support.worker import valid_events

BUDGET_SECONDS = 15.0
EVENTS = 3000


def test_sigterm_flushes_1000_events_in_flight_and_commits_within_the_grace_budget(
    rig: FaultRig,
) -> None:
    rig.graph.inject_fault(count=100_000, latency_ms=1500)  # every request is slow
    expected = event_ids("sigterm", EVENTS)
    positions = produce(rig.bootstrap, rig.source, valid_events(EVENTS, "sigterm"))
    records = by_partition(positions, [f"sigterm-{i}" for i in range(EVENTS)])
    config = rig.config(
        batching={"max_events": 100, "linger_ms": 50, "max_pending_events": 1000},
        extra={"runtime": {"shutdown_timeout_seconds": BUDGET_SECONDS}},
    )
    first = rig.start_worker(config)
    port = metrics_port(first)
    rig.wait_until(
        lambda: scrape(port).get("capi_events_in_flight", 0) >= 1000,
        120,
        "1000 events in flight",
    )
    assert rig.emulator.unique_count(PIXELS[0]) < EVENTS

    started = time.monotonic()
    exit_code = first.terminate(timeout=BUDGET_SECONDS + 30)
    stopped_in = time.monotonic() - started
    log = first.log()
    assert exit_code == 0, log[-3000:]
    assert stopped_in <= BUDGET_SECONDS + 5, f"stopped in {stopped_in:.1f}s"
    assert "Worker stopped" in log
    assert "Shutdown budget spent" not in log

    # Flushed and committed: the committed offsets cover exactly the records whose events
    # reached the emulator, for both pixels (nothing delivered was left uncommitted).
    committed = rig.committed()
    below = {
        event_id
        for partition, pairs in records.items()
        for offset, event_id in pairs
        if offset < committed.get(partition, 0)
    }
    assert below, "something was committed"
    for pixel in PIXELS:
        assert rig.emulator.accepted_ids(pixel) == below, f"pixel {pixel}"
    assert len(below) < EVENTS, "SIGTERM landed mid-stream"

    rig.graph.clear_faults()
    second = rig.start_worker(config)
    rig.wait_until(lambda: rig.delivered_everywhere(expected), 120, "the rest after a restart")
    rig.wait_until(rig.all_committed, 60, "offsets committed to the end")
    assert second.terminate() == 0, second.log()[-3000:]
    received = rig.assert_delivered_exactly(expected)
    for pixel in PIXELS:
        resent = sorted(i for i, n in received[pixel].items() if n > 1)
        assert not resent, f"pixel {pixel}: the restart re-sent {len(resent)}, e.g. {resent[:5]}"
    assert rig.dead_lettered() == []
    rig.assert_committed_to_the_end()
