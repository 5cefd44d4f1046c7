"""What the Prometheus metrics and ``/ready`` read from the worker at scrape time
(:class:`processor.ops.metrics.WorkerView`): tables, keys, caches, partition offsets,
readiness. Counters that the worker adds to per batch go to
:meth:`processor.ops.metrics.WorkerMetrics.record_batch` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from processor.kafka.checkpoint import faust_consumer
from processor.ops.metrics import KeyAge, PartitionOffsets

if TYPE_CHECKING:
    from faust.types import TP

    from processor.kafka.worker import StreamWorker


class MetricsView:
    """A :class:`processor.ops.metrics.WorkerView` over a :class:`StreamWorker`."""

    def __init__(self, worker: StreamWorker) -> None:
        self._worker = worker
        self._sources = frozenset(worker.settings.input_topics.values())
        self.last_seen: dict[TP, int] = {}  # highest offset handed to the pipeline
        self.topics_present = False  # set by run() once the topics were created or checked

    def consent_table_size(self) -> int:
        return len(self._worker.consent)

    def active_key_ids(self) -> dict[str, str]:
        from keys import Domain

        pipeline = self._worker.pipeline
        active = {str(d): p.key_id for d, p in pipeline.pseudonymizers.items()}
        active[str(Domain.QUARANTINE)] = self._worker.keyring.active(Domain.QUARANTINE).key_id
        return active

    def pipeline_stats(self) -> Mapping[str, int]:
        return self._worker.pipeline.stats

    def counts(self) -> Mapping[str, int]:
        return self._worker.counters.counts

    def key_ages(self) -> list[KeyAge]:
        from keys import Domain

        keyring = self._worker.keyring
        pipeline = self._worker.pipeline
        schedule = keyring.schedule
        ages = []
        for domain in (*pipeline.pseudonymizers, Domain.QUARANTINE):
            key = (
                keyring.active(domain)
                if domain is Domain.QUARANTINE
                else pipeline.key_in_force(domain)
            )
            period = schedule.period_s if schedule and schedule.domain == domain else None
            ages.append(KeyAge(str(domain), key.created_at.timestamp(), period))
        return ages

    def pseudonym_cache(self) -> dict[str, tuple[int, int]]:
        pseudonymizers = self._worker.pipeline.pseudonymizers
        return {str(d): (p.misses, p.computed) for d, p in pseudonymizers.items()}

    def assigned_sources(self) -> set[TP]:
        """The input partitions this worker holds (none before the consumer started)."""
        try:
            assigned = self._worker.app.consumer.assignment()
        except Exception:  # not started yet
            return set()
        return {tp for tp in assigned if tp.topic in self._sources}

    def _highwater(self, tp: TP) -> int | None:
        try:
            highwater: int | None = self._worker.app.consumer.highwater(tp)
        except Exception:  # no fetch yet
            return None
        return highwater

    def partition_offsets(self) -> list[PartitionOffsets]:
        committed = faust_consumer(self._worker.app)._committed_offset  # noqa: SLF001 - faust keeps the committed offsets it read or wrote, with no public getter
        return [
            PartitionOffsets(
                tp.topic,
                tp.partition,
                committed.get(tp),
                self._highwater(tp),
                self.last_seen.get(tp),
            )
            for tp in self.assigned_sources()
        ]

    def partitions_read(self) -> tuple[set[int], set[tuple[int, str]]]:
        """Partitions this worker holds, and the (partition, topic) pairs read to their
        high-water mark (no backlog), for the ad statistics' watermarks."""
        assigned: set[int] = set()
        caught_up: set[tuple[int, str]] = set()
        for tp in self.assigned_sources():
            assigned.add(tp.partition)
            highwater = self._highwater(tp)
            last = self.last_seen.get(tp)
            if highwater == 0 or (highwater and last is not None and last + 1 >= highwater):
                caught_up.add((tp.partition, tp.topic))
        return assigned, caught_up

    def readiness(self) -> dict[str, bool]:
        """/ready: keyring loaded, topics present, partitions assigned and recovered, and
        none of them stalled (:class:`processor.ops.stall.ProgressWatch`)."""
        worker = self._worker
        return {
            "keyring_loaded": bool(worker.pipeline.pseudonymizers),
            "topics_present": self.topics_present and self._topics_known(),
            "partitions_assigned": bool(self.assigned_sources())
            and not worker.app.rebalancing
            and not worker.in_recovery(),
            "progressing": not worker.stalls.progress.stalls,
        }

    def _topics_known(self) -> bool:
        """The inputs and the changelog are in the client's cluster metadata. Every member
        has that metadata; faust's ``topic_partitions`` reads the group coordinator's
        snapshot, which only the group leader fills (it made /ready fail on every other
        worker)."""
        settings = self._worker.settings
        names = [*settings.input_topics.values(), settings.changelog_topic]
        try:
            client: Any = faust_consumer(self._worker.app)._thread._ensure_consumer()  # noqa: SLF001 - faust's only handle on the aiokafka consumer; its metadata is public
        except Exception:  # consumer not started yet
            return False
        return all(client.partitions_for_topic(name) for name in names)
