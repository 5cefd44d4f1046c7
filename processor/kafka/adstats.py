"""The worker's side of the ad statistics: a faust table holding :mod:`processor.pipeline.stats`
state, fed from the ad-analytics records of each batch, with closed windows published to
``stats.ad``. Thin on purpose; the counting and the k-folding are in ``processor.pipeline.stats``.

- **State** is the store of a faust ``Table`` (memory store, changelog
  ``<app_id>-ad-stats-changelog``, partitioned like the inputs): shard = input partition, so
  a partition's windows move with it on a rebalance and faust recovers them from the
  changelog. The windows are the pure module's (faust's windowed tables need a current
  event, which the fast path does not have).
- **At-least-once**: the changelog entries and the closed-window records of a batch are
  delivered with the batch's outputs, before its input is acked (:class:`processor.kafka.checkpoint.Checkpoint`).
- **Closing**: after each batch (the shard's event-time watermark) and on a 1 s timer for
  idle shards (wall clock), only for partitions this worker holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from keys import RotationSchedule
from processor.errors import ConfigError
from processor.kafka.clock import SYSTEM_CLOCK, Clock
from processor.kafka.produce import ChangelogEntry
from processor.kafka.tables import (
    apply_to_store,
    changelog_table,
    key_partitions,
    memory_store,
    store_dict,
)
from processor.ops.settings import Settings
from processor.pipeline.outcome import Send
from processor.pipeline.stats import SCHEMA, Change, StatsAggregator

if TYPE_CHECKING:
    from faust.types import AppT

_HEADERS = (("schema", SCHEMA.encode()),)


def check_schedule_fits_windows(schedule: RotationSchedule | None, window_s: float) -> None:
    """Refuse a key schedule whose boundaries fall inside a statistics window: such a window
    would count a device once under each key (windows start at multiples of the window
    since the Unix epoch)."""
    if schedule is None:
        return
    window_ms = round(window_s * 1000)
    if schedule.period_ms % window_ms or schedule.start_ms % window_ms:
        raise ConfigError(
            f"ad_stats_window ({window_s:g} s) does not divide the {schedule.domain} key"
            f" schedule (period {schedule.period_s} s from {schedule.start.isoformat()}):"
            " a rotation inside a window would count devices twice; set ad_stats_window to a"
            " divisor of the period, or re-run `pseudostream keys schedule` with a period that"
            " is a whole number of windows and a start on a window boundary"
        )


class AdStatsTable:
    """The table, the aggregator over its store, and the per-shard activity clock."""

    def __init__(self, app: AppT, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self.topic = settings.ad_stats_topic
        self.topics = tuple(settings.input_topics.values())  # the shard's input streams
        self.changelog_topic = settings.ad_stats_changelog_topic
        self.table = changelog_table(app, "ad-stats", self.changelog_topic, settings.partitions)
        self._store = memory_store(self.table)
        self.aggregator = StatsAggregator(settings.ad_stats_config(), store_dict(self._store))
        # a shard is idle when it has seen no ad record for this long (wall clock)
        self._idle_after = max(1.0, settings.ad_stats_grace)
        self._last_activity: dict[int, float] = {}
        # a shard never seen counts as active since start or recovery: its backlog gets
        # ``_idle_after`` seconds to move the watermark before the wall clock closes windows
        self._since = clock.wall_ms() / 1000
        self.counts: Counter[str] = Counter()

    def add(self, records: Iterable[tuple[int, str, bytes]]) -> None:
        """Count a batch's ad-analytics records (partition, input topic, value bytes)."""
        now = self._clock.wall_ms() / 1000
        now_ms = int(now * 1000)
        add = self.aggregator.add
        counts = self.counts
        activity = self._last_activity
        loads = orjson.loads
        for partition, topic, value in records:
            counts[add(partition, loads(value), now_ms, topic)] += 1
            activity[partition] = now

    def flush(
        self, partitions: set[int], caught_up: set[tuple[int, str]]
    ) -> tuple[list[Send], list[ChangelogEntry]]:
        """Close the due windows of ``partitions`` (those this worker holds) and return the
        records to publish and every pending changelog entry. Only a partition whose input
        is read to its end on every topic (``caught_up``: (partition, topic)) and that saw
        no ad record lately is idle: a backlog of old events must move the watermark itself,
        not the wall clock."""
        now = self._clock.wall_ms() / 1000
        since = self._since
        last = self._last_activity
        lagging = {p for p in partitions for t in self.topics if (p, t) not in caught_up}
        idle = [p for p in partitions - lagging if now - last.get(p, since) >= self._idle_after]
        sends: list[Send] = []
        changes: list[Change] = self.aggregator.drain_changes()
        for shard, window in self.aggregator.due(int(now * 1000), idle, caught_up):
            if shard not in partitions:
                continue  # revoked: the new owner publishes it
            closed = self.aggregator.close(shard, window)
            self.counts["windows_closed"] += 1
            for key, value in closed.records:
                sends.append((self.topic, key.encode(), orjson.dumps(value), _HEADERS))
            changes += closed.changes
        return sends, self._changelog(changes)

    def _changelog(self, changes: list[Change]) -> list[ChangelogEntry]:
        """Changelog records (faust's json codec, so its recovery reads them back) to the
        shard's partition; also tells the store which partition owns the key, so faust
        drops it when the partition is revoked."""
        owners = key_partitions(self._store)
        topic = self.changelog_topic
        dumps = orjson.dumps
        entries: list[ChangelogEntry] = []
        append = entries.append  # once per changed key: a batch changes about one per ad record
        for key, value in changes:
            shard = int(key[1])
            if value is None:
                owners.pop(key, None)
                append((topic, dumps(key), None, shard))
            else:
                owners[key] = shard
                append((topic, dumps(key), dumps(value), shard))
        return entries

    def apply_changelog(self, key: list[Any], value: Any, partition: int) -> None:
        """One changelog record read back by the worker's catch-up (None deletes)."""
        apply_to_store(self._store, tuple(key), value, partition)

    def recovered(self) -> None:
        """After recovery or a rebalance: re-index the windows the store now holds."""
        self.aggregator.rebuild()
        self._since = self._clock.wall_ms() / 1000
        self._last_activity.clear()


__all__ = ["AdStatsTable", "check_schedule_fits_windows"]
