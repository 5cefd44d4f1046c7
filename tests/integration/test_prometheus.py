"""A real Prometheus (Debian's ``prometheus`` package) scraping a worker on the embedded
broker, with ``deploy/prometheus.local.yml`` and the alert rules: through Prometheus' HTTP
API the throughput and lag series are there and move, the rules are loaded, and
``pseudostream top --prometheus`` shows the group from it. Fails (never skips) when the
``prometheus`` binary is missing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.devtools import synth
from processor.devtools.broker import free_port
from processor.pipeline.outcome import Route
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.broker

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http://127.0.0.1
        return json.loads(response.read())


@contextlib.contextmanager
def prometheus_scraping(worker_port: int, workdir: Path) -> Iterator[str]:
    """Prometheus on 127.0.0.1 and a free port with deploy/prometheus.local.yml, scraping
    ``worker_port`` every second; yields its base URL and stops it by its PID."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: `apt-get update && apt-get install -y prometheus`")
    config = yaml.safe_load((DEPLOY / "prometheus.local.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / name) for name in config["rule_files"]]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    with (workdir / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base + "/-/ready"), 30, lambda: f"see {workdir}/prometheus.log")
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - http://127.0.0.1
            return True
    except OSError:
        return False


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    body = _get(url)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _scalar(base: str, expr: str) -> float | None:
    result = _query(base, expr)
    return float(result[0]["value"][1]) if result else None


def _top(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", "top", *args, "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prometheus_scrapes_a_worker_and_sees_throughput_and_lag_move(stack: Stack) -> None:
    worker_port = free_port()
    stack.start_worker(web_port=str(worker_port), batch_size="100")
    with prometheus_scraping(worker_port, stack.workdir) as prom:
        up = 'up{job="pseudostream"}'
        wait_for(lambda: _scalar(prom, up) == 1, 60, lambda: f"target not up: {_query(prom, up)}")
        ready = "pseudostream_ready"
        wait_for(lambda: _scalar(prom, ready) == 1, 60, lambda: "worker never ready")
        rules = _get(prom + "/api/v1/rules")["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {
            "PseudostreamLeakCanaryFinding",
            "PseudostreamConsumerLagGrowing",
        }

        fed = stack.feed(synth.generate(20_000, seed=41, users=500))
        stack.wait_processed(fed, timeout=120)
        total_in = "sum(pseudostream_events_in_total)"
        wait_for(lambda: _scalar(prom, total_in) == fed, 30, lambda: str(_query(prom, total_in)))

        # Throughput: the rate rose above 0 while the records went through, per topic too.
        peak_in = _scalar(prom, "max_over_time(sum(rate(pseudostream_events_in_total[5s]))[2m:1s])")
        assert peak_in is not None and peak_in > 0
        out_topics = {
            r["metric"]["topic"]
            for r in _query(prom, "sum by (topic) (pseudostream_events_out_total) > 0")
        }
        assert stack.settings.output_topics[Route.RECOMMENDATION] in out_topics
        # Lag: one series per input partition; it rose above 0 and came back to 0.
        lag = _query(prom, "pseudostream_consumer_lag")
        assert {r["metric"]["partition"] for r in lag} == {"0", "1", "2", "3"}
        peak_lag = _scalar(prom, "max_over_time(sum(pseudostream_consumer_lag)[2m:1s])")
        assert peak_lag is not None and peak_lag > 0, "lag never seen above 0"
        wait_for(lambda: _scalar(prom, "sum(pseudostream_consumer_lag)") == 0, 30)
        # The group view of `top` reads the same Prometheus.
        top = _top("--prometheus", prom)
        assert top.returncode == 0, top.stderr
        assert f"{fed:,}" in top.stdout
        assert f"127.0.0.1:{worker_port}" in top.stdout
        assert "1 of 1 workers" in top.stdout
        wrong_job = _top("--prometheus", prom, "--job", "x")
        assert wrong_job.returncode == 2
        assert wrong_job.stderr == (
            f"pseudostream: error: Prometheus at {prom} scrapes no target of job 'x' (see --job)\n"
        )
