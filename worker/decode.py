"""Record decoding: Kafka record value (bytes) -> event dict in the Segment/RudderStack shape.

Three formats, chosen by `decoding.format`:

- ``json``: the value is a JSON object (orjson).
- ``avro``: the value is a schemaless Avro datum written with the schema file
  ``decoding.avro_schema`` (default ``schemas/segment_event.avsc``).
- ``avro-confluent``: the Confluent wire format: magic byte 0, a 4-byte big-endian schema id,
  then the Avro datum. The writer schema is fetched once per id from the schema registry.

Avro cannot express free-form JSON, so ``properties``, ``context``, ``traits`` and
``integrations`` travel as JSON-encoded strings and are parsed here: every format yields the
same dict shape. Avro fields that are null are left out, as they would be in a JSON event.

Every failure raises `DecodeError`, whose ``reason`` is a stable snake_case code for the
dead-letter headers. ``retryable`` is True only when the fault is in the infrastructure (the
schema registry is down), never in the record: such a record must not be dead-lettered.
"""

from __future__ import annotations

import base64
import gc
import operator
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
import orjson

from worker import reasons
from worker.config import DecodingSettings
from worker.json_decode import DecodeError, decode_json, json_type_name

Decoder = Callable[[bytes | None], dict[str, Any]]
Header = tuple[str, bytes | None]

# Fields carried as JSON-encoded strings in Avro (see schemas/README.md).
JSON_STRING_FIELDS: frozenset[str] = frozenset({"properties", "context", "traits", "integrations"})

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_SIZE = 5


def load_avro_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and parse an Avro schema file (.avsc). Parse once, reuse the result."""
    try:
        raw = orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise ValueError(f"cannot read Avro schema {path}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise ValueError(f"Avro schema {path} is not valid JSON: {error}") from None
    return _parse_schema(raw)


def _parse_schema(raw: Any) -> dict[str, Any]:
    parsed = fastavro.parse_schema(raw)
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError("the event schema must be an Avro record")
    return parsed


def parse_avro_schema(schema: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A parsed Avro record schema from a path, a raw schema or an already parsed one."""
    if isinstance(schema, str | os.PathLike):
        return load_avro_schema(schema)
    # parse_schema returns an already parsed schema as is, so this is cheap in a loop.
    return _parse_schema(schema if isinstance(schema, dict) else dict(schema))


# --------------------------------------------------------------------------- decoders


def _finish_avro(record: Any) -> dict[str, Any]:
    """Drop nulls and parse the JSON-string fields, giving the shape of the JSON path."""
    if type(record) is not dict:
        raise DecodeError(
            reasons.NOT_AN_OBJECT, f"the Avro datum is {json_type_name(record)}, expected a record"
        )
    event: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            continue
        if key in JSON_STRING_FIELDS and type(value) is str:
            if not value:
                continue
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError as error:
                raise DecodeError(
                    reasons.INVALID_EMBEDDED_JSON, f"field {key} is not valid JSON: {error}"
                ) from None
            if value is None:
                continue
            if type(value) is not dict:
                raise DecodeError(
                    reasons.INVALID_EMBEDDED_JSON,
                    f"field {key} must hold a JSON object, got {json_type_name(value)}",
                )
        event[key] = value
    return event


def _read_avro(value: bytes, schema: dict[str, Any], offset: int) -> dict[str, Any]:
    buffer = BytesIO(value)  # shares the bytes object's buffer, no copy
    if offset:
        buffer.seek(offset)
    try:
        record = fastavro.schemaless_reader(buffer, schema, None)
    except Exception as error:  # fastavro raises EOFError, IndexError, UnicodeDecodeError, ...
        raise DecodeError(
            reasons.INVALID_AVRO,
            f"cannot read the Avro datum with schema {schema.get('name')}: "
            f"{type(error).__name__}: {error}",
        ) from None
    if buffer.tell() != len(value):
        raise DecodeError(
            reasons.INVALID_AVRO,
            f"{len(value) - buffer.tell()} bytes left after the Avro datum "
            f"(written with another schema than {schema.get('name')}?)",
        )
    return _finish_avro(record)


