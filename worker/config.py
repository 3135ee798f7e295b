"""Typed settings: one YAML file with ${ENV} interpolation, validated at start-up.

Every model forbids unknown keys, so a misspelt setting stops start-up with a message that
names it instead of being silently ignored. Secrets are `SecretStr` and never printed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.capi.rules import MAX_EVENTS_PER_REQUEST, ActionSource
from worker.reasons import BREAKER_IGNORED_REASONS

REPO_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
DEFAULT_AVRO_SCHEMA = REPO_SCHEMAS / "segment_event.avsc"

# RudderStack's default list of PII properties that never reach custom_data unhashed.
DEFAULT_PII_DENYLIST: tuple[str, ...] = (
    "email",
    "firstName",
    "lastName",
    "first_name",
    "last_name",
    "firstname",
    "lastname",
    "gender",
    "city",
    "country",
    "phone",
    "state",
    "zip",
    "postalCode",
    "birthday",
)

# Keys of `integrations` that carry per-event options for this destination, first match wins.
DEFAULT_INTEGRATION_NAMES: tuple[str, ...] = (
    "Facebook Conversions API",
    "Facebook Conversions API (Actions)",
    "Facebook Pixel Server Side",
    "FACEBOOK_CONVERSIONS",
    "FACEBOOK_PIXEL",
    "Facebook Pixel",
)

LibrdkafkaValue = str | int | float | bool

# librdkafka settings the worker owns: overriding them would break the commit guarantee or
# duplicate a key of this file.
RESERVED_LIBRDKAFKA_KEYS = frozenset(
    {"bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store"}
)


class ConfigError(Exception):
    """Configuration that cannot start the worker. The message names the key."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PiiRule(StrictModel):
    """A property that must not reach custom_data as is: dropped, or hashed when `hash` is set."""

    property: str
    hash: bool = False


class MatchSettings(StrictModel):
    """Narrows which events a destination takes. Empty lists mean "no restriction"."""

    event_types: list[Literal["track", "page", "screen", "identify"]] = []
    event_names: list[str] = []
    source_ids: list[str] = []
    source_id_field: str = "context.sourceId"
    source_id_header: str | None = None


class DestinationSettings(StrictModel):
    """One Meta pixel and how events are mapped for it (snake_case dashboard names)."""

    name: str = Field(min_length=1)
    pixel_id: str
    access_token: SecretStr
    app_secret: SecretStr | None = None
    api_version: str | None = None
    test_event_code: str | None = None

    events_to_standard: dict[str, str] = {}
    categories_to_content_types: dict[str, str] = {}
    value_field_identifier: str = "price"
    external_id_field: str | None = None
    default_action_source: ActionSource = "website"

    limited_data_use: bool = False
    data_processing_options: list[str] = ["LDU"]
    data_processing_options_country: int = 0
    data_processing_options_state: int = 0

    # Added to DEFAULT_PII_DENYLIST, never replacing it (a rule for a default name may set
    # hash: true); pii_allowlist is the only way to let a default PII property through.
    pii_denylist: list[PiiRule] = []
    pii_allowlist: list[str] = []

    required_consent_categories: list[str] = []
    forward_identify: bool = False
    forward_screen: bool = False
    page_event_naming: Literal["page_view", "viewed_page"] = "page_view"
    integration_names: list[str] = list(DEFAULT_INTEGRATION_NAMES)

    match: MatchSettings = MatchSettings()

    @field_validator("pixel_id")
    @classmethod
    def _pixel_id_is_numeric(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError("must be the numeric id of the pixel (dataset), as a string")
        return value

    @field_validator("access_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty (is its ${ENV} variable set?)")
        return value

    @field_validator("pii_denylist", mode="before")
    @classmethod
    def _plain_names_are_drop_rules(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"property": v} if isinstance(v, str) else v for v in value]
        return value


class DecodingSettings(StrictModel):
    format: Literal["json", "avro", "avro-confluent"] = "json"
    avro_schema: Path = DEFAULT_AVRO_SCHEMA
    schema_registry_url: str | None = None

    @model_validator(mode="after")
    def _registry_for_wire_format(self) -> DecodingSettings:
        if self.format == "avro-confluent" and not self.schema_registry_url:
            raise ValueError("format avro-confluent needs decoding.schema_registry_url")
        if self.format == "avro" and not self.avro_schema.is_file():
            raise ValueError(f"avro_schema {self.avro_schema} is not a file")
        return self


