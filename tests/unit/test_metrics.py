"""Metrics without a broker: lag arithmetic, the bulk histogram, the exposition of a fake worker, and ``top``'s parsing and rendering."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from processor.cli import main
from processor.cli.top_cmd import parse_metrics, quantile, render
from processor.ops.metrics import (
    BulkHistogram,
    KeyAge,
    PartitionOffsets,
    WorkerMetrics,
    partition_end,
    partition_lag,
)


class FakeWorker:
    def __init__(self) -> None:
        self.acknowledged: dict[str, int] = {}

    def consent_table_size(self) -> int:
        return 7

    def active_key_ids(self) -> Mapping[str, str]:
        return {"recommendation": "rec-2", "ad-analytics": "ad-1", "quarantine": "quar-1"}

    def key_ages(self) -> Iterable[KeyAge]:
        return [
            KeyAge("recommendation", 1_700_000_000.0, None),
            KeyAge("ad-analytics", 1_764_288_000.0, 86_400.0),
        ]

    def pseudonym_cache(self) -> Mapping[str, tuple[int, int]]:
        return {"recommendation": (10, 8)}

    def partition_offsets(self) -> Iterable[PartitionOffsets]:
        return [PartitionOffsets("raw.behaviour", 0, 90, 100, 104)]

    def readiness(self) -> Mapping[str, bool]:
        return {"keyring_loaded": True, "topics_present": True, "partitions_assigned": False}

    def pipeline_stats(self) -> Mapping[str, int]:
        return {"dropped_field:device.model:identifier": 3, "out:recommendation": 9}

    def counts(self) -> Mapping[str, int]:
        return self.acknowledged


def test_lag_uses_the_highest_known_end() -> None:
    assert partition_lag(PartitionOffsets("t", 0, 90, 100, 104)) == 15  # Tansu one batch short
    assert partition_lag(PartitionOffsets("t", 0, 90, 100, 50)) == 10
    assert partition_lag(PartitionOffsets("t", 0, None, 30, None)) == 30
    assert partition_lag(PartitionOffsets("t", 0, 5, None, None)) is None
    assert partition_end(PartitionOffsets("t", 0, None, None, 9)) == 10


@settings(max_examples=300, deadline=None)
@given(
    stamps=st.lists(st.floats(1.6e9, 1.8e9) | st.sampled_from([1.7e9 - 0.05, 1.7e9 + 1.0])),
    per_second=st.sampled_from([1.0, 1000.0]),
)
def test_ages_observed_at_once_land_where_one_by_one_would(
    stamps: list[float], per_second: float
) -> None:
    now = 1.7e9
    bounds = (0.05, 0.5, 60.0, 3600.0, 86400.0)
    bulk = BulkHistogram("h", "h", bounds)
    bulk.observe_ages(now, [t * per_second for t in stamps], per_second)
    one = BulkHistogram("h", "h", bounds)
    for t in stamps:
        one.observe(max(0.0, now - t))
    assert bulk.counts == one.counts
    assert bulk.sum == pytest.approx(one.sum, abs=1e-3 * max(1, len(stamps)))


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }


def test_exposition_of_a_batch() -> None:
    metrics = WorkerMetrics()
    worker = FakeWorker()
    metrics.bind(worker)
    worker.acknowledged.update(
        {
            "in": 3,
            "in:raw.behaviour": 3,
            "out:clean.recommendation": 2,
            "quarantined": 1,
            "quarantined:bad_json": 1,
            "pseudonyms:recommendation": 40,
            "batches": 1,
        }
    )
    metrics.record_batch(
        seconds=0.02,
        acked=1_764_316_800.0,
        event_times_ms=[1_764_316_799_800, 1_764_316_797_000, 1_664_316_800_000],
        record_stamps=[1_764_316_799.99, 1_764_316_799.98, 1_764_316_799.97],
    )
    s = _samples(metrics)
    assert s[("pseudostream_events_in_total", (("topic", "raw.behaviour"),))] == 3
    assert s[("pseudostream_events_out_total", (("topic", "clean.recommendation"),))] == 2
    assert s[("pseudostream_quarantined_total", (("reason", "bad_json"),))] == 1
    assert s[("pseudostream_pseudonyms_written_total", (("domain", "recommendation"),))] == 40
    assert s[("pseudostream_batches_total", ())] == 1
    assert not any(name == "pseudostream_suppressed_total" for name, _ in s)  # none yet
    assert s[("pseudostream_event_latency_seconds_count", ())] == 3
    assert s[("pseudostream_event_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert s[("pseudostream_event_latency_seconds_bucket", (("le", "5.0"),))] == 2
    assert s[("pseudostream_batch_seconds_count", ())] == 1
    assert s[("pseudostream_consumer_lag", (("partition", "0"), ("topic", "raw.behaviour")))] == 15
    assert s[("pseudostream_active_key_info", (("domain", "recommendation"), ("key_id", "rec-2")))]
    assert s[("pseudostream_pseudonym_cache_hit_ratio", (("domain", "recommendation"),))] == 0.75
    assert s[("pseudostream_consent_table_entries", ())] == 7
    assert s[("pseudostream_ready", ())] == 0
    assert s[("pseudostream_ready_check", (("check", "keyring_loaded"),))] == 1
    created = "pseudostream_active_key_created_timestamp_seconds"
    assert s[(created, (("domain", "ad-analytics"),))] == 1_764_288_000
    assert s[(created, (("domain", "recommendation"),))] == 1_700_000_000
    period = "pseudostream_key_rotation_period_seconds"
    assert {labels for name, labels in s if name == period} == {(("domain", "ad-analytics"),)}
    assert s[("process_resident_memory_bytes", ())] > 0
    assert s[("process_cpu_seconds_total", ())] >= 0
    assert not any(name.endswith("_created") for name, _ in s)


def test_top_parses_and_renders() -> None:
    metrics = WorkerMetrics()
    worker = FakeWorker()
    metrics.bind(worker)
    worker.acknowledged.update(
        {"in:raw.behaviour": 1000, "out:clean.recommendation": 900, "quarantined:bad_json": 10}
    )
    metrics.record_batch(
        seconds=0.3,
        acked=100.0,
        event_times_ms=[],
        record_stamps=[99.96] * 99 + [93.0],
    )
    before = parse_metrics(metrics.exposition().decode(), at=0.0)
    worker.acknowledged["in:raw.behaviour"] += 500
    metrics.record_batch(
        seconds=0.1,
        acked=102.0,
        event_times_ms=[],
        record_stamps=[],
    )
    now = parse_metrics(metrics.exposition().decode(), at=2.0)
    assert sum(now.events_in.values()) == 1500
    assert quantile(now.latency["record_latency_seconds"], 0.5) == 0.05
    assert quantile(now.latency["record_latency_seconds"], 0.999) == 10.0
    assert quantile([], 0.5) is None
    console = Console(width=100, record=True)
    console.print(render(now, before, "http://x/metrics"))
    text = console.export_text()
    assert "250" in text  # 500 events in 2 s
    assert "1,500" in text
    assert "raw.behaviour/0" in text


def test_top_refuses_a_non_http_url() -> None:
    result = CliRunner().invoke(main, ["top", "--url", "file:///etc/passwd", "--once"])
    assert result.exit_code == 2
    assert "http" in result.output


def test_when_fields_were_dropped_then_dropped_fields_counts_them_by_field_and_reason() -> None:
    metrics = WorkerMetrics()
    metrics.bind(FakeWorker())
    samples = _samples(metrics)
    assert (
        samples[
            (
                "pseudostream_dropped_fields_total",
                (("field", "device.model"), ("reason", "identifier")),
            )
        ]
        == 3
    )
    assert not [
        name
        for name, _ in samples
        if name.startswith("pseudostream_dropped_fields") and name.endswith("out")
    ]


def test_top_takes_one_worker_or_the_group_not_both() -> None:
    both = ["top", "--url", "http://127.0.0.1:1/metrics", "--prometheus", "http://127.0.0.1:1"]
    result = CliRunner().invoke(main, [*both, "--once"])
    assert result.exit_code == 2
    assert "not both" in result.output
    result = CliRunner().invoke(main, ["top", "--prometheus", "ftp://x", "--once"])
    assert result.exit_code == 2
    assert "--prometheus must be an http(s) URL" in result.output
