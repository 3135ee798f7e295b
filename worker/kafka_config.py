"""librdkafka settings built from the worker's settings: for the stream and for the tools.

`kafka.client` applies to every client, `kafka.consumer` / `kafka.producer` to one kind; the
keys the worker owns (bootstrap servers, group id, offset handling) are set here and nowhere
else.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from worker.config import Settings

# librdkafka pre-fetches up to `queued.max.messages.kbytes` (64 MiB by default) of records into
# its local queue, on top of what the worker holds. 16 MiB is still more than a second of work
# for one worker process and keeps its memory bounded; `kafka.consumer` may override it.
DEFAULT_QUEUED_MAX_MESSAGES_KBYTES = 16384

# Group-member settings that mean nothing to a consumer that only assigns partitions.
_DROPPED_INSPECTION_KEYS = (
    "group.instance.id",
    "partition.assignment.strategy",
    "statistics.interval.ms",
    "enable.auto.commit",
    "enable.auto.offset.store",
)


def consumer_config(settings: Settings) -> dict[str, Any]:
    """The consumer-group member: offsets are stored and committed by the worker only."""
    kafka = settings.kafka
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": kafka.group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "statistics.interval.ms": 5000,  # consumer lag for the metrics
        "queued.max.messages.kbytes": DEFAULT_QUEUED_MAX_MESSAGES_KBYTES,
        **kafka.client,
        **kafka.consumer,
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    kafka = settings.kafka
    return {"bootstrap.servers": kafka.bootstrap_servers, **kafka.client, **kafka.producer}


def inspection_consumer_config(settings: Settings) -> dict[str, Any]:
    """The worker's client settings (security, TLS...) for a consumer that joins no group."""
    kafka = settings.kafka
    config: dict[str, Any] = {**kafka.client, **kafka.consumer}
    for key in _DROPPED_INSPECTION_KEYS:
        config.pop(key, None)
    config.setdefault("fetch.wait.max.ms", 100)  # answers at a partition's end come sooner
    config.setdefault("session.timeout.ms", 6000)
    config.update(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            # librdkafka wants a group id even with assign(); it is never joined nor committed.
            "group.id": f"{kafka.group_id}-dlq-inspect-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    return config


_QUOTED_VALUE = re.compile(r'value "[^"]*"')


def kafka_error_text(error: KafkaException) -> str:
    """librdkafka's words, without the value it quotes (`Invalid value "..." for configuration
    property ...`): a misplaced secret must not reach the log."""
    first = error.args[0] if error.args else None
    text = first.str() if isinstance(first, KafkaError) else str(error)
    return _QUOTED_VALUE.sub("value (not shown)", text)
