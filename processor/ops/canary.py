"""The live leak canary: the worker scans a random sample of its own outputs.

A sampled input's output records (every route, key, headers and value) go through the
leak scanner (:class:`processor.ops.scan.LeakScanner`) built from that input's own raw
identifiers, so both identifier-shaped values and the input's exact raw values are found.
A finding counts in ``pseudostream_leak_findings_total{topic,detector}``, logs a line
naming the topic, the detector and where (JSON paths), and appends an audit entry (both at
most once a minute per topic and detector, with the count): never the value, not even
masked.

Sampling picks inputs, not batches: the gap to the next sampled input is drawn from the
geometric distribution of mean ``1 / fraction``, so the hot loop only counts down an
integer (see ``StreamWorker.submit_batch``) and the sample is a Bernoulli sample of the
inputs whatever the batch sizes.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence

import orjson

from processor.errors import EXPECTED_ERRORS
from processor.ops.audit import append_audit
from processor.ops.metrics import WorkerMetrics
from processor.ops.scan import Finding, LeakScanner
from processor.pipeline.outcome import Route, Routed, SourceRef

log = logging.getLogger("pseudostream.canary")
_AUDIT_ERRORS: tuple[type[Exception], ...] = (*EXPECTED_ERRORS, OSError)

NEVER = 2**62  # a countdown that does not reach zero: the canary is off
REPORT_EVERY = 60.0  # seconds between log lines and audit entries per topic and detector


class LeakCanary:
    """Scans the outputs of a ``fraction`` of the inputs; ``countdown`` is the number of
    inputs until the next sampled one (the worker keeps it in a local while it loops)."""

    def __init__(
        self,
        fraction: float,
        topics: Mapping[Route, str],
        metrics: WorkerMetrics,
        policy_version: str,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"leak canary fraction must be 0..1, got {fraction}")
        self.fraction = fraction
        self._topics = topics
        self._metrics = metrics
        self._policy_version = policy_version
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not secrecy
        self._log_gap = math.log1p(-fraction) if 0.0 < fraction < 1.0 else 0.0
        self._reported: dict[tuple[str, str], float] = {}
        self._unreported: Counter[tuple[str, str]] = Counter()
        self.countdown = self.next_gap()

    def next_gap(self) -> int:
        """Inputs until the next sampled one, at least 1 (geometric, mean 1/fraction)."""
        if self.fraction <= 0.0:
            return NEVER
        if self.fraction >= 1.0:
            return 1
        return 1 + int(math.log(1.0 - self._rng.random()) / self._log_gap)

    def check(self, raw: bytes, records: Sequence[Routed], source: SourceRef) -> int:
        """Scan the output ``records`` of the raw input ``raw``; returns the next gap."""
        scanner = LeakScanner.from_raw_events([raw])
        for record in records:
            topic = self._topics[record.route]
            self._metrics.leak_canary_records.labels(topic).inc()
            findings = scanner.scan_lines([_line(record)])
            if findings:
                self._found(topic, findings, source)
        return self.next_gap()

    def _found(self, topic: str, findings: Sequence[Finding], source: SourceRef) -> None:
        """Count every finding; log and audit at most once per topic and detector per
        ``REPORT_EVERY`` seconds, with the count since the last report (a leaking policy
        must not flood the log or the audit trail)."""
        now = time.monotonic()
        ref = f"{source.topic}/{source.partition}/{source.offset}"
        for detector, n in sorted(Counter(f.kind for f in findings).items()):
            self._metrics.leak_findings.labels(topic, detector).inc(n)
            key = (topic, detector)
            self._unreported[key] += n
            if now - self._reported.get(key, -REPORT_EVERY) < REPORT_EVERY:
                continue
            self._reported[key] = now
            where = sorted({f.where for f in findings if f.kind == detector})
            count, self._unreported[key] = self._unreported[key], 0
            log.error(
                "leak canary: %d finding(s) of %s in %s since the last report (latest at %s;"
                " input %s, policy %s)",
                count,
                detector,
                topic,
                ", ".join(where),
                ref,
                self._policy_version,
            )
            try:
                append_audit(
                    "leak_canary_finding",
                    topic=topic,
                    detector=detector,
                    findings=count,
                    where=where,
                    input=ref,
                    policy=self._policy_version,
                )
            except _AUDIT_ERRORS as exc:  # the counter and the log still say it
                log.error("leak canary: no audit entry written: %s", exc)


def _line(record: Routed) -> bytes:
    """The record as the offline scanner reads an output topic: key, headers and value."""
    try:
        value: object = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        value = record.value.decode("utf-8", "replace")
    headers = {name: data.decode("utf-8", "replace") for name, data in record.headers}
    return orjson.dumps({"key": record.key, "headers": headers, "value": value})


__all__ = ["NEVER", "LeakCanary"]
