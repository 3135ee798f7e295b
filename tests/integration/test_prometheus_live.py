"""The Grafana dashboard and the alert rules against a real Prometheus scraping a real worker.

Debian's `prometheus` (installed by `make install-prometheus`) runs on 127.0.0.1 with a free
port, a temporary storage directory, a 1 s scrape and evaluation interval and the rule file
loaded; it scrapes `capi-worker run` (the embedded broker, the Graph API emulator) under the
job name `capi-worker`. Traffic comes in two waves, so that every counter the dashboard reads
has a sample before its increase (a counter born with its first increase shows none to rate()).
Then every panel query and every alert expression goes through Prometheus' HTTP API: each must
parse; each panel query has data unless listed in NO_DATA_EXPECTED with the reason; each alert
expression returns exactly the series this scenario should make pending.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kafka_helpers import produce
from tests.monitoring import (
    RULE_FILE,
    alerts,
    load_dashboard,
    panel_queries,
    prometheus_tool,
    substitute,
)
from tests.support.rig import WorkerRig
from tests.support.worker import (
    BLOG_PIXEL,
    SHOP_PIXEL,
    unique_events,
    valid_events,
    wait_until,
)
from worker.sandbox.broker import EmbeddedBroker, free_port
from worker.sandbox.emulator_client import EmulatorClient
from worker.sandbox.graph_emulator import RunningEmulator
from worker.sandbox.sample_events import identify_event, stale_event

JOB = "capi-worker"
DEADLINE = 180.0  # seconds; the machine is shared and busy

# Grafana's variables as someone looking at this run would set them. Outside Kubernetes the
# series have no namespace or pod label: "All" (`.*`, the variables' allValue) matches the
# missing label. $__rate_interval: Grafana would give 4 x the 1 s scrape interval; one minute
# keeps the whole run in range however slowly this machine runs it.
VARIABLES = {
    "namespace": ".*",
    "job": JOB,
    "pod": ".*",
    "destination": ".*",
    "__rate_interval": "1m",
}

# Panel queries that return nothing in this run, and why.
NO_DATA_EXPECTED = {
    "Records refetched [A]": "librdkafka hands no record over twice in a run without rebalances",
}

# What each alert expression (its condition, without `for`) returns in this run: the label sets
# of the series that would be pending. The `expired` destination's token is refused; the shop
# pixel is throttled; 5 of 166 records per wave are not JSON (3 %, over the 1 % threshold).
EXPECTED_PENDING: dict[str, list[dict[str, str]]] = {
    "CapiWorkerConsumerLagGrowing": [],
    "CapiWorkerNoDeliveries": [],
    "CapiWorkerDeadLetterRatioHigh": [
        {"job": JOB, "destination": "expired"},
        {"job": JOB},  # no destination: the records that could not be decoded
    ],
    "CapiWorkerDeadLetterWritesFailing": [],
    "CapiWorkerCircuitBreakerOpen": [],  # kube-state-metrics series: none outside Kubernetes
    "CapiWorkerPixelThrottled": [{"job": JOB, "destination": "shop"}],
    "CapiWorkerPixelAuthFailing": [
        {"job": JOB, "destination": "expired", "reason": "invalid_token"}
    ],
    "CapiWorkerPollLoopStalled": [],
    "CapiWorkerPartitionsPausedTooLong": [],
    "CapiWorkerConfigReloadRefused": [{"job": JOB}],  # a SIGHUP with a broken file
}

VALID_PER_WAVE = 150
IDENTIFY_PER_WAVE = 10
POISON_PER_WAVE = 5


class Prometheus:
    """Debian's prometheus binary on 127.0.0.1, scraping `targets` every second."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULE_FILE)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "prometheus.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                prometheus_tool("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **params: str) -> dict[str, Any]:
        """The API's JSON answer, error answers included (400 for a query that does not parse)."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                body: dict[str, Any] = json.load(reply)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        return body

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}\n{answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


class Run:
    """The broker's topics, the emulator, one worker and the Prometheus scraping it."""

    def __init__(
        self, broker: EmbeddedBroker, emulator: RunningEmulator, tmp_path: Path, processes: int
    ) -> None:
        self.rig = WorkerRig(broker, emulator.url, tmp_path, partitions=2)
        self.graph = EmulatorClient(emulator.url)
        self.graph.reset()
        metrics_port = free_port()
        config = self.rig.config(
            metrics_port=metrics_port,
            destinations=[
                {"name": "shop", "pixel_id": SHOP_PIXEL, "access_token": "${SHOP_TOKEN}"},
                {"name": "blog", "pixel_id": BLOG_PIXEL, "access_token": "blog-token"},
                {"name": "expired", "pixel_id": BLOG_PIXEL, "access_token": "expired-token"},
            ],
        )
        self.processes = processes
        self.rig.start_worker(config, ["--processes", str(processes)] if processes > 1 else [])
        self.prometheus = Prometheus(tmp_path, f"127.0.0.1:{metrics_port}")

    def log(self) -> str:
        return f"{self.rig.logs()}\n--- prometheus log ---\n{self.prometheus.log()[-2000:]}"

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        wait_until(condition, DEADLINE, what, self.log)

    def refused_reload(self) -> None:
        """A SIGHUP after the configuration file lost a destination's pixel_id: every process
        refuses it and keeps its destinations."""
        self.rig.config(destinations=[{"name": "shop", "access_token": "t"}])
        [worker] = self.rig.workers
        worker.process.send_signal(signal.SIGHUP)

    def wave(self, number: int) -> None:
        """One wave of traffic: valid events, identify calls (skipped by default), records that
        are not JSON, one stale event; the shop pixel throttled twice, then a 503."""
        self.graph.inject_fault(pixel_id=SHOP_PIXEL, count=2, status=400, error_code=4)
        self.graph.inject_fault(pixel_id=SHOP_PIXEL, count=1, status=503)
        prefix = f"wave{number}"
        records: list[bytes] = valid_events(VALID_PER_WAVE, prefix)
        now = time.time()
        records += [
            json.dumps(identify_event(i, now, prefix=prefix)).encode()
            for i in range(IDENTIFY_PER_WAVE)
        ]
        records += [b"{not json" for _ in range(POISON_PER_WAVE)]
        records.append(json.dumps(stale_event(0, now, prefix=prefix)).encode())
        # Half to each partition: with two processes, each one's series move in both waves.
        for partition in (0, 1):
            produce(self.rig.bootstrap, self.rig.source, records[partition::2], partition=partition)

    def delivered_to_shop(self) -> int:
        return unique_events(self.graph.received(events=False), SHOP_PIXEL)

    def scraped(self, expr: str, expected: float) -> bool:
        return self.prometheus.value(expr) == expected

    def stop(self) -> None:
        self.rig.stop()
        self.prometheus.stop()


