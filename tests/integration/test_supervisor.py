"""``pseudostream worker --processes 2`` on the embedded broker: both processes hold
partitions and every input gets exactly the outcome one worker gives it; ``/ready``,
``/metrics``, ``top`` and the stats file cover both; a SIGKILLed process is restarted and
nothing is lost; SIGTERM stops everything with exit 0."""

from __future__ import annotations

import os
import signal
import time

import orjson
import psutil
import pytest

from processor.devtools import synth
from processor.devtools.broker import free_port
from processor.devtools.demo import WorkerProcess
from tests.integration.conftest import (
    Stack,
    consent_first,
    expected_outcomes,
    http_get,
    metric_samples,
    top_once,
    wait_for,
)

pytestmark = pytest.mark.broker


def _supervised(stack: Stack, port: int) -> WorkerProcess:
    return stack.start_worker(processes="2", web_port=str(port), shutdown_timeout="10")


def _ready(base: str) -> bool:
    return http_get(base + "/ready")[0] == 200


def _child_pids(supervisor: WorkerProcess) -> list[int]:
    return sorted(c.pid for c in psutil.Process(supervisor.proc.pid).children())


def test_two_processes_share_the_partitions_and_give_exactly_one_workers_outcomes(
    stack: Stack,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = _supervised(stack, port)
    wait_for(lambda: http_get(base + "/health")[0] == 200, 30, lambda: "no /health")
    wait_for(lambda: _ready(base), 60, lambda: str(http_get(base + "/ready")))
    status, body = http_get(base + "/ready")
    answer = orjson.loads(body)
    assert status == 200
    assert answer["not_ready"] == []
    assert set(answer["processes"]) == {"0", "1"}
    assert all(p["checks"]["partitions_assigned"] for p in answer["processes"].values())
    children = _child_pids(supervisor)
    assert len(children) == 2

    records = consent_first(list(synth.generate(4000, seed=5, users=300, malformed=0.01)))
    fed = stack.feed_placed(records)
    stack.wait_processed(len(fed), 90)
    stack.wait_accounted(expected_outcomes(stack.keyring, fed)).assert_exact()
    per_process = supervisor.stats()["processes"]
    assert all(int(per_process[i].get("in", 0)) > 0 for i in ("0", "1")), per_process

    samples = metric_samples(base)
    events_in = {
        dict(labels)["process"]: value
        for (name, labels), value in samples.items()
        if name == "pseudostream_events_in_total"
    }
    assert set(events_in) == {"0", "1"}
    assert sum(v for (n, _), v in samples.items() if n == "pseudostream_events_in_total") == len(
        fed
    )
    assert samples[("pseudostream_ready", (("process", "0"),))] == 1
    assert samples[("pseudostream_process_up", (("process", "1"),))] == 1
    assert ("process_cpu_seconds_total", (("process", "supervisor"),)) in samples
    lag = [
        labels for (n, labels) in samples if n == "pseudostream_consumer_lag"
    ]  # each partition reported by the process that holds it
    assert len({(dict(lb)["topic"], dict(lb)["partition"]) for lb in lag}) == len(lag) == 12

    top = top_once(base)
    assert top.returncode == 0, top.stderr
    assert f"{len(fed):,}" in top.stdout  # the two processes' inputs together
    assert "2 of 2 workers" in top.stdout

    assert supervisor.stop() == 0
    assert not any(psutil.pid_exists(pid) and _alive(pid) for pid in children)
    lines = [orjson.loads(line) for line in supervisor.log_file.read_bytes().splitlines()]
    writers = {line.get("process") for line in lines if isinstance(line, dict)}
    assert {0, 1, "supervisor"} <= writers
    stopped = [line for line in lines if line["message"].startswith("stopped:")]
    assert {line["process"] for line in stopped} == {0, 1, "supervisor"}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_sigkilled_process_is_restarted_and_no_input_is_lost(stack: Stack) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = _supervised(stack, port)
    wait_for(lambda: _ready(base), 60, lambda: str(http_get(base + "/ready")))
    records = consent_first(list(synth.generate(6000, seed=8, users=400)))
    fed = stack.feed_placed(records[:3000])
    stack.wait_processed(len(fed), 90)
    victim = int(supervisor.stats()["processes"]["0"]["pid"])
    os.kill(victim, signal.SIGKILL)
    fed += stack.feed_placed(records[3000:])
    wait_for(
        lambda: (
            metric_samples(base).get(("pseudostream_process_restarts_total", (("process", "0"),)))
            == 1
        ),
        30,
        lambda: "process 0 was not restarted",
    )
    stack.wait_accounted(expected_outcomes(stack.keyring, fed), 120).assert_exact()
    wait_for(lambda: _ready(base), 60, lambda: str(http_get(base + "/ready")))
    assert victim not in _child_pids(supervisor)
    assert len(_child_pids(supervisor)) == 2
    log = supervisor.log_file.read_text()
    assert f"process 0 exited with code {-signal.SIGKILL}; restarting it" in log
    time.sleep(0.5)  # the stats file counts the killed run too
    assert supervisor.stats()["in"] >= 3000
    assert supervisor.stop() == 0
