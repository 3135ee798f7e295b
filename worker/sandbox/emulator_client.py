"""A small synchronous client for the Graph API emulator's `/_emulator/` hooks (stdlib only).

    client = EmulatorClient(emulator.url)
    client.inject_fault(count=2, status=400, error_code=4, retry_after=1)
    client.received("1234")["pixels"]["1234"]["events_received"]

`received()` answers `{"pixels": {pixel_id: summary}}`; each summary has `requests`,
`rejected_requests`, `faulted_requests`, `batch_sizes`, `events_received`, `unique_events`,
`duplicates` (`{"<event_name>|<event_id>": count}` for counts above 1) and, unless
`events=False`, `events`: one `{"test_event_code": ..., "event": {...}}` per accepted event.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class EmulatorClientError(RuntimeError):
    """The emulator refused a hook call (for example an invalid fault description)."""


class EmulatorClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def inject_fault(self, **fields: Any) -> dict[str, Any]:
        """Queue a fault: count, status, error_code, error_subcode, is_transient, retry_after,
        latency_ms, drop_connection, pixel_id (see `graph_emulator.parse_fault`)."""
        return self._call("POST", "/_emulator/faults", fields)

    def pending_faults(self) -> list[dict[str, Any]]:
        pending: list[dict[str, Any]] = self._call("GET", "/_emulator/faults")["pending"]
        return pending

    def clear_faults(self) -> int:
        """Drop every queued fault; returns how many there were."""
        cleared: int = self._call("DELETE", "/_emulator/faults")["cleared"]
        return cleared

    def reject_event_ids(self, event_ids: list[str], error_subcode: int = 2804050) -> None:
        """Make the emulator reject these events (code 100) as Meta does for checks the worker
        cannot make itself; lasts until reset()."""
        self._call(
            "POST",
            "/_emulator/rejections",
            {"event_ids": event_ids, "error_subcode": error_subcode},
        )

    def received(self, pixel_id: str | None = None, events: bool = True) -> dict[str, Any]:
        """What the emulator recorded, for one pixel (always present in the answer) or all."""
        query: dict[str, str] = {} if events else {"events": "0"}
        if pixel_id is not None:
            query["pixel_id"] = pixel_id
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._call("GET", f"/_emulator/events{suffix}")

    def set_tokens(self, tokens: dict[str, str]) -> None:
        """Pixel id -> the only token the emulator accepts for it from now on (a rotation)."""
        self._call("POST", "/_emulator/tokens", tokens)

    def reset(self) -> None:
        """Forget every recorded request and queued fault."""
        self._call("POST", "/_emulator/reset")

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")
            raise EmulatorClientError(f"{method} {path}: HTTP {error.code}: {detail}") from None
