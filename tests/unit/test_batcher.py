from typing import Any

from worker.config import DestinationSettings
from worker.stream.batcher import PixelBatcher
from worker.stream.watermark import InFlightRecord, PartitionWatermark


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _destination(name: str) -> DestinationSettings:
    return DestinationSettings(name=name, pixel_id="1", access_token="t")  # type: ignore[arg-type]


def _event(size: int = 10) -> tuple[bytes, InFlightRecord]:
    """A serialised event of `size` bytes and its record."""
    return b'"' + b"x" * (size - 2) + b'"', InFlightRecord(None, PartitionWatermark(), 1, 0)


def test_batch_is_cut_at_max_events_per_destination() -> None:
    batcher = PixelBatcher(max_events=3, max_bytes=10_000, linger_seconds=1, clock=FakeClock())
    shop, blog = _destination("shop"), _destination("blog")
    assert not batcher.add(shop, *_event())
    assert not batcher.add(blog, *_event())
    assert not batcher.add(shop, *_event())
    [ready] = batcher.add(shop, *_event())
    assert ready.destination is shop and len(ready) == 3
    assert batcher.buffered_events == 1


def test_batch_is_cut_before_it_would_pass_max_bytes() -> None:
    batcher = PixelBatcher(max_events=1000, max_bytes=1024, linger_seconds=1, clock=FakeClock())
    shop = _destination("shop")
    assert not batcher.add(shop, *_event(600))
    [ready] = batcher.add(shop, *_event(600))
    assert len(ready) == 1 and ready.size <= 1024
    assert batcher.buffered_events == 1


def test_one_event_batches_with_byte_cut_yield_both_batches() -> None:
    batcher = PixelBatcher(max_events=1, max_bytes=1024, linger_seconds=1, clock=FakeClock())
    shop = _destination("shop")
    assert len(batcher.add(shop, *_event(600))) == 1
    assert len(batcher.add(shop, *_event(600))) == 1


def test_linger_releases_a_partial_batch() -> None:
    clock = FakeClock()
    batcher = PixelBatcher(max_events=1000, max_bytes=10_000, linger_seconds=0.2, clock=clock)
    batcher.add(_destination("shop"), *_event())
    assert batcher.due() == []
    clock.now = 0.19
    assert batcher.due() == []  # due 0.2 s after it opened, not sooner
    clock.now = 0.25
    [ready] = batcher.due()
    assert len(ready) == 1
    assert batcher.drain() == []  # nothing left open


def test_drain_returns_every_open_batch() -> None:
    batcher = PixelBatcher(max_events=1000, max_bytes=10_000, linger_seconds=5, clock=FakeClock())
    batcher.add(_destination("shop"), *_event())
    batcher.add(_destination("blog"), *_event())
    assert sorted(b.destination.name for b in batcher.drain()) == ["blog", "shop"]
    assert batcher.buffered_events == 0


def test_a_batch_holds_its_events_serialised_back_to_back() -> None:
    batcher = PixelBatcher(max_events=3, max_bytes=10_000, linger_seconds=1, clock=FakeClock())
    shop = _destination("shop")
    records = [_event()[1] for _ in range(3)]
    batcher.add(shop, b'{"a":1}', records[0])
    batcher.add(shop, b'{"b":2}', records[1])
    [ready] = batcher.add(shop, b'{"c":3}', records[2])
    assert ready.records == records
    assert ready.size == len(b'{"data":[{"a":1},{"b":2},{"c":3}]}')
    assert ready.encoded.body(0, 3, b"]}") == b'{"data":[{"a":1},{"b":2},{"c":3}]}'
    assert ready.encoded.body(1, 2, b"]}") == b'{"data":[{"b":2}]}'
    assert [ready.encoded.event(i) for i in range(3)] == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


def test_cut_closes_the_open_batches_of_the_named_destinations_only() -> None:
    batcher = PixelBatcher(max_events=10, max_bytes=10_000, linger_seconds=60, clock=FakeClock())
    shop, blog = _destination("shop"), _destination("blog")
    batcher.add(shop, *_event())
    batcher.add(blog, *_event())
    [cut] = batcher.cut(["shop", "gone"])
    assert cut.destination is shop and len(cut) == 1
    assert batcher.buffered_events == 1
    assert [b.destination for b in batcher.drain()] == [blog]


def test_events_with_their_own_test_event_code_are_batched_apart() -> None:
    batcher = PixelBatcher(max_events=2, max_bytes=10_000, linger_seconds=1, clock=FakeClock())
    shop = _destination("shop")
    assert not batcher.add(shop, *_event())
    assert not batcher.add(shop, *_event(), "TEST1")
    assert not batcher.add(shop, *_event(), "TEST2")
    [ready] = batcher.add(shop, *_event(), "TEST1")
    assert (ready.test_event_code, len(ready)) == ("TEST1", 2)
    drained = {batch.test_event_code: len(batch) for batch in batcher.drain()}
    assert drained == {None: 1, "TEST2": 1}


def test_a_batch_cut_early_does_not_make_the_next_batch_of_its_pixel_due_early() -> None:
    clock = FakeClock()
    batcher = PixelBatcher(max_events=2, max_bytes=10_000, linger_seconds=1, clock=clock)
    shop = _destination("shop")
    batcher.add(shop, *_event())
    assert len(batcher.add(shop, *_event())) == 1  # cut by count at t=0
    clock.now = 0.5
    batcher.add(shop, *_event())  # a new batch, due at 1.5
    clock.now = 1.0
    assert batcher.due() == []
    clock.now = 1.5
    [due] = batcher.due()
    assert due.opened_at == 0.5
    assert batcher.buffered_events == 0


def test_due_batches_come_oldest_first_and_never_by_looking_at_every_open_batch() -> None:
    class NoScan(dict[Any, Any]):
        def _refuse(self, *_: Any) -> Any:
            raise AssertionError("the batcher looked at every open batch")

        __iter__ = items = values = keys = _refuse

    clock = FakeClock()
    batcher = PixelBatcher(max_events=10, max_bytes=10_000, linger_seconds=1, clock=clock)
    batcher._open = NoScan()
    for index in range(10_000):
        clock.now = index / 10_000
        batcher.add(_destination(f"pixel-{index}"), *_event())
    clock.now = 1.00015  # the first two batches are due, 9,998 are not
    assert [batch.destination.name for batch in batcher.due()] == ["pixel-0", "pixel-1"]
    assert batcher.buffered_events == 9_998
