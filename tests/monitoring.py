"""The alert rules and the Grafana dashboard as the tests read them, and the rule file's generator.

The Helm chart is the source of the rules: `deploy/prometheus/capi-worker.rules.yaml` (for a
Prometheus without the Operator) is the `spec.groups` of the chart's PrometheusRule rendered with
the default values. After changing `helm/capi-worker/templates/prometheusrule.yaml`:

    make prometheus-rules        # = .venv/bin/python tests/monitoring.py

The dashboard has one file only, `helm/capi-worker/dashboards/capi-worker.json`: the chart puts
it into a ConfigMap, and Grafana imports it as it is.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from helm_python.chart import Chart

from tests.e2e.test_helm_chart import CHART_DIR, MINIMAL, NAMESPACE, RELEASE, Rendered, merged

ROOT = Path(__file__).resolve().parents[1]
RULE_FILE = ROOT / "deploy" / "prometheus" / "capi-worker.rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "capi-worker.rules.test.yaml"
DASHBOARD_FILE = CHART_DIR / "dashboards" / "capi-worker.json"
MONITORING_ON: dict[str, Any] = {
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
}

_HEADER = """\
# capi-worker's alerts for Prometheus (rule_files), without the Prometheus Operator.
# Generated from the Helm chart's PrometheusRule (helm/capi-worker/templates/prometheusrule.yaml)
# with its default values by `make prometheus-rules`: change the chart, not this file.
# What each alert means and what to do: docs/observability.md.
"""


def render_monitoring(chart: Chart, values: dict[str, Any] | None = None) -> Rendered:
    """The chart rendered with the PrometheusRule and the dashboard ConfigMap switched on."""
    return Rendered(
        chart.render(
            merged(merged(MINIMAL, MONITORING_ON), values or {}), name=RELEASE, namespace=NAMESPACE
        )
    )


def rule_groups(rendered: Rendered) -> list[dict[str, Any]]:
    [rule] = rendered.all("PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


class _RuleDumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # PromQL over several lines stays readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleDumper.add_representer(str, _string)


def rule_file_text(groups: list[dict[str, Any]]) -> str:
    body = yaml.dump(
        {"groups": groups}, Dumper=_RuleDumper, sort_keys=False, width=1000, allow_unicode=True
    )
    return _HEADER + body


def write_rule_file(path: Path, groups: list[dict[str, Any]]) -> Path:
    """A Prometheus rule file (`groups:` at the top), as promtool and prometheus read it."""
    path.write_text(rule_file_text(groups), encoding="utf-8")
    return path


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return dashboard


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str

    @property
    def name(self) -> str:
        return f"{self.panel} [{self.ref_id}]"


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    """Every PromQL query of every panel (rows hold none; nested panels of a row included)."""
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                found.append(PanelQuery(inner["title"], target["refId"], target["expr"]))
    return found


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def substitute(text: str, values: dict[str, str]) -> str:
    """Grafana's `$name` / `${name}` replaced by `values[name]`; an unknown variable raises."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for the dashboard variable ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(one, text)


def prometheus_tool(name: str) -> str:
    """Path of Debian's `prometheus` or `promtool`; a clear failure when it is not installed."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed: run `make install-prometheus`")
    return path


def main() -> None:
    with Chart.load(CHART_DIR) as chart:
        groups = rule_groups(render_monitoring(chart))
    write_rule_file(RULE_FILE, groups)
    print(f"wrote {RULE_FILE.relative_to(ROOT)} ({len(alerts(groups))} alerts)")


if __name__ == "__main__":
    main()
