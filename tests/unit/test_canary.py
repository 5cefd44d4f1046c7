"""The live leak canary without a broker: sampling, findings counted by topic and detector,
reports that never hold the value, the audit log, and the start-up check that refuses the
leaky policy the integration test runs through its seam."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keys import Keyring
from processor.devtools import synth
from processor.errors import ConfigError, PolicyError
from processor.ops.audit import append_audit
from processor.ops.canary import NEVER, LeakCanary
from processor.ops.metrics import WorkerMetrics
from processor.ops.scan import LeakScanner
from processor.ops.settings import Settings
from processor.pipeline.outcome import SourceRef
from processor.pipeline.policy import compile_policy
from processor.pipeline.process import Pipeline
from tests.integration.leaky_worker import leaky_policy, write_leaky_policy

TOPICS = Settings().output_topics


def _counts(metrics: WorkerMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
        if s.name == name
    }


def _run(pipeline: Pipeline, canary: LeakCanary, n: int, seed: int) -> list[bytes]:
    raw = []
    for offset, (source, key, value) in enumerate(synth.generate(n, seed=seed, users=200)):
        outcome = pipeline.process(value, SourceRef(source, 0, offset), key)
        canary.check(value, outcome.records, SourceRef(source, 0, offset))
        raw.append(value)
    return raw


def test_when_the_policy_is_the_default_then_every_sampled_output_is_clean() -> None:
    metrics = WorkerMetrics()
    canary = LeakCanary(1.0, TOPICS, metrics, "default")
    pipeline = Pipeline(Keyring.generate())
    for offset, (source, key, value) in enumerate(
        synth.generate(2000, seed=17, users=150, malformed=0.05)
    ):
        outcome = pipeline.process(value, SourceRef(source, 0, offset), key)
        canary.check(value, outcome.records, SourceRef(source, 0, offset))
    scanned = _counts(metrics, "pseudostream_leak_canary_records_total")
    assert scanned[(("topic", "clean.recommendation"),)] > 1000
    assert scanned[(("topic", "quarantine"),)] > 0
    assert _counts(metrics, "pseudostream_leak_findings_total") == {}


def test_when_the_policy_keeps_the_imei_then_findings_are_counted_logged_and_audited_without_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PSEUDOSTREAM_AUDIT_LOG", str(audit))
    monkeypatch.setenv("PSEUDOSTREAM_ACTOR", "canary-test")
    metrics = WorkerMetrics()
    canary = LeakCanary(1.0, TOPICS, metrics, "leaky")
    with caplog.at_level(logging.ERROR, logger="pseudostream.canary"):
        raw = _run(Pipeline(Keyring.generate(), policy=leaky_policy()), canary, 300, seed=3)
    findings = _counts(metrics, "pseudostream_leak_findings_total")
    assert findings[(("detector", "raw:imei"), ("topic", "clean.recommendation"))] > 20
    assert all(dict(labels)["topic"] == "clean.recommendation" for labels in findings)
    # one report per topic and detector per minute, carrying the count
    assert len(caplog.records) == len(findings)
    entries = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
    assert len(entries) == len(findings)
    assert entries[0]["action"] == "leak_canary_finding"
    assert entries[0]["actor"] == "canary-test"
    assert entries[0]["topic"] == "clean.recommendation"
    assert entries[0]["where"] == ["value.device.imei"]
    assert entries[0]["policy"] == "leaky"
    # neither the log nor the audit trail holds a raw identifier, masked or not
    scanner = LeakScanner.from_raw_events(raw)
    assert scanner.scan_lines([r.getMessage() for r in caplog.records]) == []
    assert scanner.scan_lines(audit.read_bytes().splitlines()) == []


def test_when_a_minute_passed_then_the_next_report_carries_the_count_since_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PSEUDOSTREAM_AUDIT_LOG", str(audit))
    clock = [1000.0]
    monkeypatch.setattr("processor.ops.canary.time.monotonic", lambda: clock[0])
    metrics = WorkerMetrics()
    canary = LeakCanary(1.0, TOPICS, metrics, "leaky")
    pipeline = Pipeline(Keyring.generate(), policy=leaky_policy())
    _run(pipeline, canary, 200, seed=4)
    first_minute = sum(_counts(metrics, "pseudostream_leak_findings_total").values())
    clock[0] += 61.0
    _run(pipeline, canary, 200, seed=5)
    entries = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
    assert [e["detector"] for e in entries] == ["raw:imei", "raw:imei"]
    assert entries[0]["findings"] == 1
    assert entries[1]["findings"] == first_minute  # the held back (first_minute - 1) + itself


def test_sampling_gaps_have_a_mean_of_one_over_the_fraction() -> None:
    canary = LeakCanary(0.01, TOPICS, WorkerMetrics(), "v", rng=random.Random(7))
    gaps = [canary.next_gap() for _ in range(20_000)]
    assert min(gaps) >= 1
    assert 95 < sum(gaps) / len(gaps) < 105
    assert LeakCanary(0.0, TOPICS, WorkerMetrics(), "v").countdown == NEVER
    assert LeakCanary(1.0, TOPICS, WorkerMetrics(), "v").next_gap() == 1


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan"])
def test_when_the_canary_fraction_is_not_a_fraction_then_the_setting_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^leak_canary_fraction: must be 0\.\.1"):
        Settings.load({"PSEUDOSTREAM_LEAK_CANARY_FRACTION": value})


def test_the_leaky_policy_of_the_canary_test_is_refused_at_start_up(tmp_path: Path) -> None:
    path = write_leaky_policy(tmp_path / "leaky.json")
    with pytest.raises(PolicyError, match=r"device\.imei has role identifier and cannot be 'keep'"):
        compile_policy(path)


def test_when_no_audit_log_is_configured_then_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PSEUDOSTREAM_AUDIT_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    append_audit("leak_canary_finding", topic="t")
    assert list(tmp_path.iterdir()) == []


def test_audit_entries_are_json_lines_with_time_action_actor_and_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PSEUDOSTREAM_AUDIT_LOG", str(audit))
    monkeypatch.setenv("PSEUDOSTREAM_ACTOR", "ops-1")
    append_audit("first", n=1)
    append_audit("second", topic="t")
    first, second = (orjson.loads(line) for line in audit.read_bytes().splitlines())
    assert first["action"] == "first"
    assert first["n"] == 1
    assert first["actor"] == "ops-1"
    assert datetime.fromisoformat(first["time"]).utcoffset() == timedelta(0)
    assert second["topic"] == "t"


def test_when_the_audit_log_cannot_be_written_then_the_canary_still_counts_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_AUDIT_LOG", str(tmp_path))  # a directory: not writable
    metrics = WorkerMetrics()
    canary = LeakCanary(1.0, TOPICS, metrics, "leaky")
    with caplog.at_level(logging.ERROR, logger="pseudostream.canary"):
        _run(Pipeline(Keyring.generate(), policy=leaky_policy()), canary, 300, seed=3)
    assert sum(_counts(metrics, "pseudostream_leak_findings_total").values()) > 0
    assert any("no audit entry written" in r.getMessage() for r in caplog.records)
