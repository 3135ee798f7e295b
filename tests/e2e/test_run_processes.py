"""`capi-worker run` start-up failures, with one process and with `--processes N`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "worker.cli"]


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "worker.yaml"
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1', topics: [t], dead_letter_topic: d,\n"
        "        consumer: {fetch.max.bytez: 1000}}\n"
        "metrics: {host: 127.0.0.1, port: 0}\n"
        "destinations: [{name: shop, pixel_id: '1', access_token: EAAB-very-secret}]\n"
    )
    return config


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_setting_librdkafka_refuses_stops_the_worker_with_exit_code_2(
    tmp_path: Path, processes: str
) -> None:
    result = subprocess.run(
        [*CLI, "run", "--config", str(_config(tmp_path)), "--processes", processes],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'No such configuration property: "fetch.max.bytez"' in result.stderr
    assert "EAAB-very-secret" not in result.stderr + result.stdout
    if processes == "2":  # the supervisor did not restart a process that cannot start
        assert "restarting" not in result.stderr


def test_processes_must_be_a_positive_number(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "run", "--config", str(_config(tmp_path)), "--processes", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--processes: must be at least 1" in result.stderr
