"""Two workers in one group while the Graph API is slow: one joins late, the other leaves
(SIGTERM), so partitions are revoked with batches in flight.

Nothing is lost, and at no moment does the group's committed offset of a partition pass a
record whose events have not all reached the emulator (sampled all along: the offsets first,
then what the emulator had accepted, which can only have grown in between).

The test moves on conditions, never on the machine's speed. The second worker's start-up and
the group's rebalance take seconds of CPU, while the first worker drains the stream at a pace
set by the emulator's latency; so the second half of the stream is produced only once the
second worker holds partitions, into every partition, most of it into the first worker's:
the second worker then has records to deliver whichever partitions it got and however long
joining took, and the first one is still mid-stream when it leaves.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.faults.rig import PIXELS, FaultRig, Sampler, by_partition, event_ids
from tests.kafka_helpers import produce
from tests.support.worker import WorkerProcess, valid_events

PARTITIONS = 4
EARLY_EVENTS = 2000  # produced before the first worker starts
LATE_PER_SECOND_PARTITION = 250  # produced once the second worker holds partitions
LATE_PER_FIRST_PARTITION = 750

_ASSIGNED = re.compile(r"Partitions assigned; partitions=(\S+)")


def assigned_partitions(worker: WorkerProcess) -> set[int]:
    """The partitions the worker's log says it was given so far (`-` is an empty assignment)."""
    return {
        int(number)
        for listed in _ASSIGNED.findall(worker.log())
        for number in re.findall(r"\[(\d+)\]", listed)
    }


@pytest.mark.timeout(900)
def test_partitions_move_between_workers_without_loss_or_commits_past_unfinished_records(
    make_rig: Callable[..., FaultRig],
) -> None:
    rig = make_rig(partitions=PARTITIONS)
    rig.graph.inject_fault(count=1_000_000, latency_ms=400)  # every request is slow
    ids = [f"rebalance-{i}" for i in range(EARLY_EVENTS)]
    expected = event_ids("rebalance", EARLY_EVENTS)
    positions = produce(rig.bootstrap, rig.source, valid_events(EARLY_EVENTS, "rebalance"))
    records = by_partition(positions, ids)
    config = rig.config(
        batching={"max_events": 100, "max_pending_events": 600},
        graph={"max_concurrent_requests": 2},
    )

    def premature_commits() -> dict[int, tuple[int, int]]:
        """partition -> (committed, first record not delivered to every pixel) where the
        commit is past that record. Records are those produced so far: a late record whose
        offset is not known yet is not judged in that sample."""
        committed = rig.committed()
        done = set.intersection(*(rig.emulator.accepted_ids(pixel) for pixel in PIXELS))
        known = records
        found: dict[int, tuple[int, int]] = {}
        for partition, offset in committed.items():
            pending = (o for o, event_id in known.get(partition, []) if event_id not in done)
            first_pending = next(pending, None)
            if first_pending is not None and offset > first_pending:
                found[partition] = (offset, first_pending)
        return found

    checks = Sampler(premature_commits, interval=0.3)
    try:
        first = rig.start_worker(config)

        def delivered() -> int:
            return min(rig.emulator.unique_count(pixel) for pixel in PIXELS)

        rig.wait_until(lambda: delivered() >= 500, 120, "the first worker's deliveries")
        second = rig.start_worker(config)  # joins late: the first one gives up partitions
        rig.wait_until(
            lambda: bool(assigned_partitions(second)), 180, "the second worker to take partitions"
        )
        seconds = assigned_partitions(second)
        late_ids: list[str] = []
        late_positions: list[tuple[int, int]] = []
        for partition in range(PARTITIONS):
            count = LATE_PER_SECOND_PARTITION if partition in seconds else LATE_PER_FIRST_PARTITION
            prefix = f"rebalance-late{partition}"
            late_ids += [f"{prefix}-{i}" for i in range(count)]
            expected |= event_ids(prefix, count)
            late_positions += produce(
                rig.bootstrap, rig.source, valid_events(count, prefix), partition=partition
            )
        records = by_partition(positions + late_positions, ids + late_ids)
        events = len(expected)
        rig.wait_until(
            lambda: "Partitions assigned" in second.log() and "Batch done" in second.log(),
            120,
            "the second worker to take partitions and deliver",
        )
        assert "Partitions revoked" in first.log()
        assert delivered() < events, "partitions moved mid-stream"
        assert first.terminate() == 0, first.log()[-3000:]  # leaves, batches in flight
        assert premature_commits() == {}, "committed past an unfinished record on leaving"
        assert delivered() < events, "the first worker left mid-stream"

        rig.wait_until(lambda: rig.delivered_everywhere(expected), 240, "every event")
        rig.wait_until(rig.all_committed, 60, "offsets committed to the end")
    finally:
        samples = checks.stop()
    assert len(samples) >= 10
    premature = [sample for sample in samples if sample]
    assert not premature, f"offsets committed past unfinished records: {premature[:3]}"
    # The second worker got the first one's partitions when it left (assigned twice).
    assert second.log().count("Partitions assigned") >= 2
    assert second.terminate() == 0, second.log()[-3000:]

    rig.assert_delivered_exactly(expected)
    assert rig.dead_lettered() == []
    rig.assert_committed_to_the_end()
