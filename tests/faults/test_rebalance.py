"""Two workers in one group while the Graph API is slow: one joins late, the other leaves
(SIGTERM), so partitions are revoked with batches in flight.

Nothing is lost, and at no moment does the group's committed offset of a partition pass a
record whose events have not all reached the emulator (sampled all along: the offsets first,
then what the emulator had accepted, which can only have grown in between).
"""

from __future__ import annotations

from tests.faults.rig import PIXELS, FaultRig, Sampler, by_partition, event_ids
from tests.integration.worker_harness import valid_events
from tests.kafka_helpers import produce

EVENTS = 4000


def test_partitions_move_between_workers_without_loss_or_commits_past_unfinished_records(
    rig: FaultRig,
) -> None:
    rig.graph.inject_fault(count=1_000_000, latency_ms=400)  # every request is slow
    ids = [f"rebalance-{i}" for i in range(EVENTS)]
    expected = event_ids("rebalance", EVENTS)
    positions = produce(rig.bootstrap, rig.source, valid_events(EVENTS, "rebalance"))
    records = by_partition(positions, ids)
    config = rig.config(
        batching={"max_events": 100, "max_pending_events": 600},
        graph={"max_concurrent_requests": 2},
    )

    def premature_commits() -> dict[int, tuple[int, int]]:
        """partition -> (committed, first record not delivered to every pixel) where the
        commit is past that record."""
        committed = rig.committed()
        done = set.intersection(*(rig.emulator.accepted_ids(pixel) for pixel in PIXELS))
        found: dict[int, tuple[int, int]] = {}
        for partition, offset in committed.items():
            pending = (o for o, event_id in records[partition] if event_id not in done)
            first_pending = next(pending, records[partition][-1][0] + 1)
            if offset > first_pending:
                found[partition] = (offset, first_pending)
        return found

    checks = Sampler(premature_commits, interval=0.3)
    try:
        first = rig.start_worker(config)

        def delivered() -> int:
            return min(rig.emulator.unique_count(pixel) for pixel in PIXELS)

        rig.wait_until(lambda: delivered() >= 500, 60, "the first worker's deliveries")
        second = rig.start_worker(config)  # joins late: the first one gives up partitions
        rig.wait_until(
            lambda: "Partitions assigned" in second.log() and "Batch done" in second.log(),
            60,
            "the second worker to take partitions and deliver",
        )
        assert "Partitions revoked" in first.log()
        assert delivered() < EVENTS, "partitions moved mid-stream"
        assert first.terminate() == 0, first.log()[-3000:]  # leaves, batches in flight
        assert premature_commits() == {}, "committed past an unfinished record on leaving"
        assert delivered() < EVENTS, "the first worker left mid-stream"

        rig.wait_until(lambda: rig.delivered_everywhere(expected), 120, "every event")
        rig.wait_until(rig.all_committed, 30, "offsets committed to the end")
    finally:
        samples = checks.stop()
    assert len(samples) >= 10
    premature = [sample for sample in samples if sample]
    assert not premature, f"offsets committed past unfinished records: {premature[:3]}"
    # The second worker got the first one's partitions when it left (assigned twice).
    assert second.log().count("Partitions assigned") >= 2
    assert second.terminate() == 0, second.log()[-3000:]

    rig.assert_delivered_exactly(expected)
    assert rig.dead_lettered(timeout=3) == []
    rig.assert_committed_to_the_end()
