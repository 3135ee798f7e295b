"""Avro test records: what a producer writes, for the decoders to read back.

`encode_avro` writes a schemaless datum, `encode_confluent` the Confluent wire format (magic
byte 0, big-endian schema id, datum). The JSON-string fields (`properties`, `context`,
`traits`, `integrations`) are JSON-encoded as the schema asks (see schemas/README.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from io import BytesIO
from typing import Any

import fastavro
import orjson

from worker.decode import CONFLUENT_MAGIC, JSON_STRING_FIELDS, parse_avro_schema

Schema = Mapping[str, Any] | str | os.PathLike[str]


def encode_avro(event: Mapping[str, Any], schema: Schema) -> bytes:
    """Schemaless Avro datum of a JSON-shaped event (JSON-string fields are encoded).

    `schema` is a parsed schema (`load_avro_schema`), a raw schema dict or a path. Pass a
    parsed schema in loops. Keys the schema does not know are dropped.
    """
    buffer = BytesIO()
    fastavro.schemaless_writer(buffer, parse_avro_schema(schema), _avro_record(event))
    return buffer.getvalue()


def encode_confluent(event: Mapping[str, Any], schema_id: int, schema: Schema) -> bytes:
    """Confluent wire format: magic byte 0, big-endian schema id, schemaless Avro datum."""
    if not 0 <= schema_id < 2**32:
        raise ValueError(f"schema id {schema_id} does not fit in 4 bytes")
    buffer = BytesIO()
    buffer.write(bytes((CONFLUENT_MAGIC,)) + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(buffer, parse_avro_schema(schema), _avro_record(event))
    return buffer.getvalue()


def _avro_record(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: (
            orjson.dumps(value).decode()
            if key in JSON_STRING_FIELDS and isinstance(value, dict | list)
            else value
        )
        for key, value in event.items()
    }
