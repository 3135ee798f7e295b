"""The alert rules and the Grafana dashboard, offline: promtool's rule unit tests, the rules the
chart renders, the dashboard ConfigMap, and the dashboard's own consistency.

`promtool` is Debian's (package `prometheus`, installed by `make install-prometheus`, which
`make test` runs). Against a live Prometheus: tests/integration/test_prometheus_live.py.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python.chart import Chart
from prometheus_client.metrics import MetricWrapperBase

from tests.e2e.test_docs import anchors
from tests.e2e.test_helm_chart import ALL_OPTIONS, CHART_DIR, FULLNAME, MINIMAL, NAMESPACE, render
from tests.monitoring import (
    ROOT,
    RULE_FILE,
    RULE_TESTS,
    alerts,
    load_dashboard,
    panel_queries,
    prometheus_tool,
    render_monitoring,
    rule_file_text,
    rule_groups,
    write_rule_file,
)
from tests.support.kubernetes import validate_strictly
from worker.telemetry import metrics

RUNBOOKS = ROOT / "docs" / "observability.md"
DASHBOARD_VARIABLES = {"datasource", "namespace", "job", "pod", "destination"}


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with Chart.load(CHART_DIR) as loaded:
        yield loaded


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_tool("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the rules ----------------------------------------------------------------------------------


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    names = {rule["alert"] for rule in alerts(yaml.safe_load(RULE_FILE.read_text())["groups"])}
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fired == names
    assert silent == names


def test_the_rule_file_is_the_charts_prometheus_rule_with_default_values(chart: Chart) -> None:
    rendered = rule_file_text(rule_groups(render_monitoring(chart)))
    assert RULE_FILE.read_text(encoding="utf-8") == rendered, (
        "deploy/prometheus/capi-worker.rules.yaml is out of date: run `make prometheus-rules`"
    )


@pytest.mark.parametrize("values", ["default", "all-options"])
def test_promtool_accepts_the_rules_the_chart_renders(
    chart: Chart, values: str, tmp_path: Path
) -> None:
    rendered = render_monitoring(chart) if values == "default" else render(chart, ALL_OPTIONS)
    rule_file = write_rule_file(tmp_path / "rendered.rules.yaml", rule_groups(rendered))
    result = promtool("check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(alerts(rule_groups(rendered)))
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_the_prometheus_rule_follows_its_values(chart: Chart) -> None:
    rendered = render(chart, ALL_OPTIONS)
    rule = rendered.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prom"
    by_name = {alert["alert"]: alert for alert in alerts(rule_groups(rendered))}
    for alert in by_name.values():
        assert alert["labels"]["team"] == "growth"
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["runbook_url"].startswith(
            "https://wiki.example.com/capi-worker/observability#"
        )
    assert "(capi_consumer_lag) > 5000" in by_name["CapiWorkerConsumerLagGrowing"]["expr"]
    ratio = by_name["CapiWorkerDeadLetterRatioHigh"]
    assert ratio["expr"].rstrip().endswith("> 0.05")
    assert "(threshold 0.05)" in ratio["annotations"]["description"]
    assert "> 120" in by_name["CapiWorkerPollLoopStalled"]["expr"]
    paused = by_name["CapiWorkerPartitionsPausedTooLong"]
    assert paused["for"] == "30m"
    assert "for 30m" in paused["annotations"]["description"]


# What each alert's description must name: the pixel, the partition or the worker.
NAMED_IN_DESCRIPTION = {
    "CapiWorkerConsumerLagGrowing": ["$labels.topic", "$labels.partition"],
    "CapiWorkerNoDeliveries": ["$labels.job"],
    "CapiWorkerDeadLetterRatioHigh": ["$labels.destination"],
    "CapiWorkerDeadLetterWritesFailing": ["$labels.pod", "$labels.instance"],
    "CapiWorkerCircuitBreakerOpen": ["$labels.pod"],
    "CapiWorkerPixelThrottled": ["$labels.destination"],
    "CapiWorkerPixelAuthFailing": ["$labels.destination", "$labels.reason"],
    "CapiWorkerPollLoopStalled": ["$labels.pod", "$labels.instance", "$labels.process"],
    "CapiWorkerPartitionsPausedTooLong": ["$labels.pod", "$labels.instance"],
    "CapiWorkerConfigReloadRefused": ["$labels.job"],
}


def test_every_alert_names_what_failed_and_links_its_runbook_section() -> None:
    groups = yaml.safe_load(RULE_FILE.read_text())["groups"]
    by_name = {alert["alert"]: alert for alert in alerts(groups)}
    assert set(by_name) == set(NAMED_IN_DESCRIPTION)
    sections = anchors(RUNBOOKS)
    for name, alert in by_name.items():
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        for label in NAMED_IN_DESCRIPTION[name]:
            assert label in annotations["description"], (name, label)
        page, anchor = annotations["runbook_url"].split("#")
        assert page.endswith("/docs/observability.md"), name
        assert anchor == name.lower() and anchor in sections, (name, anchor)


# --- the chart's monitoring objects -----------------------------------------------------------


def test_monitoring_objects_are_rendered_only_when_enabled(chart: Chart) -> None:
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in render(chart, MINIMAL).objects}
    assert ("PrometheusRule", FULLNAME) not in kinds
    assert ("ConfigMap", f"{FULLNAME}-dashboard") not in kinds
    enabled = render_monitoring(chart)
    assert enabled.one("PrometheusRule")
    assert enabled.one("ConfigMap", f"{FULLNAME}-dashboard")


def test_the_dashboard_configmap_is_labelled_for_grafanas_sidecar(chart: Chart) -> None:
    default = render_monitoring(chart).one("ConfigMap", f"{FULLNAME}-dashboard")
    assert default["metadata"]["namespace"] == NAMESPACE
    assert default["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(default["data"]["capi-worker.json"]) == load_dashboard()
    custom = render(chart, ALL_OPTIONS).one("ConfigMap", f"{FULLNAME}-dashboard")
    assert custom["metadata"]["namespace"] == "monitoring"
    assert custom["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert custom["metadata"]["labels"]["team"] == "growth"
    assert custom["metadata"]["annotations"] == {"grafana_folder": "Kafka"}


def test_kubernetes_validate_accepts_the_dashboard_configmap(chart: Chart) -> None:
    """Strictly, with the rest of the render (tests/e2e/test_helm_many_pixels.py validates the
    all-options render too); the PrometheusRule has no schema there: promtool checks it above."""
    checked, skipped = validate_strictly(render_monitoring(chart).objects)
    assert "ConfigMap" in checked
    assert skipped == {"PrometheusRule"}


# --- the dashboard ------------------------------------------------------------------------------


def test_the_dashboard_has_its_variables_and_every_panel_uses_the_datasource_variable() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == DASHBOARD_VARIABLES
    for name in DASHBOARD_VARIABLES - {"datasource"}:
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", name
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]


def _cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
    pos = panel["gridPos"]
    return {
        (x, y)
        for x in range(pos["x"], pos["x"] + pos["w"])
        for y in range(pos["y"], pos["y"] + pos["h"])
    }


def test_dashboard_panels_do_not_overlap() -> None:
    panels = load_dashboard()["panels"]
    for first, second in itertools.combinations(panels, 2):
        assert not _cells(first) & _cells(second), (first["title"], second["title"])
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)


_SELECTOR = re.compile(r"\b((?:capi|process)_\w+)\{([^}]*)\}")


def test_every_dashboard_query_is_filtered_by_namespace_job_pod_and_pixel() -> None:
    """So that the variables narrow every panel, and process_* series of other jobs stay out."""
    for query in panel_queries(load_dashboard()):
        selectors = _SELECTOR.findall(query.expr)
        assert selectors, query.name
        for metric, matchers in selectors:
            for variable in ("namespace", "job", "pod"):
                assert f'{variable}=~"${variable}"' in matchers, (query.name, metric)
            if "destination" in _labels_of(metric):
                assert 'destination=~"$destination' in matchers, (query.name, metric)


def _worker_metrics() -> dict[str, MetricWrapperBase]:
    return {m._name: m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}


def _labels_of(series: str) -> tuple[str, ...]:
    for name, metric in _worker_metrics().items():
        if series == name or series.startswith(f"{name}_"):
            return metric._labelnames
    return ()


def test_the_dashboard_shows_every_metric_the_worker_declares() -> None:
    expressions = " ".join(query.expr for query in panel_queries(load_dashboard()))
    shown = {name for name in _worker_metrics() if re.search(rf"\b{name}(_\w+)?\{{", expressions)}
    assert set(_worker_metrics()) - shown == set()
