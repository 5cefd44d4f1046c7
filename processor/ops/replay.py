"""Quarantine replay, the part without Kafka: unseal a quarantine record, run it through the
current pipeline under its original source coordinates, decide what to send where, and count
it all in a :class:`ReplayReport`. :mod:`processor.kafka.replay` reads the topics, sends,
and commits (the whole procedure is described there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from processor.errors import KeyringError
from processor.pipeline.outcome import Outcome, Route, Send, SourceRef, sends_of
from processor.pipeline.process import Pipeline
from processor.pipeline.quarantine import SCHEMA as QUARANTINE_SCHEMA
from processor.pipeline.quarantine import Sealer

RUN_HEADER = "replay-run"
CONSENT_SOURCE = "consent"
_MAX_LISTED = 50


@dataclass
class ReplayReport:
    """What a replay run did; ``counts`` by outcome, ``details`` per reason and topic."""

    counts: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    consent_records: int = 0
    run_id: str = ""
    dry_run: bool = False

    def note(self, line: str) -> None:
        if len(self.problems) < _MAX_LISTED:
            self.problems.append(line)

    def summary(self) -> str:
        c = self.counts

        def group(prefix: str) -> str:
            items = sorted(
                (k.removeprefix(prefix), v) for k, v in self.details.items() if k.startswith(prefix)
            )
            return ", ".join(f"{k} {v}" for k, v in items) or "none"

        head = "replay (dry run)" if self.dry_run else "replay"
        return (
            f"{head}: {c['read']} quarantine records read, {self.consent_records} consent records "
            f"loaded; {c['routed']} routed, {c['quarantined']} quarantined again, "
            f"{c['suppressed']} suppressed, {c['consent_requeued']} consent records re-queued, "
            f"{c['unseal_failed']} seals not opened, {c['unreadable']} unreadable, "
            f"{c['truncated']} cut short, "
            f"{c['duplicate']} duplicates skipped\n"
            f"out: {group('out:')}\nquarantined again: {group('quarantined:')}\n"
            f"suppressed: {group('suppressed:')}"
        )


def _source_of(body: dict[str, Any]) -> SourceRef:
    source = body.get("source") or {}
    return SourceRef(
        str(source.get("topic", "quarantine")), source.get("partition"), source.get("offset")
    )


def replay_one(
    pipeline: Pipeline, sealer: Sealer, value: bytes | None
) -> tuple[str, SourceRef | None, bytes | None, bytes | None, Outcome | None]:
    """One quarantine message -> (status, original source, key, value, outcome).

    status: ``unreadable`` (not a quarantine/1 record), ``unseal_failed`` (no key of the
    ring opens it), ``truncated`` (only the start of the original was sealed) or
    ``processed`` (``outcome`` is the pipeline's)."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return "unreadable", None, None, None, None
    if not isinstance(body, dict) or body.get("schema") != QUARANTINE_SCHEMA:
        return "unreadable", None, None, None, None
    source = _source_of(body)
    if "original_bytes" in body:
        return "truncated", source, None, None, None
    try:
        key, raw = sealer.unseal(body)
    except (KeyringError, TypeError, ValueError, AttributeError):
        return "unseal_failed", source, None, None, None
    return "processed", source, key, raw, pipeline.process(raw, source, key)


class ReplayRun:
    """The decisions of one replay run: the consent state it judges by, which originals it
    replayed already, what each quarantine record becomes, and the report."""

    def __init__(
        self,
        pipeline: Pipeline,
        sealer: Sealer,
        *,
        run_id: str,
        out_topics: Mapping[Route, str],
        consent_topic: str,
        dry_run: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.sealer = sealer
        self.run_id = run_id
        self.out_topics = out_topics
        self.consent_topic = consent_topic
        self.report = ReplayReport(run_id=run_id, dry_run=dry_run)
        self._seen: set[tuple[str, int | None, int | None]] = set()

    def consent(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One record of the consent topic, to rebuild today's consent state (its outputs
        are discarded: the worker emitted them already)."""
        self.pipeline.process(value or b"", SourceRef(CONSENT_SOURCE, partition, offset), key)

    def erased(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the erased-identifier topic: a replayed record never brings an
        erased pseudonym back."""
        if key is not None and value is not None:
            self.pipeline.devices.erase([key.decode()], 0)

    def consent_loaded(self, count: int) -> None:
        self.report.consent_records = count
        self.pipeline.stats.clear()

    def is_own(self, headers: Sequence[tuple[str, bytes]]) -> bool:
        """A record this run wrote: the run has read everything that came before it."""
        own = self.run_id.encode()
        return any(k == RUN_HEADER and v == own for k, v in headers)

    def handle(self, where: str, value: bytes | None) -> list[Send]:
        """One quarantine record (``where``: topic/partition/offset, for the report) ->
        the records to send for it, counted in the report."""
        report = self.report
        report.counts["read"] += 1
        status, source, key, raw, outcome = replay_one(self.pipeline, self.sealer, value)
        if status != "processed" or outcome is None or source is None:
            report.counts[status] += 1
            origin = f" (from {source.topic}/{source.partition}/{source.offset})" if source else ""
            report.note(f"{where}{origin}: {status.replace('_', ' ')}")
            return []
        ident = (source.topic, source.partition, source.offset)
        if source.offset is not None and ident in self._seen:
            report.counts["duplicate"] += 1
            return []
        self._seen.add(ident)
        sends: list[Send] = []
        if outcome.quarantined:
            report.counts["quarantined"] += 1
            report.details["quarantined:" + outcome.quarantined] += 1
            report.note(
                f"{where} (from {source.topic}/{source.partition}/{source.offset}): "
                f"quarantined again: {outcome.quarantined}"
            )
            run = (RUN_HEADER, self.run_id.encode())
            sends = [
                (t, k, v, (*h, run)) for t, k, v, h in sends_of(outcome.records, self.out_topics)
            ]
        elif source.topic == CONSENT_SOURCE:
            # the worker's consent table must learn it: hand the original back to the worker
            report.counts["consent_requeued"] += 1
            sends.append((self.consent_topic, key, raw or b"", ()))
        else:
            if outcome.suppressed:
                report.counts["suppressed"] += 1
                report.details["suppressed:" + outcome.suppressed] += 1
            else:
                report.counts["routed"] += 1
            sends = sends_of(outcome.records, self.out_topics)
        for topic, _, _, _ in sends:
            report.details["out:" + topic] += 1
        return sends


__all__ = ["CONSENT_SOURCE", "RUN_HEADER", "ReplayReport", "ReplayRun", "replay_one"]
