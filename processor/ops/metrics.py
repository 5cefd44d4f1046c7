"""Prometheus metrics of the worker (its pages are :mod:`processor.kafka.web`).

Counted per batch in the batch handler, never per event where it can be helped. Labels are
topic names, reason codes, domains, key ids and partition numbers: never a value taken from
an event. The names and their meaning are documented in ``docs/operations.md``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

PREFIX = "pseudostream"
CONTENT_TYPE = "text/plain; version=0.0.4"
# Event time -> output: real clients lag by seconds to days (offline phones); synthetic
# events carry 2025 times, which land in +Inf (docs/operations.md).
EVENT_LATENCY_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0
)  # fmt: skip
RECORD_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0
)  # fmt: skip
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BulkHistogram(Collector):
    """A label-less histogram fed many observations at once (no lock: written and read on
    the worker's event loop)."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_ages(self, now: float, stamps: Iterable[float], per_second: float = 1.0) -> None:
        """Observe the age ``now - stamp`` of every stamp (``per_second`` stamp units make a
        second; a stamp after ``now`` is age 0): one sort and one bisect per bucket instead
        of a bisect per value (the worker observes two ages per input)."""
        ordered = sorted(stamps)
        n = len(ordered)
        if not n:
            return
        counts, find = self.counts, bisect.bisect_left
        now_units = now * per_second
        within_previous = 0
        for i, bound in enumerate(self.bounds):
            within = n - find(ordered, now_units - bound * per_second)  # age <= bound
            counts[i] += within - within_previous
            within_previous = within
        counts[-1] += n - within_previous
        past = find(ordered, now_units)  # the stamps before now; the others add age 0
        self.sum += (past * now_units - math.fsum(ordered[:past])) / per_second

    def collect(self) -> Iterator[Metric]:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=self.sum
        )

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """What the worker knows of one input partition."""

    topic: str
    partition: int
    committed: int | None  # next offset to read, as committed (Kafka semantics)
    highwater: int | None  # from the last fetch response (may be one batch short on Tansu)
    last_seen: int | None  # highest offset handed to the batch handler


def partition_end(offsets: PartitionOffsets) -> int | None:
    """The best known end of the partition: the broker's high watermark, or one past the
    highest offset already fetched if that is further (Tansu's can be one batch short)."""
    known = [offsets.highwater] if offsets.highwater is not None else []
    if offsets.last_seen is not None:
        known.append(offsets.last_seen + 1)
    return max(known) if known else None


def partition_lag(offsets: PartitionOffsets) -> int | None:
    """Records not yet committed: end - committed (nothing committed = from offset 0, as
    ``auto_offset_reset = earliest``); None when the end is not known yet."""
    end = partition_end(offsets)
    if end is None:
        return None
    return max(0, end - (offsets.committed or 0))


@dataclass(frozen=True, slots=True)
class KeyAge:
    """The key a domain uses now: when it was made (a scheduled period key: its period's
    start) and the domain's rotation period when it follows a schedule."""

    domain: str
    created: float  # Unix seconds
    rotation_period: float | None  # seconds; None when rotated by hand (`keys rotate`)


class WorkerView(Protocol):
    """What the metrics read from the worker at scrape time."""

    def consent_table_size(self) -> int: ...
    def active_key_ids(self) -> Mapping[str, str]: ...
    def key_ages(self) -> Iterable[KeyAge]: ...
    def pseudonym_cache(self) -> Mapping[str, tuple[int, int]]: ...
    def partition_offsets(self) -> Iterable[PartitionOffsets]: ...
    def readiness(self) -> Mapping[str, bool]: ...
    def pipeline_stats(self) -> Mapping[str, int]: ...
    def counts(self) -> Mapping[str, int]:
        """The worker's counts of acknowledged batches (its stats file's): ``in:<topic>``,
        ``out:<topic>``, ``quarantined:<reason>``, ``suppressed:<reason>``,
        ``pseudonyms:<domain>``, ``batches`` (other keys are not read here)."""
        ...


