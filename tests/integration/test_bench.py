"""`pseudostream bench e2e` end to end on its own embedded Tansu broker, with a tiny event
count: every contender ran over every record, the figures are sane (no timing assertions),
and nothing it wrote (JSON, table, worker logs) holds a raw identifier."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from processor.devtools.benchmark.e2e import BROKER_FLOOR, CONTENDERS, bench_records
from processor.ops.scan import LeakScanner

pytestmark = pytest.mark.broker

EVENTS = 3000


def test_bench_e2e_json_has_every_contender_and_sane_figures(tmp_path: Path) -> None:
    out = tmp_path / "e2e.json"
    workdir = tmp_path / "work"
    command = [
        sys.executable, "-m", "processor", "bench", "e2e",
        "--events", str(EVENTS), "--rounds", "1", "--partitions", "2",
        "--latency-seconds", "2", "--json", str(out), "--workdir", str(workdir),
    ]  # fmt: skip
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = orjson.loads(out.read_bytes())
    assert result["benchmark"] == "e2e"
    assert result["events"] == EVENTS
    assert set(result["medians"]) == set(CONTENDERS)
    assert {r["contender"] for r in result["runs"]} == set(CONTENDERS)
    for r in result["runs"]:
        assert r["inputs"] >= EVENTS, r  # each contender saw every record (>=: redelivery)
        assert r["events_per_second"] > 0
        assert r["client_cpu_us_per_event"] >= 0
        assert r["rss_peak_mb"] > 0
    assert set(result["latency"]) == {BROKER_FLOOR, *CONTENDERS}  # the floor: no contender
    for lat in result["latency"].values():
        assert lat["outputs_timed"] > 0
        assert 0 <= lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert result["worker_share_of_passthrough_pct"] > 0
    assert result["worker_vs_quix"] > 0
    assert set(result["targets"]) >= {"worker_at_least_60pct_of_passthrough"}
    assert "pseudostream worker (faust)" in run.stdout  # the table
    assert "broker floor, one hop" in run.stdout
    # every output of the quixstreams and worker runs went through the leak scanner
    assert result["leak_scan"]["records"] > EVENTS  # two contenders' outputs
    assert result["leak_scan"]["findings"] == 0
    assert result["targets"]["no_leak_in_any_output"] is True
    assert "leak scan:" in run.stdout
    worker_run = next(r for r in result["runs"] if r["contender"] == "worker")
    assert worker_run["main_thread_cpu_us_per_event"]["total"] > 0

    # the JSON, the printed table and the worker logs carry no raw identifier
    scanner = LeakScanner.from_raw_events(v for _, _, v in bench_records(EVENTS))
    texts = [out.read_text(), run.stdout, run.stderr]
    texts += [log.read_text(errors="replace") for log in workdir.rglob("worker-*.log")]
    assert scanner.scan_lines(line for text in texts for line in text.splitlines()) == []


def test_bench_e2e_worker_auto_runs_one_member_per_cpu_and_counts_them_all(
    tmp_path: Path,
) -> None:
    out = tmp_path / "e2e.json"
    command = [
        sys.executable, "-m", "processor", "bench", "e2e", "--contenders", "worker,worker-auto",
        "--events", str(EVENTS), "--rounds", "1", "--partitions", "2",
        "--latency-seconds", "0", "--json", str(out), "--workdir", str(tmp_path / "work"),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    result = orjson.loads(out.read_bytes())
    auto = next(r for r in result["runs"] if r["contender"] == "worker-auto")
    assert auto["inputs"] >= EVENTS  # the supervisor's processes together saw every record
    assert auto["events_per_second"] == auto["sampled_events_per_second"]
    assert result["leak_scan"]["findings"] == 0
    assert "pseudostream worker --processes auto" in run.stdout
