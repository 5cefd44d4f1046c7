"""The live leak canary against the real broker: a worker running a leaky policy (through
the test seam, see ``leaky_worker``) lights up ``pseudostream_leak_findings_total`` within a
minute at the default sampling rate, and neither its log nor the audit trail holds a raw
identifier."""

from __future__ import annotations

import time
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from processor.devtools import synth
from processor.devtools.broker import free_port
from processor.ops.scan import LeakScanner
from tests.integration import leaky_worker
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.broker


def _findings(base: str) -> dict[tuple[str, str], float]:
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=2) as response:  # noqa: S310 - http://127.0.0.1
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.labels["topic"], s.labels["detector"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "pseudostream_leak_findings_total"
    }


def test_when_a_leaky_policy_runs_then_the_canary_counts_findings_within_a_minute(
    stack: Stack,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    audit = stack.workdir / "audit.jsonl"
    stack.start_worker(
        command=leaky_worker.COMMAND, web_port=str(port), audit_log=str(audit)
    )  # leak_canary_fraction: the default
    records = list(synth.generate(40_000, seed=31, users=400))
    started = time.monotonic()
    stack.feed(records)
    wait_for(lambda: bool(_findings(base)), 60, lambda: f"no finding; logs in {stack.workdir}")
    assert time.monotonic() - started < 60
    findings = _findings(base)
    assert {topic for topic, _ in findings} == {stack.settings.topic("clean.recommendation")}
    assert {detector for _, detector in findings} <= {"raw:imei", "imei"}
    wait_for(audit.exists, 10, lambda: "no audit entry")
    entry = orjson.loads(audit.read_bytes().splitlines()[0])
    assert entry["action"] == "leak_canary_finding"
    assert entry["where"] == ["value.device.imei"]
    scanner = LeakScanner.from_raw_events(v for _, _, v in records)
    assert scanner.scan_lines(stack.log_lines()) == []
    assert scanner.scan_lines(audit.read_bytes().splitlines()) == []
