"""The worker's small HTTP port: /metrics (Prometheus), /livez and /readyz."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@dataclass(frozen=True, slots=True)
class HealthChecks:
    """`live()` and `ready()` answer (ok, detail); both are cheap and never block."""

    live: Callable[[], tuple[bool, str]]
    ready: Callable[[], tuple[bool, str]]


def heartbeat_check(
    last_turn: Callable[[], float], timeout_seconds: float
) -> Callable[[], tuple[bool, str]]:
    """Live while the poll loop turned within `timeout_seconds` (monotonic clock)."""

    def check() -> tuple[bool, str]:
        age = time.monotonic() - last_turn()
        return age <= timeout_seconds, f"poll loop last turned {age:.1f}s ago"

    return check


def create_health_app(checks: HealthChecks) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def probe(
        check: Callable[[], tuple[bool, str]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_request: web.Request) -> web.Response:
            ok, detail = check()
            return web.Response(
                status=200 if ok else 503, text=f"{'ok' if ok else 'fail'}: {detail}\n"
            )

        return handler

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", probe(checks.live))
    app.router.add_get("/readyz", probe(checks.ready))
    return app


async def start_health_server(
    checks: HealthChecks, host: str, port: int
) -> tuple[web.AppRunner, int]:
    """Serve on (host, port); port 0 picks a free one. Returns the runner and the bound port."""
    runner = web.AppRunner(create_health_app(checks), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound
