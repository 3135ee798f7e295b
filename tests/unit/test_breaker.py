from worker.config import CircuitBreakerSettings
from worker.stream.breaker import FailureBreaker


def _breaker(**settings: object) -> FailureBreaker:
    defaults: dict[str, object] = {
        "window_events": 100,
        "min_events": 20,
        "max_failure_ratio": 0.5,
        "max_consecutive": 1000,
    }
    return FailureBreaker(CircuitBreakerSettings(**{**defaults, **settings}))  # type: ignore[arg-type]


def test_scattered_poison_never_trips() -> None:
    breaker = _breaker()
    for _ in range(1000):
        breaker.succeeded(9)
        assert breaker.failed("map", "invalid_value") is None


def test_most_recent_events_failing_the_same_way_trip_it_with_the_figures() -> None:
    breaker = _breaker()
    breaker.succeeded(40)
    verdicts = [breaker.failed("decode", "invalid_json") for _ in range(60)]
    tripped = [v for v in verdicts if v]
    assert tripped, "60 of 100 recent events failed"
    assert "decode/invalid_json" in tripped[0] and "of the last" in tripped[0]


def test_no_ratio_verdict_on_too_few_events() -> None:
    breaker = _breaker(min_events=50)
    assert all(breaker.failed("map", "mapping_failed") is None for _ in range(49))


def test_a_run_of_consecutive_failures_trips_it_even_inside_a_large_window() -> None:
    breaker = _breaker(window_events=100_000, min_events=100_000, max_consecutive=30)
    breaker.succeeded(50_000)
    verdicts = [breaker.failed("map", "mapping_failed") for _ in range(30)]
    assert verdicts[-1] == "30 events in a row failed with map/mapping_failed"
    assert not any(verdicts[:-1])


def test_different_reasons_are_judged_separately() -> None:
    breaker = _breaker(max_failure_ratio=0.5)
    breaker.succeeded(20)
    for index in range(80):
        reason = "invalid_value" if index % 2 else "event_time_too_old"
        assert breaker.failed("map", reason) is None


def test_old_failures_leave_the_window() -> None:
    breaker = _breaker(window_events=100, min_events=10, max_failure_ratio=0.5)
    for _ in range(40):
        breaker.failed("map", "invalid_value")
    breaker.succeeded(100)  # the 40 failures are pushed out
    for _ in range(40):
        assert breaker.failed("map", "invalid_value") is None


def test_destination_scoped_rejections_are_ignored_by_default() -> None:
    breaker = _breaker(max_consecutive=5)
    assert all(breaker.failed("deliver", "invalid_token") is None for _ in range(100))


def test_a_disabled_breaker_never_trips() -> None:
    breaker = _breaker(enabled=False, max_consecutive=1)
    assert breaker.failed("decode", "invalid_json") is None
