"""`pseudostream bench`: bad options and a missing quixstreams give one clear line and exit
code 2 before anything starts; the table printer and the record trimming."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from click.testing import CliRunner

import processor
from processor.cli import main
from processor.devtools import synth
from processor.devtools.benchmark import e2e
from processor.devtools.benchmark.core import compare_trees, scrub_cost
from processor.devtools.benchmark.report import table


def test_when_quixstreams_is_missing_then_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "quixstreams" else real(name)
    )
    result = CliRunner().invoke(main, ["bench", "e2e", "--events", "1000"])
    assert result.exit_code == 2
    assert "pip install 'pseudostream[bench]'" in result.stderr
    assert "--contenders passthrough,worker" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--contenders", "flink"], "--contenders: unknown 'flink'"),
        (["--contenders", "worker-baseline"], "needs --baseline-src"),
        (["--set", "batch_size"], "expected NAME=VALUE"),
    ],
)
def test_when_an_option_is_wrong_then_exit_2_naming_it(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["bench", "e2e", *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_bench_records_keep_identifiers_and_drop_minimised_blocks() -> None:
    records = e2e.bench_records(2000)
    assert len(records) == 2000
    events = [orjson.loads(v) for s, _, v in records if s != "consent" and v.startswith(b"{")]
    events = [e for e in events if isinstance(e, dict) and isinstance(e.get("device"), dict)]
    assert events
    assert all("ssid" not in e.get("network", {}) and "phone" not in e for e in events)
    assert any("android_id" in e["device"] for e in events)


def _e2e_result() -> dict[str, Any]:
    median = {
        "events_per_second": 5000.0,
        "client_cpu_us_per_event": 150.0,
        "broker_cpu_us_per_event": 12.0,
        "client_cpu_share": 0.8,
        "broker_cpu_share": 0.1,
        "rss_peak_mb": 220.0,
        "rss_median_mb": 210.0,
    }
    return {
        "benchmark": "e2e",
        "events": 1000,
        "mean_event_bytes": 520,
        "partitions": 4,
        "rounds": 1,
        "medians": {"passthrough": {**median, "events_per_second": 10000.0}, "worker": median},
        "worker_share_of_passthrough_pct": 50.0,
        "latency": {"worker": {"rate": 2500, "p50_ms": 40.0, "p99_ms": 90.0}},
        "targets": {"worker_at_least_60pct_of_passthrough": False},
    }


def test_e2e_table_names_contenders_share_and_targets() -> None:
    text = table(_e2e_result())
    assert "aiokafka pass-through (no transform)" in text
    assert "pseudostream worker (faust)" in text
    assert "worker = 50.0 % of the pass-through" in text
    assert "target worker_at_least_60pct_of_passthrough: NOT met" in text
    assert "2,500 events/s" in text


def test_a_worker_contenders_settings_are_the_beds_the_callers_then_its_own() -> None:
    bed = cast("e2e.Bed", SimpleNamespace(worker_settings={"processes": "2", "batch_size": "500"}))
    assert e2e.worker_settings(bed, "worker", None) == {"processes": "2", "batch_size": "500"}
    assert e2e.worker_settings(bed, "worker", {"processes": "1"})["processes"] == "1"
    assert e2e.worker_settings(bed, "worker-auto", {"processes": "1"})["processes"] == "auto"
    assert e2e.worker_settings(bed, "worker-no-canary", None)["leak_canary_fraction"] == "0"


def test_e2e_ratios_give_the_whole_machine_worker_beside_the_one_process_worker() -> None:
    medians = {
        "passthrough": {"events_per_second": 20000.0},
        "quix": {"events_per_second": 10000.0},
        "worker": {"events_per_second": 9000.0},
        "worker-auto": {"events_per_second": 15000.0},
    }
    ratios = e2e._ratios(medians)
    assert ratios["worker_share_of_passthrough_pct"] == 45.0
    assert ratios["worker_vs_quix"] == 0.9
    assert ratios["worker_auto_share_of_passthrough_pct"] == 75.0
    assert ratios["worker_auto_vs_quix"] == 1.5
    text = table({**_e2e_result(), **ratios})
    assert "worker-auto = 1.5x quixstreams" in text
    assert "worker-auto = 75.0 % of the pass-through" in text


def test_core_bench_measures_pipeline_naive_and_floor_in_one_run(tmp_path: Any) -> None:
    out = tmp_path / "core.json"
    result = CliRunner().invoke(
        main, ["bench", "core", "--events", "300", "--rounds", "1", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads(out.read_bytes())
    for field in (
        "pipeline_events_per_cpu_s",
        "pipeline_first_pass_events_per_cpu_s",
        "naive_events_per_cpu_s",
        "floor_events_per_cpu_s",
    ):
        assert data[field] > 0
    # The share is rounded to three places, from rates that the JSON rounds to integers.
    assert data["pipeline_share_of_floor"] == pytest.approx(
        data["pipeline_events_per_cpu_s"] / data["floor_events_per_cpu_s"], abs=0.002
    )
    assert "floor: decode, copy, encode only" in result.output
    assert "pipeline, first pass" in result.output
    assert data["scrub"]["scrub_us_per_16_char_comment"] > 0
    assert "µs per 16-character comment" in result.output


def test_when_the_stream_has_comments_then_core_bench_gives_their_scrubbing_cost() -> None:
    # The synthetic stream starts with consent records; comments come after the first 1,000.
    cost = scrub_cost([value for _, _, value in synth.generate(3000, seed=7)])
    assert cost["texts"] > 0
    assert cost["scrub_us_per_median_text"] > 0
    assert cost["scrub_us_per_text"] > 0


class _Done:
    """A contender that had counted every input before the first sample."""

    class proc:  # stands in for subprocess.Popen
        pid = os.getpid()

        @staticmethod
        def poll() -> None:
            return None

    log_file = "unused"

    @staticmethod
    def stats() -> dict[str, int]:
        return {"in": 500}


def test_when_a_run_is_over_before_the_first_sample_then_it_is_measured_from_the_start() -> None:
    result = e2e.watch([_Done()], os.getpid(), expect=500, timeout=5)  # type: ignore[list-item]
    assert 0 < result["sampled_events_per_second"] < 10_000_000
    assert result["rss_peak_mb"] > 0
    assert result["client_cpu_us_per_event"] >= 0


def test_a_worker_round_shows_its_main_thread_cpu_split() -> None:
    run: dict[str, Any] = {
        "events_per_second": 8000,
        "client_cpu_us_per_event": 110.0,
        "broker_cpu_us_per_event": 10.0,
    }
    assert "main thread" not in e2e.round_line(1, 3, "quix", run)
    run["main_thread_cpu_us_per_event"] = {"pipeline": 60.0, "other": 20.0, "total": 80.0}
    line = e2e.round_line(1, 3, "worker", run)
    assert line.startswith("round 1/3 worker")
    assert "main thread µs/event: pipeline 60.0, other 20.0, total 80.0" in line


def test_a_baseline_src_must_be_what_its_worker_imports(tmp_path: Path) -> None:
    # run from a checkout, `python -m` would put the working directory first and the
    # "baseline" would be the code under test (it was, once)
    (tmp_path / "processor").mkdir()
    (tmp_path / "processor" / "__init__.py").write_text("")
    e2e.check_baseline_src(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(e2e.BenchError, match="would import processor from"):
        e2e.check_baseline_src(empty)


def test_core_bench_against_a_baseline_tree_runs_each_trees_own_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    this_tree = Path(processor.__file__).resolve().parent.parent
    args = ["--events", "300", "--rounds", "1", "--json", str(out), "--baseline-src"]
    result = CliRunner().invoke(main, ["bench", "core", *args, str(this_tree)])
    assert result.exit_code == 0, result.output
    versus = orjson.loads(out.read_bytes())["versus_baseline"]
    assert versus["baseline_src"] == str(this_tree)
    assert versus["events_per_cpu_s"] > 0 and versus["baseline_first_pass_events_per_cpu_s"] > 0
    assert f"against {this_tree} (fresh processes, alternating" in result.output


def test_when_the_baseline_tree_has_no_pipeline_then_the_error_names_the_tree(
    tmp_path: Path,
) -> None:
    (tmp_path / "processor").mkdir()
    (tmp_path / "processor" / "__init__.py").write_text("")
    # (an installed pseudostream may fill in the missing modules: then they are not the tree's)
    with pytest.raises(
        e2e.BenchError, match=f"the pipeline (of|run for) {re.escape(str(tmp_path))}"
    ):
        compare_trees([("raw.behaviour", b"{}")], tmp_path, rounds=1)
