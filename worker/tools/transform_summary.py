"""`capi-worker transform --summary`: what the transform did, per destination, on stderr.

Events mapped, skipped by reason and errored by stage/reason, then the share of mapped events
whose user_data carries each key (match quality, as `capi_user_data_keys_total` counts it for
delivered events).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from worker.capi.match_quality import ordered_shares, user_data_signature
from worker.config import DestinationSettings
from worker.mapping.result import Invalid, Mapped, MapResult, Skipped

NO_DESTINATION = "(no destination)"


@dataclass
class _Tally:
    pixel_id: str | None
    mapped: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errored: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)


class TransformSummary:
    """Counts results as `transform` prints them; `render()` gives the text for stderr."""

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}

    def add(self, destination: DestinationSettings | None, result: MapResult) -> None:
        if destination is None:
            tally = self._tally(NO_DESTINATION, None)
        else:
            tally = self._tally(destination.name, destination.pixel_id)
        if isinstance(result, Mapped):
            tally.mapped += 1
            tally.keys.update(user_data_signature(result.event))
        elif isinstance(result, Skipped):
            tally.skipped[result.reason] += 1
        elif isinstance(result, Invalid):
            tally.errored[f"{result.stage}/{result.reason}"] += 1

    def render(self) -> str:
        lines = ["transform summary"]
        for name, tally in self._tallies.items():
            where = f"{name} (pixel {tally.pixel_id})" if tally.pixel_id else name
            lines.append(
                f"{where}: {tally.mapped} mapped, {sum(tally.skipped.values())} skipped, "
                f"{sum(tally.errored.values())} errored"
            )
            for label, counts in (("skipped", tally.skipped), ("errored", tally.errored)):
                for reason, count in sorted(counts.items()):
                    lines.append(f"  {label} {reason}: {count}")
            if tally.mapped:
                lines.append("  share of mapped events carrying each user_data key:")
                for key, count, share in ordered_shares(tally.keys, tally.mapped):
                    lines.append(f"    {key:<20} {share:7.1%}  ({count})")
        return "\n".join(lines) + "\n"

    def _tally(self, name: str, pixel_id: str | None) -> _Tally:
        tally = self._tallies.get(name)
        if tally is None:
            tally = self._tallies[name] = _Tally(pixel_id)
        return tally
