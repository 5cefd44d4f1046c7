"""Operations against the real broker: /health and /ready, /metrics counters against the
events sent, consumer lag, ``pseudostream top --once``, and a leak scan of the JSON logs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import orjson
import pytest

from processor.devtools import synth
from processor.devtools.broker import free_port
from processor.ops.scan import LeakScanner
from tests.integration.conftest import Stack, http_get, metric_samples, top_once, wait_for

pytestmark = pytest.mark.broker


def _by(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str
) -> dict[str, float]:
    return {
        dict(labels).get("topic")
        or dict(labels).get("reason")
        or dict(labels).get("domain")
        or "": v
        for (n, labels), v in samples.items()
        if n == name
    }


def test_health_ready_metrics_top_and_json_logs(stack: Stack) -> None:  # noqa: PLR0915 - one worker, every check
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stack.env["web_port"] = str(port)
    worker = stack.start_worker()
    wait_for(lambda: http_get(base + "/health")[0] == 200, 30, lambda: "no /health")
    status, body = http_get(base + "/ready")
    assert status == 503, body  # the group join takes seconds on Tansu: not assigned yet
    assert json.loads(body)["checks"]["partitions_assigned"] is False
    assert json.loads(body)["checks"]["keyring_loaded"] is True
    wait_for(
        lambda: http_get(base + "/ready")[0] == 200, 30, lambda: str(http_get(base + "/ready"))
    )

    records = list(synth.generate(2000, seed=21, users=150, malformed=0.02))
    fed = stack.feed(records)
    stack.wait_processed(fed)
    stats = worker.stats()["counts"]
    topics = stack.settings.input_topics
    sent = Counter(topics[source] for source, _, _ in records)

    def lag_zero() -> bool:
        lags = _by(metric_samples(base), "pseudostream_consumer_lag")
        return bool(lags) and sum(lags.values()) == 0

    wait_for(lag_zero, 20, lambda: str(_by(metric_samples(base), "pseudostream_consumer_lag")))
    samples = metric_samples(base)
    assert _by(samples, "pseudostream_events_in_total") == {t: float(n) for t, n in sent.items()}
    out = _by(samples, "pseudostream_events_out_total")
    assert out == {k[4:]: float(v) for k, v in stats.items() if k.startswith("out:")}
    for route, topic in stack.settings.output_topics.items():
        assert out.get(topic, 0) == len(stack.output(route)), route
    quarantined = _by(samples, "pseudostream_quarantined_total")
    assert sum(quarantined.values()) == stats["quarantined"] > 0
    assert sum(_by(samples, "pseudostream_suppressed_total").values()) == stats["suppressed"]
    assert samples[("pseudostream_event_latency_seconds_count", ())] > fed / 2
    assert samples[("pseudostream_record_latency_seconds_count", ())] == fed
    assert samples[("pseudostream_batches_total", ())] == stats["batches"]
    assert samples[("pseudostream_ready", ())] == 1
    assert samples[("pseudostream_consent_table_entries", ())] > 0
    keys = {
        dict(labels)["domain"]: dict(labels)["key_id"]
        for (n, labels) in samples
        if n == "pseudostream_active_key_info"
    }
    assert set(keys) == {"recommendation", "ad-analytics", "quarantine"}
    ratio = _by(samples, "pseudostream_pseudonym_cache_hit_ratio")
    assert set(ratio) == {"recommendation", "ad-analytics"}
    assert all(0.5 < r <= 1.0 for r in ratio.values()), ratio
    partitions = {
        dict(labels)["partition"] for (n, labels) in samples if n == "pseudostream_consumer_lag"
    }
    assert partitions == {"0", "1", "2", "3"}

    top = top_once(base)
    assert top.returncode == 0, top.stderr
    assert f"{fed:,}" in top.stdout
    assert "lag" in top.stdout

    # no metric label holds a value from an event (sample values are numbers: a float's
    # digits may look like an identifier to the scanner, so the labels are what is scanned)
    scanner = LeakScanner.from_raw_events(v for _, _, v in records)
    label_lines = [orjson.dumps(dict(labels)) for _, labels in metric_samples(base) if labels]
    assert len(label_lines) > 20
    assert scanner.scan_lines(label_lines) == []

    worker.stop()
    lines = [line for line in worker.log_file.read_bytes().splitlines() if line.strip()]
    assert lines
    entries = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["message"].startswith("stopped:") for e in entries)
    assert scanner.scan_lines(lines) == []


def test_top_connection_error_is_one_line_exit_2() -> None:
    port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor",
            "top",
            "--url",
            f"http://127.0.0.1:{port}/metrics",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot read" in result.stderr
