"""The dead-letter topic cannot be written (it does not exist): poison records stay not done.

The worker keeps delivering the good events but commits nothing past the first poison record
of each partition, and says so in its log and metrics. Once the topic exists, the poison
records are dead-lettered and the offsets move to the end of the stream.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import orjson

from tests.faults.rig import FaultRig, Sampler, dead_letter_headers, metrics_port, scrape
from tests.kafka_helpers import produce
from tests.support.worker import BLOG_PIXEL, SHOP_PIXEL, valid_events
from worker.sandbox.sample_events import stale_event

PER_PARTITION = 400


def test_dead_letter_outage_holds_commits_at_the_first_poison_record_until_it_ends(
    make_rig: Callable[..., FaultRig],
) -> None:
    rig = make_rig(partitions=2, create_dead_letter_topic=False)
    now = time.time()
    good = valid_events(2 * PER_PARTITION, "dlqdown", now)
    # partition -> offset -> poison value; what each must become in the dead-letter topic
    poison: dict[int, dict[int, bytes]] = {
        0: {100: b"not json at all", 300: orjson.dumps(stale_event(1, now, prefix="dlqdown"))},
        1: {250: b'{"type": "track", "truncated": '},
    }
    expected_dead: Counter[tuple[int, int, str, str]] = Counter(
        {(0, 100, "decode", ""): 1, (1, 250, "decode", ""): 1}
    )
    expected_dead.update({(0, 300, "map", SHOP_PIXEL): 1, (0, 300, "map", BLOG_PIXEL): 1})
    expected_ids: set[str] = set()
    for partition in (0, 1):
        values = good[partition * PER_PARTITION : (partition + 1) * PER_PARTITION]
        expected_ids.update(orjson.loads(v)["messageId"] for v in values)
        for offset, value in sorted(poison[partition].items()):
            values.insert(offset, value)
        positions = produce(rig.bootstrap, rig.source, values, partition=partition)
        assert [o for _, o in positions] == list(range(len(values)))
    first_poison = {partition: min(offsets) for partition, offsets in poison.items()}

    # Fail fast, and never let the producer create the topic itself: Tansu (like a Kafka
    # broker with auto.create.topics.enable) creates a topic a producer's metadata asks for.
    producer = {"message.timeout.ms": 3000, "allow.auto.create.topics": False}
    config = rig.config(extra={"kafka": {"producer": producer}})
    worker = rig.start_worker(config)
    port = metrics_port(worker)
    commits = Sampler(rig.committed, interval=0.3)
    try:
        rig.wait_until(
            lambda: "Dead-letter write failed, nothing past this record commits" in worker.log(),
            120,
            "the worker to report the failing dead-letter write",
        )
        rig.wait_until(
            lambda: scrape(port).get("capi_dead_letter_write_failures_total", 0) >= 1,
            60,
            "capi_dead_letter_write_failures_total to count it",
        )
        rig.wait_until(
            lambda: rig.delivered_everywhere(expected_ids), 180, "the good events, delivered"
        )
        rig.wait_until(
            lambda: rig.committed() == first_poison,
            60,
            f"offsets committed up to the first poison record {first_poison}",
        )
        # The offsets must stay put for ten commit intervals (sampled every 0.3 s): counted in
        # samples, so a slow machine watches longer rather than less.
        observed = len(commits.samples)
        rig.wait_until(
            lambda: len(commits.samples) >= observed + 7, 120, "ten commit intervals of samples"
        )
    finally:
        held = commits.stop()
    assert held, "offsets were sampled"
    for sample in held:
        for partition, offset in sample.items():
            assert offset <= first_poison[partition], f"committed past a poison record: {sample}"
    assert rig.committed() == first_poison
    assert scrape(port).get("capi_events_dead_lettered_total", 0) == 0
    log = worker.log()
    assert f"source={rig.source}/0/100" in log and f"source={rig.source}/1/250" in log

    rig.broker.create_topics({rig.dead_letters: 1})  # the dead-letter topic comes back
    rig.wait_until(rig.all_committed, 180, "offsets committed to the end once it is back")
    dead = rig.dead_lettered()
    got: Counter[tuple[int, int, str, str]] = Counter()
    for record in dead:
        headers = dead_letter_headers(record)
        partition = int(headers["capi.dlq.source_partition"])
        offset = int(headers["capi.dlq.source_offset"])
        assert record.value == poison[partition][offset], "the original value, untouched"
        assert headers["capi.dlq.source_topic"] == rig.source
        pixel = headers.get("capi.dlq.pixel_id", "")  # none for a record that did not decode
        got[(partition, offset, headers["capi.dlq.stage"], pixel)] += 1
    assert got == expected_dead
    rig.assert_delivered_exactly(expected_ids)
    rig.assert_committed_to_the_end()
    assert scrape(port).get("capi_events_dead_lettered_total", 0) == 4
    assert worker.terminate() == 0, worker.log()[-3000:]
