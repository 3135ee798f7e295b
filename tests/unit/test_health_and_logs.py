import asyncio
import logging
import time

import orjson

import worker.telemetry.metrics  # noqa: F401  (registers the capi_* metrics)
from tests.support.http import local_get
from worker.telemetry.health import HealthChecks, heartbeat_check, start_health_server
from worker.telemetry.logs import JsonLinesFormatter


def test_liveness_fails_when_the_poll_loop_has_not_turned_within_the_timeout() -> None:
    fresh = heartbeat_check(lambda: time.monotonic(), timeout_seconds=5)
    stale = heartbeat_check(lambda: time.monotonic() - 10, timeout_seconds=5)
    assert fresh()[0] is True
    ok, detail = stale()
    assert ok is False and "10." in detail


def test_health_port_answers_503_when_not_ready_and_serves_metrics() -> None:
    async def scenario() -> tuple[int, int, str]:
        checks = HealthChecks(live=lambda: (True, "fine"), ready=lambda: (False, "not in group"))
        runner, port = await start_health_server(checks, "127.0.0.1", 0)
        loop = asyncio.get_running_loop()

        def fetch(path: str) -> tuple[int, str]:
            return local_get(port, path)

        try:
            live = await loop.run_in_executor(None, fetch, "/livez")
            ready = await loop.run_in_executor(None, fetch, "/readyz")
            metrics = await loop.run_in_executor(None, fetch, "/metrics")
        finally:
            await runner.cleanup()
        assert "not in group" in ready[1]
        return live[0], ready[0], metrics[1]

    live, ready, metrics = asyncio.run(scenario())
    assert (live, ready) == (200, 503)
    assert "# HELP capi_events_delivered_total Events Meta accepted" in metrics


def test_json_log_lines_carry_level_logger_and_message() -> None:
    record = logging.LogRecord("worker.x", logging.WARNING, __file__, 1, "Sent; n=%d", (3,), None)
    line = orjson.loads(JsonLinesFormatter().format(record))
    assert line["level"] == "WARNING"
    assert line["logger"] == "worker.x"
    assert line["message"] == "Sent; n=3"
    assert line["time"].endswith("+00:00")
