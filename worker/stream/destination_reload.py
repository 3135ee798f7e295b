"""Live reload of the destinations: on SIGHUP and every `runtime.reload_interval_seconds`.

A reload reads the configuration file again with its `destinations_dir` and token files,
builds a new `DestinationSet` beside the running one (in a thread: for thousands of
destinations that takes a second of CPU) and hands it to the worker whole, or refuses it whole:
one invalid file, unknown key, duplicate name or missing token file and the running set stays,
with one log line naming the file and the problem (never a secret). Only destinations are
reloaded; a change to any other setting is named in the log line and waits for a restart.

The interval check first compares a fingerprint of the files (the configuration file, every
entry of `destinations_dir`, every token and secret file in use: inode, size, modification
time) and reads nothing when it has not moved; SIGHUP always reads everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from worker.config import ConfigError, Settings, destination_files, load_settings
from worker.destination_set import DestinationSet
from worker.stream.batcher import Batch, PixelBatcher
from worker.stream.route_and_map import RouteAndMap
from worker.stream.stats import WorkerStats
from worker.telemetry import metrics

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class ReloadSource:
    """Where the running settings came from: the file, and the settings as read from it (a
    supervised process runs with a few of them changed, which is no reason to warn)."""

    config_path: Path
    loaded: Settings


@dataclass(frozen=True, slots=True)
class DestinationChanges:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]  # same name, other settings (a rotated token included)

    @property
    def replaced(self) -> tuple[str, ...]:
        """Names whose open batches must be cut before the swap: they were mapped with settings
        that are going away."""
        return self.removed + self.changed


def compare(old: DestinationSet, new: DestinationSet) -> DestinationChanges:
    added = tuple(d.name for d in new if old.get(d.name) is None)
    removed = tuple(d.name for d in old if new.get(d.name) is None)
    changed = tuple(d.name for d in new if (before := old.get(d.name)) is not None and before != d)
    return DestinationChanges(added, removed, changed)


def with_current_destinations(settings: Settings, config_path: Path) -> Settings:
    """`settings` with the destinations the files hold now (a supervised process at its start).

    A process restarted by the supervisor was handed the settings the supervisor read at its own
    start: its siblings may have reloaded since, and a stale set skips the events of a shop
    added since as not routed (committed, never delivered) and sends a rotated-out token. Every
    other setting stays as given (the group runs with the supervisor's). Files that do not load
    keep the given destinations, as a refused reload would, with one log line."""
    try:
        current = load_settings(config_path)
    except ConfigError as error:
        log.error(
            "Destinations at process start refused, the supervisor's destinations stay; problem=%s",
            _one_line(error),
        )
        return settings
    return settings.model_copy(
        update={
            "destinations": current.destinations,
            "destinations_dir": current.destinations_dir,
        }
    )


def _one_line(error: ConfigError) -> str:
    return " ".join(line.strip() for line in str(error).splitlines())


ApplyDestinations = Callable[[DestinationSet, DestinationChanges], None]
RELOAD_RESULTS = ("applied", "refused")  # capi_config_reloads_total{result}


class DestinationReloader:
    """Owns the reload schedule; `apply` (the worker's) swaps the set in on the event loop."""

    def __init__(
        self,
        source: ReloadSource,
        current: DestinationSet,
        interval_seconds: float,
        apply: ApplyDestinations,
    ) -> None:
        self._source = source
        self._loaded = source.loaded
        self._directory = source.loaded.destinations_dir
        self.current = current
        self._interval = interval_seconds
        self._apply = apply
        self._requested = asyncio.Event()
        # None: the first interval check reads the files (a restarted process may have been
        # handed settings older than them).
        self._seen: Fingerprint | None = None
        self._refused: str | None = None  # the problem of the last refusal, until one applies
        for result in RELOAD_RESULTS:  # at zero from start-up: the first refusal shows in rates
            metrics.CONFIG_RELOADS.labels(result)

    def request(self) -> None:
        """SIGHUP: reload now, whatever the fingerprint says."""
        self._requested.set()

    async def run(self) -> None:
        while True:
            forced = await self._next_turn()
            await self.reload(forced)

    async def _next_turn(self) -> bool:
        if self._interval <= 0:
            await self._requested.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._requested.wait(), self._interval)
        forced = self._requested.is_set()
        self._requested.clear()
        return forced

    async def reload(self, forced: bool = True) -> str:
        """`applied`, `refused` or `unchanged` (an interval check that found nothing to do, or
        the refusal it already reported)."""
        fingerprint = await asyncio.to_thread(self._fingerprint)
        if not forced and fingerprint == self._seen:
            return "unchanged"
        try:
            settings, destinations = await asyncio.to_thread(self._load)
        except ConfigError as error:
            problem = _one_line(error)
            repeated = not forced and problem == self._refused
            self._refused = problem
            # Read again at every interval while refused: the fingerprint knows only the running
            # set's token files, and the one a new shop names may appear later on its own (a
            # Secret volume synced after the ConfigMap). The same refusal is logged once.
            self._seen = None
            if repeated:
                return "unchanged"
            metrics.CONFIG_RELOADS.labels("refused").inc()
            log.error(
                "Destinations reload refused, the running destinations stay; problem=%s", problem
            )
            return "refused"
        self._refused = None
        self._seen = fingerprint
        changes = compare(self.current, destinations)
        if not forced and not (changes.added or changes.removed or changes.changed):
            return "unchanged"
        restart_needed = [
            name
            for name in Settings.model_fields
            if name not in ("destinations", "destinations_dir")
            and getattr(settings, name) != getattr(self._loaded, name)
        ]
        self._apply(destinations, changes)
        self.current = destinations
        self._directory = settings.destinations_dir
        metrics.DESTINATIONS.set(len(destinations))
        metrics.CONFIG_RELOADS.labels("applied").inc()
        log.info(
            "Destinations reloaded; added=%d removed=%d changed=%d destinations=%d%s",
            len(changes.added),
            len(changes.removed),
            len(changes.changed),
            len(destinations),
            f" not_applied_until_restart={','.join(restart_needed)}" if restart_needed else "",
        )
        return "applied"

    def _load(self) -> tuple[Settings, DestinationSet]:
        settings = load_settings(self._source.config_path)
        return settings, DestinationSet.from_settings(settings)

    def _fingerprint(self) -> Fingerprint:
        paths: list[Path] = [self._source.config_path]
        if self._directory is not None:
            with contextlib.suppress(ConfigError):
                paths.extend(destination_files(self._directory))
        paths.extend(_secret_files(self.current))
        return tuple(_stat(path) for path in paths)


def _secret_files(destinations: DestinationSet) -> Iterable[Path]:
    for destination in destinations:
        if destination.access_token_file is not None:
            yield destination.access_token_file
        if destination.app_secret_file is not None:
            yield destination.app_secret_file


def _stat(path: Path) -> tuple[str, int, int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (str(path), -1, -1, -1)
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def swap_destination_set(
    destinations: DestinationSet,
    changes: DestinationChanges,
    *,
    batcher: PixelBatcher,
    send_batch: Callable[[Batch], None] | None,
    route_and_map: RouteAndMap,
    stats: WorkerStats,
) -> None:
    """Apply a reloaded set: the open batches of removed or changed destinations are cut and
    sent under the settings they were mapped with; records mapped from now on see the new set.
    `send_batch` is None until the stages are wired, when no batch can exist yet."""
    for batch in batcher.cut(changes.replaced):
        assert send_batch is not None
        send_batch(batch)
    route_and_map.replace_destinations(destinations)
    fresh = set(changes.added + changes.changed)
    stats.expect(d for d in destinations if d.name in fresh)