@pytest.fixture(params=[1, 2], ids=["one-process", "two-processes"])
def run(
    kafka_broker: EmbeddedBroker,
    emulator: RunningEmulator,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Run]:
    """One worker process, or two under `--processes 2`, whose series carry `process`."""
    running = Run(kafka_broker, emulator, tmp_path, request.param)
    yield running
    running.stop()


def _label_values(prometheus: Prometheus, definition: str) -> set[str]:
    """A Grafana `label_values(selector, label)` variable, answered by the series API."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert match, definition
    selector, label = substitute(match.group(1), VARIABLES), match.group(2)
    answer = prometheus.get("/api/v1/series", **{"match[]": selector})
    assert answer["status"] == "success", (definition, answer.get("error"))
    return {series[label] for series in answer["data"] if label in series}


def test_every_panel_query_and_alert_expression_runs_on_a_live_prometheus(run: Run) -> None:
    prometheus = run.prometheus
    run.wait(prometheus.ready, "Prometheus ready")
    run.wait(
        lambda: (
            run.scraped("count(capi_partitions_assigned > 0)", run.processes)
            and run.scraped("sum(capi_partitions_assigned)", 2)
        ),
        "both partitions assigned, to every process",
    )
    run.refused_reload()
    run.wait(
        lambda: run.scraped('sum(capi_config_reloads_total{result="refused"})', run.processes),
        "the broken configuration refused by every process",
    )

    # Wave 1, and Prometheus holding its counters: every series now has a first sample.
    run.wave(1)
    run.wait(lambda: run.delivered_to_shop() == VALID_PER_WAVE, "wave 1 at the shop pixel")
    run.wait(
        lambda: run.scraped('sum(capi_events_delivered_total{destination="shop"})', VALID_PER_WAVE),
        "Prometheus scraping wave 1's deliveries",
    )
    first_wave_failures = 'sum(capi_events_dead_lettered_total{destination="expired"})'
    run.wait(lambda: (prometheus.value(first_wave_failures) or 0) > 0, "expired-token dead letters")

    # Wave 2: the increases the rates and the alert expressions see.
    run.wave(2)
    run.wait(lambda: run.delivered_to_shop() == 2 * VALID_PER_WAVE, "wave 2 at the shop pixel")
    records = 2 * (VALID_PER_WAVE + IDENTIFY_PER_WAVE + POISON_PER_WAVE + 1)
    run.wait(
        lambda: (
            run.scraped("sum(capi_records_consumed_total)", records)
            and run.scraped(
                'sum(capi_events_delivered_total{destination="shop"})', 2 * VALID_PER_WAVE
            )
        ),
        "Prometheus scraping wave 2",
    )
    run.wait(lambda: prometheus.value("sum(capi_consumer_lag)") is not None, "consumer lag")
    run.wait(
        lambda: (prometheus.value(f'count_over_time(up{{job="{JOB}"}}[1m])') or 0) >= 2,
        "two scrapes of the worker",
    )

    # Every panel query parses and, but for the listed exceptions, has data.
    queries = panel_queries(load_dashboard())
    assert len(queries) >= 20
    assert set(NO_DATA_EXPECTED) <= {query.name for query in queries}
    empty = [
        query.name
        for query in queries
        if not prometheus.query(substitute(query.expr, VARIABLES))
        and query.name not in NO_DATA_EXPECTED
    ]
    assert empty == [], run.log()
    [memory] = [query for query in queries if query.panel == "Memory"]
    processes = {
        series["metric"].get("process", "")
        for series in prometheus.query(substitute(memory.expr, VARIABLES))
    }
    assert processes == ({"1", "2"} if run.processes == 2 else {""})

    # The variables' own queries: the job and the pixels of this run; no Kubernetes labels here.
    variables = {
        v["name"]: v["definition"]
        for v in load_dashboard()["templating"]["list"]
        if v["type"] == "query"
    }
    assert _label_values(prometheus, variables["job"]) == {JOB}
    assert _label_values(prometheus, variables["destination"]) == {"shop", "blog", "expired"}
    assert _label_values(prometheus, variables["namespace"]) == set()
    assert _label_values(prometheus, variables["pod"]) == set()

    # Every alert expression parses and finds exactly the series this run should make pending.
    rules = alerts(yaml.safe_load(RULE_FILE.read_text())["groups"])
    assert {rule["alert"] for rule in rules} == set(EXPECTED_PENDING)
    for rule in rules:
        found = [
            {k: v for k, v in series["metric"].items() if k != "__name__"}
            for series in prometheus.query(rule["expr"])
        ]
        expected = EXPECTED_PENDING[rule["alert"]]
        assert sorted(found, key=str) == sorted(expected, key=str), rule["alert"]

    # Prometheus loaded the same file and evaluates every rule without an error.
    def evaluated() -> bool:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        return len(loaded) == len(rules) and all(
            rule["health"] == "ok" and not rule["lastEvaluation"].startswith("0001")
            for rule in loaded
        )

    run.wait(evaluated, "every rule evaluated with health ok")
