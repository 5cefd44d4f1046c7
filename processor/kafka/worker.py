"""The stream worker: a thin adapter that feeds raw Kafka records to the pipeline.

A raw record's way through the worker, in order (docs/worker.md draws it):

1. :mod:`processor.kafka.consumer`: faust's fetch loop, by partition chunk, hands the
   source topics' records to :meth:`StreamWorker.handle` in batches (the fast path); on
   faust's plain path an agent takes them from ``stream.take_events``;
2. :mod:`processor.kafka.batch`: consent records first, then the rest, each through
   ``Pipeline.process`` (:mod:`processor.pipeline.process`) -> one ``Outcome`` -> sends,
   with the tables' changelog entries (:mod:`processor.kafka.tables`);
3. :mod:`processor.kafka.checkpoint`: submit (the producer side,
   :mod:`processor.kafka.produce`), settle, ack, commit: an input offset is committed only
   after its outputs are acknowledged.

The keyring watcher (:mod:`processor.kafka.keywatch`), the stats file
(:mod:`processor.kafka.statsfile`) and what the metrics read
(:mod:`processor.kafka.metricsview`) have their own modules; start-up is
:mod:`processor.kafka.startup`.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, NoReturn, cast

from processor.kafka.adstats import AdStatsTable, check_schedule_fits_windows
from processor.kafka.app import make_app
from processor.kafka.batch import BatchRunner
from processor.kafka.checkpoint import Checkpoint, Submitted, faust_consumer
from processor.kafka.clock import SYSTEM_CLOCK, Clock
from processor.kafka.devicelinks import DeviceLinkTable
from processor.kafka.keywatch import KeyringWatcher
from processor.kafka.metricsview import MetricsView
from processor.kafka.produce import ChangelogEntry, Producer
from processor.kafka.progress import TEST_STALL_ENV, StallWatch, stall_seam_partition
from processor.kafka.recovery import catch_up_after_recovery, in_recovery
from processor.kafka.statsfile import (
    Counters,
    count_delivery_failure,
    delivery_failures,
    write_stats_file,
)
from processor.kafka.tables import TableConsentState, changelog_table, table_key_function
from processor.kafka.topics import CONSENT_SOURCE
from processor.kafka.versions import choose_fast_path
from processor.kafka.web import install_pages
from processor.ops.audit import append_audit
from processor.ops.canary import LeakCanary
from processor.ops.metrics import WorkerMetrics
from processor.ops.settings import Settings
from processor.pipeline.outcome import Send
from processor.pipeline.quarantine import request_bytes

if TYPE_CHECKING:
    from faust.streams import Stream
    from faust.types import Message, StreamT

    from keys import Keyring
    from processor.pipeline.location import Locator
    from processor.pipeline.policy import Policy
    from processor.pipeline.process import Pipeline

log = logging.getLogger("pseudostream.worker")

EXIT_DELIVERY_FAILED = 75
YOUNG_GC_THRESHOLD = 50_000  # net new container objects between young collections


def tune_gc_for_batches() -> None:
    """Before the worker runs. What exists now (imports, faust, the tables, the pipeline,
    the geo data) lives as long as the process: frozen out of the cyclic GC's reach, so its
    full collections, which the caches' growth triggers while a backlog is read, no longer
    walk it each time.

    A batch's objects (messages, outcomes, sends) live for a batch or two: with Python's
    default young-generation threshold (700) they are examined and promoted while still
    alive, and their promotion triggers full collections, which walk every cache. At
    :data:`YOUNG_GC_THRESHOLD` most of them are gone by the time a young collection runs
    (inside the worker over a 100,000-event bench e2e backlog: GC 0.5 -> 0.08 s of CPU, a
    young collection every few seconds). Cycles are still collected, in larger, rarer steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


