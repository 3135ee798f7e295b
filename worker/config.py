"""Typed settings: one YAML file with ${ENV} interpolation, validated at start-up.

Every model forbids unknown keys, so a misspelt setting stops start-up with a message that
names it instead of being silently ignored. Secrets are `SecretStr` and never printed.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import phonenumbers
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.capi.rules import MAX_EVENTS_PER_REQUEST, ActionSource
from worker.reasons import BREAKER_IGNORED_REASONS

# Shipped inside the package (package data; the repository's schemas/ links to it), so an
# installed worker finds it wherever it is installed.
PACKAGE_SCHEMAS = Path(str(resources.files("worker") / "schemas"))
DEFAULT_AVRO_SCHEMA = PACKAGE_SCHEMAS / "segment_event.avsc"

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
    # Either the secret itself (often `${ENV}`) or `*_file`: a file holding it, read when the
    # configuration is loaded and on every reload (the secret is then filled in from the file).
    access_token: SecretStr
    access_token_file: Path | None = None
    app_secret: SecretStr | None = None
    app_secret_file: Path | None = None
    api_version: str | None = None
    test_event_code: str | None = None

    events_to_standard: dict[str, str] = {}
    categories_to_content_types: dict[str, str] = {}
    value_field_identifier: str = "price"
    external_id_field: str | None = None
    # RudderStack's removeExternalId: send no external_id at all.
    drop_external_id: bool = False
    default_action_source: ActionSource = "website"
    # ISO 3166-1 alpha-2 country whose calling code completes a national phone number when the
    # traits' address names no country.
    default_phone_country: str | None = None

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

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in ("access_token", "app_secret"):
            file_key = f"{key}_file"
            path = data.get(file_key)
            if path is None:
                continue
            if data.get(key) is not None:
                raise ValueError(f"give either {key} or {file_key}, not both")
            data = {**data, key: read_secret_file(file_key, path)}
        return data

    @field_validator("pixel_id")
    @classmethod
    def _pixel_id_is_numeric(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError("must be the numeric id of the pixel (dataset), as a string")
        return value

    @field_validator("default_phone_country")
    @classmethod
    def _known_phone_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not (len(code) == 2 and code.isalpha() and phonenumbers.country_code_for_region(code)):
            raise ValueError(
                "must be an ISO 3166-1 alpha-2 country code with a telephone calling code, "
                "such as GB or US"
            )
        return code

    @field_validator("access_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if not token:
            raise ValueError("is empty (is its ${ENV} variable set?)")
        return _one_word_secret(token)

    @field_validator("app_secret")
    @classmethod
    def _secret_is_one_word(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _one_word_secret(value.get_secret_value().strip())

    @field_validator("pii_denylist", mode="before")
    @classmethod
    def _plain_names_are_drop_rules(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"property": v} if isinstance(v, str) else v for v in value]
        return value


def read_secret_file(key: str, path: Any) -> str:
    """The content of a secret file without surrounding whitespace. Errors name the key and the
    path, never the content."""
    try:
        text = Path(str(path)).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{key} {path}: cannot read the file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{key} {path}: the file is not UTF-8 text") from None
    secret = text.strip()
    if not secret:
        raise ValueError(f"{key} {path}: the file is empty")
    if _has_space_inside(secret):
        raise ValueError(f"{key} {path}: {SECRET_WITH_SPACE}")
    return secret


# A secret goes into the Authorization header or the appsecret_proof HMAC: a space or a line
# break inside is always a mistake (two lines in a file, a pasted comment) and a line break
# would make every request of the pixel fail inside the HTTP client.
SECRET_WITH_SPACE = "holds a space or a line break inside; it must be the secret alone, on one line"


def _has_space_inside(secret: str) -> bool:
    return any(c.isspace() or not c.isprintable() for c in secret)


def _one_word_secret(secret: str) -> SecretStr:
    """The secret without surrounding whitespace (a variable read from a file often ends in a
    line break); a space or control character inside it is refused, never quoted."""
    if _has_space_inside(secret):
        raise ValueError(SECRET_WITH_SPACE)
    return SecretStr(secret)


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
    # false: every series carries destination="*" (and pixel_id="*") instead of one series per
    # destination, for tenants with thousands of pixels (cardinality).
    destination_labels: bool = True


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


class MappingSettings(StrictModel):
    # Check every event the mapping builds against Meta's contract before batching it. The
    # mapping's rules already guarantee it (tested), so this costs CPU for a backstop only.
    verify_contract: bool = False


class RuntimeSettings(StrictModel):
    shutdown_timeout_seconds: float = Field(default=25.0, gt=0)
    revoke_timeout_seconds: float = Field(default=20.0, gt=0)
    # Destinations (inline, destinations_dir, token files) are reloaded on SIGHUP and checked
    # for changes this often; 0: on SIGHUP only.
    reload_interval_seconds: float = Field(default=30.0, ge=0)


class Settings(StrictModel):
    kafka: KafkaSettings
    graph: GraphSettings = GraphSettings()
    batching: BatchingSettings = BatchingSettings()
    decoding: DecodingSettings = DecodingSettings()
    mapping: MappingSettings = MappingSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    metrics: MetricsSettings = MetricsSettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    logging: LoggingSettings = LoggingSettings()
    # Inline destinations, plus one YAML list of destinations per *.yaml / *.yml file in
    # destinations_dir (load_settings merges them into `destinations`; reloaded live).
    destinations: list[DestinationSettings] = []
    destinations_dir: Path | None = None

    @model_validator(mode="after")
    def _unique_destinations(self) -> Settings:
        if not self.destinations and self.destinations_dir is None:
            raise ValueError(
                "destinations: at least one destination is required (inline, or "
                "files in destinations_dir)"
            )
        counts = Counter(d.name for d in self.destinations)
        dup = sorted(name for name, count in counts.items() if count > 1)
        if dup:
            raise ValueError(f"destination names must be unique, repeated: {dup}")
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
        elif item["type"] == "missing" and item["loc"][-1] == "access_token":
            message += " (access_token, or access_token_file: a file holding the token)"
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
    """The configuration file, with the destinations of `destinations_dir` merged in (a
    relative `destinations_dir` is relative to the file's folder)."""
    env = dict(os.environ) if env is None else env
    raw = _read_yaml(Path(path), "configuration file")
    if isinstance(raw, dict) and isinstance(raw.get("destinations_dir"), str):
        directory = Path(interpolate_env(raw["destinations_dir"], env, "destinations_dir"))
        raw = {**raw, "destinations_dir": str(Path(path).parent / directory)}
    settings = parse_settings(raw, env)
    if settings.destinations_dir is None:
        return settings
    return with_destinations_dir(settings, env)


def with_destinations_dir(settings: Settings, env: dict[str, str] | None = None) -> Settings:
    """`settings` whose destinations are its inline ones followed by those of its
    `destinations_dir` (files in name order), read now. ConfigError names the file."""
    directory = settings.destinations_dir
    assert directory is not None
    env = dict(os.environ) if env is None else env
    found_in = {d.name: "the configuration file" for d in settings.destinations}
    merged = list(settings.destinations)
    for file in destination_files(directory):
        for destination in _destinations_of(file, env):
            where = found_in.get(destination.name)
            if where is not None:
                raise ConfigError(
                    f"destinations_dir {file}: destination name {destination.name!r} is "
                    f"already used in {where}; names must be unique"
                )
            found_in[destination.name] = file.name
            merged.append(destination)
    if not merged:
        raise ConfigError(
            f"destinations_dir {directory}: no destination in it and none inline; at least "
            "one is required"
        )
    return settings.model_copy(update={"destinations": merged})


def destination_files(directory: Path) -> list[Path]:
    """The *.yaml / *.yml files directly in `directory`, by name; names starting with `.` are
    ignored (Kubernetes mounts a ConfigMap as `..data` symlinks beside the keys)."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        raise ConfigError(f"destinations_dir {directory}: no such directory") from None
    except NotADirectoryError:
        raise ConfigError(f"destinations_dir {directory}: not a directory") from None
    except OSError as error:
        raise ConfigError(f"destinations_dir {directory}: {error.strerror}") from None
    return [
        entry
        for entry in entries
        if not entry.name.startswith(".") and entry.suffix in (".yaml", ".yml") and entry.is_file()
    ]


_DESTINATION_LIST = TypeAdapter(list[DestinationSettings])


def _destinations_of(file: Path, env: dict[str, str]) -> list[DestinationSettings]:
    raw = _read_yaml(file, "destinations_dir file")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"destinations_dir file {file}: must hold a YAML list of destinations")
    try:
        data = interpolate_env(raw, env)
    except ConfigError as error:
        raise ConfigError(f"destinations_dir file {file}: {error}") from None
    try:
        return _DESTINATION_LIST.validate_python(data)
    except ValidationError as error:
        problems = _format_validation_error(error).split("\n", 1)[1]
        raise ConfigError(
            f"destinations_dir file {file}: invalid destination:\n{problems}"
        ) from None


def _read_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        problem = _yaml_problem(error)
        raise ConfigError(f"{what} {path} is not valid YAML: {problem}") from None


# libyaml's loader when PyYAML was built with it (the wheels are): 10x faster on large files.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's snippet of the offending line: that line may
    hold a literal access token."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "syntax error"
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
