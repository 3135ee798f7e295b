"""Every Prometheus metric of the worker, declared once; what each one means is its help text.

Label values are bounded: destination names come from the configuration (or are all `*` with
`metrics.destination_labels: false`), stages and reasons are the stable codes of the mapping,
decoding and delivery stages.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: The `destination` and `pixel_id` label value of every series when the configuration says
#: `metrics.destination_labels: false`: one series for all destinations instead of one per
#: destination (thousands of pixels would be thousands of series per metric).
ALL_DESTINATIONS = "*"
_per_destination = True


def label_destinations(per_destination: bool) -> None:
    """Whether series carry each destination's name and pixel id (once, at start-up)."""
    global _per_destination
    _per_destination = per_destination


def destination_label(value: str) -> str:
    """The label value for a destination name or pixel id ("" stays "": no destination)."""
    return value if _per_destination or not value else ALL_DESTINATIONS


RECORDS_CONSUMED = Counter(
    "capi_records_consumed", "Kafka records read from the source topics", ["topic"]
)
RECORDS_REFETCHED = Counter(
    "capi_records_refetched",
    "Records the consumer handed over again within one assignment; ignored",
    ["topic"],
)
EVENTS_DELIVERED = Counter(
    "capi_events_delivered", "Events Meta accepted", ["destination", "pixel_id"]
)
USER_DATA_KEYS = Counter(
    "capi_user_data_keys",
    "Events Meta accepted whose user_data carried this key (em, ph, external_id, fbp, ...;"
    " fbp_or_fbc: either browser id); divide by capi_events_delivered_total for the share",
    ["destination", "key"],
)
EVENTS_SKIPPED = Counter(
    "capi_events_skipped", "Events not sent on purpose, by reason", ["destination", "reason"]
)
EVENTS_DEAD_LETTERED = Counter(
    "capi_events_dead_lettered",
    "Events written to the dead-letter topic (a record once per destination it failed for)",
    ["destination", "stage", "reason"],
)
DEAD_LETTER_WRITE_FAILURES = Counter(
    "capi_dead_letter_write_failures",
    "Failed writes to the dead-letter topic; while they last nothing past the record commits",
)
BATCH_SIZE = Histogram(
    "capi_batch_events",
    "Events per batch sent to the Graph API",
    ["destination"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 750, 1000),
)
GRAPH_REQUEST_SECONDS = Histogram(
    "capi_graph_request_seconds",
    "Duration of one Graph API request, by outcome (ok, throttled, transient, error)",
    ["destination", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GRAPH_ERRORS = Counter(
    "capi_graph_errors",
    "Graph API requests that failed, by Meta's error code (http_<status> when the body had none,"
    " no_response for timeouts and dropped connections)",
    ["destination", "code"],
)
GRAPH_RETRIES = Counter(
    "capi_graph_retries", "Graph API requests retried, by error kind", ["destination", "kind"]
)
EVENTS_IN_FLIGHT = Gauge(
    "capi_events_in_flight", "Events batched, being delivered or waiting for a dead-letter ack"
)
PARTITIONS_ASSIGNED = Gauge("capi_partitions_assigned", "Partitions assigned to this worker")
PARTITIONS_PAUSED = Gauge("capi_partitions_paused", "Partitions paused by backpressure")
CONSUMER_LAG = Gauge(
    "capi_consumer_lag",
    "Records between the committed offset and the end of the partition (librdkafka statistics)",
    ["topic", "partition"],
)
LAST_COMMIT_TIMESTAMP = Gauge(
    "capi_last_commit_timestamp_seconds", "Unix time of the last accepted offset commit"
)
POLL_LOOP_TIMESTAMP = Gauge(
    "capi_poll_loop_timestamp_seconds", "Unix time the poll loop last turned (liveness)"
)
DESTINATIONS = Gauge("capi_destinations", "Destinations (pixels) in the running configuration")
CONFIG_RELOADS = Counter(
    "capi_config_reloads",
    "Reloads of the destinations (SIGHUP or interval), by result: applied or refused (the "
    "previous destinations keep running)",
    ["result"],
)