class StreamWorker:
    """Builds the faust app, its tables and the pipeline, and runs them."""

    def __init__(
        self,
        settings: Settings,
        keyring: Keyring,
        locator: Locator | None = None,
        *,
        policy: Policy | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = s = settings
        self.keyring = keyring
        self.clock = clock
        self.fast_path = choose_fast_path(s.fast_path)
        self.app = make_app(s, self if self.fast_path else None)
        self.counters = Counters(clock.monotonic)
        self.view = MetricsView(self)
        self.table = changelog_table(self.app, "consent", s.changelog_topic, s.partitions)
        key_of = table_key_function(keyring)
        self.consent = TableConsentState(self.table, key_of, s.changelog_topic)
        self.devices = DeviceLinkTable(self.app, s, key_of)
        self.app.timer(1.0, name="pseudostream.erased")(self.devices.follow_erased)
        self.ad_stats: AdStatsTable | None = None
        if s.ad_stats_enabled:  # docs/stats.md
            check_schedule_fits_windows(keyring.schedule, s.ad_stats_window)
            self.ad_stats = AdStatsTable(self.app, s, clock)
            self.app.timer(1.0, name="pseudostream.ad_stats")(self._close_idle_ad_stats)
        catch_up_after_recovery(self.app, s, clock, self.consent, self.devices, self.ad_stats)
        self.pipeline = self._pipeline(locator, policy)
        self.source = self.app.topic(
            *s.input_topics.values(),
            key_serializer="raw",
            value_serializer="raw",
            partitions=s.partitions,
        )
        if self.fast_path:
            self.app.topics.add(self.source)  # subscribe; the consumer hands us the messages
        else:
            self.app.agent(self.source, name="pseudostream.process")(self._agent)
        self.app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]
        self.metrics = WorkerMetrics()
        self.metrics.bind(self.view)
        self.metrics.delivery_failures.inc(delivery_failures(s.data_dir))
        out_topics = dict(s.output_topics)
        self.canary = LeakCanary(
            s.leak_canary_fraction, out_topics, self.metrics, self.pipeline.policy.version
        )
        if s.web_port:
            install_pages(self.app, self.metrics, self.view.readiness)
        producer = Producer(self.app.producer, request_bytes(s.max_record_bytes))
        self.checkpoint = Checkpoint(
            lambda: faust_consumer(self.app), producer, self._delivery_failed, s.broker_commit_every
        )
        self.batches = BatchRunner(
            self.pipeline,
            self.consent,
            self.devices,
            self.canary,
            self.ad_stats,
            {physical: logical for logical, physical in s.input_topics.items()},
            out_topics,
            s.input_topics[CONSENT_SOURCE],
            self.view.last_seen,
            self.view.partitions_read,
        )
        self._stats_dirty = False
        self.app.timer(0.25, name="pseudostream.stats_file")(self._flush_stats)
        self.stalls = StallWatch(
            self.app, s, self.view, self.metrics, clock, self._exit_now, self.fast_path
        )
        self.app.timer(1.0, name="pseudostream.progress")(self.stalls.check)
        self._test_stall = stall_seam_partition(os.environ.get(TEST_STALL_ENV))
        self.keyring_watch = KeyringWatcher(s, self._use_keyring, self._check_keyring)
        if s.keyring is not None and s.keyring_reload_interval > 0:
            self.app.timer(s.keyring_reload_interval, name="pseudostream.keyring_reload")(
                self.keyring_watch.reload_if_changed
            )

    def _pipeline(self, locator: Locator | None, policy: Policy | None) -> Pipeline:
        """The pipeline under ``policy``, else the ``policy`` setting's file (read as
        ``transform --policy`` reads it), else the shipped default."""
        from processor.pipeline.policy import compile_policy
        from processor.pipeline.process import Pipeline

        s = self.settings
        return Pipeline(
            self.keyring,
            consent=self.consent,
            devices=self.devices,
            policy=policy if policy is not None else compile_policy(s.policy),
            clock=self.clock.wall_ms,
            locator=locator,
            max_record_bytes=s.max_record_bytes,
            topic_schemas=s.topic_binding,
            max_key_bytes=s.max_key_bytes,
            device_link_retention_ms=s.device_link_retention_ms,
            max_devices_per_user=s.max_devices_per_user,
            max_text_chars=s.max_text_chars,
        )

    # -- keys -----------------------------------------------------------------------------

    def _follow_schedule(self) -> None:
        """Per batch: swap the scheduled domain's key at its boundary (wall clock)."""
        changed = self.pipeline.follow_schedule(self.clock.wall_ms())
        if changed:
            self.batches.keys_changed()
            append_audit("scheduled_key_switch", app_id=self.settings.app_id, key_ids=changed)
            log.info("scheduled key rotation: now pseudonymizing with %s", ", ".join(changed))

    def _check_keyring(self, keyring: Keyring) -> None:
        if self.ad_stats is not None:
            check_schedule_fits_windows(keyring.schedule, self.settings.ad_stats_window)

    def _use_keyring(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.pipeline.use_keyring(keyring)

    def in_recovery(self) -> bool:
        return in_recovery(self.app)

    # -- the hot path ---------------------------------------------------------------------

    async def _agent(self, stream: StreamT[Any]) -> None:
        """faust's plain path: batches of events from the stream, each settled and acked by
        faust (``take_events`` acks a batch when the next one is asked for)."""
        s = self.settings
        take_events = cast("Stream[Any]", stream).take_events  # what faust hands its agents
        async for events in take_events(s.batch_size, within=s.batch_within):
            await self.process_batch([event.message for event in events])

    async def handle(self, messages: list[Message]) -> None:
        """The fast path (:class:`processor.kafka.consumer.BatchHandler`): messages straight
        from faust's fetch loop, submitted, then the batch before settled and acked."""
        generation = self.app.consumer_generation_id
        current = [m for m in messages if m.generation_id == generation]
        if len(current) != len(messages):  # fetched before a rebalance: not ours to process
            stale = [m for m in messages if m.generation_id != generation]
            await self.checkpoint.drop_stale(stale)
        if self._test_stall is not None:
            current = self._drop_for_test(current)
        try:
            submitted = await self.submit_batch(current)
        except BaseException:
            # not acked, so never committed; forget them so a shutdown does not wait for them
            self.checkpoint.forget(current)
            raise
        previous = self.checkpoint.hold(submitted)
        if previous is not None:
            await self._settle_and_ack(previous)

    async def idle(self) -> None:
        """Nothing new, or a rebalance or stop waits: settle the batch in flight."""
        submitted = self.checkpoint.take_in_flight()
        if submitted is not None:
            await self._settle_and_ack(submitted)

    async def fetched(self) -> None:
        self.stalls.fetch_rounds += 1  # the stall watch sees the loop turn
        await self.checkpoint.commit_due()

    async def _settle_and_ack(self, submitted: Submitted) -> None:
        await self.settle_batch(submitted)
        self.checkpoint.ack(submitted.messages)

    def _drop_for_test(self, messages: list[Message]) -> list[Message]:
        """The test seam (:data:`TEST_STALL_ENV`): the stalled partition's records are
        dropped unhandled and never read again."""
        dropped = [m for m in messages if (m.topic, m.partition) == self._test_stall]
        self.checkpoint.forget(dropped)
        return [m for m in messages if (m.topic, m.partition) != self._test_stall]

    async def process_batch(self, messages: list[Message]) -> None:
        """Pipeline over the batch, then produce everything and await every delivery."""
        submitted = await self.submit_batch(messages)
        if submitted is not None:
            await self.settle_batch(submitted)

    async def submit_batch(self, messages: list[Message]) -> Submitted | None:
        """Pipeline over the batch and hand every output to the producer; the deliveries
        are awaited by :meth:`settle_batch`."""
        if not messages:
            return None
        if self.clock.wall_ms() >= self.pipeline.next_key_change_ms:
            self._follow_schedule()
        counters = self.counters
        now = self.clock.monotonic()
        cpu0 = time.thread_time()
        if counters.first_event is None:
            counters.first_event = now
            counters.cpu_first = cpu0
        done = self.batches.run(messages)
        t1 = self.clock.monotonic()
        cpu1 = time.thread_time()
        futures, sent = await self._submit(done.sends, done.changelog)
        done.tallies.update(sent)
        counters.cpu["pipeline"] += cpu1 - cpu0
        counters.cpu["produce"] += time.thread_time() - cpu1
        counters.seconds["pipeline"] += t1 - now
        counters.seconds["deliver"] += self.clock.monotonic() - t1
        return Submitted(done.messages, futures, done.tallies, done.event_times, now)

    async def _submit(
        self, sends: list[Send], changelog: list[ChangelogEntry]
    ) -> tuple[list[Awaitable[Any]], Counter[str]]:
        """Hand records to the producer; returns the futures and ``out:<topic>`` counts."""
        futures, topics_out = await self.checkpoint.submit(sends, changelog)
        return futures, Counter({"out:" + topic: n for topic, n in topics_out.items()})

    async def settle_batch(self, submitted: Submitted) -> None:
        """Await the batch's deliveries (a failure ends the process), then count it."""
        counters = self.counters
        t1 = self.clock.monotonic()
        cpu1 = time.thread_time()
        await self.checkpoint.settle(submitted.futures)
        t2 = self.clock.monotonic()
        counters.seconds["deliver"] += t2 - t1
        # one count, after the deliveries: the stats file and /metrics both read it
        counters.counts.update(submitted.tallies)
        counters.last_event = t2
        self._stats_dirty = True
        messages = submitted.messages
        self.metrics.record_batch(
            seconds=t2 - submitted.started,
            acked=self.clock.wall_ms() / 1000,
            event_times_ms=submitted.event_times,
            record_stamps=[m.timestamp for m in messages if m.timestamp],
        )
        counters.cpu_last = cpu2 = time.thread_time()
        counters.cpu["settle"] += cpu2 - cpu1

    async def _close_idle_ad_stats(self) -> None:
        """Every second: publish the windows of shards that went idle (wall clock)."""
        app = self.app
        if self.ad_stats is None or app.rebalancing or app.should_stop or self.in_recovery():
            return  # stopping: the producer may be gone, and a failed delivery exits 75
        sends, changelog = self.ad_stats.flush(*self.view.partitions_read())
        if sends or changelog:
            futures, sent = await self._submit(sends, changelog)
            await self.checkpoint.settle(futures)
            self.counters.counts.update(sent)
            self._stats_dirty = True

    # -- failures ----------------------------------------------------------------------

    def _delivery_failed(self, exc: BaseException) -> NoReturn:
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

    # -- stats and lifecycle --------------------------------------------------------------

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
        if self.settings.stats_file is not None:
            write_stats_file(self.settings.stats_file, self.stats())

    async def _on_shutdown(self, app: Any, *args: Any, **kwargs: Any) -> None:
        # the fast path's last batch: acked now, so faust commits it and stops waiting for it
        await self.idle()
        await self.devices.stop()
        self.write_stats()
        log.info("stopped: %s", self.counters.summary())

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        import faust

        worker = faust.Worker(
            self.app, loglevel=self.settings.log_level.upper(), quiet=True, override_logging=False
        )  # logging is ours: JSON lines (processor.ops.logs)
        worker.spinner = None  # the spinner sets the root logger to DEBUG (DESIGN.md)
        if self.settings.stats_interval > 0:

            async def _log_stats() -> None:
                self.write_stats()
                log.info("%s", self.counters.summary())

            self.app.timer(self.settings.stats_interval, name="pseudostream.stats_log")(_log_stats)
        tune_gc_for_batches()
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0) if not isinstance(exc.code, str) else 1
        return 0
