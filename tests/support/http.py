"""GET from a port of this machine, as a probe or a scraper would."""

from __future__ import annotations

import urllib.error
import urllib.request


def local_get(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    """GET http://127.0.0.1:{port}{path}: the status and body; an HTTP error status is an
    answer too; (0, "") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""