def make_avro_decoder(schema: Mapping[str, Any] | str | os.PathLike[str]) -> Decoder:
    """Decoder of schemaless Avro data written with `schema` (parsed once here)."""
    parsed = parse_avro_schema(schema)

    def decode_avro(value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError(reasons.EMPTY_VALUE, "the record has no value (tombstone or empty)")
        return _read_avro(value, parsed, 0)

    return decode_avro


class SchemaRegistryClient:
    """Fetches writer schemas by id from a Confluent-compatible schema registry (stdlib HTTP).

    Schemas are immutable per id, so each one is fetched once and cached for the life of the
    process. An id the registry does not know is remembered for `unknown_id_ttl` seconds so a
    run of such records does not hammer the registry. Credentials may be given in the URL
    (``https://user:secret@registry``) and are sent as HTTP basic auth, never logged.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, unknown_id_ttl: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = urllib.parse.urlunsplit(
                (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
            )
            raise ValueError(
                f"schema registry URL must be http(s)://host[:port], got {shown!r}"
                + (" (credentials not shown)" if "@" in parts.netloc else "")
            )
        self._headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            secret = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        netloc = parts.netloc.rpartition("@")[2]  # without the credentials
        self.url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout
        self.unknown_id_ttl = unknown_id_ttl
        self.schemas: dict[int, dict[str, Any]] = {}
        self._unknown_until: dict[int, float] = {}

    def get(self, schema_id: int) -> dict[str, Any]:
        schema = self.schemas.get(schema_id)
        if schema is None:
            schema = self._fetch(schema_id)
            self.schemas[schema_id] = schema
        return schema

    def _fetch(self, schema_id: int) -> dict[str, Any]:
        until = self._unknown_until.get(schema_id)
        if until is not None and time.monotonic() < until:
            raise DecodeError(
                reasons.UNKNOWN_SCHEMA_ID,
                f"schema id {schema_id} is not in the registry {self.url}",
            )
        request = urllib.request.Request(
            f"{self.url}/schemas/ids/{schema_id}", headers=self._headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                self._unknown_until[schema_id] = time.monotonic() + self.unknown_id_ttl
                raise DecodeError(
                    reasons.UNKNOWN_SCHEMA_ID,
                    f"schema id {schema_id} is not in the registry {self.url}",
                ) from None
            raise DecodeError(
                reasons.SCHEMA_REGISTRY_UNAVAILABLE,
                f"schema registry {self.url} answered HTTP {error.code} for schema id {schema_id}",
                retryable=True,
            ) from None
        except (OSError, ValueError) as error:  # URLError, timeouts, refused, reset, bad URL
            reason = getattr(error, "reason", error)
            raise DecodeError(
                reasons.SCHEMA_REGISTRY_UNAVAILABLE,
                f"schema registry {self.url} is unreachable: {reason}",
                retryable=True,
            ) from None
        try:
            answer = orjson.loads(body)
            text = answer["schema"]
            if not isinstance(text, str):
                raise TypeError("schema is not a string")
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise DecodeError(
                reasons.SCHEMA_REGISTRY_UNAVAILABLE,
                f"schema registry {self.url} gave an unreadable answer for schema id "
                f"{schema_id}: {error}",
                retryable=True,
            ) from None
        schema_type = answer.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise DecodeError(
                reasons.INVALID_AVRO, f"schema id {schema_id} is a {schema_type} schema, not Avro"
            )
        try:
            parsed = fastavro.parse_schema(orjson.loads(text))
        except Exception as error:  # SchemaParseException, UnknownType (references), JSON
            raise DecodeError(
                reasons.INVALID_AVRO,
                f"schema id {schema_id} cannot be parsed (schema references are not "
                f"supported): {type(error).__name__}: {error}",
            ) from None
        if not isinstance(parsed, dict) or parsed.get("type") != "record":
            raise DecodeError(
                reasons.INVALID_AVRO, f"schema id {schema_id} is not an Avro record schema"
            )
        return parsed


class SchemaNotCached(Exception):
    """A decoder built with `fetch_missing=False` met a schema id it has not fetched yet: fetch
    it (`SchemaRegistryClient.get`, blocking I/O: off the event loop) and decode again."""

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"schema id {schema_id} is not fetched yet")
        self.schema_id = schema_id


def make_confluent_decoder(
    registry: SchemaRegistryClient, *, fetch_missing: bool = True
) -> Decoder:
    """Decoder of the Confluent wire format, writer schemas from `registry`.

    With `fetch_missing=False` the decoder never does I/O: an id not in the cache raises
    `SchemaNotCached` instead of fetching it (the worker fetches on another thread).
    """
    schemas = registry.schemas
    get_schema = registry.get if fetch_missing else _not_cached

    def decode_confluent(value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError(reasons.EMPTY_VALUE, "the record has no value (tombstone or empty)")
        if len(value) < CONFLUENT_HEADER_SIZE or value[0] != CONFLUENT_MAGIC:
            detail = (
                f"first byte is {value[0]:#04x}, not the magic byte 0x00"
                if value[0] != CONFLUENT_MAGIC
                else f"{len(value)} bytes is shorter than the 5-byte header"
            )
            raise DecodeError(reasons.NOT_CONFLUENT_WIRE_FORMAT, detail)
        schema_id = int.from_bytes(value[1:CONFLUENT_HEADER_SIZE], "big")
        schema = schemas.get(schema_id)
        if schema is None:
            schema = get_schema(schema_id)
        return _read_avro(value, schema, CONFLUENT_HEADER_SIZE)

    return decode_confluent


def _not_cached(schema_id: int) -> dict[str, Any]:
    raise SchemaNotCached(schema_id)


def build_registry(
    settings: DecodingSettings, *, timeout: float = 10.0
) -> SchemaRegistryClient | None:
    """The schema registry client `settings` ask for (avro-confluent), else None."""
    if settings.format != "avro-confluent":
        return None
    if not settings.schema_registry_url:
        raise ValueError("format avro-confluent needs decoding.schema_registry_url")
    return SchemaRegistryClient(settings.schema_registry_url, timeout=timeout)


def build_decoder(
    settings: DecodingSettings,
    *,
    registry_timeout: float = 10.0,
    registry: SchemaRegistryClient | None = None,
    fetch_missing: bool = True,
) -> Decoder:
    """The decoder for `settings.format`. Schema files are read and parsed here, once.

    `fetch_missing=False`: see `make_confluent_decoder`."""
    if settings.format == "json":
        return decode_json
    if settings.format == "avro":
        return make_avro_decoder(settings.avro_schema)
    if registry is None:
        registry = build_registry(settings, timeout=registry_timeout)
        assert registry is not None
    return make_confluent_decoder(registry, fetch_missing=fetch_missing)


# --------------------------------------------------------------------------- headers


_call_headers = operator.methodcaller("headers")


def read_record_headers(message: Any) -> tuple[list[Header], int]:
    """The headers of a consumed record that can be read, and how many could not be.

    Never raises, and is safe to call again on the same record. confluent-kafka cannot turn a
    header key that is not UTF-8 into a `str`: the first `headers()` call raises SystemError,
    and every later call returns the list with a NULL where each such key should be; touching
    that NULL crashes the interpreter. Those entries are detected without touching them (the
    garbage collector's view of a tuple skips NULL items) and left out; the count is the
    number left out, -1 when no header could be read at all. A key that is not UTF-8 cannot be
    any header the worker reads (`capi.redrive.only_destination`, `match.source_id_header`),
    so leaving it out changes no routing decision.

    `message.headers()` written out in a hot loop is not enough: CPython's specialised call of
    a C method skips the check that turns "a result with an exception set" into SystemError,
    so the call returns and the stray UnicodeDecodeError surfaces later, anywhere. The call
    goes through `operator.methodcaller`, which always checks.
    """
    try:
        raw = _call_headers(message)
    except Exception:  # SystemError (UnicodeDecodeError): a key is not UTF-8
        try:
            raw = _call_headers(message)
        except Exception:
            return [], -1
    if not raw:
        return [], 0
    if isinstance(raw, dict):  # a test double
        raw = list(raw.items())
    readable: list[Header] = []
    dropped = 0
    for item in raw:
        if type(item) is tuple and len(item) == 2 and len(gc.get_referents(item)) == 2:
            key, value = item
            if isinstance(key, str) and (value is None or isinstance(value, bytes)):
                readable.append((key, value))
                continue
            if isinstance(key, str) and isinstance(value, str):
                readable.append((key, value.encode()))
                continue
        dropped += 1
    return readable, dropped


def read_headers(message: Any) -> list[Header] | None:
    """The readable headers of a consumed record (see `read_record_headers`); None when it has
    none. Never raises: use it instead of `message.headers()`."""
    headers, _ = read_record_headers(message)
    return headers or None
