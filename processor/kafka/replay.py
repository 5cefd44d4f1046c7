"""Quarantine replay: unseal quarantined records and run them through the current pipeline.

For records that failed because of a bug since fixed (or a limit since raised). Steps:

1. the consent state is rebuilt by reading the whole consent topic (as the worker's table
   would hold it now: replay judges old events by today's consent, so a user who deleted
   the account since is suppressed);
2. the quarantine topic is read with kafka-python under a consumer group (default
   ``<app_id>-quarantine-replay``), partitions assigned by us (no group join, so run one
   replay at a time); a re-run continues after the last committed offset, ``from_beginning``
   starts over;
3. each record is unsealed with :meth:`Sealer.unseal` and processed with the ``Pipeline``
   under its original source coordinates; outputs go to the configured topics with the
   keys and headers the worker uses. A consent record that now passes is written back to
   the consent topic unchanged, so the worker's consent table applies it;
4. offsets are committed only after every output of the batch is acknowledged.

Records up to the ``max_record_bytes`` setting are replayed (the producer and the consumer
take records of the size the worker writes); an original that was sealed cut short
(``original_bytes``) cannot be replayed and is reported. A broker failure stops the run
with one line (``BrokerError``), never a traceback; committed offsets say where a rerun
continues.

No loop: a record that fails again is quarantined again with a ``replay-run`` header; this
run stops reading a partition when it meets its own records, and one original source
(topic/partition/offset) is replayed at most once per run. A seal that does not open (other
keyring, tampered record) or a record that is no quarantine record is counted and reported,
and left where it is.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from keys import Keyring
from processor.errors import KeyringError
from processor.kafka.settings import Settings
from processor.kafka.topics import BrokerError, bootstrap_servers
from processor.pipeline.outcome import Outcome, Route, SourceRef
from processor.pipeline.process import Pipeline
from processor.pipeline.quarantine import SCHEMA as QUARANTINE_SCHEMA
from processor.pipeline.quarantine import Sealer, request_bytes

RUN_HEADER = "replay-run"
CONSENT_SOURCE = "consent"
_POLL_MS = 300
_EMPTY_POLLS = 2
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


class Replayer:
    """One replay run against the configured cluster (kafka-python clients)."""

    def __init__(
        self,
        settings: Settings,
        keyring: Keyring,
        pipeline: Pipeline,
        *,
        topic: str | None = None,
        group: str | None = None,
        dry_run: bool = False,
        max_records: int | None = None,
        from_beginning: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.sealer = Sealer(keyring, pipeline.policy.version)
        self.topic = topic or settings.output_topics[Route.QUARANTINE]
        self.group = group or f"{settings.app_id}-quarantine-replay"
        self.dry_run = dry_run
        self.max_records = max_records
        self.from_beginning = from_beginning
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:12]
        self._servers = bootstrap_servers(settings.broker)
        self._options = settings.kafka_python_options()
        # Records as large as the worker writes them: a quarantine record of a 1 MB input
        # is over 1 MB, more than kafka-python's default request and fetch sizes.
        self._request_bytes = request_bytes(settings.max_record_bytes)
        self._out_topics = settings.output_topics
        self._consent_topic = settings.input_topics[CONSENT_SOURCE]
        self._producer: Any = None

    # -- consent ----------------------------------------------------------------------

    def load_consent(self) -> int:
        """Feed the whole consent topic to the pipeline (its outputs are discarded: the
        worker emitted them already), then the identifiers erased so far, so that a
        replayed record never brings an erased pseudonym back; returns the number of
        consent records read."""

        def consent(partition: int, record: Any) -> None:
            self.pipeline.process(
                record.value or b"", SourceRef(CONSENT_SOURCE, partition, record.offset), record.key
            )

        def erased(_: int, record: Any) -> None:
            if record.key is not None and record.value is not None:
                self.pipeline.devices.erase([record.key.decode()], 0)

        count = self._read_all(self._consent_topic, consent)
        self._read_all(self.settings.erased_topic, erased)
        self.pipeline.stats.clear()
        return count

    def _read_all(self, topic: str, handle: Callable[[int, Any], None]) -> int:
        """Hand every record of ``topic``, from its start to its end, to ``handle``."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            bootstrap_servers=self._servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            **self._options,
        )
        count = 0
        try:
            parts = self._assign(consumer, topic)
            consumer.seek_to_beginning()
            ends = consumer.end_offsets(parts)
            empty = 0
            while not (
                empty >= _EMPTY_POLLS and all(consumer.position(tp) >= ends[tp] for tp in parts)
            ):
                batch = consumer.poll(timeout_ms=_POLL_MS, max_records=5000)
                if not batch:
                    empty += 1
                    continue
                empty = 0
                for tp, records in batch.items():
                    for record in records:
                        handle(tp.partition, record)
                        count += 1
        finally:
            consumer.close()
        return count

    # -- replay -----------------------------------------------------------------------

    def run(self) -> ReplayReport:
        """One run; a broker failure (refused record, lost connection, timeout) raises
        BrokerError naming it, after what was acknowledged so far was committed."""
        from kafka.errors import KafkaError

        try:
            return self._run()
        except KafkaError as exc:
            raise BrokerError(f"replay stopped: {type(exc).__name__}: {exc}") from exc

    def _run(self) -> ReplayReport:
        from kafka import KafkaConsumer, KafkaProducer

        report = ReplayReport(run_id=self.run_id, dry_run=self.dry_run)
        report.consent_records = self.load_consent()
        consumer = KafkaConsumer(
            bootstrap_servers=self._servers,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            max_partition_fetch_bytes=self._request_bytes,
            fetch_max_bytes=max(52_428_800, self._request_bytes),
            **self._options,
        )
        if not self.dry_run:
            self._producer = KafkaProducer(
                bootstrap_servers=self._servers,
                acks="all",
                linger_ms=5,
                max_request_size=self._request_bytes,
                **self._options,
            )
        try:
            parts = self._assign(consumer, self.topic)
            if self.from_beginning:
                consumer.seek_to_beginning()
            ends = consumer.end_offsets(parts)
            total = sum(max(0, ends[tp] - consumer.position(tp)) for tp in parts)
            if self.max_records is not None:
                total = min(total, self.max_records)
            stopped: set[Any] = set()
            seen: set[tuple[str, int | None, int | None]] = set()
            empty = 0
            while not self._limit_reached(report):
                active = [tp for tp in parts if tp not in stopped]
                if not active or (
                    empty >= _EMPTY_POLLS
                    and all(consumer.position(tp) >= ends[tp] for tp in active)
                ):
                    break
                batch = consumer.poll(timeout_ms=_POLL_MS, max_records=500)
                if not batch:
                    empty += 1
                    continue
                empty = 0
                self._batch(consumer, batch, report, seen, stopped)
                if self.progress is not None:
                    self.progress(report.counts["read"], total)
        finally:
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None
            consumer.close()
        return report

    def _limit_reached(self, report: ReplayReport) -> bool:
        return self.max_records is not None and report.counts["read"] >= self.max_records

    def _batch(
        self,
        consumer: Any,
        batch: dict[Any, list[Any]],
        report: ReplayReport,
        seen: set[tuple[str, int | None, int | None]],
        stopped: set[Any],
    ) -> None:
        """Process one poll's records, wait for every delivery, then commit their offsets."""
        from kafka.structs import OffsetAndMetadata

        own = self.run_id.encode()
        commits: dict[Any, int] = {}
        futures: list[Any] = []
        for tp, records in batch.items():
            for record in records:
                if self._limit_reached(report):
                    stopped.add(tp)
                    break
                if any(k == RUN_HEADER and v == own for k, v in record.headers or ()):
                    stopped.add(tp)  # our own output: this run has read what came before
                    consumer.pause(tp)
                    break
                report.counts["read"] += 1
                futures += self._handle(record, tp, report, seen)
                commits[tp] = record.offset + 1
        if self._producer is None:
            return  # dry run: nothing sent, nothing committed
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if a delivery failed: then nothing is committed
        if commits:
            consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in commits.items()})

    def _handle(
        self,
        record: Any,
        tp: Any,
        report: ReplayReport,
        seen: set[tuple[str, int | None, int | None]],
    ) -> list[Any]:
        where = f"{self.topic}/{tp.partition}/{record.offset}"
        status, source, key, raw, outcome = replay_one(self.pipeline, self.sealer, record.value)
        if status != "processed" or outcome is None or source is None:
            report.counts[status] += 1
            origin = f" (from {source.topic}/{source.partition}/{source.offset})" if source else ""
            report.note(f"{where}{origin}: {status.replace('_', ' ')}")
            return []
        ident = (source.topic, source.partition, source.offset)
        if source.offset is not None and ident in seen:
            report.counts["duplicate"] += 1
            return []
        seen.add(ident)
        sends: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        if outcome.quarantined:
            report.counts["quarantined"] += 1
            report.details["quarantined:" + outcome.quarantined] += 1
            report.note(
                f"{where} (from {source.topic}/{source.partition}/{source.offset}): "
                f"quarantined again: {outcome.quarantined}"
            )
            for routed in outcome.records:
                headers = [*routed.headers, (RUN_HEADER, self.run_id.encode())]
                key_bytes = routed.key.encode() if routed.key is not None else None
                sends.append((self._out_topics[routed.route], key_bytes, routed.value, headers))
        elif source.topic == CONSENT_SOURCE:
            # the worker's consent table must learn it: hand the original back to the worker
            report.counts["consent_requeued"] += 1
            sends.append((self._consent_topic, key, raw or b"", []))
        else:
            if outcome.suppressed:
                report.counts["suppressed"] += 1
                report.details["suppressed:" + outcome.suppressed] += 1
            else:
                report.counts["routed"] += 1
            for routed in outcome.records:
                key_bytes = routed.key.encode() if routed.key is not None else None
                sends.append(
                    (self._out_topics[routed.route], key_bytes, routed.value, list(routed.headers))
                )
        for topic, _, _, _ in sends:
            report.details["out:" + topic] += 1
        if self.dry_run:
            return []
        return [self._send(topic, k, v, h) for topic, k, v, h in sends]

    def _send(self, topic: str, key: bytes | None, value: bytes, headers: list[Any]) -> Any:
        assert self._producer is not None  # noqa: S101 - only called outside dry runs
        return self._producer.send(topic, value=value, key=key, headers=headers or None)

    @staticmethod
    def _assign(consumer: Any, topic: str) -> list[Any]:
        from kafka import TopicPartition

        deadline = time.monotonic() + 10.0
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerError(f"topic {topic!r} not found on the broker")
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        return parts
