"""The chart's `processes` value: `capi-worker run --processes N` in every pod."""

from __future__ import annotations

import pytest
from helm_python import HelmRenderError, HelmValuesError
from helm_python.chart import Chart

from tests.e2e.test_helm_chart import MINIMAL, chart, merged, render

__all__ = ["chart"]  # the chart fixture, loaded once per module


def test_one_process_by_default(chart: Chart) -> None:
    assert chart.values["processes"] == 1
    container = render(chart, MINIMAL).container()
    assert container["args"] == ["run", "--config", "/etc/capi-worker/config.yaml"]


def test_processes_are_passed_to_the_worker_with_one_metrics_port(chart: Chart) -> None:
    rendered = render(chart, merged(MINIMAL, {"processes": 4}))
    container = rendered.container()
    assert container["args"] == [
        "run",
        "--config",
        "/etc/capi-worker/config.yaml",
        "--processes",
        "4",
    ]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}


def test_processes_must_be_a_positive_integer(chart: Chart) -> None:
    for bad in (0, "two"):
        with pytest.raises(HelmValuesError, match="values don't meet the specifications"):
            render(chart, merged(MINIMAL, {"processes": bad}))


def test_keda_counts_every_process_of_a_pod_against_the_partitions(chart: Chart) -> None:
    keda = {"enabled": True, "partitions": 12}
    values = merged(MINIMAL, {"processes": 3, "autoscaling": {"keda": keda}})
    assert render(chart, values).one("ScaledObject")["spec"]["maxReplicaCount"] == 4
    values["autoscaling"]["keda"]["maxReplicaCount"] = 5  # 15 members for 12 partitions
    with pytest.raises(HelmRenderError, match=r"x processes \(3\) exceeds"):
        render(chart, values)
    few = merged(MINIMAL, {"processes": 4, "autoscaling": {"keda": {**keda, "partitions": 2}}})
    assert render(chart, few).one("ScaledObject")["spec"]["maxReplicaCount"] == 1
