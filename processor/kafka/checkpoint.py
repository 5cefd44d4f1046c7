"""The at-least-once protocol, in one class: an input offset is committed only after every
record it caused was acknowledged by the broker.

For each batch of input messages (:class:`Checkpoint`):

1. **submit**: the batch's outputs and state-changelog records are handed to the producer
   (:class:`processor.kafka.produce.Producer`), collecting one delivery future per producer
   batch. The batch is now *in flight*; its messages are in faust's unacked set, so a
   rebalance or a stop waits for them.
2. **settle**: the in-flight batch's futures are awaited. A failed delivery ends the process
   at once (exit 75) without acking: nothing of the batch is committed, and the next owner
   of its partitions reads it again.
3. **ack**: the batch's messages are acked in faust's consumer (:func:`ack_all`), in order,
   after their deliveries.
4. **commit**: faust's commit loop commits acked offsets every ``commit_interval`` seconds,
   and the fetch loop commits as soon as ``broker_commit_every`` messages were acked since
   the last commit (:meth:`Checkpoint.commit_due`).

The fast path pipelines by one batch: a batch is submitted, then the one before it settled
and acked, so acks wait while the next batch is produced instead of stalling the loop
(measured: 120 ms per batch of 2,000 on Tansu). Acks still follow the deliveries.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, cast

from processor.kafka.produce import ChangelogEntry, Producer
from processor.pipeline.outcome import Send

if TYPE_CHECKING:
    from faust.transport.drivers.aiokafka import Consumer
    from faust.types import TP, AppT, Message

log = logging.getLogger("pseudostream.worker")


class Submitted(NamedTuple):
    """A batch whose outputs were handed to the producer, not yet acknowledged."""

    messages: Sequence[Message]
    futures: list[Awaitable[Any]]
    tallies: Counter[str]  # what to count once delivered (processor.kafka.statsfile.Counters)
    event_times: list[int]  # of the valid events, ms, for the latency metric
    started: float


def faust_consumer(app: AppT) -> Consumer:
    """The app's consumer as what it is, faust's aiokafka driver (``AppT`` types it as the
    abstract ``ConsumerT``, without the state read here)."""
    return cast("Consumer", app.consumer)


def ack_all(consumer: Consumer, messages: Sequence[Message]) -> None:
    """faust's ``Consumer.ack`` for every message of a batch, step for step (a unit test
    holds it to faust's own), but under faust's ack lock once and waking a commit that
    waits for acks once, instead of per message (~2.5 µs of the worker's CPU per event)."""
    from faust.types.tuples import ack_lock
    from mode.utils.futures import notify

    # faust's ack state (Consumer.ack reads and writes the same names; the contract test
    # tests/unit/test_worker_parts.py compares the two)
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    committed = consumer._committed_offset  # noqa: SLF001 - Consumer.ack's state, per message
    acked_index = consumer._acked_index  # noqa: SLF001 - Consumer.ack's state
    acked = consumer._acked  # noqa: SLF001 - Consumer.ack's state
    discard = consumer._unacked_messages.discard  # noqa: SLF001 - Consumer.ack's state
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
            consumer._n_acked += newly  # noqa: SLF001 - what broker_commit_every counts
            notify(consumer._waiting_for_ack)  # noqa: SLF001 - wakes a commit waiting for acks


def forget(consumer: Consumer, messages: Sequence[Message]) -> None:
    """Take messages that will never be acked out of faust's unacked set (a rebalance or a
    stop waits for that set to empty): stale ones, or a batch that failed to submit."""
    discard = consumer._unacked_messages.discard  # noqa: SLF001 - the set the fetch loop adds to (processor.kafka.consumer)
    for message in messages:
        discard(message)


class Checkpoint:
    """Submit, settle, ack, commit (the module's docstring says how)."""

    def __init__(
        self,
        consumer: Callable[[], Consumer],
        producer: Producer,
        on_delivery_failure: Callable[[BaseException], NoReturn],
        commit_every: int | None = None,
    ) -> None:
        self._consumer = consumer  # faust makes its consumer lazily
        self._producer = producer
        self._failed = on_delivery_failure
        self.commit_every = commit_every
        self.in_flight: Submitted | None = None

    async def submit(
        self, sends: list[Send], changelog: list[ChangelogEntry]
    ) -> tuple[list[Awaitable[Any]], Counter[str]]:
        """Hand every record to the producer (``changelog`` is emptied); returns the
        delivery futures and the output records per topic. A failure to hand over is a
        failed delivery."""
        try:
            sent = await self._producer.send(sends, changelog)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
        changelog.clear()
        return sent

    async def settle(self, futures: Sequence[Awaitable[Any]]) -> None:
        """Await deliveries; a failure ends the process (``on_delivery_failure``)."""
        try:
            await asyncio.gather(*futures)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)

    def hold(self, submitted: Submitted | None) -> Submitted | None:
        """Make ``submitted`` the batch in flight; returns the one before it (to settle)."""
        previous, self.in_flight = self.in_flight, submitted
        return previous

    def take_in_flight(self) -> Submitted | None:
        submitted, self.in_flight = self.in_flight, None
        return submitted

    def ack(self, messages: Sequence[Message]) -> None:
        ack_all(self._consumer(), messages)

    def forget(self, messages: Sequence[Message]) -> None:
        forget(self._consumer(), messages)

    async def drop_stale(self, stale: Sequence[Message]) -> None:
        """Records fetched before a rebalance, not processed: out of the unacked set, and
        every partition this worker still holds put back to its first stale record, or to
        its committed offset if that is further. The rebalance's own seek does not cover
        it: aiokafka's seek to the committed offsets leaves a partition without one where
        it was, past these records, and they were never read again (found by a restart
        with input on several partitions during the join: the new worker stalled 2 records
        short, 2 runs in 6)."""
        consumer = self._consumer()
        forget(consumer, stale)
        first: dict[TP, int] = {}
        for message in stale:
            first[message.tp] = min(first.get(message.tp, message.offset), message.offset)
        try:
            assigned = consumer.assignment()
        except Exception:  # not started or stopping: nothing to put back
            return
        committed = consumer._committed_offset  # noqa: SLF001 - faust keeps the committed offsets it read or wrote, with no public getter
        for tp, offset in first.items():
            if tp not in assigned:
                continue  # revoked: its new owner reads from the committed offset
            target = max(offset, committed.get(tp) or 0)
            try:
                await consumer.seek(tp, target)
            except Exception as exc:  # revoked meanwhile: the same as above
                log.warning("could not put %s back to offset %d: %s", tp, target, exc)

    async def commit_due(self) -> None:
        """``broker_commit_every``: commit once that many messages were acked since the
        last commit (faust's own fetch loop does the same per message)."""
        if self.commit_every is None:
            return
        consumer = self._consumer()
        if consumer._n_acked >= self.commit_every:  # noqa: SLF001 - faust's count of acks since the last commit
            consumer._n_acked = 0  # noqa: SLF001 - as faust's fetch loop resets it
            await consumer.commit()
