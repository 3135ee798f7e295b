from types import SimpleNamespace

from worker.stream.watermark import InFlightRecord, OffsetLedger, PartitionWatermark


def _record(offset: int, watermark: PartitionWatermark, events: int) -> InFlightRecord:
    watermark.track(offset)
    return InFlightRecord(SimpleNamespace(offset=lambda: offset), watermark, events)


def test_commit_position_stops_at_the_lowest_record_not_done() -> None:
    watermark = PartitionWatermark()
    first, second, third = (_record(o, watermark, 1) for o in (10, 11, 12))
    third.complete_one()
    second.complete_one()
    assert watermark.commit_position() == 10
    first.complete_one()
    assert watermark.commit_position() == 13


def test_record_is_done_only_when_every_event_is_done() -> None:
    watermark = PartitionWatermark()
    record = _record(5, watermark, 3)
    record.complete_one()
    record.complete_one()
    assert watermark.commit_position() == 5
    record.complete_one()
    assert watermark.commit_position() == 6


def test_skipped_records_advance_the_position_without_pending() -> None:
    watermark = PartitionWatermark()
    watermark.track(0, done=True)
    watermark.track(1, done=True)
    assert watermark.pending == 0
    assert watermark.commit_position() == 2


def test_no_position_before_the_first_record() -> None:
    assert PartitionWatermark().commit_position() is None


def test_ledger_reports_only_positions_that_moved_since_the_last_commit() -> None:
    ledger = OffsetLedger()
    ledger.assign([("t", 0), ("t", 1)])
    watermark = ledger.get(("t", 0))
    assert watermark is not None
    watermark.track(0, done=True)
    assert ledger.positions_to_commit() == {("t", 0): 1}
    ledger.confirm_committed({("t", 0): 1})
    assert ledger.positions_to_commit() == {}


def test_forgotten_partition_is_not_committed_even_if_its_records_finish() -> None:
    ledger = OffsetLedger()
    ledger.assign([("t", 0)])
    watermark = ledger.get(("t", 0))
    assert watermark is not None
    record = _record(0, watermark, 1)
    ledger.forget([("t", 0)])
    record.complete_one()
    assert ledger.positions_to_commit() == {}


def test_a_record_at_or_below_one_already_seen_is_not_new() -> None:
    watermark = PartitionWatermark()
    assert watermark.is_new(0)
    watermark.track(0)
    watermark.track(1, done=True)
    assert not watermark.is_new(0)
    assert not watermark.is_new(1)
    assert watermark.is_new(2)