class KafkaSettings(StrictModel):
    bootstrap_servers: str
    group_id: str = "capi-worker"
    topics: list[str] = Field(min_length=1)
    dead_letter_topic: str
    # Passed to librdkafka as is: `client` to both consumer and producer, then the specific ones.
    client: dict[str, LibrdkafkaValue] = {}
    consumer: dict[str, LibrdkafkaValue] = {}
    producer: dict[str, LibrdkafkaValue] = {}
    commit_interval_ms: int = Field(default=1000, ge=50)

    @field_validator("client", "consumer", "producer")
    @classmethod
    def _not_reserved(cls, value: dict[str, LibrdkafkaValue]) -> dict[str, LibrdkafkaValue]:
        reserved = sorted(RESERVED_LIBRDKAFKA_KEYS.intersection(value))
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)} cannot be set here: capi-worker sets it "
                "(use kafka.bootstrap_servers / kafka.group_id; commits are managed)"
            )
        return value


class GraphSettings(StrictModel):
    url: str = "https://graph.facebook.com"
    api_version: str = "v25.0"
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Throttling and transient failures are retried for at most this long, then dead-lettered.
    max_retry_seconds: float = Field(default=300.0, ge=0)
    initial_backoff_seconds: float = Field(default=0.5, gt=0)
    max_backoff_seconds: float = Field(default=60.0, gt=0)
    max_concurrent_requests: int = Field(default=8, ge=1)


class BatchingSettings(StrictModel):
    max_events: int = Field(default=MAX_EVENTS_PER_REQUEST, ge=1, le=MAX_EVENTS_PER_REQUEST)
    linger_ms: int = Field(default=200, ge=0)
    max_bytes: int = Field(default=2_000_000, ge=1024)
    # Above this many events not yet done, partitions are paused (backpressure).
    max_pending_events: int = Field(default=20_000, ge=1)


class MetricsSettings(StrictModel):
    """HTTP port serving /metrics (Prometheus), /livez and /readyz."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=9100, ge=0, le=65535)
    # /livez fails when the poll loop has not turned for this long.
    liveness_timeout_seconds: float = Field(default=60.0, gt=0)


class LoggingSettings(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: JSON lines when stderr is not a terminal (containers), plain text on a terminal.
    format: Literal["auto", "json", "text"] = "auto"


class CircuitBreakerSettings(StrictModel):
    """Stops the worker (exit code 3) instead of dead-lettering the stream when most recent
    events fail the same way: that says the fault is ours (bad deploy, bad configuration)."""

    enabled: bool = True
    window_events: int = Field(default=1000, ge=10)
    min_events: int = Field(default=200, ge=1)  # no ratio verdict on fewer events than this
    max_failure_ratio: float = Field(default=0.5, gt=0, le=1)  # of one stage/reason in the window
    max_consecutive: int = Field(default=500, ge=1)  # events in a row, one stage/reason
    # Destination-scoped rejections by Meta: dead-lettered so the other pixels keep flowing.
    ignore_reasons: list[str] = list(BREAKER_IGNORED_REASONS)


class RuntimeSettings(StrictModel):
    shutdown_timeout_seconds: float = Field(default=25.0, gt=0)
    revoke_timeout_seconds: float = Field(default=20.0, gt=0)


class Settings(StrictModel):
    kafka: KafkaSettings
    graph: GraphSettings = GraphSettings()
    batching: BatchingSettings = BatchingSettings()
    decoding: DecodingSettings = DecodingSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    metrics: MetricsSettings = MetricsSettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    logging: LoggingSettings = LoggingSettings()
    destinations: list[DestinationSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_destinations(self) -> Settings:
        names = [d.name for d in self.destinations]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"destination names must be unique, repeated: {sorted(dup)}")
        return self


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(node: Any, env: dict[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML tree."""
    if isinstance(node, dict):
        return {
            k: interpolate_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [interpolate_env(v, env, f"{path}.{i}") for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")

        return _ENV_REF.sub(substitute, node)
    return node


def _format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see docs/configuration.md)"
        lines.append(f"  {key}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def parse_settings(raw: Any, env: dict[str, str] | None = None) -> Settings:
    if not isinstance(raw, dict):
        raise ConfigError("invalid configuration: the file must hold a YAML mapping")
    data = interpolate_env(raw, dict(os.environ) if env is None else env)
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error)) from None


def load_settings(path: str | Path, env: dict[str, str] | None = None) -> Settings:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = _yaml_problem(error)
        raise ConfigError(f"configuration file {path} is not valid YAML: {problem}") from None
    return parse_settings(raw, env)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's snippet of the offending line: that line may
    hold a literal access token."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "syntax error"
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
