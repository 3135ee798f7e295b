"""capi-worker: forwards Segment/RudderStack-spec events from Kafka to Meta's Conversions API."""

__version__ = "0.1.0"