# The counters read from ``WorkerView.counts``: metric name, help, label, count-key prefix.
_COUNTED = (
    ("events_in", "Input records processed, by source topic", "topic", "in:"),
    (
        "events_out",
        "Output records delivered (acknowledged by the broker), by topic",
        "topic",
        "out:",
    ),
    ("quarantined", "Input records quarantined, by reason code", "reason", "quarantined:"),
    (
        "suppressed",
        "Input records that produced nothing on purpose, by reason",
        "reason",
        "suppressed:",
    ),
    (
        "pseudonyms_written",
        "Pseudonyms in delivered clean records, per domain",
        "domain",
        "pseudonyms:",
    ),
)


def counted(counts: Mapping[str, int]) -> Iterator[CounterMetricFamily]:
    """The worker's acknowledged counts as Prometheus counters (one source: the worker's
    :class:`processor.kafka.statsfile.Counters`, which the stats file shows too)."""
    for name, documentation, label, prefix in _COUNTED:
        family = CounterMetricFamily(f"{PREFIX}_{name}", documentation, labels=[label])
        for key, n in sorted(counts.items()):
            if key.startswith(prefix):
                family.add_metric([key[len(prefix) :]], n)
        yield family
    yield CounterMetricFamily(
        f"{PREFIX}_batches", "Batches processed", value=counts.get("batches", 0)
    )


class _StateCollector(Collector):
    def __init__(self, metrics: WorkerMetrics, view: WorkerView) -> None:
        self.metrics = metrics
        self.view = view

    def collect(self) -> Iterator[Metric]:
        view = self.view
        p = PREFIX
        keys = GaugeMetricFamily(
            f"{p}_active_key_info",
            "Active key id per domain (value 1)",
            labels=["domain", "key_id"],
        )
        for domain, key_id in sorted(view.active_key_ids().items()):
            keys.add_metric([domain, key_id], 1)
        yield keys
        created = GaugeMetricFamily(
            f"{p}_active_key_created_timestamp_seconds",
            "When the key in use per domain was made (a scheduled key: its period's start)",
            labels=["domain"],
        )
        period = GaugeMetricFamily(
            f"{p}_key_rotation_period_seconds",
            "The rotation period of each domain that rotates on a schedule",
            labels=["domain"],
        )
        for age in sorted(view.key_ages(), key=lambda a: a.domain):
            created.add_metric([age.domain], age.created)
            if age.rotation_period is not None:
                period.add_metric([age.domain], age.rotation_period)
        yield created
        yield period
        yield GaugeMetricFamily(
            f"{p}_consent_table_entries",
            "Users in this worker's part of the consent table",
            value=view.consent_table_size(),
        )
        misses = CounterMetricFamily(
            f"{p}_pseudonym_cache_misses",
            "Pseudonym lookups not answered by the cache, per domain",
            labels=["domain"],
        )
        hmacs = CounterMetricFamily(
            f"{p}_pseudonym_hmacs",
            "Pseudonyms actually computed (canonicalization + HMAC), per domain",
            labels=["domain"],
        )
        ratio = GaugeMetricFamily(
            f"{p}_pseudonym_cache_hit_ratio",
            "1 - cache misses / pseudonyms written, per domain, since start",
            labels=["domain"],
        )
        counts = view.counts()
        for domain, (n_miss, n_hmac) in sorted(view.pseudonym_cache().items()):
            misses.add_metric([domain], n_miss)
            hmacs.add_metric([domain], n_hmac)
            written = counts.get("pseudonyms:" + domain, 0)
            if written:
                ratio.add_metric([domain], min(1.0, max(0.0, 1.0 - n_miss / written)))
        yield misses
        yield hmacs
        yield ratio
        yield from counted(counts)
        yield dropped_fields(view.pipeline_stats())
        labels = ["topic", "partition"]
        lag = GaugeMetricFamily(
            f"{p}_consumer_lag", "Records of the partition not yet committed", labels=labels
        )
        end = GaugeMetricFamily(
            f"{p}_partition_end_offset",
            "max(broker high watermark, highest fetched offset + 1)",
            labels=labels,
        )
        committed = GaugeMetricFamily(
            f"{p}_partition_committed_offset", "Committed offset (next to read)", labels=labels
        )
        for offsets in sorted(view.partition_offsets(), key=lambda o: (o.topic, o.partition)):
            key = [offsets.topic, str(offsets.partition)]
            value = partition_lag(offsets)
            if value is not None:
                lag.add_metric(key, value)
            end_value = partition_end(offsets)
            if end_value is not None:
                end.add_metric(key, end_value)
            if offsets.committed is not None:
                committed.add_metric(key, offsets.committed)
        yield lag
        yield end
        yield committed
        checks = view.readiness()
        yield GaugeMetricFamily(
            f"{p}_ready", "1 when /ready says ready", value=all(checks.values())
        )
        check_family = GaugeMetricFamily(
            f"{p}_ready_check", "Each readiness check (1 = passes)", labels=["check"]
        )
        for name, passed in checks.items():
            check_family.add_metric([name], 1 if passed else 0)
        yield check_family


