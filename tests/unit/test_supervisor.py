"""The supervisor of ``worker --processes N`` without a broker: the restart policy on a fake
clock, the merged metrics and stats, the settings, and the supervisor itself over stand-in
worker processes (small Python scripts) that crash, ignore SIGTERM or stop cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from processor.errors import ConfigError
from processor.kafka.supervisor import Supervisor
from processor.ops.settings import Settings
from processor.ops.supervision import (
    CHILD_ENV,
    Backoff,
    GiveUp,
    Restart,
    RestartPolicy,
    combined_metrics,
    combined_stats,
    log_fields,
)

FAST = Backoff(first=0.01, most=0.04, settled_after=30.0, give_up_after=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the restart policy ------------------------------------------------------------------


def test_early_exits_back_off_doubling_up_to_the_most_then_give_up() -> None:
    clock = FakeClock()
    policy = RestartPolicy(Backoff(first=1, most=4, settled_after=60, give_up_after=4))
    delays = []
    for _ in range(4):
        policy.started(0, clock.now)
        clock.now += 5  # crashes 5 s after its start
        decision = policy.exited(0, clock.now)
        assert isinstance(decision, Restart)
        delays.append(decision.delay)
        clock.now += decision.delay
    assert delays == [1, 2, 4, 4]
    policy.started(0, clock.now)
    clock.now += 5
    assert policy.exited(0, clock.now) == GiveUp(exits=5, within=60)


def test_a_process_that_ran_past_settled_after_starts_a_new_count() -> None:
    clock = FakeClock()
    policy = RestartPolicy(Backoff(first=1, most=30, settled_after=60, give_up_after=2))
    for _ in range(2):
        policy.started(0, clock.now)
        clock.now += 1
        assert isinstance(policy.exited(0, clock.now), Restart)
    policy.started(0, clock.now)
    clock.now += 120  # e.g. a stall exit (code 70) after two minutes of work
    assert policy.exited(0, clock.now) == Restart(delay=1, attempt=1)


def test_each_process_has_its_own_count() -> None:
    clock = FakeClock()
    policy = RestartPolicy(Backoff(first=1, most=30, settled_after=60, give_up_after=1))
    policy.started(0, clock.now)
    policy.started(1, clock.now)
    clock.now += 1
    assert isinstance(policy.exited(0, clock.now), Restart)
    assert isinstance(policy.exited(1, clock.now), Restart)
    policy.started(0, clock.now)
    clock.now += 1
    assert isinstance(policy.exited(0, clock.now), GiveUp)


# -- metrics and stats together -----------------------------------------------------------

_CHILD_METRICS = """# HELP pseudostream_events_in_total Input records processed, by source topic
# TYPE pseudostream_events_in_total counter
pseudostream_events_in_total{topic="raw.behaviour"} %d.0
# HELP pseudostream_ready 1 when /ready says ready
# TYPE pseudostream_ready gauge
pseudostream_ready %d.0
# HELP pseudostream_batch_seconds In-process latency per batch
# TYPE pseudostream_batch_seconds histogram
pseudostream_batch_seconds_bucket{le="0.1"} 1.0
pseudostream_batch_seconds_bucket{le="+Inf"} 2.0
pseudostream_batch_seconds_count 2.0
pseudostream_batch_seconds_sum 0.7
# HELP pseudostream_consumer_lag Records of the partition not yet committed
# TYPE pseudostream_consumer_lag gauge
pseudostream_consumer_lag{partition="%d",topic="raw.behaviour"} 3.0
"""


def _merged(*children: tuple[int, int, int]) -> str:
    """What a supervisor serves for children (events in, ready, lagging partition)."""
    texts = {str(i): _CHILD_METRICS % child for i, child in enumerate(children)}
    return combined_metrics(texts, {}).decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_merged_metrics_label_every_sample_with_its_process_and_parse_back() -> None:
    samples = _samples(_merged((10, 1, 0), (7, 0, 1)))
    events = ("pseudostream_events_in_total", (("process", "0"), ("topic", "raw.behaviour")))
    assert samples[events] == 10
    assert samples[("pseudostream_ready", (("process", "1"),))] == 0
    bucket = ("pseudostream_batch_seconds_bucket", (("le", "+Inf"), ("process", "1")))
    assert samples[bucket] == 2
    assert all(dict(labels).get("process") in ("0", "1", "supervisor") for _, labels in samples)


def test_top_sums_a_supervisors_processes_and_shows_a_row_for_each() -> None:
    from rich.console import Console

    from processor.cli.top_cmd import parse_metrics, render

    snap = parse_metrics(_merged((10, 1, 0), (7, 0, 1)))
    assert snap.events_in == {"raw.behaviour": 17}
    assert snap.ready == 0  # one process is not ready
    assert snap.lag == {"raw.behaviour/0": 3, "raw.behaviour/1": 3}
    assert dict(snap.latency["batch_seconds"])[float("inf")] == 4
    assert {name: (row.ready, row.events_in) for name, row in snap.workers.items()} == {
        "process 0": (True, 10),
        "process 1": (False, 7),
    }
    console = Console(width=120, record=True)
    console.print(render(snap, None, "http://127.0.0.1:1/metrics"))
    assert "1 of 2 workers" in console.export_text()


def test_combined_stats_sum_running_processes_and_earlier_runs() -> None:
    retired = {"in": 100, "counts": {"in": 100, "routed": 90}}
    current = {
        0: {"in": 5, "counts": {"in": 5, "routed": 5}, "events_per_second": 1000.0},
        1: {"in": 7, "counts": {"in": 7, "quarantined": 1}, "events_per_second": 500.0},
    }
    total = combined_stats(retired, current)
    assert total["in"] == 112
    assert total["counts"] == {"in": 112, "routed": 95, "quarantined": 1}
    assert total["events_per_second"] == 1500.0
    assert set(total["processes"]) == {"0", "1"}


# -- settings ------------------------------------------------------------------------------


def test_processes_auto_is_the_usable_cpus_at_most_the_partitions() -> None:
    settings = Settings.from_mapping({"processes": "auto", "partitions": "4"})
    assert settings.process_count(2) == 2
    assert settings.process_count(64) == 4
    assert Settings.from_mapping({"processes": 3}).process_count(64) == 3
    assert Settings.from_mapping({}).process_count(64) == 1


@pytest.mark.parametrize(
    ("value", "says"),
    [("0", "at least 1"), ("two", "at least 1 or 'auto'"), ("8", "more than the 4 input")],
)
def test_a_bad_process_count_is_refused_naming_the_setting(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        Settings.from_mapping({"processes": value})
    assert str(caught.value).startswith("processes:")


@pytest.mark.parametrize("value", ["9", "zero"])
def test_worker_with_a_bad_process_count_is_one_line_exit_2(value: str) -> None:
    from click.testing import CliRunner

    from processor.cli import main

    result = CliRunner().invoke(main, ["worker", "--processes", value])
    assert result.exit_code == 2
    assert result.output.startswith("pseudostream: error: processes:")
    assert len(result.output.splitlines()) == 1


def test_usable_cpus_honour_a_cgroup_cpu_quota(tmp_path: Path) -> None:
    from processor.ops.supervision import usable_cpus

    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    assert usable_cpus(tmp_path / "absent") == affinity
    cpu_max.write_text("max 100000\n")
    assert usable_cpus(cpu_max) == affinity
    cpu_max.write_text("50000 100000\n")  # half a CPU: one process
    assert usable_cpus(cpu_max) == 1
    cpu_max.write_text(f"{(affinity + 3) * 100000} 100000\n")  # more than it may run on
    assert usable_cpus(cpu_max) == affinity


def test_a_worker_process_logs_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHILD_ENV, "3")
    assert log_fields() == {"process": 3}
    monkeypatch.delenv(CHILD_ENV)
    assert log_fields() == {}


# -- the supervisor over stand-in processes -------------------------------------------------

# a stand-in worker: writes its stats file and its environment, then does what ``ACT`` says
_STAND_IN = """
import json, os, signal, sys, time
from pathlib import Path
env = {k: v for k, v in os.environ.items() if k.startswith("PSEUDOSTREAM_")}
Path(env["PSEUDOSTREAM_DATA_DIR"]).joinpath("env.json").write_text(json.dumps(env))
Path(env["PSEUDOSTREAM_STATS_FILE"]).write_text(json.dumps({"in": 5, "counts": {"in": 5}}))
act = os.environ["ACT"]
if act == "crash":
    sys.exit(3)
