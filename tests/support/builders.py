"""Builders for the pure tests: a destination's settings and a Segment track call.

Each test module shapes them further (its own event name, context, properties) in a small
`message()` of its own; what every module needs is here once.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from worker.config import DestinationSettings

NOW = 1_700_000_000.0  # the mapping's `now` in the pure tests (2023-11-14T22:13:20Z)


def destination(name: str = "shop", **settings: Any) -> DestinationSettings:
    """A destination for pixel 1234567890 with token "token", plus `settings`."""
    return DestinationSettings(
        name=name, pixel_id="1234567890", access_token=SecretStr("token"), **settings
    )


def track_message(**fields: Any) -> dict[str, Any]:
    """A track call from a website, 10 s before NOW, with a user agent and a page URL (what a
    `website` event needs) and no properties; `fields` replace top-level keys."""
    message: dict[str, Any] = {
        "type": "track",
        "messageId": "msg-1",
        "anonymousId": "anon-1",
        "timestamp": NOW - 10,
        "context": {"userAgent": "Mozilla/5.0", "page": {"url": "https://shop.example/"}},
        "properties": {},
    }
    message.update(fields)
    return message
