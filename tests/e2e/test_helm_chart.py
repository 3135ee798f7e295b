"""The Helm chart `helm/capi-worker`, rendered offline and checked manifest by manifest.

No cluster and no `helm` binary: the `helm-python-sdk` wheel embeds Helm's Go SDK. Its
`Chart.render` runs the same pipeline as `helm template` (values coalesced with the chart's
defaults, validated against values.schema.json, then the templates), answers `lookup` with
nothing and reports Kubernetes v1.36 capabilities (no CRD API such as monitoring.coreos.com),
so the chart relies on neither. Failures are exceptions: HelmValuesError for schema
violations, HelmRenderError for a template's `fail`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helm_python import HelmRenderError, HelmValuesError
from helm_python.chart import Chart

import worker
from worker.config import (
    BatchingSettings,
    DecodingSettings,
    DestinationSettings,
    GraphSettings,
    KafkaSettings,
    LoggingSettings,
    MappingSettings,
    MatchSettings,
    MetricsSettings,
    RuntimeSettings,
    Settings,
    parse_settings,
    with_destinations_dir,
)

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "capi-worker"
RELEASE = "capi"
NAMESPACE = "events"
FULLNAME = "capi-capi-worker"
SECRETS_PATH = "/run/secrets/capi-worker"
DESTINATIONS_PATH = "/etc/capi-worker-destinations"

SHOP_TOKEN = "EAAB-shop-token-7f3a9c"
EU_TOKEN = "EAAB-eu-token-51d2e8"
OUTLET_TOKEN = "EAAB-outlet-token-a0b1c2"
EU_APP_SECRET = "app-secret-eu-93e1"
KAFKA_PASSWORD = "kafka-password-c4d5"
SECRET_STRINGS = (SHOP_TOKEN, EU_TOKEN, OUTLET_TOKEN, EU_APP_SECRET, KAFKA_PASSWORD)

# What a user must add to the chart's defaults: brokers, topics, one pixel and its token.
MINIMAL: dict[str, Any] = {
    "config": {
        "kafka": {
            "bootstrap_servers": "kafka-0.kafka:9092,kafka-1.kafka:9092",
            "topics": ["events.raw"],
            "dead_letter_topic": "events.dlq",
        },
        "destinations": [{"name": "shop", "pixel_id": "1234567890"}],
    },
    "secrets": {"accessTokens": {"shop": SHOP_TOKEN}},
}

# Every option of the chart switched on (KEDA is the autoscaler here; HPA is tested apart).
ALL_OPTIONS: dict[str, Any] = {
    "image": {"repository": "registry.example.com/capi-worker", "tag": "0.1.0-rc1"},
    "imagePullSecrets": [{"name": "regcred"}],
    "replicaCount": 3,
    "config": {
        "kafka": {
            "bootstrap_servers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
            "group_id": "capi-prod",
            "topics": ["events.raw"],
            "dead_letter_topic": "events.dlq",
            "client": {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "capi-worker",
                "sasl.password": "${KAFKA_PASSWORD}",
                "ssl.ca.location": "/etc/kafka-ca/ca.crt",
            },
            "consumer": {"session.timeout.ms": 45000, "auto.offset.reset": "earliest"},
            "producer": {"linger.ms": 20},
            "commit_interval_ms": 2000,
        },
        "graph": {"api_version": "v25.0", "max_concurrent_requests": 16},
        "batching": {
            "max_events": 500,
            "linger_ms": 100,
            "max_bytes": 2000000,
            "max_pending_events": 40000,
        },
        "decoding": {"format": "json"},
        "runtime": {"shutdown_timeout_seconds": 40, "revoke_timeout_seconds": 20},
        "metrics": {"enabled": True, "host": "0.0.0.0", "port": 9200},
        "logging": {"level": "INFO", "format": "json"},
        "destinations": [
            {"name": "shop", "pixel_id": "1234567890"},
            {
                "name": "eu-shop",
                "pixel_id": "2345678901",
                "limited_data_use": True,
                "events_to_standard": {"Signed Up": "CompleteRegistration"},
                "match": {"source_ids": ["eu-web"]},
            },
            {"name": "outlet", "pixel_id": "3456789012", "pii_denylist": ["loyalty_id"]},
        ],
    },
    "secrets": {
        "accessTokens": {"shop": SHOP_TOKEN, "eu-shop": EU_TOKEN, "outlet": OUTLET_TOKEN},
        "appSecrets": {"eu-shop": EU_APP_SECRET},
        "extraEnv": {"KAFKA_PASSWORD": KAFKA_PASSWORD},
    },
    "terminationGracePeriodSeconds": 50,
    "resources": {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
    "serviceAccount": {"create": True, "annotations": {"team": "growth"}},
    "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
    "prometheusRule": {
        "enabled": True,
        "labels": {"release": "prom"},
        "alertLabels": {"team": "growth"},
        "runbookUrl": "https://wiki.example.com/capi-worker/observability",
        "consumerLagThreshold": 5000,
        "deadLetterRatioThreshold": 0.05,
        "pollLoopStalledSeconds": 120,
        "partitionsPausedFor": "30m",
    },
    "grafanaDashboard": {
        "enabled": True,
        "namespace": "monitoring",
        "labels": {"team": "growth"},
        "annotations": {"grafana_folder": "Kafka"},
    },
    "autoscaling": {
        "keda": {
            "enabled": True,
            "partitions": 12,
            "minReplicaCount": 2,
            "lagThreshold": 5000,
            "authenticationRef": "kafka-sasl",
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        }
    },
    "podAnnotations": {"example.com/owner": "growth"},
    "podLabels": {"team": "growth"},
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "extraVolumes": [{"name": "kafka-ca", "secret": {"secretName": "kafka-ca"}}],
    "extraVolumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True}],
    "priorityClassName": "high",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "workers", "operator": "Exists", "effect": "NoSchedule"}],
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE}},
        }
    ],
}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge like Helm's: maps merge, anything else (lists too) is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Rendered:
    """The manifests of one render, parsed, with the raw text per template."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.objects: list[dict[str, Any]] = []
        for path, text in files.items():
            if path.endswith(".txt"):
                continue
            self.objects.extend(doc for doc in yaml.safe_load_all(text) if doc)

    def kinds(self) -> set[str]:
        return {obj["kind"] for obj in self.objects}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str = FULLNAME) -> dict[str, Any]:
        found = [obj for obj in self.all(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
        return found[0]

    def workload(self) -> dict[str, Any]:
        found = self.all("Deployment") + self.all("StatefulSet")
        assert len(found) == 1, f"expected one workload, got {[o['kind'] for o in found]}"
        return found[0]

    def container(self) -> dict[str, Any]:
        containers = self.workload()["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        container: dict[str, Any] = containers[0]
        return container

    def env(self) -> dict[str, dict[str, Any]]:
        return {item["name"]: item for item in self.container()["env"]}

    def config_text(self) -> str:
        text: str = self.one("ConfigMap")["data"]["config.yaml"]
        return text

    def settings(self) -> Settings:
        """The ConfigMap's config.yaml as the worker loads it, with the pod's variables set,
        the mounted Secret's files (each holding `dummy-<key>`) and the destinationsDir files
        where the pod has them."""
        with tempfile.TemporaryDirectory() as tmp:
            moved = {SECRETS_PATH: f"{tmp}/secrets", DESTINATIONS_PATH: f"{tmp}/destinations"}

            def here(text: str) -> str:
                for mounted, local in moved.items():
                    text = text.replace(mounted, local)
                return text

            Path(moved[DESTINATIONS_PATH]).mkdir()
            for config_map in self.all("ConfigMap"):
                if config_map["metadata"]["name"] == f"{FULLNAME}-destinations":
                    for key, text in config_map["data"].items():
                        Path(moved[DESTINATIONS_PATH], key).write_text(here(text))
            raw = yaml.safe_load(here(self.config_text()))
            secrets = Path(moved[SECRETS_PATH])
            secrets.mkdir()
            for key in self.secret_keys():
                (secrets / key).write_text(f"dummy-{key.lower()}\n")
            settings = parse_settings(raw, env=pod_env(self))
            if settings.destinations_dir is not None:
                settings = with_destinations_dir(settings, env=pod_env(self))
            return settings

    def secret_keys(self) -> list[str]:
        """The keys of the Secret the pod mounts or reads: the chart's, else every key the
        configuration names (an existing Secret holds them)."""
        secrets = self.all("Secret")
        if secrets:
            return list(secrets[0].get("data", {}))
        return [
            name
            for name in re.findall(
                r"CAPI_(?:TOKEN|APP_SECRET)_[A-Z0-9_]+", json.dumps(self.objects)
            )
        ]


def pod_env(rendered: Rendered) -> dict[str, str]:
    """Dummy values for every variable the pod defines, as Kubernetes would set them."""
    env = {}
    for name, item in rendered.env().items():
        field = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field == "metadata.name":
            env[name] = f"{FULLNAME}-0"
        elif field == "metadata.namespace":
            env[name] = NAMESPACE
        else:
            env[name] = item.get("value", f"dummy-{name.lower()}")
    return env


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with Chart.load(CHART_DIR) as loaded:
        yield loaded


def render(chart: Chart, values: dict[str, Any] | None) -> Rendered:
    return Rendered(chart.render(values, name=RELEASE, namespace=NAMESPACE))


@pytest.fixture(scope="module")
def default(chart: Chart) -> Rendered:
    return render(chart, MINIMAL)


@pytest.fixture(scope="module")
def full(chart: Chart) -> Rendered:
    return render(chart, ALL_OPTIONS)


# --- the chart itself -----------------------------------------------------------------------


def test_chart_metadata_and_lint(chart: Chart) -> None:
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.name == "capi-worker"
    assert chart.metadata["appVersion"] == worker.__version__
    assert chart.schema is not None
    report = helm_python.lint(CHART_DIR, MINIMAL, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_defaults_alone_stop_with_a_message_naming_the_missing_setting(chart: Chart) -> None:
    with pytest.raises(HelmRenderError, match=r"set config\.kafka\.bootstrap_servers"):
        render(chart, None)
    without_destinations = merged(MINIMAL, {"config": {"destinations": []}})
    with pytest.raises(HelmRenderError, match=r"set config\.destinations"):
        render(chart, without_destinations)


# --- default values ---------------------------------------------------------------------------


def test_default_values_render_a_deployment_and_its_companions(default: Rendered) -> None:
    assert default.kinds() == {
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    deployment = default.one("Deployment")
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["namespace"] == NAMESPACE
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    container = default.container()
    assert container["image"] == f"capi-worker:{worker.__version__}"
    assert container["args"] == ["run", "--config", "/etc/capi-worker/config.yaml"]


def test_probes_use_livez_and_readyz_on_the_metrics_port(default: Rendered) -> None:
    container = default.container()
    assert container["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = default.one("Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = default.workload()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert default.settings().metrics.port == 9100


def test_probes_follow_a_custom_metrics_port(full: Rendered) -> None:
    container = full.container()
    assert container["ports"][0]["containerPort"] == 9200
    assert container["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert full.one("Service")["spec"]["ports"][0]["port"] == 9200
    assert full.settings().metrics.port == 9200


def test_security_context_is_locked_down(default: Rendered) -> None:
    pod = default.workload()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    container = default.container()["securityContext"]
    assert container["runAsNonRoot"] is True
    assert container["runAsUser"] == 10001
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m for m in default.container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert mounts["/etc/capi-worker"]["readOnly"] is True
    assert volumes[mounts["/etc/capi-worker"]["name"]]["configMap"]["name"] == FULLNAME


def test_resources_and_grace_period_exceed_the_shutdown_timeout(
    chart: Chart, default: Rendered, full: Rendered
) -> None:
    assert default.container()["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert full.container()["resources"]["limits"] == {"memory": "1Gi"}
    pod = default.workload()["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert default.settings().runtime.shutdown_timeout_seconds == 25
    assert full.workload()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 50
    assert full.settings().runtime.shutdown_timeout_seconds == 40
    too_short = merged(MINIMAL, {"config": {"runtime": {"shutdown_timeout_seconds": 30}}})
    with pytest.raises(HelmRenderError, match="terminationGracePeriodSeconds"):
        render(chart, too_short)


def test_pod_disruption_budget_selects_the_pods(
    chart: Chart, default: Rendered, full: Rendered
) -> None:
    pdb = default.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    pod_labels = default.workload()["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    with_min = merged(MINIMAL, {"podDisruptionBudget": {"minAvailable": "50%"}})
    spec = render(chart, with_min).one("PodDisruptionBudget")["spec"]
    assert spec["minAvailable"] == "50%"
    assert "maxUnavailable" not in spec
    assert full.one("PodDisruptionBudget")["spec"]["minAvailable"] == 2
    strict = merged(MINIMAL, {"podDisruptionBudget": {"maxUnavailable": 0}})
    assert render(chart, strict).one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 0
    disabled = merged(MINIMAL, {"podDisruptionBudget": {"enabled": False}})
    assert "PodDisruptionBudget" not in render(chart, disabled).kinds()


# --- configuration and secrets ------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["default", "full"])
def test_configmap_config_validates_with_the_worker(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    settings = rendered.settings()
    values = MINIMAL if fixture == "default" else ALL_OPTIONS
    kafka = values["config"]["kafka"]
    assert settings.kafka.bootstrap_servers == kafka["bootstrap_servers"]
    assert settings.kafka.topics == kafka["topics"]
    assert [d.name for d in settings.destinations] == [
        d["name"] for d in values["config"]["destinations"]
    ]
    assert "group.instance.id" not in settings.kafka.consumer
    tokens = {d.name: d.access_token.get_secret_value() for d in settings.destinations}
    assert tokens["shop"] == "dummy-capi_token_shop"


def test_all_options_config_keeps_every_setting(full: Rendered) -> None:
    settings = full.settings()
    assert settings.kafka.group_id == "capi-prod"
    assert settings.kafka.client["sasl.password"] == "dummy-kafka_password"
    assert settings.kafka.consumer["session.timeout.ms"] == 45000
    assert settings.batching.max_events == 500
    assert settings.batching.max_bytes == 2000000  # not 2e+06: large numbers stay integers
    assert settings.graph.max_concurrent_requests == 16
    eu = next(d for d in settings.destinations if d.name == "eu-shop")
    assert eu.limited_data_use is True
    assert eu.app_secret is not None
    assert eu.app_secret.get_secret_value() == "dummy-capi_app_secret_eu_shop"
    assert eu.match.source_ids == ["eu-web"]
    shop = next(d for d in settings.destinations if d.name == "shop")
    assert shop.app_secret is None


@pytest.mark.parametrize("fixture", ["default", "full"])
def test_tokens_reach_the_pod_only_as_files_of_the_mounted_secret(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    for config_map in rendered.all("ConfigMap"):
        text = json.dumps(config_map)
        for secret_string in SECRET_STRINGS:
            assert secret_string not in text
    raw = yaml.safe_load(rendered.config_text())
    for destination in raw["destinations"]:
        assert "access_token" not in destination
        assert re.fullmatch(
            rf"{SECRETS_PATH}/CAPI_TOKEN_[A-Z0-9_]+", destination["access_token_file"]
        )
    pod = rendered.workload()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in rendered.container()["volumeMounts"]}
    assert mounts[SECRETS_PATH]["readOnly"] is True
    assert volumes[mounts[SECRETS_PATH]["name"]]["secret"]["secretName"] == FULLNAME
    assert not [name for name in rendered.env() if name.startswith("CAPI_")]
    workload_text = json.dumps(rendered.workload())
    for secret_string in SECRET_STRINGS:
        assert secret_string not in workload_text
    rendered.settings()  # every file the config names is a key of the Secret


@pytest.mark.parametrize("fixture", ["default", "full"])
def test_with_mode_env_tokens_reach_the_pod_only_through_secret_key_refs(
    fixture: str, chart: Chart
) -> None:
    values = MINIMAL if fixture == "default" else ALL_OPTIONS
    rendered = render(chart, merged(values, {"secrets": {"mode": "env"}}))
    raw = yaml.safe_load(rendered.config_text())
    for destination in raw["destinations"]:
        assert re.fullmatch(r"\$\{CAPI_TOKEN_[A-Z0-9_]+\}", destination["access_token"])
    secret = rendered.one("Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    env = rendered.env()
    for key, value in decoded.items():
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": key}
        assert "value" not in env[key]
        assert value in SECRET_STRINGS
    assert SECRETS_PATH not in json.dumps(rendered.workload())
    workload_text = json.dumps(rendered.workload())
    for secret_string in SECRET_STRINGS:
        assert secret_string not in workload_text
    assert rendered.settings().destinations[0].access_token.get_secret_value().startswith("dummy-")


def test_all_options_secret_holds_tokens_app_secret_and_extra_variables(full: Rendered) -> None:
    secret = full.one("Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "CAPI_TOKEN_SHOP": SHOP_TOKEN,
        "CAPI_TOKEN_EU_SHOP": EU_TOKEN,
        "CAPI_APP_SECRET_EU_SHOP": EU_APP_SECRET,
        "CAPI_TOKEN_OUTLET": OUTLET_TOKEN,
        "KAFKA_PASSWORD": KAFKA_PASSWORD,
    }
    assert full.env()["TZ"] == {"name": "TZ", "value": "UTC"}


def test_existing_secret_renders_no_secret_and_is_referenced(chart: Chart) -> None:
    values = merged(
        ALL_OPTIONS,
        {
            "secrets": {
                "mode": "env",
                "existingSecret": "capi-tokens",
                "existingSecretKeys": {"appSecrets": ["eu-shop"], "extraEnv": ["KAFKA_PASSWORD"]},
            }
        },
    )
    rendered = render(chart, values)
    assert "Secret" not in rendered.kinds()
    env = rendered.env()
    expected = {
        "CAPI_TOKEN_SHOP",
        "CAPI_TOKEN_EU_SHOP",
        "CAPI_APP_SECRET_EU_SHOP",
        "CAPI_TOKEN_OUTLET",
        "KAFKA_PASSWORD",
    }
    from_secret = {
        name: item["valueFrom"]["secretKeyRef"]
        for name, item in env.items()
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert from_secret == {name: {"name": "capi-tokens", "key": name} for name in expected}
    annotations = rendered.workload()["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" not in annotations
    assert "CAPI_APP_SECRET_EU_SHOP" in rendered.files["capi-worker/templates/NOTES.txt"]
    rendered.settings()  # every variable the config refers to is defined in the pod


def test_existing_secret_needs_no_token_in_values(chart: Chart) -> None:
    values = merged(MINIMAL, {"secrets": {"mode": "env", "existingSecret": "capi-tokens"}})
    values["secrets"]["accessTokens"] = {}
    rendered = render(chart, values)
    assert "Secret" not in rendered.kinds()
    ref = rendered.env()["CAPI_TOKEN_SHOP"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "capi-tokens", "key": "CAPI_TOKEN_SHOP"}


def test_an_existing_secret_is_mounted_as_files_by_default(chart: Chart) -> None:
    values = merged(
        ALL_OPTIONS,
        {
            "secrets": {
                "existingSecret": "capi-tokens",
                "existingSecretKeys": {"appSecrets": ["eu-shop"], "extraEnv": ["KAFKA_PASSWORD"]},
            }
        },
    )
    rendered = render(chart, values)
    assert "Secret" not in rendered.kinds()
    volumes = rendered.workload()["spec"]["template"]["spec"]["volumes"]
    assert {"name": "secrets", "secret": {"secretName": "capi-tokens", "defaultMode": 0o440}} in (
        volumes
    )
    env = rendered.env()
    assert env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "capi-tokens",
        "key": "KAFKA_PASSWORD",
    }
    assert "CAPI_TOKEN_SHOP" not in env
    eu = next(d for d in rendered.settings().destinations if d.name == "eu-shop")
    assert eu.app_secret is not None
    assert eu.app_secret.get_secret_value() == "dummy-capi_app_secret_eu_shop"


def test_a_destination_without_a_token_stops_the_render(chart: Chart) -> None:
    values = merged(MINIMAL, {})
    values["secrets"]["accessTokens"] = {"other": "x"}
    with pytest.raises(HelmRenderError, match=r"secrets\.accessTokens\.shop"):
        render(chart, values)


def test_a_token_in_the_config_is_refused(chart: Chart) -> None:
    values = merged(MINIMAL, {})
    values["config"]["destinations"] = [
        {"name": "shop", "pixel_id": "1234567890", "access_token": SHOP_TOKEN}
    ]
    with pytest.raises(HelmValuesError, match="access_token"):
        render(chart, values)


def test_destination_names_colliding_as_variables_are_refused(chart: Chart) -> None:
    values = merged(MINIMAL, {"secrets": {"accessTokens": {"eu-shop": "a", "eu_shop": "b"}}})
    values["config"]["destinations"] = [
        {"name": "eu-shop", "pixel_id": "1"},
        {"name": "eu_shop", "pixel_id": "2"},
    ]
    with pytest.raises(HelmRenderError, match="CAPI_TOKEN_EU_SHOP"):
        render(chart, values)


def test_config_checksum_rolls_the_pods_on_change(chart: Chart, default: Rendered) -> None:
    def checksum(rendered: Rendered) -> str:
        annotations = rendered.workload()["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/config"]
        return value

    assert re.fullmatch(r"[0-9a-f]{64}", checksum(default))
    assert checksum(render(chart, MINIMAL)) == checksum(default)
    changed = merged(MINIMAL, {"config": {"batching": {"linger_ms": 50}}})
    assert checksum(render(chart, changed)) != checksum(default)
    env_mode = merged(MINIMAL, {"secrets": {"mode": "env"}})
    annotations = render(chart, env_mode).workload()["spec"]["template"]["metadata"]
    rotated = merged(env_mode, {"secrets": {"accessTokens": {"shop": "EAAB-rotated"}}})
    rotated_annotations = render(chart, rotated).workload()["spec"]["template"]["metadata"]
    assert (
        rotated_annotations["annotations"]["checksum/secret"]
        != annotations["annotations"]["checksum/secret"]
    )


# --- StatefulSet (static membership) ---------------------------------------------------------


def test_statefulset_sets_group_instance_id_from_the_pod_name(chart: Chart) -> None:
    rendered = render(chart, merged(MINIMAL, {"workload": {"kind": "StatefulSet"}}))
    assert "Deployment" not in rendered.kinds()
    statefulset = rendered.one("StatefulSet")
    assert statefulset["spec"]["serviceName"] == f"{FULLNAME}-headless"
    assert rendered.one("Service", f"{FULLNAME}-headless")["spec"]["clusterIP"] == "None"
    assert rendered.env()["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    raw = yaml.safe_load(rendered.config_text())
    assert raw["kafka"]["consumer"]["group.instance.id"] == "${POD_NAME}"
    settings = rendered.settings()
    assert settings.kafka.consumer["group.instance.id"] == f"{FULLNAME}-0"
    container = rendered.container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_group_instance_id_in_a_deployment_is_refused(chart: Chart) -> None:
    values = merged(MINIMAL, {"config": {"kafka": {"consumer": {"group.instance.id": "fixed"}}}})
    with pytest.raises(HelmRenderError, match=r"group\.instance\.id"):
        render(chart, values)


# --- monitoring -------------------------------------------------------------------------------


def test_service_monitor_scrapes_the_metrics_service_only(chart: Chart, full: Rendered) -> None:
    monitor = full.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selector = monitor["spec"]["selector"]["matchLabels"].items()
    assert selector <= full.one("Service")["metadata"]["labels"].items()
    as_statefulset = render(chart, merged(ALL_OPTIONS, {"workload": {"kind": "StatefulSet"}}))
    headless = as_statefulset.one("Service", f"{FULLNAME}-headless")
    assert not selector <= headless["metadata"]["labels"].items()


# --- autoscaling --------------------------------------------------------------------------------


def test_keda_scales_on_the_consumer_group_lag_up_to_the_partitions(full: Rendered) -> None:
    assert "HorizontalPodAutoscaler" not in full.kinds()
    scaled = full.one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert scaled["spec"]["minReplicaCount"] == 2
    assert scaled["spec"]["maxReplicaCount"] == 12
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == {"scaleDown": {"stabilizationWindowSeconds": 600}}
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["authenticationRef"] == {"name": "kafka-sasl"}
    settings = full.settings()
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert meta["consumerGroup"] == settings.kafka.group_id == "capi-prod"
    assert meta["topic"] == "events.raw"
    assert meta["lagThreshold"] == "5000"
    assert meta["allowIdleConsumers"] == "false"
    assert all(isinstance(v, str) for v in meta.values())  # KEDA's metadata is string-typed
    assert "replicas" not in full.workload()["spec"]  # KEDA owns the replica count


def test_keda_replicas_are_capped_at_the_partitions(chart: Chart) -> None:
    keda = {"autoscaling": {"keda": {"enabled": True, "partitions": 6}}}
    rendered = render(chart, merged(MINIMAL, keda))
    scaled = rendered.one("ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 6
    assert scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"] == "capi-worker"
    assert rendered.settings().kafka.group_id == "capi-worker"
    lower = merged(MINIMAL, {"autoscaling": {"keda": {**keda["autoscaling"]["keda"]}}})
    lower["autoscaling"]["keda"]["maxReplicaCount"] = 4
    assert render(chart, lower).one("ScaledObject")["spec"]["maxReplicaCount"] == 4
    lower["autoscaling"]["keda"]["maxReplicaCount"] = 8
    with pytest.raises(HelmRenderError, match=r"exceeds autoscaling\.keda\.partitions"):
        render(chart, lower)
    unknown = merged(MINIMAL, {"autoscaling": {"keda": {"enabled": True}}})
    with pytest.raises(HelmRenderError, match=r"set autoscaling\.keda\.partitions"):
        render(chart, unknown)


def test_keda_targets_the_statefulset_when_chosen(chart: Chart) -> None:
    values = merged(ALL_OPTIONS, {"workload": {"kind": "StatefulSet"}})
    rendered = render(chart, values)
    assert rendered.one("ScaledObject")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert "replicas" not in rendered.one("StatefulSet")["spec"]


def test_hpa_is_the_alternative_to_keda(chart: Chart) -> None:
    values = merged(
        MINIMAL,
        {"autoscaling": {"hpa": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}}},
    )
    rendered = render(chart, values)
    assert "ScaledObject" not in rendered.kinds()
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert "replicas" not in rendered.workload()["spec"]


def test_keda_and_hpa_together_are_refused(chart: Chart) -> None:
    values = merged(ALL_OPTIONS, {"autoscaling": {"hpa": {"enabled": True}}})
    with pytest.raises(HelmRenderError, match="mutually exclusive"):
        render(chart, values)


# --- values.schema.json -----------------------------------------------------------------------


def test_the_sdk_validates_values_against_the_schema(chart: Chart) -> None:
    chart.validate_schema(chart.merge_values(ALL_OPTIONS))
    with pytest.raises(HelmValuesError, match="/workload/kind"):
        chart.validate_schema(chart.merge_values({"workload": {"kind": "DaemonSet"}}))


BAD_VALUES_FILES = {
    "unknown kind": "workload:\n  kind: DaemonSet\n",
    "misspelt top-level key": "autoscalling:\n  keda:\n    enabled: true\n",
    "pixel id as a number": (
        "config:\n  destinations:\n    - name: shop\n      pixel_id: 1234567890\n"
    ),
    "token in the config": (
        "config:\n  destinations:\n"
        "    - {name: shop, pixel_id: '1', access_token: EAAB-in-a-configmap}\n"
    ),
    "batch above Meta's maximum": "config:\n  batching:\n    max_events: 5000\n",
    "unknown worker setting": "config:\n  batching:\n    linger: 5\n",
    "metrics switched off": "config:\n  metrics:\n    enabled: false\n",
    "bad log level": "config:\n  logging:\n    level: TRACE\n",
    "replicas as text": "replicaCount: three\n",
    "unknown offset policy": "autoscaling:\n  keda:\n    offsetResetPolicy: newest\n",
    "bad variable name": "secrets:\n  extraEnv:\n    KAFKA-PASSWORD: x\n",
}


@pytest.mark.parametrize("text", BAD_VALUES_FILES.values(), ids=BAD_VALUES_FILES.keys())
def test_a_values_file_violating_the_schema_is_rejected(chart: Chart, text: str) -> None:
    values = merged(MINIMAL, helm_python.values_from_yaml(text))
    with pytest.raises(HelmValuesError, match="values don't meet the specifications"):
        render(chart, values)


SCHEMA_SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaSettings,
    "graph": GraphSettings,
    "batching": BatchingSettings,
    "decoding": DecodingSettings,
    "mapping": MappingSettings,
    "runtime": RuntimeSettings,
    "metrics": MetricsSettings,
    "logging": LoggingSettings,
}


def test_the_schema_knows_exactly_the_worker_settings(chart: Chart) -> None:
    """values.schema.json mirrors worker/config.py: a setting added there must be added here."""
    schema = chart.schema
    assert schema is not None
    config = schema["properties"]["config"]
    # destinations_dir is the chart's to set (destinationsDir), not a value.
    assert set(config["properties"]) == set(Settings.model_fields) - {"destinations_dir"}
    for section, model in SCHEMA_SECTIONS.items():
        assert set(config["properties"][section]["properties"]) == set(model.model_fields), section
        assert config["properties"][section]["additionalProperties"] is False
    destination = config["properties"]["destinations"]["items"]
    # The chart names where every token comes from (a file or a variable of the Secret).
    secrets = {"access_token", "app_secret", "access_token_file", "app_secret_file"}
    assert set(destination["properties"]) == set(DestinationSettings.model_fields) - secrets
    assert set(destination["properties"]["match"]["properties"]) == set(MatchSettings.model_fields)


# --- documentation ------------------------------------------------------------------------------

# Values documented as a whole in the README (their inner keys are Kubernetes' own).
OPAQUE_VALUES = {"strategy", "resources", "podSecurityContext", "securityContext"}


def leaf_paths(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OPAQUE_VALUES:
            yield from leaf_paths(value, f"{path}.")
        else:
            yield path


def test_the_readme_documents_every_value(chart: Chart) -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    missing = [path for path in leaf_paths(chart.values) if f"| `{path}` |" not in readme]
    assert missing == []