stalled_once = Path(env["PSEUDOSTREAM_DATA_DIR"]).joinpath("stalled")
if act == "stall-once" and not stalled_once.exists():
    stalled_once.touch()
    sys.exit(70)  # the worker's exit on a stall
if act == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
Path(env["PSEUDOSTREAM_DATA_DIR"]).joinpath("up").touch()  # its SIGTERM handling is set
time.sleep(60)
"""


def _supervisor(tmp_path: Path, count: int, **settings: str) -> Supervisor:
    values = {"data_dir": str(tmp_path / "data"), "stats_file": str(tmp_path / "stats.json")}
    return Supervisor(
        Settings.from_mapping({**values, **settings}),
        count,
        command=("-c", _STAND_IN),
        backoff=FAST,
    )


def _up(supervisor: Supervisor) -> bool:
    return all((child.data_dir / "up").exists() for child in supervisor.children)


def _run(supervisor: Supervisor, signal_when: Callable[[], bool] | None = None) -> int:
    """Run the supervisor; SIGTERM to this process (its handler) once ``signal_when``."""

    async def signal_then() -> None:
        assert signal_when is not None
        while not signal_when():
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    async def main() -> int:
        if signal_when is not None:
            task = asyncio.create_task(signal_then())
        code = await supervisor.run()
        if signal_when is not None:
            await task
        return code

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_a_process_that_keeps_crashing_makes_the_supervisor_give_up_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACT", "crash")
    supervisor = _supervisor(tmp_path, 2, partitions="2")
    assert _run(supervisor) == 3
    assert "giving up" in caplog.text
    assert "exited with code 3" in caplog.text
    assert all(not child.running for child in supervisor.children)
    # every run's counters stay in the stats file: 4 runs of the one that gave up at least
    stats = orjson.loads((tmp_path / "stats.json").read_bytes())
    assert stats["in"] >= 5 * (FAST.give_up_after + 1)
    assert stats["in"] % 5 == 0


def test_a_process_that_cannot_be_started_makes_the_supervisor_give_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = _supervisor(tmp_path, 2, partitions="2")
    supervisor.command = [str(tmp_path / "no-such-interpreter")]
    assert _run(supervisor) == 1
    assert "could not be started" in caplog.text
    assert "giving up" in caplog.text


def test_sigterm_stops_every_process_and_exits_0_when_they_stop_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACT", "run")
    supervisor = _supervisor(tmp_path, 2, partitions="2")
    assert _run(supervisor, lambda: _up(supervisor)) == 0
    assert [child.last_code for child in supervisor.children] == [0, 0]
    assert [child.restarts for child in supervisor.children] == [0, 0]
    envs = [
        orjson.loads((tmp_path / "data" / f"process-{i}" / "env.json").read_bytes()) for i in (0, 1)
    ]
    for i, env in enumerate(envs):  # each its own data dir and stats file; never a supervisor
        assert env["PSEUDOSTREAM_DATA_DIR"].endswith(f"process-{i}")
        assert env["PSEUDOSTREAM_STATS_FILE"] == str(tmp_path / f"stats.{i}.json")
        assert env["PSEUDOSTREAM_PROCESSES"] == "1"
        assert env["PSEUDOSTREAM_CREATE_TOPICS"] == "false"
        assert env[CHILD_ENV] == str(i)
    assert orjson.loads((tmp_path / "stats.json").read_bytes())["in"] == 10


def test_a_process_that_exits_on_a_stall_is_restarted_and_the_others_keep_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACT", "stall-once")
    supervisor = _supervisor(tmp_path, 2, partitions="2")
    assert _run(supervisor, lambda: _up(supervisor)) == 0
    assert [child.restarts for child in supervisor.children] == [1, 1]
    assert "exited with code 70; restarting it" in caplog.text
    # both runs of each process counted: the stalled one and the one stopped by SIGTERM
    assert orjson.loads((tmp_path / "stats.json").read_bytes())["in"] == 20


def test_a_process_that_ignores_sigterm_is_killed_after_shutdown_timeout_and_exit_is_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACT", "ignore-term")
    supervisor = _supervisor(tmp_path, 2, partitions="2", shutdown_timeout="0.5")
    assert _run(supervisor, lambda: _up(supervisor)) == 1
    assert [child.last_code for child in supervisor.children] == [-signal.SIGKILL] * 2
    assert "did not stop within" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_worker_processes_die_with_the_supervisor(tmp_path: Path) -> None:
    import subprocess
    import time

    import psutil

    script = (
        "import asyncio, sys\n"
        "from processor.ops.settings import Settings\n"
        "from processor.kafka.supervisor import Supervisor\n"
        f"s = Settings.from_mapping({{'data_dir': {str(tmp_path / 'data')!r},"
        f" 'stats_file': {str(tmp_path / 'stats.json')!r}, 'partitions': '2'}})\n"
        f"asyncio.run(Supervisor(s, 2, command=('-c', {_STAND_IN!r})).run())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "ACT": "run"})
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 20
        while len(parent.children()) < 2:
            assert time.monotonic() < deadline, "the worker processes did not start"
            time.sleep(0.05)
        children = parent.children()
        while not all((tmp_path / "data" / f"process-{i}" / "env.json").exists() for i in (0, 1)):
            assert time.monotonic() < deadline, "the worker processes did not get going"
            time.sleep(0.05)
    finally:
        proc.kill()  # no chance to stop them: the kernel's SIGTERM must
        proc.wait(10)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    assert alive == []
