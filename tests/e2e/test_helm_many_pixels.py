"""The chart for many pixels: shops in a ConfigMap of their own mounted as the worker's
`destinations_dir`, tokens as files of a mounted Secret, which changes roll the pods and which
reload live, the NetworkPolicy, and every rendered object validated against Kubernetes' own
schemas (kubernetes-validate, strict)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from helm_python import HelmRenderError
from helm_python.chart import Chart

from tests.e2e.test_helm_chart import (
    ALL_OPTIONS,
    CHART_DIR,
    DESTINATIONS_PATH,
    FULLNAME,
    MINIMAL,
    SECRETS_PATH,
    Rendered,
    merged,
    render,
)
from tests.support.kubernetes import validate_strictly

DESTINATIONS_CM = f"{FULLNAME}-destinations"

SHOPS: dict[str, Any] = {
    "destinationsDir": {
        "enabled": True,
        "destinations": [
            {"name": "shop-a", "pixel_id": "1000000001", "match": {"source_ids": ["a"]}},
            {"name": "shop-b", "pixel_id": "1000000002", "match": {"source_ids": ["b"]}},
        ],
    },
    "secrets": {
        "accessTokens": {"shop": "EAAB-inline", "shop-a": "EAAB-a", "shop-b": "EAAB-b"},
        "appSecrets": {"shop-b": "secret-b"},
    },
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def shops(chart: Chart) -> Rendered:
    return render(chart, merged(MINIMAL, SHOPS))


def annotations(rendered: Rendered) -> dict[str, str]:
    found: dict[str, str] = rendered.workload()["spec"]["template"]["metadata"]["annotations"]
    return found


# --- destinationsDir ------------------------------------------------------------------------


def test_each_shop_is_one_key_of_its_own_configmap_mounted_as_destinations_dir(
    shops: Rendered,
) -> None:
    data = shops.one("ConfigMap", DESTINATIONS_CM)["data"]
    assert sorted(data) == ["shop-a.yaml", "shop-b.yaml"]
    [shop_b] = yaml.safe_load(data["shop-b.yaml"])
    assert shop_b["access_token_file"] == f"{SECRETS_PATH}/CAPI_TOKEN_SHOP_B"
    assert shop_b["app_secret_file"] == f"{SECRETS_PATH}/CAPI_APP_SECRET_SHOP_B"
    assert "access_token" not in shop_b and "EAAB-b" not in json.dumps(data)
    assert yaml.safe_load(shops.config_text())["destinations_dir"] == DESTINATIONS_PATH
    mounts = {m["mountPath"]: m for m in shops.container()["volumeMounts"]}
    volumes = {v["name"]: v for v in shops.workload()["spec"]["template"]["spec"]["volumes"]}
    assert mounts[DESTINATIONS_PATH]["readOnly"] is True
    assert volumes[mounts[DESTINATIONS_PATH]["name"]]["configMap"]["name"] == DESTINATIONS_CM


def test_the_worker_loads_inline_and_directory_destinations_with_tokens_from_files(
    shops: Rendered,
) -> None:
    settings = shops.settings()
    assert [d.name for d in settings.destinations] == ["shop", "shop-a", "shop-b"]
    tokens = {d.name: d.access_token.get_secret_value() for d in settings.destinations}
    assert tokens == {
        "shop": "dummy-capi_token_shop",
        "shop-a": "dummy-capi_token_shop_a",
        "shop-b": "dummy-capi_token_shop_b",
    }
    assert settings.destinations[2].match.source_ids == ["b"]


def test_a_shop_change_reloads_live_while_a_config_change_rolls_the_pods(
    chart: Chart, shops: Rendered
) -> None:
    added = merged(MINIMAL, SHOPS)
    added["destinationsDir"]["destinations"].append({"name": "shop-c", "pixel_id": "1000000003"})
    added["secrets"]["accessTokens"]["shop-c"] = "EAAB-c"
    with_shop = render(chart, added)
    assert "shop-c.yaml" in with_shop.one("ConfigMap", DESTINATIONS_CM)["data"]
    assert annotations(with_shop) == annotations(shops)  # no roll: the worker reloads
    rotated = merged(merged(MINIMAL, SHOPS), {"secrets": {"accessTokens": {"shop-a": "EAAB-new"}}})
    assert annotations(render(chart, rotated)) == annotations(shops)  # token files: reload
    linger = merged(merged(MINIMAL, SHOPS), {"config": {"batching": {"linger_ms": 50}}})
    assert (
        annotations(render(chart, linger))["checksum/config"]
        != annotations(shops)["checksum/config"]
    )
    kafka = merged(merged(MINIMAL, SHOPS), {"secrets": {"extraEnv": {"KAFKA_PASSWORD": "new"}}})
    assert (
        annotations(render(chart, kafka))["checksum/secret-env"]
        != annotations(shops)["checksum/secret-env"]
    )


def test_destinations_may_come_only_from_the_directory(chart: Chart) -> None:
    values = merged(MINIMAL, SHOPS)
    values["config"]["destinations"] = []
    rendered = render(chart, values)
    assert [d.name for d in rendered.settings().destinations] == ["shop-a", "shop-b"]


def test_an_existing_configmap_is_mounted_and_none_is_rendered(chart: Chart) -> None:
    values = merged(MINIMAL, {"destinationsDir": {"enabled": True, "existingConfigMap": "shops"}})
    rendered = render(chart, values)
    assert [c["metadata"]["name"] for c in rendered.all("ConfigMap")] == [FULLNAME]
    volumes = rendered.workload()["spec"]["template"]["spec"]["volumes"]
    assert {"name": "destinations", "configMap": {"name": "shops"}} in volumes


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"secrets": {"mode": "env"}}, "destinationsDir needs secrets.mode files"),
        (
            {"destinationsDir": {"destinations": [{"name": "shop a", "pixel_id": "1"}]}},
            "becomes a ConfigMap key",
        ),
        (
            {"destinationsDir": {"destinations": [{"name": "shop-x", "pixel_id": "1"}]}},
            r"secrets\.accessTokens\.shop-x",
        ),
        (
            {"destinationsDir": {"destinations": [{"name": "shop", "pixel_id": "9"}]}},
            "CAPI_TOKEN_SHOP",
        ),
    ],
    ids=["env-mode", "bad-key", "no-token", "name-twice"],
)
def test_a_wrong_destinations_dir_stops_the_render_with_a_reason(
    chart: Chart, override: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmRenderError, match=message):
        render(chart, merged(merged(MINIMAL, SHOPS), override))


# --- NetworkPolicy --------------------------------------------------------------------------


def test_the_network_policy_is_on_by_default_and_opens_only_what_the_worker_uses(
    chart: Chart,
) -> None:
    values = merged(MINIMAL, {"config": {"kafka": {"bootstrap_servers": "k-0:9092,k-1:9094"}}})
    policy = render(chart, values).one("NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    pod_labels = render(chart, values).workload()["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["ingress"] == [{"ports": [{"port": 9100, "protocol": "TCP"}]}]
    ports = [sorted((p["port"], p["protocol"]) for p in rule["ports"]) for rule in spec["egress"]]
    assert ports == [
        [(53, "TCP"), (53, "UDP")],
        [(9092, "TCP"), (9094, "TCP")],
        [(443, "TCP")],
    ]
    assert all("to" not in rule for rule in spec["egress"])


def test_the_network_policy_takes_peers_ports_and_extra_rules(chart: Chart) -> None:
    registry = {"ports": [{"port": 8081, "protocol": "TCP"}]}
    peer = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    values = merged(
        ALL_OPTIONS,
        {"networkPolicy": {"metricsFrom": [peer], "kafkaPorts": [9095], "extraEgress": [registry]}},
    )
    spec = render(chart, values).one("NetworkPolicy")["spec"]
    assert spec["ingress"] == [{"ports": [{"port": 9200, "protocol": "TCP"}], "from": [peer]}]
    kafka = sorted(p["port"] for p in spec["egress"][1]["ports"])
    assert kafka == [9093, 9095]
    assert spec["egress"][-1] == registry
    disabled = merged(MINIMAL, {"networkPolicy": {"enabled": False}})
    assert "NetworkPolicy" not in render(chart, disabled).kinds()


# --- every object against Kubernetes' schemas -------------------------------------------------


@pytest.mark.parametrize("values", ["minimal", "all-options", "shops", "statefulset-env"])
def test_every_rendered_object_is_valid_kubernetes_strictly(chart: Chart, values: str) -> None:
    chosen = {
        "minimal": MINIMAL,
        "all-options": ALL_OPTIONS,
        "shops": merged(ALL_OPTIONS, SHOPS),
        "statefulset-env": merged(
            MINIMAL, {"workload": {"kind": "StatefulSet"}, "secrets": {"mode": "env"}}
        ),
    }[values]
    checked, skipped = validate_strictly(render(chart, chosen).objects)
    assert "NetworkPolicy" in checked
    assert checked & {"Deployment", "StatefulSet"}
    # Custom resources have no schema in Kubernetes' OpenAPI (ServiceMonitor, ScaledObject).
    assert skipped <= {"ServiceMonitor", "ScaledObject", "PrometheusRule"}
