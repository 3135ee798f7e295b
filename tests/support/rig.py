"""`WorkerRig`: the topics, configuration and worker processes of one test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.kafka_helpers import all_committed, committed_offsets, end_offsets, unique_topic
from tests.support.worker import WorkerProcess, wait_until, write_config


class WorkerRig:
    """A source topic, a dead-letter topic and a consumer group of its own on the session's
    broker; `config()` writes the worker's file for them, `start_worker()` runs
    `capi-worker run` on it (logs in `tmp_path`), `stop()` kills what is still running.
    A suite with other configuration defaults sets `write_config` (same keywords)."""

    write_config = staticmethod(write_config)

    def __init__(
        self,
        broker: Any,
        graph_url: str,
        tmp_path: Path,
        *,
        partitions: int = 4,
        dead_letter_partitions: int = 1,
        create_dead_letter_topic: bool = True,
    ) -> None:
        self.broker = broker
        self.bootstrap: str = broker.bootstrap_servers
        self.graph_url = graph_url
        self.source = unique_topic("events")
        self.dead_letters = unique_topic("dlq")
        self.group = unique_topic("group")
        topics = {self.source: partitions}
        if create_dead_letter_topic:
            topics[self.dead_letters] = dead_letter_partitions
        broker.create_topics(topics)
        self.tmp_path = tmp_path
        self.workers: list[WorkerProcess] = []

    def config(self, name: str = "worker.yaml", **settings: Any) -> Path:
        """`write_config` for this rig's topics and group; `settings` as `write_config` takes."""
        return self.write_config(
            self.tmp_path / name,
            bootstrap=self.bootstrap,
            graph_url=self.graph_url,
            source_topic=self.source,
            dead_letter_topic=self.dead_letters,
            group_id=self.group,
            **settings,
        )

    def start_worker(self, config: Path, args: Sequence[str] = ()) -> WorkerProcess:
        worker = WorkerProcess(config, self.tmp_path / f"worker-{len(self.workers)}.log", args)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name} ---\n{w.log()[-3000:]}" for w in self.workers)

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """`wait_until` with the workers' logs in the failure message."""
        wait_until(condition, timeout, what, self.logs)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop_quietly()

    # -- offsets ----------------------------------------------------------------------------

    def committed(self) -> dict[int, int]:
        return committed_offsets(self.bootstrap, self.group, self.source)

    def end_offsets(self) -> dict[int, int]:
        return end_offsets(self.bootstrap, self.source)

    def all_committed(self) -> bool:
        """The group's committed offset of every partition is at its true end."""
        return all_committed(self.bootstrap, self.group, self.source)
