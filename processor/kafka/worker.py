"""The faust-streaming worker: a thin adapter that feeds raw Kafka records to the pipeline.

Per batch (``stream.take_events``), not per event:

1. consent records first (so a consent change in the batch applies to the batch's events),
   then the rest in arrival order, each through ``Pipeline.process`` -> one ``Outcome``;
2. every output record (and every consent-table changelog entry) is handed to the
   buffered aiokafka producer, collecting the delivery futures;
3. all futures are awaited once; only then does ``take_events`` ack the batch's events,
   and faust commits acked offsets every ``commit_interval``. That is the at-least-once
   guarantee: an input offset is committed only after its outputs are acknowledged.

A failed delivery ends the process at once without committing (``os._exit``): faust's
``take_events`` would otherwise ack the batch while the agent unwinds.

The consent table is a faust ``Table`` whose keys are keyed hashes of the canonical user id
(HMAC-SHA256 under a key derived from the keyring, see :func:`table_key_function`) and whose
values hold no identifier, so its changelog topic carries no raw identifier. See
``docs/worker.md`` for the design and the measurements.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import orjson

from processor.errors import EXPECTED_ERRORS
from processor.kafka.adstats import (
    AdStatsTable,
    ChangelogEntry,
    Headers,
    Send,
    apply_to_store,
    changelog_table,
    check_schedule_fits_windows,
    store_dict,
)
from processor.kafka.devicelinks import DeviceLinkTable, start_reader
from processor.kafka.settings import Settings
from processor.ops.audit import append_audit
from processor.ops.canary import LeakCanary
from processor.ops.metrics import (
    KeyAge,
    PartitionOffsets,
    WorkerMetrics,
    install_pages,
    partition_end,
)
from processor.ops.stall import ProgressWatch, Watched
from processor.pipeline.consent import Consent
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.quarantine import request_bytes

if TYPE_CHECKING:
    from keys import Keyring
    from processor.pipeline.location import Locator
    from processor.pipeline.process import Pipeline

log = logging.getLogger("pseudostream.worker")

CONSENT_SOURCE = "consent"
_TABLE_KEY_LABEL = b"pseudostream/consent-table/v1"
EXIT_DELIVERY_FAILED = 75
EXIT_STALLED = 70
# test seam (tests/integration/test_drills.py): "topic:partition" whose fetched records the
# worker drops unhandled, the way the fetch loop once did after a rebalance
TEST_STALL_ENV = "PSEUDOSTREAM_TEST_STALL_PARTITION"


def table_key_function(keyring: Keyring, cache_size: int = 262_144) -> Callable[[str], str]:
    """Canonical user id -> consent-table key: 160 bits of HMAC-SHA256 in lowercase base32,
    under a key derived from the oldest quarantine-domain key still in the ring, so rotations
    do not move the table's keys (dropping that key from the ring does: see docs/worker.md).
    Base32 like the pseudonyms: hex would hold digit runs that look like phone numbers."""
    from keys import Domain

    base = keyring.keys_for(Domain.QUARANTINE)[-1].sealing_key()
    derived = hmac.digest(base, _TABLE_KEY_LABEL, "sha256")

    def key_of(user_id: str) -> str:
        digest = hmac.new(derived, user_id.encode("utf-8"), hashlib.sha256).digest()
        return base64.b32encode(digest[:20]).decode("ascii").lower()

    return lru_cache(maxsize=cache_size)(key_of)


class TableConsentState:
    """:class:`processor.pipeline.consent.ConsentState` backed by a faust Table.

    Reads go straight to the table's store; writes update the store and send the
    changelog entry (to the partition of the consent record being processed, which is the
    user's partition because consent and raw topics are co-partitioned) through the same
    buffered producer as the outputs, so the batch waits for them too.
    """

    def __init__(self, table: Any, key_of: Callable[[str], str], changelog_topic: str) -> None:
        self._store = table.data
        self._dict = store_dict(table.data)
        self._key_of = key_of
        self._changelog_topic = changelog_topic
        self._cache: dict[str, tuple[Any, Consent]] = {}
        self.partition: int | None = None
        self.pending: list[ChangelogEntry] = []

    def get(self, user_id: str) -> Consent | None:
        key = self._key_of(user_id)
        value = self._dict.get(key)
        if value is None:
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] is value:
            return cached[1]
        consent = Consent.from_json(value)
        self._cache[key] = (value, consent)
        return consent

    def put(self, user_id: str, consent: Consent) -> None:
        key = self._key_of(user_id)
        value = consent.to_json()
        self._dict[key] = value
        key_partition = getattr(self._store, "_key_partition", None)
        if key_partition is not None and self.partition is not None:
            key_partition[key] = self.partition
        self._cache[key] = (value, consent)
        # faust's "json" codec for table keys and values, so recovery reads them back
        self.pending.append(
            (self._changelog_topic, orjson.dumps(key), orjson.dumps(value), self.partition)
        )

    def apply_changelog(self, key: str, value: dict[str, Any] | None, partition: int) -> None:
        """One changelog record read back (``value`` None deletes the key)."""
        apply_to_store(self._store, key, value, partition)

    def __len__(self) -> int:
        return len(self._store)


class Counters:
    """What the worker did; written as JSON to ``stats_file`` and logged."""

    PHASES = ("pipeline", "produce", "settle")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, float] = {"pipeline": 0.0, "deliver": 0.0}
        # CPU of the event loop's thread per phase (``time.thread_time``): a profile without
        # a profiler (py-spy, which pauses the process to sample, overstated the producer)
        self.cpu: dict[str, float] = dict.fromkeys(self.PHASES, 0.0)
        self.cpu_first: float | None = None
        self.cpu_last: float | None = None
        self.started = time.monotonic()
        self.first_event: float | None = None
        self.last_event: float | None = None

    def cpu_us_per_event(self) -> dict[str, float] | None:
        """Main-thread CPU per acknowledged input, µs: each phase, ``other`` (fetching and
        faust's per-message work, acks, timers) and ``total``, from the first batch
        on; the consumer's own thread (decoding fetched records) is not in it."""
        n = self.counts.get("in", 0)
        if not n or self.cpu_first is None or self.cpu_last is None:
            return None
        total = self.cpu_last - self.cpu_first
        split = {**self.cpu, "other": total - sum(self.cpu.values()), "total": total}
        return {k: round(v * 1e6 / n, 1) for k, v in split.items()}

    def snapshot(self, pipeline_stats: Mapping[str, int]) -> dict[str, Any]:
        busy = (self.last_event - self.first_event) if self.first_event and self.last_event else 0.0
        counts = dict(self.counts)
        return {
            "pid": os.getpid(),
            "in": counts.get("in", 0),
            "counts": counts,
            "pipeline": dict(pipeline_stats),
            "busy_seconds": round(busy, 3),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "events_per_second": round(counts.get("in", 0) / busy, 1) if busy > 0 else None,
            "cpu_us_per_event": self.cpu_us_per_event(),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
        }


def make_app_class(
    batch_size: int,
    batch_topics: frozenset[str],
    handler: Callable[[list[Any]], Awaitable[None]],
    fetch_max_wait_ms: int = 50,
    idle: Callable[[], Awaitable[None]] | None = None,
    first_topics: frozenset[str] = frozenset(),
    rounds: Callable[[], None] | None = None,
) -> Any:
    """A ``faust.App`` whose consumer hands whole fetches of the source topics to a batch
    handler instead of faust's per-message path (conductor -> channel queue -> stream ->
    event, about 6 tasks and 26 callbacks per message, the cost DESIGN.md measured).

    Everything else stays faust's: the consumer group, rebalancing, the commit loop (it
    commits offsets the handler acked), table recovery (changelog messages still go
    through faust's own callback), flow control and graceful shutdown.
    """
    from faust import App
    from faust.transport.drivers import aiokafka as faust_aiokafka

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # faust passes a fixed fetch_max_wait_ms=1500; aiokafka reads it at start()
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class BatchConsumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def wait_empty(self) -> None:
            # a rebalance or a stop waits for unacked messages: settle the in-flight batch
            if idle is not None:
                await idle()
            await super().wait_empty()

        async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
            # A copy: faust hands over its live set of active partitions, and aiokafka's
            # ``fetched_records`` reads an empty set as "every partition". When recovery
            # paused the changelogs (the sources still paused) during the wait, the set
            # became empty, the fetch drained the paused sources too, _fetched dropped them
            # as inactive, and the seek to committed offsets left partitions without one past
            # those records: a restarted worker never read them (2 runs in 3, docs/drills.md).
            if active_partitions is not None:
                active_partitions = set(active_partitions)
            return await super()._getmany(active_partitions, timeout)

        async def _fetched(self, timeout: float) -> tuple[int, list[tuple[Any, list[Any]]]]:
            """faust's ``getmany`` by partition instead of by message: the same checks (flow,
            paused partitions) and end-offset tracking, once per partition of a fetch instead
            of once per message. Returns the consumer generation the records belong to, taken
            *after* the wait: the wait can span a whole rebalance, whose seeks the returned
            records already follow (a generation read before it cut every chunk of the first
            fetch after a rebalance to its first record, and changelog recovery then waited
            for the dropped rest forever)."""
            records, active = await self._wait_next_records(timeout)
            generation: int = self.app.consumer_generation_id
            if records is None or self.should_stop:
                return generation, []
            if not self.flow_active:  # as faust: back to the committed offsets
                try:
                    await self.perform_seek()
                except Exception as exc:
                    log.warning("seek while flow is not active failed: %s", exc)
                return generation, []
            buffered = self._buffered_partitions
            track_end = self.app.monitor.track_tp_end_offset
            chunks = []
            # ``first_topics`` lead (consent: a change applies to the events fetched with it,
            # also when the fetch spans several batches)
            for tp, chunk in sorted(
                records.items(), key=lambda item: item[0].topic not in first_topics
            ):
                if active is None or tp in active or tp in buffered:
                    track_end(tp, self.highwater(tp))
                    chunks.append((tp, chunk))
            return generation, chunks

        def _moved_on(self, generation: int) -> bool:
            """A rebalance began (flow stopped) or happened since ``generation``."""
            return not self.flow_active or self.app.consumer_generation_id != generation

        async def _drain_chunk(
            self, tp: Any, chunk: list[Any], generation: int, batch: list[Any]
        ) -> tuple[list[Any], bool]:
            """One partition's records of a fetch: a source's go into ``batch`` (handed to
            ``handler`` when full), a changelog's to faust's own callback. Returns the batch
            still pending and whether to go on with the fetch (False: the generation changed
            or flow stopped).

            A record's read offset is set before anything is awaited for it: a rebalance
            during that await seeks the partition and resets the read offset, and the reset
            must win. After every await the generation is checked; when it changed, the rest
            of the fetch is left unread: the rebalance that changed it sought every partition
            still assigned back to its committed (sources) or recovery (changelogs) offset,
            so nothing left here is lost."""
            r_offset = self._read_offset[tp]
            set_read_offset = self._read_offset.__setitem__
            to_message = self._to_message
            if tp.topic not in batch_topics:  # table changelogs during recovery
                for record in chunk:
                    message = to_message(tp, record)
                    if r_offset is not None and message.offset < r_offset:
                        continue  # already read (faust drops these too)
                    set_read_offset(tp, message.offset)
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                    if self._moved_on(generation):
                        return batch, False
                return batch, True
            track = self._unacked_messages.add
            gaps_count = self.app.topics.acks_enabled_for(tp.topic)
            for record in chunk:
                # made here: a message carries the generation it was read in
                message = to_message(tp, record)
                offset = message.offset
                if r_offset is not None:
                    if offset < r_offset:
                        continue  # already read (faust drops these too)
                    if r_offset and offset - r_offset > 1 and gaps_count:
                        await self._add_gap(tp, r_offset + 1, offset)  # compacted
                        if self._moved_on(generation):
                            return batch, False
                r_offset = offset
                set_read_offset(tp, offset)
                track(message)
                batch.append(message)
                if len(batch) >= batch_size:
                    await handler(batch)
                    batch = []
                    if self._moved_on(generation):
                        return batch, False
            return batch, True

        async def _drain_messages(self, fetcher: Any) -> None:
            """faust's fetch loop (``Consumer._drain_messages``), by partition chunk
            (:meth:`_drain_chunk`) instead of by message, handing the source topics' records
            to ``handler`` in batches."""
            consumer_should_stop = self._stopped.is_set
            fetcher_should_stop = fetcher._stopped.is_set
            commit_every = self._commit_every  # faust's ``broker_commit_every``
            try:
                while not (consumer_should_stop() or fetcher_should_stop()):
                    batch: list[Any] = []
                    await self.sleep(0)
                    if self.should_stop:
                        break
                    generation, chunks = await self._fetched(timeout=1.0)
                    if rounds is not None:  # the progress watch sees the loop turn
                        rounds()
                    for tp, chunk in chunks:
                        if self._moved_on(generation):
                            break
                        batch, go_on = await self._drain_chunk(tp, chunk, generation, batch)
                        if not go_on:
                            break
                    if batch:
                        await handler(batch)
                    elif idle is not None:  # nothing new: settle the batch still in flight
                        await idle()
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
            except self.consumer_stopped_errors:
                if self.transport.app.should_stop:
                    return
                raise
            except asyncio.CancelledError:
                if self.transport.app.should_stop:
                    return
                raise

    class BatchTransport(faust_aiokafka.Transport):
        Consumer = BatchConsumer

    class BatchApp(App):
        def _new_transport(self) -> Any:
            return BatchTransport(self.conf.broker_consumer, self)

    return BatchApp


class _Appender:
    """Writes records whose partition is known straight into the producer's open batch of
    that partition, and collects one delivery future per producer batch instead of one
    per record.

    ``producer.send`` does work per record the worker does not need: a metadata wait, a set
    of the topic's partitions for an ``assert``, a future per record that the sender later
    resolves with a metadata tuple, and the callbacks of a ``gather`` over them all
    (handing over and settling took 46 of the worker's 123 µs per event; now 12: docs/worker.md). A producer batch's own future
    resolves when the whole batch is acknowledged and fails when it fails, which is all the
    worker awaits. The size check stays; when a partition has no open batch or its batch
    is full, the record goes through the producer's ``add_message``, which opens a batch or
    waits for one to drain (its backpressure). Batching, linger and retries stay the
    producer's own (``aiokafka<0.15`` is pinned for these private parts)."""

    def __init__(self, producer: Any) -> None:
        from aiokafka.errors import MessageSizeTooLargeError
        from aiokafka.record.default_records import DefaultRecordBatchBuilder

        self._accumulator = producer._message_accumulator
        self._open = self._accumulator._batches  # TopicPartition -> deque, the last one open
        self._timeout = producer._request_timeout_ms / 1000
        self._limit = producer._max_request_size
        self._estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
        self._too_large = MessageSizeTooLargeError
        self._batches: dict[Any, None] = {}  # the producer batches written to, in order
        self._futures: list[Awaitable[Any]] = []  # of the records that took add_message

    async def append(
        self, tp: Any, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        """One record to partition ``tp`` (an aiokafka ``TopicPartition``)."""
        listed = list(headers) if headers else []
        size = self._estimate(key, value, listed)
        if size > self._limit:
            raise self._too_large(
                f"the record is {size} bytes, over the producer's request limit of {self._limit}"
            )
        accumulator = self._accumulator
        pending = self._open.get(tp)
        if pending and accumulator._exception is None and not accumulator._closed:
            batch = pending[-1]
            metadata = batch._builder.append(timestamp=None, key=key, value=value, headers=listed)
            if metadata is not None:
                if batch not in self._batches:
                    self._batches[batch] = None
                return
        added = accumulator.add_message(tp, key, value, self._timeout, headers=listed)
        self._futures.append(await added)

    def futures(self) -> list[Awaitable[Any]]:
        """The delivery futures of everything appended; a batch's is shielded, so that a
        cancelled wait (a stop) does not cancel the producer's own future."""
        return [*self._futures, *(asyncio.shield(batch.future) for batch in self._batches)]


def ack_all(consumer: Any, messages: Sequence[Any]) -> None:
    """faust's ``Consumer.ack`` for every message of a batch, step for step (a unit test
    holds it to faust's own), but under faust's ack lock once and waking a commit that
    waits for acks once, instead of per message (~2.5 µs of the worker's CPU per event)."""
    from faust.types.tuples import ack_lock
    from mode.utils.futures import notify

    acks_enabled_for = consumer.app.topics.acks_enabled_for
    committed = consumer._committed_offset
    acked_index = consumer._acked_index
    acked = consumer._acked
    discard = consumer._unacked_messages.discard
    newly = 0
    with ack_lock:
        try:
            for message in messages:
                if message.acked:
                    continue
                message.acked = True
                if not acks_enabled_for(message.topic):
                    continue
                tp, offset = message.tp, message.offset
                floor = committed[tp]
                if floor is None or offset >= floor:
                    index = acked_index[tp]
                    if offset not in index:
                        discard(message)
                        index.add(offset)
                        acked[tp].append(offset)
                        newly += 1
        finally:
            consumer._n_acked += newly
            notify(consumer._waiting_for_ack)


@lru_cache(maxsize=262_144)
def _key_hash(key: bytes) -> int:
    """Kafka's default partitioning hash of a record key (murmur2, positive), cached."""
    from aiokafka.partitioner import murmur2

    hashed: int = murmur2(key) & 0x7FFFFFFF
    return hashed


class Submitted(NamedTuple):
    """A batch whose outputs were handed to the producer, not yet acknowledged."""

    messages: Sequence[Any]
    topics_out: Mapping[str, int]  # records handed to the producer, by topic
    futures: list[Awaitable[Any]]
    tallies: Counter[str]
    quarantined: Mapping[str, int]
    suppressed: Mapping[str, int]
    pseudonyms: Mapping[str, int]
    event_times: list[int]  # of the valid events, ms, for the latency metric
    started: float


class StreamWorker:
    """Builds the faust app, its agent and its consent table, and runs them."""

    def __init__(
        self,
        settings: Settings,
        keyring: Keyring,
        locator: Locator | None = None,
        *,
        pipeline: Pipeline | None = None,
    ) -> None:
        import faust

        from processor.pipeline.process import Pipeline

        self.settings = settings
        s = settings
        app_class = (
            make_app_class(
                s.batch_size,
                frozenset(s.input_topics.values()),
                self._fast_batch,
                s.fetch_max_wait_ms,
                self._settle_in_flight,
                frozenset({s.input_topics[CONSENT_SOURCE]}),
                self._fetch_round,
            )
            if s.fast_path
            else faust.App
        )
        self.app: Any = app_class(
            s.app_id,
            broker=s.broker,
            autodiscover=False,
            store="memory://",
            datadir=str(s.data_dir),
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=min(3.0, s.session_timeout / 4),
            broker_rebalance_timeout=max(s.session_timeout, 10.0),
            broker_commit_interval=s.commit_interval,
            producer_linger=s.producer_linger_ms / 1000.0,
            producer_max_batch_size=s.producer_max_batch_bytes,
            producer_max_request_size=request_bytes(s.max_record_bytes),
            producer_acks=-1 if s.producer_acks in ("all", "-1") else int(s.producer_acks),
            consumer_auto_offset_reset="earliest",
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            topic_allow_declare=False,  # we create topics ourselves (processor.kafka.topics)
            topic_disable_leader=True,
            table_standby_replicas=0,
            # The check guards a local RocksDB file that outlived its changelog topic; our
            # tables live in memory, so the only "persisted" offsets are the ones this process
            # read. Tansu reports a partition's end one batch short until it is written again,
            # so a rebalance after recovery read that last batch failed the check and crashed
            # the worker (ConsistencyError, "persisted offset ... higher than highwater").
            recovery_consistency_check=False,
            web_enabled=s.web_port != 0,
            web_port=s.web_port or 6066,
            web_bind=s.web_host,
            # faust's own pages are off: without authentication, /table/consent/<key>/ served
            # a user's consent state and /router/ the cluster's hosts. The worker serves
            # /metrics, /health, /ready (install_pages); faust keeps "/" ({"status": "OK"}).
            web_router_enabled=False,
            web_tables_enabled=False,
            web_stats_enabled=False,
            web_graph_enabled=False,
            web_metrics_enabled=False,
            stream_wait_empty=True,
            **s.faust_options(),  # SASL/TLS credentials (docs/operations-config.md)
        )
        self.counters = Counters()
        self._logical = {physical: logical for logical, physical in s.input_topics.items()}
        self._consent_topic = s.input_topics[CONSENT_SOURCE]
        self._out_topics = dict(s.output_topics)
        self.table = changelog_table(self.app, "consent", s.changelog_topic, s.partitions)
        key_of = table_key_function(keyring)
        self.consent = TableConsentState(self.table, key_of, s.changelog_topic)
        self.table.on_recover(self._catch_up_changelog)
        self.devices = self._device_links(key_of)
        self.ad_stats: AdStatsTable | None = None
        if s.ad_stats_enabled:  # docs/stats.md
            check_schedule_fits_windows(keyring.schedule, s.ad_stats_window)
            self.ad_stats = AdStatsTable(self.app, s)
            self.ad_stats.table.on_recover(self._recover_ad_stats)
            self.app.timer(1.0, name="pseudostream.ad_stats")(self._close_idle_ad_stats)
        self.pipeline = pipeline or Pipeline(
            keyring,
            consent=self.consent,
            locator=locator,
            max_record_bytes=s.max_record_bytes,
            topic_schemas=s.topic_binding,
            max_key_bytes=s.max_key_bytes,
            devices=self.devices,
            device_link_retention_ms=s.device_link_retention_ms,
            max_devices_per_user=s.max_devices_per_user,
            max_text_chars=s.max_text_chars,
        )
        self.pipeline.consent = self.consent
        self.pipeline.devices = self.devices
        self.source = self.app.topic(
            *s.input_topics.values(),
            key_serializer="raw",
            value_serializer="raw",
            partitions=s.partitions,
        )
        if s.fast_path:
            self.app.topics.add(self.source)  # subscribe; the consumer hands us the messages
        else:
            self.app.agent(self.source, name="pseudostream.process")(self._agent)
        self.app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]
        self._keyring = keyring
        self.topics_present = False  # set by run() once the topics were created or checked
        self._in_flight: Submitted | None = None  # the fast path's unacknowledged batch
        self._last_seen: dict[Any, int] = {}  # TP -> highest offset handed to the handler
        self._pseudonym_prefix: dict[Route, tuple[str, bytes]] = {}
        self._count_pseudonyms_of_keys_in_force()
        self.metrics = WorkerMetrics()
        self.metrics.bind(self)
        self.metrics.delivery_failures.inc(delivery_failures(s.data_dir))
        self.canary = LeakCanary(
            s.leak_canary_fraction, self._out_topics, self.metrics, self.pipeline.policy.version
        )
        if s.web_port:
            install_pages(self.app, self.metrics, self.readiness)
        self._stats_dirty = False
        self.app.timer(0.25, name="pseudostream.stats_file")(self._flush_stats)
        self._start_progress_watch()
        self._keyring_stamp = self._keyring_file_stamp()
        if s.keyring is not None and s.keyring_reload_interval > 0:
            self.app.timer(s.keyring_reload_interval, name="pseudostream.keyring_reload")(
                self._reload_keyring_if_changed
            )

    def _count_pseudonyms_of_keys_in_force(self) -> None:
        """The metrics count pseudonyms by the ``"<key id>:`` prefix of each route's key."""
        self._pseudonym_prefix = {
            plan.route: (
                str(plan.domain),
                f'"{self.pipeline.pseudonymizers[plan.domain].key_id}:'.encode(),
            )
            for plan in self.pipeline.policy.routes
        }

    def _follow_schedule(self) -> None:
        """Per batch: swap the scheduled domain's key at its boundary (wall clock)."""
        changed = self.pipeline.follow_schedule(time.time_ns() // 1_000_000)
        if changed:
            self._count_pseudonyms_of_keys_in_force()
            append_audit("scheduled_key_switch", app_id=self.settings.app_id, key_ids=changed)
            log.info("scheduled key rotation: now pseudonymizing with %s", ", ".join(changed))

    def _keyring_file_stamp(self) -> tuple[int, int] | None:
        """(mtime ns, size) of the keyring file, None when unreadable or not from a file."""
        path = self.settings.keyring
        try:
            stat = path.stat() if path is not None else None
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size) if stat is not None else None

    async def _reload_keyring_if_changed(self) -> None:
        """`keys rotate` or `keys schedule` from cron: a changed keyring file is loaded and
        its keys serve from the next batch. A file that fails to load keeps the keys in use
        and logs why (never key material); it is tried again when it changes again."""
        stamp = self._keyring_file_stamp()
        if stamp is None or stamp == self._keyring_stamp:
            return
        self._keyring_stamp = stamp
        try:
            keyring = load_keyring(self.settings)
            if self.ad_stats is not None:
                check_schedule_fits_windows(keyring.schedule, self.settings.ad_stats_window)
        except EXPECTED_ERRORS as exc:
            log.error("keyring reload failed, keeping the keys in use: %s", exc)
            return
        self._keyring = keyring
        self.pipeline.use_keyring(keyring)
        key_ids = [k.key_id for k in keyring]
        append_audit("keyring_reload", keyring=str(self.settings.keyring), key_ids=key_ids)
        log.info("keyring reloaded: %s", ", ".join(key_ids))

    async def _catch_up_changelog(self) -> None:
        """Re-read this worker's changelog partitions to their real end after faust's
        recovery. Tansu's ListOffsets LATEST can be one batch short, so faust's recovery
        stops early and loses the newest consent of some users (measured: 59 of 565 users
        after a restart). We read until three empty fetches instead; faust awaits this
        callback before it resumes the source partitions."""
        started = time.monotonic()
        actives = await self._reread_changelog(self.table, self.consent.apply_changelog)
        if actives is None:
            return
        log.info(
            "consent table: re-read %d changelog records of %d partitions in %.2fs; %d users",
            actives[1],
            actives[0],
            time.monotonic() - started,
            len(self.consent),
        )

    def _device_links(self, key_of: Callable[[str], str]) -> DeviceLinkTable:
        """The device-link table (processor.kafka.devicelinks), recovered like the consent table,
        and every second the identifiers other workers erased."""
        devices = DeviceLinkTable(self.app, self.settings, key_of)
        devices.table.on_recover(self._recover_devices)
        self.app.timer(1.0, name="pseudostream.erased")(devices.follow_erased)
        return devices

    async def _recover_devices(self) -> None:
        """The device-link table: the same catch-up; then every identifier erased so far,
        by any worker, before the inputs resume."""
        await self._reread_changelog(self.devices.table, self.devices.apply_changelog)
        erased = await self.devices.read_erased()
        log.info("device links: %d users; %d identifiers erased", len(self.devices), erased)

    async def _recover_ad_stats(self) -> None:
        """The ad-statistics table: the same catch-up, then re-index its windows."""
        assert self.ad_stats is not None  # noqa: S101 - registered only with ad statistics
        await self._reread_changelog(self.ad_stats.table, self.ad_stats.apply_changelog)
        self.ad_stats.recovered()

    async def _reread_changelog(
        self, table: Any, apply: Callable[[Any, Any, int], None]
    ) -> tuple[int, int] | None:
        """Read ``table``'s active changelog partitions from the start until three empty
        fetches, handing each record to ``apply(key, value or None, partition)``; returns
        (partitions, records), or None when there was nothing to do."""
        from aiokafka import TopicPartition

        actives = self.app.tables.recovery.actives_for_table.get(table) or set()
        if not actives or not self.settings.changelog_catch_up:
            return None
        consumer = await start_reader(self.settings)
        applied = 0
        try:
            consumer.assign([TopicPartition(tp.topic, tp.partition) for tp in actives])
            await consumer.seek_to_beginning()
            empty = 0
            while empty < 3:
                batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
                if not any(batch.values()):
                    empty += 1
                    continue
                empty = 0
                for tp, records in batch.items():
                    for record in records:
                        if record.key is None:
                            continue
                        apply(
                            orjson.loads(record.key),
                            orjson.loads(record.value) if record.value else None,
                            tp.partition,
                        )
                        applied += 1
        finally:
            await consumer.stop()
        return len(actives), applied

    # -- the hot path ---------------------------------------------------------------

    async def _agent(self, stream: Any) -> None:
        """The plain faust path (``fast_path = false``): batches of events from the stream."""
        s = self.settings
        async for events in stream.take_events(s.batch_size, within=s.batch_within):
            await self.process_batch([event.message for event in events])

    async def _fast_batch(self, messages: list[Any]) -> None:
        """The fast path: messages straight from faust's fetch loop (see BatchConsumer).

        Pipelined by one batch: this batch's outputs are handed to the producer, then the
        previous batch's deliveries are awaited and its messages acked. Its acks thus wait
        while this batch is being produced instead of stalling the loop (measured: 120 ms
        per batch of 2,000 on Tansu). Acks stay in order and follow the deliveries, so an
        offset is still committed only after its outputs were acknowledged."""
        consumer = self.app.consumer
        generation = self.app.consumer_generation_id
        current = [m for m in messages if m.generation_id == generation]
        if len(current) != len(messages):  # fetched before a rebalance: not ours to process
            stale = [m for m in messages if m.generation_id != generation]
            for message in stale:
                consumer._unacked_messages.discard(message)
            await self._rewind(stale)
        if self._test_stall is not None:
            current = self._drop_for_test(current)
        try:
            submitted = await self.submit_batch(current)
        except BaseException:
            # not acked, so never committed; forget them so a shutdown does not wait for them
            for message in current:
                consumer._unacked_messages.discard(message)
            raise
        await self._settle_in_flight()
        self._in_flight = submitted

    async def _rewind(self, stale: Sequence[Any]) -> None:
        """Put every partition this worker still holds back to its first stale record (one
        fetched before a rebalance and not processed), or to its committed offset if that
        is further. The rebalance's own seek does not cover it: aiokafka's seek to the
        committed offsets leaves a partition without one where it was, past these records,
        and they were never read again (found by a restart with input on several
        partitions during the join: the new worker stalled 2 records short, 2 runs in 6)."""
        consumer = self.app.consumer
        first: dict[Any, int] = {}
        for message in stale:
            first[message.tp] = min(first.get(message.tp, message.offset), message.offset)
        try:
            assigned = consumer.assignment()
        except Exception:  # not started or stopping: nothing to put back
            return
        committed = consumer._committed_offset
        for tp, offset in first.items():
            if tp not in assigned:
                continue  # revoked: its new owner reads from the committed offset
            target = max(offset, committed.get(tp) or 0)
            try:
                await consumer.seek(tp, target)
            except Exception as exc:  # revoked meanwhile: the same as above
                log.warning("could not put %s back to offset %d: %s", tp, target, exc)

    def _drop_for_test(self, messages: list[Any]) -> list[Any]:
        """The test seam (:data:`TEST_STALL_ENV`): the stalled partition's records are
        dropped unhandled and never read again."""
        kept = [m for m in messages if (m.topic, m.partition) != self._test_stall]
        for message in messages:
            if (message.topic, message.partition) == self._test_stall:
                self.app.consumer._unacked_messages.discard(message)
        return kept

    async def _settle_in_flight(self) -> None:
        """Await the in-flight batch's deliveries, then ack its messages (faust commits them)."""
        submitted, self._in_flight = self._in_flight, None
        if submitted is None:
            return
        await self.settle_batch(submitted)
        ack_all(self.app.consumer, submitted.messages)

    async def process_batch(self, messages: Sequence[Any]) -> None:
        """Pipeline over the batch, then produce everything and await every delivery."""
        submitted = await self.submit_batch(messages)
        if submitted is not None:
            await self.settle_batch(submitted)

    async def submit_batch(self, messages: Sequence[Any]) -> Submitted | None:  # noqa: PLR0915 - one inlined hot loop
        """Pipeline over the batch and hand every output to the producer; the deliveries
        are awaited by :meth:`settle_batch`."""
        if not messages:
            return None
        if time.time_ns() // 1_000_000 >= self.pipeline.next_key_change_ms:
            self._follow_schedule()
        now = time.monotonic()
        cpu0 = time.thread_time()
        if self.counters.first_event is None:
            self.counters.first_event = now
            self.counters.cpu_first = cpu0
        consent_topic = self._consent_topic
        # consent first: a change in this batch applies to this batch's events
        ordered = [m for m in messages if m.topic == consent_topic]
        if ordered:
            ordered += [m for m in messages if m.topic != consent_topic]
        else:
            ordered = list(messages)
        process = self.pipeline.process
        logical = self._logical
        consent = self.consent
        devices = self.devices
        sends: list[Send] = []
        out_topics = self._out_topics
        routed = quarantined = suppressed = 0
        reasons_q: Counter[str] = Counter()
        reasons_s: Counter[str] = Counter()
        pseudonyms: Counter[str] = Counter()
        prefixes = self._pseudonym_prefix
        last_seen = self._last_seen
        ad_route = Route.AD_ANALYTICS
        ad_records: list[tuple[int, str, bytes]] = []
        event_times: list[int] = []
        canary = self.canary
        countdown = canary.countdown  # inputs until the leak canary's next sample
        for message in ordered:
            topic = message.topic
            value: bytes | None = message.value
            last_seen[message.tp] = message.offset
            if topic == consent_topic:
                consent.partition = message.partition
            devices.partition = message.partition  # links live in the user's partition
            outcome = process(
                value if value is not None else b"",
                SourceRef(logical.get(topic, topic), message.partition, message.offset),
                message.key,
            )
            countdown -= 1
            if not countdown:
                countdown = canary.check(
                    value or b"",
                    outcome.records,
                    SourceRef(topic, message.partition, message.offset),
                )
            for record in outcome.records:
                key = record.key.encode() if record.key is not None else None
                sends.append((out_topics[record.route], key, record.value, record.headers or None))
                if record.route is ad_route:
                    ad_records.append((message.partition, topic, record.value))
                domain_prefix = prefixes.get(record.route)
                if domain_prefix is not None:
                    pseudonyms[domain_prefix[0]] += record.value.count(domain_prefix[1])
            if outcome.event_time is not None:
                event_times.append(outcome.event_time)
            if outcome.quarantined:
                quarantined += 1
                reasons_q[outcome.quarantined] += 1
            elif outcome.suppressed:
                suppressed += 1
                reasons_s[outcome.suppressed] += 1
            else:
                routed += 1
        if devices.pending:  # links and erased identifiers ride with the batch too
            consent.pending += devices.pending
            devices.pending.clear()
        canary.countdown = countdown
        if self.ad_stats is not None:  # state changes and closed windows ride with the batch
            self.ad_stats.add(ad_records)
            stats_sends, stats_changelog = self.ad_stats.flush(*self._partitions_read())
            sends += stats_sends
            consent.pending += stats_changelog
        t1 = time.monotonic()
        cpu1 = time.thread_time()
        futures, topics_out = await self._send(sends, consent.pending)
        cpu = self.counters.cpu
        cpu["pipeline"] += cpu1 - cpu0
        cpu["produce"] += time.thread_time() - cpu1
        self.counters.seconds["pipeline"] += t1 - now
        self.counters.seconds["deliver"] += time.monotonic() - t1
        tallies = Counter(
            {
                "in": len(ordered),
                "routed": routed,
                "quarantined": quarantined,
                "suppressed": suppressed,
                "batches": 1,
            }
        )
        return Submitted(
            ordered,
            topics_out,
            futures,
            tallies,
            reasons_q,
            reasons_s,
            pseudonyms,
            event_times,
            now,
        )

    async def settle_batch(self, submitted: Submitted) -> None:
        """Await the batch's deliveries (a failure ends the process), then count it."""
        t1 = time.monotonic()
        cpu1 = time.thread_time()
        await self._await_deliveries(submitted.futures)
        t2 = time.monotonic()
        self.counters.seconds["deliver"] += t2 - t1
        self.counters.counts.update(submitted.tallies)  # "in" counts acknowledged input
        self.counters.last_event = t2
        self._stats_dirty = True
        self._record_metrics(submitted, t2 - submitted.started)
        self.counters.cpu_last = cpu2 = time.thread_time()
        self.counters.cpu["settle"] += cpu2 - cpu1

    def _record_metrics(self, submitted: Submitted, seconds: float) -> None:
        """Per batch, after the deliveries were acknowledged (docs/operations.md)."""
        messages = submitted.messages
        self.metrics.record_batch(
            topics_in=Counter(m.topic for m in messages),
            topics_out=submitted.topics_out,
            quarantined=submitted.quarantined,
            suppressed=submitted.suppressed,
            pseudonyms=submitted.pseudonyms,
            seconds=seconds,
            acked=time.time(),
            event_times_ms=submitted.event_times,
            record_stamps=[m.timestamp for m in messages if m.timestamp],
        )

    def _partitions_read(self) -> tuple[set[int], set[tuple[int, str]]]:
        """Partitions this worker holds, and the (partition, topic) pairs read to their
        high-water mark (no backlog), for the ad statistics' watermarks."""
        consumer = self.app.consumer
        assigned: set[int] = set()
        caught_up: set[tuple[int, str]] = set()
        for tp in self._assigned_sources():
            assigned.add(tp.partition)
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # no fetch yet: not known to be read to its end
                highwater = None
            last = self._last_seen.get(tp)
            if highwater == 0 or (highwater and last is not None and last + 1 >= highwater):
                caught_up.add((tp.partition, tp.topic))
        return assigned, caught_up

    async def _close_idle_ad_stats(self) -> None:
        """Every second: publish the windows of shards that went idle (wall clock)."""
        app = self.app
        if self.ad_stats is None or app.rebalancing or app.should_stop:
            return  # stopping: the producer may be gone, and a failed delivery exits 75
        if getattr(app.tables.recovery, "in_recovery", False):
            return
        sends, changelog = self.ad_stats.flush(*self._partitions_read())
        if sends or changelog:
            futures, _ = await self._send(sends, changelog)
            await self._await_deliveries(futures)
            self._stats_dirty = True

    def _start_progress_watch(self) -> None:
        s = self.settings
        self.progress = ProgressWatch(s.stall_ready_seconds, s.stall_exit_seconds)
        self.app.timer(1.0, name="pseudostream.progress")(self._watch_progress)
        self._test_stall = _test_stall_partition(os.environ.get(TEST_STALL_ENV))
        self._fetch_rounds = 0  # turns of the fast path's fetch loop

    def _fetch_round(self) -> None:
        self._fetch_rounds += 1

    async def _watch_progress(self) -> None:
        """Every second: is an assigned partition, or a table recovery, behind its end and
        not moving? Such a worker heartbeats and holds its partitions forever unless
        something notices: after ``stall_ready_seconds`` it is not ready and counted, after
        ``stall_exit_seconds`` it exits (code 70) for its supervisor to restart it."""
        app = self.app
        if app.should_stop:
            return
        recovery = app.tables.recovery
        if getattr(recovery, "in_recovery", False):  # the sources wait for it: watch it
            offsets, highwaters = recovery.active_offsets, recovery.active_highwaters
            watched = {
                f"recovery {tp.topic}[{tp.partition}]": Watched(offsets[tp], highwaters[tp])
                for tp in highwaters
            }
        else:
            watched = {}
            for offsets in self.partition_offsets():
                end = partition_end(offsets)
                if end is None:
                    continue
                handled = -1 if offsets.last_seen is None else offsets.last_seen
                position = max(offsets.committed or 0, handled + 1)
                watched[f"{offsets.topic}[{offsets.partition}]"] = Watched(position, end, 1)
            if self.settings.fast_path and self._assigned_sources() and not app.rebalancing:
                # the fetch loop itself must turn (a fetch waits 1 s at most) while this worker
                # holds input partitions: a loop that stopped sees no new end offsets either
                rounds = self._fetch_rounds
                watched["fetch loop"] = Watched(rounds, rounds + 1)
        progress = self.progress
        progress.observe(time.monotonic(), watched)
        self.metrics.stalled.set(len(progress.stalls))
        for stall in progress.newly_stalled():
            self.metrics.stalls.inc()
            log.error(
                "stalled: %s is %d records behind and has not moved for %.0fs; not ready",
                stall.name,
                stall.behind,
                stall.seconds,
            )
        if progress.should_exit:
            log.critical(
                "stalled for %.0fs or more: exiting (code %d) so that the supervisor restarts"
                " this worker; nothing unacknowledged is committed",
                self.settings.stall_exit_seconds,
                EXIT_STALLED,
            )
            self._exit_now(EXIT_STALLED)

    # -- what the metrics and /ready read (processor.ops.metrics.WorkerView) ---------------

    def consent_table_size(self) -> int:
        return len(self.consent)

    def active_key_ids(self) -> dict[str, str]:
        from keys import Domain

        active = {str(d): p.key_id for d, p in self.pipeline.pseudonymizers.items()}
        active[str(Domain.QUARANTINE)] = self._keyring.active(Domain.QUARANTINE).key_id
        return active

    def pipeline_stats(self) -> Mapping[str, int]:
        return self.pipeline.stats

    def key_ages(self) -> list[KeyAge]:
        from keys import Domain

        schedule = self._keyring.schedule
        ages = []
        for domain in (*self.pipeline.pseudonymizers, Domain.QUARANTINE):
            key = (
                self._keyring.active(domain)
                if domain is Domain.QUARANTINE
                else self.pipeline.key_in_force(domain)
            )
            period = schedule.period_s if schedule and schedule.domain == domain else None
            ages.append(KeyAge(str(domain), key.created_at.timestamp(), period))
        return ages

    def pseudonym_cache(self) -> dict[str, tuple[int, int]]:
        return {str(d): (p.misses, p.computed) for d, p in self.pipeline.pseudonymizers.items()}

    def _assigned_sources(self) -> set[Any]:
        sources = set(self.settings.input_topics.values())
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # not started yet
            return set()
        return {tp for tp in assigned if tp.topic in sources}

    def partition_offsets(self) -> list[PartitionOffsets]:
        consumer = self.app.consumer
        committed_offsets = consumer._committed_offset
        result = []
        for tp in self._assigned_sources():
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # no fetch yet
                highwater = None
            result.append(
                PartitionOffsets(
                    tp.topic,
                    tp.partition,
                    committed_offsets.get(tp),
                    highwater,
                    self._last_seen.get(tp),
                )
            )
        return result

    def readiness(self) -> dict[str, bool]:
        """/ready: keyring loaded, topics present, partitions assigned and recovered, and
        none of them stalled (:meth:`_watch_progress`)."""
        app = self.app
        recovering = bool(getattr(app.tables.recovery, "in_recovery", False))
        return {
            "keyring_loaded": bool(self.pipeline.pseudonymizers),
            "topics_present": self.topics_present and self._topics_known(),
            "partitions_assigned": bool(self._assigned_sources())
            and not app.rebalancing
            and not recovering,
            "progressing": not self.progress.stalls,
        }

    def _topics_known(self) -> bool:
        """The inputs and the changelog are in the client's cluster metadata. Every member
        has that metadata; faust's ``topic_partitions`` reads the group coordinator's
        snapshot, which only the group leader fills (it made /ready fail on every other
        worker)."""
        names = [*self.settings.input_topics.values(), self.settings.changelog_topic]
        try:
            client = self.app.consumer._thread._ensure_consumer()
        except Exception:  # consumer not started yet
            return False
        return all(client.partitions_for_topic(name) for name in names)

    async def _send(
        self,
        sends: list[Send],
        changelog: list[ChangelogEntry],
    ) -> tuple[list[Awaitable[Any]], Counter[str]]:
        """Hand every record to the buffered aiokafka producer (:class:`_Appender`); returns
        the delivery futures, one per producer batch, and the records sent per topic.

        Keyed records get their partition here, from a cache of the murmur2 hash aiokafka's
        default partitioner computes in pure Python (5-6 % of the worker's CPU in the
        profile; the same keys recur for every event of a user or device); records without
        a key get a random partition, as aiokafka's partitioner gives them. Changelog records
        carry their partition (the shard's)."""
        from aiokafka.structs import TopicPartition

        producer = self.app.producer._ensure_producer()  # the aiokafka producer
        appender = _Appender(producer)
        append = appender.append
        hash_of = _key_hash
        choice = random.choice  # spreads keyless records, as aiokafka's partitioner does
        partitions: dict[str, list[TopicPartition]] = {}

        async def partitions_of(topic: str) -> list[TopicPartition]:
            await producer.client._wait_on_metadata(topic)
            ids = sorted(producer.client.cluster.partitions_for_topic(topic))
            partitions[topic] = [TopicPartition(topic, i) for i in ids]
            return partitions[topic]

        try:
            for topic, log_key, log_value, partition in changelog:
                tps = partitions.get(topic) or await partitions_of(topic)
                # no partition known: where the default partitioner puts the key
                index = hash_of(log_key) % len(tps) if partition is None else partition
                await append(tps[index], log_key, log_value, None)
            changelog.clear()
            for topic, key, value, headers in sends:
                tps = partitions.get(topic) or await partitions_of(topic)
                await append(
                    choice(tps) if key is None else tps[hash_of(key) % len(tps)],
                    key,
                    value,
                    headers,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._delivery_failed(exc)
        topics_out = Counter(send[0] for send in sends)
        self.counters.counts.update({"out:" + topic: n for topic, n in topics_out.items()})
        return appender.futures(), topics_out

    async def _await_deliveries(self, futures: Sequence[Awaitable[Any]]) -> None:
        try:
            await asyncio.gather(*futures)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._delivery_failed(exc)

    def _delivery_failed(self, exc: Exception) -> None:
        log.critical(
            "delivery failed (%s): exiting without committing this batch", type(exc).__name__
        )
        count_delivery_failure(self.settings.data_dir)
        self._exit_now(EXIT_DELIVERY_FAILED)

    def _exit_now(self, code: int) -> NoReturn:
        """End the process at once, committing nothing more: the stats file and the logs
        are written first; faust's shutdown would ack what is in flight."""
        self.write_stats()
        logging.shutdown()
        os._exit(code)

    # -- stats and lifecycle ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        snap = self.counters.snapshot(self.pipeline.stats)
        snap["consent_table_size"] = len(self.consent)
        snap["device_link_users"] = len(self.devices)
        snap["erased_identifiers"] = self.devices.erased_count
        if self.ad_stats is not None:
            snap["ad_stats"] = dict(self.ad_stats.counts)
        return snap

    async def _flush_stats(self) -> None:
        if self._stats_dirty:
            self._stats_dirty = False
            self.write_stats()

    def write_stats(self) -> None:
        path = self.settings.stats_file
        if path is None:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(self.stats(), option=orjson.OPT_INDENT_2))
        tmp.replace(path)

    async def _on_shutdown(self, app: Any, *args: Any, **kwargs: Any) -> None:
        # the fast path's last batch: acked now, so faust commits it and stops waiting for it
        await self._settle_in_flight()
        await self.devices.stop()
        self.write_stats()
        c = self.counters.counts
        log.info(
            "stopped: in=%s routed=%s quarantined=%s suppressed=%s",
            c["in"],
            c["routed"],
            c["quarantined"],
            c["suppressed"],
        )

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        import faust

        worker = faust.Worker(
            self.app, loglevel=self.settings.log_level.upper(), quiet=True, override_logging=False
        )  # logging is ours: JSON lines (setup_logging, processor.ops.logs)
        worker.spinner = None  # the spinner sets the root logger to DEBUG (DESIGN.md)
        if self.settings.stats_interval > 0:
            interval = self.settings.stats_interval

            async def _log_stats() -> None:
                self.write_stats()
                c = self.counters.counts
                log.info(
                    "in=%s routed=%s quarantined=%s suppressed=%s",
                    c["in"],
                    c["routed"],
                    c["quarantined"],
                    c["suppressed"],
                )

            self.app.timer(interval, name="pseudostream.stats_log")(_log_stats)

        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0) if not isinstance(exc.code, str) else 1
        return 0


DELIVERY_FAILURES_FILE = "delivery-failures"


def delivery_failures(data_dir: Path) -> int:
    """How many earlier runs on ``data_dir`` ended with a failed delivery (exit 75): the
    process is gone before Prometheus could scrape a counter, so the next run exports it."""
    try:
        return int((data_dir / DELIVERY_FAILURES_FILE).read_text() or 0)
    except (OSError, ValueError):
        return 0


def count_delivery_failure(data_dir: Path) -> None:
    with contextlib.suppress(OSError):  # exiting anyway; the log line says why
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / DELIVERY_FAILURES_FILE).write_text(str(delivery_failures(data_dir) + 1))


