"""The progress watch: finds input partitions (and table recoveries) that have records to
read but stopped moving, the hang a worker can otherwise keep forever while it heartbeats
and holds its partitions.

Pure: the worker feeds it, once a second, each watched partition's position (the next
offset it will hand on) and end (what the broker says exists); it answers which ones have
been behind without moving for ``ready_after`` seconds (``/ready`` fails, a metric counts
them) and whether one has for ``exit_after`` (the worker exits so its supervisor restarts
it and the group hands the partitions to a live member).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Stall:
    """A watched partition that is behind and has not moved for ``seconds``."""

    name: str
    behind: int
    seconds: float


@dataclass(slots=True)
class _Seen:
    position: int
    since: float  # when it was first seen at this position while behind


class Watched(NamedTuple):
    """One watched partition at one moment.

    ``tolerance``: how many records behind still count as caught up. A source partition
    uses 1: a transactional producer leaves a commit marker at the end of the log, an offset
    no consumer ever hands on, so a partition can rest one record "behind" for good.
    """

    position: int
    end: int
    tolerance: int = 0


class ProgressWatch:
    """Tracks, per name, since when its position has not moved while behind its end."""

    def __init__(self, ready_after: float, exit_after: float) -> None:
        if ready_after <= 0:
            raise ValueError("ready_after must be positive")
        if exit_after and exit_after < ready_after:
            raise ValueError("exit_after must be 0 (never) or at least ready_after")
        self.ready_after = ready_after
        self.exit_after = exit_after
        self._seen: dict[str, _Seen] = {}
        self._reported: set[str] = set()
        self.stalls: list[Stall] = []

    def observe(self, now: float, positions: Mapping[str, Watched]) -> list[Stall]:
        """Take this moment's ``name -> (position, end, tolerance)``; return the stalls now.
        Names no longer watched (revoked, recovered) are forgotten."""
        seen = self._seen
        for name in set(seen) - set(positions):
            del seen[name]
        stalls = []
        for name, (position, end, tolerance) in positions.items():
            behind = end - position
            if behind <= tolerance:
                seen.pop(name, None)
                continue
            last = seen.get(name)
            if last is None or last.position != position:
                seen[name] = _Seen(position, now)
                continue
            waited = now - last.since
            if waited >= self.ready_after:
                stalls.append(Stall(name, behind, waited))
        self.stalls = stalls
        return stalls

    def newly_stalled(self) -> list[Stall]:
        """Stalls not reported before (each is reported once until it moves again)."""
        names = {stall.name for stall in self.stalls}
        self._reported &= names
        fresh = [stall for stall in self.stalls if stall.name not in self._reported]
        self._reported |= {stall.name for stall in fresh}
        return fresh

    @property
    def should_exit(self) -> bool:
        return bool(self.exit_after) and any(s.seconds >= self.exit_after for s in self.stalls)
