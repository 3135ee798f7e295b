"""capi-worker: forwards Segment/RudderStack-spec events from Kafka to Meta's Conversions API."""

from worker import compiled as _compiled

__version__ = "0.1.0"

# Before any mapping module is imported: compiled or pure Python (see worker/compiled.py).
_compiled.install()
