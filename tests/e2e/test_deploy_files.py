"""The deployment files: docker-compose.yml, the worker configurations it mounts, the Dockerfile.

There is no Docker engine here. docker-compose.yml is rendered with `docker-compose config`
(Debian's docker-compose 1.29, which `make test` installs; Compose v2's standalone binary
works too): that validates it against the Compose schema, resolves anchors, env files and
interpolation, and is what the assertions read. The Dockerfile is parsed and checked by reading.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.kafka_helpers import read_all
from worker.config import ConfigError, Settings, load_settings
from worker.sandbox.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy" / "compose"
SANDBOX_CONFIG = DEPLOY / "worker.sandbox.yaml"
LIVE_CONFIG = DEPLOY / "worker.live.yaml"
SANDBOX_ENV = DEPLOY / "sandbox.env"
LIVE_ENV_EXAMPLE = DEPLOY / ".env.example"

CONFIG_IN_IMAGE = "/etc/capi-worker/config.yaml"
WORKER_IMAGE_SERVICES = ("graph-emulator", "worker", "sample-events", "worker-live")
SERVICE_PROFILES: dict[str, list[str]] = {
    "kafka": [],
    "kafka-init": [],
    "graph-emulator": ["sandbox"],
    "worker": ["sandbox"],
    "sample-events": ["sandbox"],
    "worker-live": ["live"],
}
# What a user fills in deploy/compose/.env (the example leaves them empty).
LIVE_DUMMY_ENV = {"META_PIXEL_ID": "1234567890", "META_CAPI_TOKEN": "dummy-token"}
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


# --------------------------------------------------------------------------- helpers


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is not on PATH, so docker-compose.yml cannot be validated. "
            "`make test` installs Debian's (apt-get install docker-compose, no engine needed); "
            "run `make install-docker-compose`, or install Compose's standalone binary."
        )
    return path


@cache
def render(*profiles: str) -> dict[str, Any]:
    """`docker-compose config` with these profiles on, parsed. The live worker's env file is
    pointed at .env.example, since deploy/compose/.env holds real tokens and is not committed."""
    args = [docker_compose(), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        args += ["--profile", profile]
    env = {**os.environ, "CAPI_WORKER_ENV_FILE": str(LIVE_ENV_EXAMPLE.relative_to(ROOT))}
    env.pop("COMPOSE_PROFILES", None)
    result = subprocess.run(
        [*args, "config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    rendered = yaml.safe_load(result.stdout)
    assert isinstance(rendered, dict)
    return rendered


def service(name: str) -> dict[str, Any]:
    """A service as rendered with its profiles on."""
    rendered: dict[str, Any] = render(*SERVICE_PROFILES[name])["services"][name]
    return rendered


def raw_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def yaml_values(path: Path) -> str:
    """Every string value of a YAML file (comments left out), one per line."""

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for value in node.values() for s in strings(value)]
        if isinstance(node, list):
            return [s for value in node for s in strings(value)]
        return [node] if isinstance(node, str) else []

    return "\n".join(strings(yaml.safe_load(path.read_text(encoding="utf-8"))))


def as_list(value: Any) -> list[str]:
    """A command, entrypoint or healthcheck test as a list of words (shell form is split)."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(word) for word in value]


def unescape(text: str) -> str:
    """Compose writes a literal `$` as `$$`; 1.29's `config` keeps it escaped, v2 does not."""
    return text.replace("$$", "$")


def bind_mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """target -> source of the bind mounts (short or long syntax, as Compose versions render)."""
    mounts: dict[str, Path] = {}
    for volume in svc.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = Path(source)
    return mounts


def conditions(svc: dict[str, Any]) -> dict[str, str]:
    depends = svc.get("depends_on", {})
    assert isinstance(depends, dict), "depends_on must state a condition for every dependency"
    return {name: spec["condition"] for name, spec in depends.items()}


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def healthcheck_url(svc: dict[str, Any]) -> str:
    test = as_list(svc["healthcheck"]["test"])
    assert test[0] in ("CMD", "CMD-SHELL"), test
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(test))
    assert len(urls) == 1, test
    return urls[0]


def worker_settings(svc: dict[str, Any], **extra_env: str) -> Settings:
    """The configuration the service mounts, loaded with the environment compose gives it."""
    source = bind_mounts(svc)[CONFIG_IN_IMAGE]
    return load_settings(source, env={**environment(svc), **extra_env})


