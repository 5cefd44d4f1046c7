"""Stall detection for the running worker: every second, is an assigned partition, or a
table recovery, behind its end and not moving? Such a worker heartbeats and holds its
partitions forever unless something notices: after ``stall_ready_seconds`` it is not ready
and counted, after ``stall_exit_seconds`` it exits (code 70) for its supervisor to restart
it (:class:`processor.ops.stall.ProgressWatch` decides; this module feeds it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from processor.kafka.clock import Clock
from processor.kafka.recovery import in_recovery, recovery_of
from processor.ops.metrics import WorkerMetrics, partition_end
from processor.ops.stall import ProgressWatch, Watched

if TYPE_CHECKING:
    from faust.types import AppT

    from processor.kafka.metricsview import MetricsView
    from processor.ops.settings import Settings

log = logging.getLogger("pseudostream.worker")

EXIT_STALLED = 70
# test seam (tests/integration/test_drills.py): "topic:partition" whose fetched records the
# worker drops unhandled, the way the fetch loop once did after a rebalance
TEST_STALL_ENV = "PSEUDOSTREAM_TEST_STALL_PARTITION"


def stall_seam_partition(value: str | None) -> tuple[str, int] | None:
    """The test seam's ``topic:partition`` (:data:`TEST_STALL_ENV`), or None."""
    if not value:
        return None
    topic, _, partition = value.rpartition(":")
    log.warning("test seam %s: dropping the records of %s unhandled", TEST_STALL_ENV, value)
    return topic, int(partition)


class StallWatch:
    """Feeds the progress watch once a second (a faust timer calls :meth:`check`)."""

    def __init__(
        self,
        app: AppT,
        settings: Settings,
        view: MetricsView,
        metrics: WorkerMetrics,
        clock: Clock,
        exit_now: Callable[[int], Any],
        watch_fetch_loop: bool,
    ) -> None:
        self._app = app
        self._exit_after = settings.stall_exit_seconds
        self._view = view
        self._metrics = metrics
        self._clock = clock
        self._exit_now = exit_now
        self._watch_fetch_loop = watch_fetch_loop
        self.progress = ProgressWatch(settings.stall_ready_seconds, settings.stall_exit_seconds)
        self.fetch_rounds = 0  # turns of the fast path's fetch loop

    def _watched(self) -> dict[str, Watched]:
        """What must move: a table recovery's partitions while it runs (the sources wait
        for it), else each input partition behind its end, and the fetch loop itself."""
        app = self._app
        if in_recovery(app):
            recovery = recovery_of(app)
            offsets, highwaters = recovery.active_offsets, recovery.active_highwaters
            return {
                f"recovery {tp.topic}[{tp.partition}]": Watched(offsets[tp], highwaters[tp])
                for tp in highwaters
            }
        watched = {}
        for held in self._view.partition_offsets():
            end = partition_end(held)
            if end is None:
                continue
            handled = -1 if held.last_seen is None else held.last_seen
            position = max(held.committed or 0, handled + 1)
            watched[f"{held.topic}[{held.partition}]"] = Watched(position, end, 1)
        if self._watch_fetch_loop and self._view.assigned_sources() and not app.rebalancing:
            # the fetch loop itself must turn (a fetch waits 1 s at most) while this worker
            # holds input partitions: a loop that stopped sees no new end offsets either
            rounds = self.fetch_rounds
            watched["fetch loop"] = Watched(rounds, rounds + 1)
        return watched

    async def check(self) -> None:
        if self._app.should_stop:
            return
        progress = self.progress
        progress.observe(self._clock.monotonic(), self._watched())
        self._metrics.stalled.set(len(progress.stalls))
        for stall in progress.newly_stalled():
            self._metrics.stalls.inc()
            log.error(
                "stalled: %s is %d records behind and has not moved for %.0fs; not ready",
                stall.name,
                stall.behind,
                stall.seconds,
            )
        if progress.should_exit:
            log.critical(
                "stalled for %.0fs or more: exiting (code %d) so that the supervisor restarts"
                " this worker; nothing unacknowledged is committed",
                self._exit_after,
                EXIT_STALLED,
            )
            self._exit_now(EXIT_STALLED)
