"""The fast path's fetch loop: a faust consumer that hands whole fetches of the source
topics to the worker in batches instead of faust's per-message path (conductor -> channel
queue -> stream -> event, about 6 tasks and 26 callbacks per message).

Everything else stays faust's: the consumer group, rebalancing, the commit loop (it commits
offsets the worker acked), table recovery (changelog messages still go through faust's own
callback), flow control and graceful shutdown.

This module overrides private methods of faust's aiokafka driver (``_drain_messages``,
``_new_consumer_thread``, ``_create_worker_consumer``, ``_new_transport``) and reads its
fetch state. Each use is marked where it is: ``# noqa: SLF001 - why`` on another object's
private name, ``# private: why`` on one the subclass reaches through ``self`` (which ruff's
SLF rule does not flag); tests/unit/test_library_contract.py holds faust to each. :mod:`processor.kafka.versions` runs faust's plain path
instead on a faust or aiokafka version these were not tested with.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from faust.types import TP, AppT, Message
    from faust.types.transports import TransportT
    from mode import Service, ServiceT

log = logging.getLogger("pseudostream.worker")


class BatchHandler(Protocol):
    """What the fetch loop hands its records to (the worker)."""

    async def handle(self, batch: list[Message]) -> None:
        """A batch of source records, in fetch order (``first_topics`` first)."""

    async def idle(self) -> None:
        """A fetch brought nothing new, or a rebalance or stop waits for unacked records."""

    async def fetched(self) -> None:
        """After each turn of the loop (the progress watch; ``broker_commit_every``)."""


def make_app_class(
    batch_size: int,
    batch_topics: frozenset[str],
    handler: BatchHandler,
    fetch_max_wait_ms: int = 50,
    first_topics: frozenset[str] = frozenset(),
) -> type[AppT]:
    """A ``faust.App`` whose consumer hands fetches of ``batch_topics`` to ``handler`` in
    batches of up to ``batch_size`` records."""
    from faust import App
    from faust.transport.drivers import aiokafka as faust_aiokafka

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        # private: faust's only hook on the aiokafka consumer it makes
        def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # faust passes a fixed fetch_max_wait_ms=1500; aiokafka reads it at start()
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # noqa: SLF001 - aiokafka's constructor argument, which faust does not let us set
            return consumer

    class BatchConsumer(faust_aiokafka.Consumer):
        # private: faust's factory for the thread above
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def wait_empty(self) -> None:
            # a rebalance or a stop waits for unacked messages: settle the in-flight batch
            await handler.idle()
            await super().wait_empty()

        # private: the fetch on the consumer thread that faust's _wait_next_records awaits
        async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
            # A copy: faust hands over its live set of active partitions, and aiokafka's
            # ``fetched_records`` reads an empty set as "every partition". When recovery
            # paused the changelogs (the sources still paused) during the wait, the set
            # became empty, the fetch drained the paused sources too, _fetched dropped them
            # as inactive, and the seek to committed offsets left partitions without one past
            # those records: a restarted worker never read them (docs/drills.md).
            if active_partitions is not None:
                active_partitions = set(active_partitions)
            return await super()._getmany(active_partitions, timeout)

        async def _fetched(self, timeout: float) -> tuple[int, list[tuple[TP, list[Any]]]]:
            """faust's ``getmany`` by partition instead of by message: the same checks (flow,
            paused partitions) and end-offset tracking, once per partition of a fetch instead
            of once per message. Returns the consumer generation the records belong to, taken
            *after* the wait: the wait can span a whole rebalance, whose seeks the returned
            records already follow (a generation read before it cut every chunk of the first
            fetch after a rebalance to its first record, and changelog recovery then waited
            for the dropped rest forever)."""
            # private: getmany's wait, without its per-message generator
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
            buffered = self._buffered_partitions  # private: getmany's check, as faust
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
            self, tp: TP, chunk: list[Any], generation: int, batch: list[Message]
        ) -> tuple[list[Message], bool]:
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
            # private: faust's fetch position, which a rebalance resets
            read_offsets = self._read_offset
            r_offset = read_offsets[tp]
            set_read_offset = read_offsets.__setitem__
            to_message = self._to_message  # private: faust's record -> Message, as getmany
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
            track = self._unacked_messages.add  # private: faust's unacked set, as its track_message
            gaps_count = self.app.topics.acks_enabled_for(tp.topic)
            for record in chunk:
                # made here: a message carries the generation it was read in
                message = to_message(tp, record)
                offset = message.offset
                if r_offset is not None:
                    if offset < r_offset:
                        continue  # already read (faust drops these too)
                    if r_offset and offset - r_offset > 1 and gaps_count:
                        # private: compacted gaps, as faust's loop
                        await self._add_gap(tp, r_offset + 1, offset)
                        if self._moved_on(generation):
                            return batch, False
                r_offset = offset
                set_read_offset(tp, offset)
                track(message)
                batch.append(message)
                if len(batch) >= batch_size:
                    await handler.handle(batch)
                    batch = []
                    if self._moved_on(generation):
                        return batch, False
            return batch, True

        # private: faust's fetch loop, replaced
        async def _drain_messages(self, fetcher: ServiceT) -> None:
            """faust's fetch loop (``Consumer._drain_messages``), by partition chunk
            (:meth:`_drain_chunk`) instead of by message, handing the source topics' records
            to ``handler`` in batches."""
            # private: as faust's loop (mode's Service)
            consumer_should_stop = self._stopped.is_set
            fetcher_should_stop = cast("Service", fetcher)._stopped.is_set  # noqa: SLF001 - as faust's loop
            try:
                while not (consumer_should_stop() or fetcher_should_stop()):
                    batch: list[Message] = []
                    await self.sleep(0)
                    if self.should_stop:
                        break
                    generation, chunks = await self._fetched(timeout=1.0)
                    for tp, chunk in chunks:
                        if self._moved_on(generation):
                            break
                        batch, go_on = await self._drain_chunk(tp, chunk, generation, batch)
                        if not go_on:
                            break
                    if batch:
                        await handler.handle(batch)
                    else:  # nothing new: settle the batch still in flight
                        await handler.idle()
                    await handler.fetched()
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
        def _new_transport(self) -> TransportT:  # private: faust's factory for the transport above
            return BatchTransport(self.conf.broker_consumer, self)

    return BatchApp