# --------------------------------------------------------------------------- docker-compose.yml


def test_docker_compose_is_installed_and_renders_every_profile() -> None:
    version = subprocess.run(
        [docker_compose(), "version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0, version.stderr
    every = render("sandbox", "live")["services"]
    assert set(every) == set(SERVICE_PROFILES)
    for on in ((), ("sandbox",), ("live",)):
        active = {name for name, p in SERVICE_PROFILES.items() if not p or set(p) & set(on)}
        # Compose v2 leaves inactive services out; 1.29 lists every service with its profiles.
        assert active <= set(render(*on)["services"]), on
    for name, profiles in SERVICE_PROFILES.items():
        assert every[name].get("profiles", []) == profiles, name


def test_kafka_is_the_official_image_in_kraft_mode_with_a_healthcheck() -> None:
    kafka = service("kafka")
    image, _, tag = kafka["image"].partition(":")
    assert image in ("apache/kafka", "docker.io/apache/kafka")
    assert tuple(int(part) for part in tag.split(".")[:2]) >= (3, 9), tag
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["CLUSTER_ID"]
    assert not [key for key in env if "ZOOKEEPER" in key]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka-broker-api-versions.sh" in " ".join(as_list(kafka["healthcheck"]["test"]))


def test_kafka_init_creates_the_topics_the_workers_use() -> None:
    init = service("kafka-init")
    assert init["image"] == service("kafka")["image"]
    assert conditions(init) == {"kafka": "service_healthy"}
    script = unescape(" ".join(as_list(init.get("entrypoint")) + as_list(init.get("command"))))
    script = script.replace("\\\n", " ")
    creates = {
        match.group(1): line
        for line in script.splitlines()
        if "--create" in line and (match := re.search(r"--topic\s+(\S+)", line))
    }
    assert "kafka-topics.sh" in script
    assert set(creates) == {"events.raw", "events.dlq"}
    assert re.search(r"--partitions\s+6\b", creates["events.raw"])
    assert all("--if-not-exists" in line for line in creates.values())
    for name in ("worker", "worker-live"):
        kafka = worker_settings(service(name), **LIVE_DUMMY_ENV).kafka
        assert kafka.bootstrap_servers == "kafka:9092"
        assert set(kafka.topics) | {kafka.dead_letter_topic} == set(creates)


def test_every_worker_service_runs_the_image_built_from_the_dockerfile() -> None:
    images = set()
    for name in WORKER_IMAGE_SERVICES:
        svc = service(name)
        build = svc["build"]
        assert Path(build["context"]) == ROOT, name
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name
        images.add(svc["image"])
    assert len(images) == 1


def test_sandbox_worker_mounts_its_config_waits_for_kafka_and_is_health_checked() -> None:
    worker = service("worker")
    assert bind_mounts(worker)[CONFIG_IN_IMAGE] == SANDBOX_CONFIG
    assert "command" not in worker  # the image's CMD: run --config /etc/capi-worker/config.yaml
    assert conditions(worker) == {
        "kafka": "service_healthy",
        "kafka-init": "service_completed_successfully",
        "graph-emulator": "service_healthy",
    }
    settings = worker_settings(worker)
    assert healthcheck_url(worker) == f"http://127.0.0.1:{settings.metrics.port}/livez"
    assert settings.metrics.enabled and settings.metrics.host == "0.0.0.0"
    # Compose renders durations as strings ("30s"); more than the worker's SIGTERM budget.
    grace = str(worker["stop_grace_period"]).removesuffix("s")
    assert float(grace) > settings.runtime.shutdown_timeout_seconds


def test_sandbox_worker_delivers_to_the_emulator_with_the_tokens_the_emulator_accepts() -> None:
    emulator, worker = service("graph-emulator"), service("worker")
    settings = worker_settings(worker)
    assert settings.graph.url == "http://graph-emulator:8089"

    words = as_list(emulator.get("entrypoint")) + as_list(emulator.get("command"))
    if words[:2] == ["/bin/sh", "-c"]:  # tokens come from the env file, expanded by the shell
        words = shlex.split(unescape(" ".join(words[2:])))
    words = [re.sub(r"\$(\w+)", lambda m: environment(emulator)[m.group(1)], w) for w in words]
    assert words[:2] == ["exec", "capi-worker"] or words[0] == "capi-worker"
    args = words[words.index("graph-emulator") + 1 :]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] == "8089"
    accepted = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--token")
    sent = {d.pixel_id: d.access_token.get_secret_value() for d in settings.destinations}
    assert accepted == sent
    assert "/_emulator/" in healthcheck_url(emulator)


def test_sample_events_service_produces_to_the_worker_topic_once_the_worker_is_up() -> None:
    producer = service("sample-events")
    words = as_list(producer.get("entrypoint")) + as_list(producer.get("command"))
    module = words[words.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None, module
    settings = worker_settings(service("worker"))
    assert words[words.index("--bootstrap") + 1] == settings.kafka.bootstrap_servers
    assert words[words.index("--topic") + 1] == settings.kafka.topics[0]
    assert 100 <= int(words[words.index("--count") + 1]) <= 1000
    assert conditions(producer) == {
        "kafka-init": "service_completed_successfully",
        "worker": "service_healthy",
    }
    assert producer.get("restart", "no") == "no"


def test_live_worker_delivers_to_the_real_graph_api_with_tokens_from_an_env_file() -> None:
    live = service("worker-live")
    assert bind_mounts(live)[CONFIG_IN_IMAGE] == LIVE_CONFIG
    assert conditions(live) == {
        "kafka": "service_healthy",
        "kafka-init": "service_completed_successfully",
    }
    env_file = raw_compose()["services"]["worker-live"]["env_file"]
    assert env_file == "${CAPI_WORKER_ENV_FILE:-deploy/compose/.env}"
    settings = worker_settings(live, **LIVE_DUMMY_ENV)
    assert settings.graph.url == "https://graph.facebook.com"
    assert healthcheck_url(live) == f"http://127.0.0.1:{settings.metrics.port}/livez"
    assert settings.destinations[0].app_secret is not None
    assert not settings.destinations[0].app_secret  # empty: no appsecret_proof
    assert not settings.destinations[0].test_event_code
    # The example as shipped, not filled in, stops the worker at start-up naming the key.
    with pytest.raises(ConfigError, match=r"destinations\.0\.(pixel_id|access_token)"):
        load_settings(LIVE_CONFIG, env=read_env_file(LIVE_ENV_EXAMPLE))


def test_env_example_documents_every_variable_the_live_config_needs() -> None:
    documented = read_env_file(LIVE_ENV_EXAMPLE)
    referenced = {m.group(1) for m in ENV_REF.finditer(yaml_values(LIVE_CONFIG))}
    assert referenced <= set(documented)
    assert not any(value for key, value in documented.items() if "TOKEN" in key or "SECRET" in key)
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_no_token_is_written_in_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    known_tokens = [
        value
        for path in (SANDBOX_ENV, LIVE_ENV_EXAMPLE)
        for key, value in read_env_file(path).items()
        if value and ("TOKEN" in key or "SECRET" in key)
    ]
    assert known_tokens  # sandbox.env has the emulator's fake tokens
    for token in known_tokens:
        assert token not in text
    assert not re.search(r"EAA[A-Za-z0-9]{20,}", text)  # the shape of a Meta access token
    assert not re.search(r"access_token|appsecret", text, re.IGNORECASE)
    for name, svc in raw_compose()["services"].items():
        for key, value in environment(svc).items():
            assert not re.search("TOKEN|SECRET|PASSWORD", key), (name, key, value)
        for word in as_list(svc.get("command")):
            for token_arg in re.findall(r"--token\s+\"?(\S+?)\"?(?:\s|$)", word):
                pixel, _, token = token_arg.partition("=")
                assert pixel.startswith("$") and token.startswith("$"), (name, token_arg)


def test_mounted_worker_configs_validate_with_the_environment_compose_gives_them() -> None:
    sandbox = load_settings(SANDBOX_CONFIG, env=read_env_file(SANDBOX_ENV))
    assert {d.name for d in sandbox.destinations} == {"shop", "blog"}
    live = load_settings(LIVE_CONFIG, env=LIVE_DUMMY_ENV)
    assert live.kafka.bootstrap_servers == "kafka:9092"
    for path in (SANDBOX_CONFIG, LIVE_CONFIG):
        for destination in yaml.safe_load(path.read_text(encoding="utf-8"))["destinations"]:
            for key in ("access_token", "app_secret"):
                if key in destination:  # only ${VAR} references, never a value
                    assert ENV_REF.fullmatch(destination[key]), (path, key)


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuations joined."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    stages: list[list[tuple[str, str]]] = []
    for text in logical:
        instruction, _, args = text.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        elif not stages:
            assert instruction == "ARG", f"{instruction} before the first FROM"
            continue
        stages[-1].append((instruction, args.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instruction, args in stage if instruction == name]


def test_dockerfile_is_multi_stage_and_the_final_stage_is_slim() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert re.fullmatch(r"python:3\.11-slim\s+AS\s+builder", builder[0][1], re.IGNORECASE)
    assert final[0][1] == "python:3.11-slim"
    assert instructions(final, "COPY") == ["--from=builder /opt/capi-worker /opt/capi-worker"]
    final_text = "\n".join(args for _, args in final).lower()
    for forbidden in ("gcc", "build-essential", "apt-get", "pip wheel", "pip install", "/wheels"):
        assert forbidden not in final_text, forbidden
    builder_text = "\n".join(args for _, args in builder)
    assert "pip wheel --wheel-dir /wheels" in builder_text
    assert "--no-index --find-links=/wheels" in builder_text
    assert "PIP_NO_CACHE_DIR=1" in builder_text


def test_dockerfile_builds_the_compiled_mapping_and_checks_both_stages_run_it() -> None:
    """The builder compiles with gcc and OpenSSL's headers (the SHA-256 extension) and fails
    rather than fall back; the final stage, without them, checks that the same build loads."""
    builder, final = dockerfile_stages()[0], dockerfile_stages()[-1]
    builder_text = "\n".join(args for _, args in builder)
    assert re.search(r"apt-get install [^&]*\bgcc\b[^&]*\blibssl-dev\b", builder_text)
    assert "CAPI_WORKER_COMPILE=required pip wheel" in builder_text
    for stage in (builder, final):
        text = "\n".join(instructions(stage, "RUN"))
        assert 'capi-worker --version | grep "mapping: compiled (SHA-256: OpenSSL)"' in text


def test_dockerfile_runs_capi_worker_as_a_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    users = instructions(final, "USER")
    assert users, "the final stage sets no USER: the worker would run as root"
    uid = users[-1].split(":")[0]
    assert uid == "10001"
    assert "--uid 10001" in " ".join(instructions(final, "RUN"))
    assert json.loads(instructions(final, "ENTRYPOINT")[-1]) == ["capi-worker"]
    assert json.loads(instructions(final, "CMD")[-1]) == ["run", "--config", CONFIG_IN_IMAGE]
    assert instructions(final, "EXPOSE") == ["9100"]
    env = " ".join(instructions(final, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    labels = " ".join(instructions(final, "LABEL"))
    for label in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels, label


def test_dockerfile_checks_the_installed_package_finds_its_avro_schema() -> None:
    """The schema is package data (tests/e2e/test_package_data.py installs the wheel and reads
    it): the image copies nothing by hand and its build fails if the schema is missing."""
    builder_text = "\n".join(args for _, args in dockerfile_stages()[0])
    assert "schemas/" not in builder_text and "copytree" not in builder_text
    assert "c.DEFAULT_AVRO_SCHEMA.is_file()" in builder_text
    assert (ROOT / "schemas" / "segment_event.avsc").is_file()  # the repository's view of it


def test_dockerignore_lets_in_only_what_the_image_copies_and_no_env_file() -> None:
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied: set[str] = set()
    for stage in dockerfile_stages():
        for args in instructions(stage, "COPY"):
            if not args.startswith("--from"):
                copied.update(word.rstrip("/") for word in args.split()[:-1])
    assert copied == allowed
    assert "**/.env" in rules


# --------------------------------------------------------------------------- sample traffic


PRODUCER = [sys.executable, "-m", "worker.sandbox.produce_samples"]


def test_sample_producer_module_produces_events_and_records_to_dead_letter(
    kafka_broker: EmbeddedBroker, topics: Any
) -> None:
    topic = topics.create("samples", partitions=3)
    args = ["--bootstrap", kafka_broker.bootstrap_servers, "--topic", topic, "--count", "40"]
    result = subprocess.run(
        [*PRODUCER, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"produced 43 of 43 records to {topic}" in result.stdout
    values = [record.value or b"" for record in read_all(kafka_broker.bootstrap_servers, topic)]
    assert len(values) == 43
    events = []
    for value in values:
        try:
            events.append(orjson.loads(value))
        except orjson.JSONDecodeError:
            continue
    assert len(events) == 42  # one undecodable record
    ids = [event["messageId"] for event in events]
    assert len(set(ids)) == len(ids)
