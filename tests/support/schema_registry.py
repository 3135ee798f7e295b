"""A tiny Confluent-compatible schema registry on a real socket: GET /schemas/ids/{id}.

`fail_with` makes it answer that HTTP status (an outage); `hold` makes it answer only once the
event is set (a slow registry); `requests` lists the paths asked for, `asked_at` when.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class Registry:
    """A tiny schema registry on a real socket: GET /schemas/ids/{id}."""

    def __init__(self, schemas: dict[int, dict[str, Any]]) -> None:
        self.schemas = schemas
        self.requests: list[str] = []
        self.asked_at: list[float] = []  # time.monotonic() of each request
        self.fail_with: int | None = None
        self.hold: threading.Event | None = None  # when set: answer only once it is set
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                registry.asked_at.append(time.monotonic())
                if registry.hold is not None:
                    registry.hold.wait(60)
                prefix = "/schemas/ids/"
                status, body = 404, {"error_code": 40401, "message": "HTTP 404 Not Found"}
                if registry.fail_with is not None:
                    status, body = registry.fail_with, {"error_code": 50001, "message": "boom"}
                elif self.path.startswith(prefix) and self.path[len(prefix) :].isdigit():
                    schema = registry.schemas.get(int(self.path[len(prefix) :]))
                    if schema is None:
                        status, body = 404, {"error_code": 40403, "message": "Schema not found"}
                    else:
                        status, body = 200, {"schema": orjson.dumps(schema).decode()}
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Registry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