def dropped_fields(stats: Mapping[str, int]) -> CounterMetricFamily:
    """``dropped_fields{field,reason}`` from the pipeline's ``dropped_field:<path>:<reason>``
    counts (contract paths and reason codes: never a value of an event)."""
    family = CounterMetricFamily(
        f"{PREFIX}_dropped_fields",
        "Fields removed from valid events (bad format, identifier in a kept field, ...)",
        labels=["field", "reason"],
    )
    for name, n in sorted(stats.items()):
        if name.startswith("dropped_field:"):
            field, _, reason = name.removeprefix("dropped_field:").rpartition(":")
            family.add_metric([field, reason], n)
    return family


class WorkerMetrics:
    """Every metric of one worker, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``*_created`` timestamp series: noise for operations
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        p = PREFIX
        # events in and out, quarantined, suppressed, batches, pseudonyms written: read from
        # the worker's counts at scrape time (``counted``), not counted a second time here
        self.stalled = Gauge(
            f"{p}_stalled_partitions",
            "Assigned partitions (and table recoveries) behind their end and not moving",
            registry=r,
        )
        self.stalls = Counter(
            f"{p}_stalls", "Partitions found stalled (each counted once per stall)", registry=r
        )
        self.batch_seconds = Histogram(
            f"{p}_batch_seconds",
            "In-process latency per batch: from the fetched batch to the delivery ack",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.event_latency = BulkHistogram(
            f"{p}_event_latency_seconds",
            "Event time (the event's event_time) to delivery ack, per input record",
            EVENT_LATENCY_BUCKETS,
        )
        self.record_latency = BulkHistogram(
            f"{p}_record_latency_seconds",
            "Kafka record timestamp to delivery ack, per input record",
            RECORD_LATENCY_BUCKETS,
        )
        r.register(self.event_latency)
        r.register(self.record_latency)
        self.leak_canary_records = Counter(
            f"{p}_leak_canary_records",
            "Output records the live leak canary scanned, by topic",
            ["topic"],
            registry=r,
        )
        self.leak_findings = Counter(
            f"{p}_leak_findings",
            "Leak scanner findings in the canary's sampled output records, by topic and detector",
            ["topic", "detector"],
            registry=r,
        )
        self.delivery_failures = Counter(
            f"{p}_delivery_failures",
            "Runs on this data_dir that ended because a delivery failed (exit 75), counted by"
            " the next run",
            registry=r,
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, process_start_time_seconds
        ProcessCollector(registry=r)

    def bind(self, view: WorkerView) -> None:
        """Read the worker's state at scrape time (tables, keys, caches, offsets)."""
        self.registry.register(_StateCollector(self, view))

    def record_batch(
        self,
        *,
        seconds: float,
        acked: float,
        event_times_ms: Iterable[int],
        record_stamps: Iterable[float],
    ) -> None:
        """One batch, after its deliveries were acknowledged at ``acked`` (Unix seconds):
        the events' own times (ms) and the input records' Kafka timestamps (seconds); its
        counts are the worker's (:meth:`WorkerView.counts`)."""
        self.batch_seconds.observe(seconds)
        self.event_latency.observe_ages(acked, event_times_ms, per_second=1000.0)
        self.record_latency.observe_ages(acked, record_stamps)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


__all__ = [
    "BulkHistogram",
    "KeyAge",
    "PartitionOffsets",
    "WorkerMetrics",
    "WorkerView",
    "partition_end",
    "partition_lag",
]
