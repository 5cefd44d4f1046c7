"""Quarantine replay: unseal quarantined records and run them through the current pipeline.

The Kafka side (reading, producing, committing); what each record becomes is
:class:`processor.ops.replay.ReplayRun`.

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

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from keys import Keyring
from processor.kafka.clients import kafka_python_options
from processor.kafka.read import Record, assign_all, read_topic
from processor.kafka.topics import BrokerError
from processor.ops.replay import CONSENT_SOURCE, ReplayReport, ReplayRun
from processor.ops.settings import Settings, bootstrap_servers
from processor.pipeline.outcome import Route, Send
from processor.pipeline.process import Pipeline
from processor.pipeline.quarantine import Sealer, request_bytes

_POLL_MS = 300
_EMPTY_POLLS = 2


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
        self.topic = topic or settings.output_topics[Route.QUARANTINE]
        self.group = group or f"{settings.app_id}-quarantine-replay"
        self.dry_run = dry_run
        self.max_records = max_records
        self.from_beginning = from_beginning
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:12]
        self.replay = ReplayRun(
            pipeline,
            Sealer(keyring, pipeline.policy.version),
            run_id=self.run_id,
            out_topics=settings.output_topics,
            consent_topic=settings.input_topics[CONSENT_SOURCE],
            dry_run=dry_run,
        )
        self._servers = bootstrap_servers(settings.broker)
        self._options = kafka_python_options(settings)
        # Records as large as the worker writes them: a quarantine record of a 1 MB input
        # is over 1 MB, more than kafka-python's default request and fetch sizes.
        self._request_bytes = request_bytes(settings.max_record_bytes)
        self._producer: Any = None

    # -- consent ----------------------------------------------------------------------

    def load_consent(self) -> int:
        """Feed the whole consent topic to the pipeline, then the identifiers erased so
        far; returns the number of consent records read."""
        count = 0
        for record in self._read_all(self.replay.consent_topic):
            self.replay.consent(record.partition, record.offset, record.key, record.value)
            count += 1
        for record in self._read_all(self.settings.erased_topic):
            self.replay.erased(record.key, record.value)
        self.replay.consent_loaded(count)
        return count

    def _read_all(self, topic: str) -> Iterator[Record]:
        return read_topic(self._servers, topic, client_options=self._options)

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

        report = self.replay.report
        self.load_consent()
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
            parts = assign_all(consumer, self.topic, 10.0)
            if self.from_beginning:
                consumer.seek_to_beginning()
            ends = consumer.end_offsets(parts)
            total = sum(max(0, ends[tp] - consumer.position(tp)) for tp in parts)
            if self.max_records is not None:
                total = min(total, self.max_records)
            stopped: set[Any] = set()
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
                self._batch(consumer, batch, report, stopped)
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
        stopped: set[Any],
    ) -> None:
        """Process one poll's records, wait for every delivery, then commit their offsets."""
        from kafka.structs import OffsetAndMetadata

        commits: dict[Any, int] = {}
        futures: list[Any] = []
        for tp, records in batch.items():
            for record in records:
                if self._limit_reached(report):
                    stopped.add(tp)
                    break
                if self.replay.is_own(record.headers or ()):
                    stopped.add(tp)  # our own output: this run has read what came before
                    consumer.pause(tp)
                    break
                where = f"{self.topic}/{tp.partition}/{record.offset}"
                sends = self.replay.handle(where, record.value)
                if not self.dry_run:
                    futures += [self._send(send) for send in sends]
                commits[tp] = record.offset + 1
        if self._producer is None:
            return  # dry run: nothing sent, nothing committed
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if a delivery failed: then nothing is committed
        if commits:
            consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in commits.items()})

    def _send(self, send: Send) -> Any:
        assert self._producer is not None  # noqa: S101 - only called outside dry runs
        topic, key, value, headers = send
        return self._producer.send(topic, value=value, key=key, headers=list(headers) or None)