def _test_stall_partition(value: str | None) -> tuple[str, int] | None:
    """The test seam's ``topic:partition`` (:data:`TEST_STALL_ENV`), or None."""
    if not value:
        return None
    topic, _, partition = value.rpartition(":")
    log.warning("test seam %s: dropping the records of %s unhandled", TEST_STALL_ENV, value)
    return topic, int(partition)


def load_keyring(settings: Settings) -> Keyring:
    from keys import load_keyring_from

    environ = dict(os.environ)
    if settings.master_key is not None:
        environ["PSEUDOSTREAM_MASTER_KEY"] = settings.master_key.reveal()
    keyring: Keyring = load_keyring_from(
        settings.require_keyring(), settings.master_key_file, environ
    )
    return keyring


def load_locator(settings: Settings) -> Locator:
    """The offline geo lookup: shipped GPS boundaries and Chinese IP data, plus the configured
    IP databases."""
    from processor.pipeline.geo import build_locator

    return build_locator(
        settings.geo_city_db, settings.geo_ip2region_db, shipped_ip=settings.geo_shipped_ip
    )


def prepare_topics(settings: Settings) -> list[str]:
    """Create the missing topics with the configured partition counts, cleanup policy and
    retention (docs/privacy.md, "Retention"); returns those created. Existing topics keep
    their configuration (change it with the cluster's tools)."""
    from processor.kafka.topics import TopicSpec, bootstrap_servers, create_topics

    s = settings

    def deleted_after(days: float) -> tuple[tuple[str, str], ...]:
        return (("cleanup.policy", "delete"), ("retention.ms", s.retention_ms(days)))

    # state: the latest record per key is kept for good (a consent, a deletion, a link)
    state = (("cleanup.policy", "compact"), ("retention.ms", "-1"))
    out = s.output_topics
    specs = [
        TopicSpec(
            s.input_topics["raw.behaviour"],
            s.partitions,
            configs=deleted_after(s.raw_retention_days),
        ),
        TopicSpec(
            s.input_topics["raw.device"], s.partitions, configs=deleted_after(s.raw_retention_days)
        ),
        TopicSpec(s.input_topics[CONSENT_SOURCE], s.partitions, configs=state),
        TopicSpec(s.changelog_topic, s.partitions, configs=state),
        # a user's links are rewritten at least every half retention while seen: older
        # segments hold only expired links
        TopicSpec(
            s.devices_changelog_topic,
            s.partitions,
            configs=(
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", s.retention_ms(s.device_link_retention_days)),
            ),
        ),
        TopicSpec(s.erased_topic, s.partitions, configs=state),
        *(
            TopicSpec(
                out[route], s.output_partitions, configs=deleted_after(s.clean_retention_days)
            )
            for route in (Route.RECOMMENDATION, Route.AD_ANALYTICS)
        ),
        *(
            TopicSpec(
                out[route], s.output_partitions, configs=deleted_after(s.erasure_retention_days)
            )
            for route in (Route.ERASURE_RECOMMENDATION, Route.ERASURE_AD_ANALYTICS)
        ),
        TopicSpec(
            out[Route.QUARANTINE],
            s.output_partitions,
            configs=deleted_after(s.quarantine_retention_days),
        ),
    ]
    if s.ad_stats_enabled:
        specs += [
            TopicSpec(
                s.ad_stats_topic,
                s.output_partitions,
                configs=deleted_after(s.ad_stats_retention_days),
            ),
            TopicSpec(s.ad_stats_changelog_topic, s.partitions, configs=state),
        ]
    return create_topics(
        bootstrap_servers(s.broker),
        specs,
        replication_factor=s.replication_factor,
        client_options=s.kafka_python_options(),
        max_message_bytes=request_bytes(s.max_record_bytes),  # quarantine records fit
    )


def run(settings: Settings) -> int:
    """``pseudostream worker``: check keys and topics, then run the faust worker."""
    keyring = load_keyring(settings)
    if settings.ad_stats_enabled:  # refuse before touching the broker
        check_schedule_fits_windows(keyring.schedule, settings.ad_stats_window)
    locator = load_locator(settings)
    if settings.create_topics:
        created = prepare_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        stream_worker = StreamWorker(settings, keyring, locator)
        append_audit(
            "worker_start",
            app_id=settings.app_id,
            key_ids=[k.key_id for k in keyring],
            policy=stream_worker.pipeline.policy.summary(),
        )
        # with create_topics they were created or checked above; else /ready relies on the
        # consumer's metadata for the inputs and the changelog
        stream_worker.topics_present = True
        return stream_worker.run()
    return 0


__all__ = [
    "Counters",
    "StreamWorker",
    "TableConsentState",
    "prepare_topics",
    "run",
    "setup_logging",
    "table_key_function",
]


def setup_logging(level: str) -> None:
    """JSON lines on stderr at ``level`` (:mod:`processor.ops.logs`); the noisy client
    libraries at WARNING or above."""
    from processor.ops.logs import configure

    configure(level)
