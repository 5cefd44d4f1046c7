"""The worker's fetch loop (``BatchConsumer._drain_messages``) across a rebalance, without a
broker: a stand-in for the wait on the consumer thread bumps the consumer generation the way
a rebalance does, and the loop must hand on every record a rebalance does not read again.

The bug these pin: the loop read the generation before the wait, a wait that spans a whole
rebalance, so the first fetch after it was cut to each chunk's first record; a changelog
chunk cut that way stopped table recovery for good."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.types import TP

from processor.kafka.consumer import make_app_class

RAW = TP("raw.behaviour", 0)
CHANGELOG = TP("app-consent-changelog", 1)


def _records(tp: TP, offsets: range) -> list[Any]:
    return [
        ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in offsets
    ]


class _Fetcher:
    def __init__(self) -> None:
        self._stopped = asyncio.Event()


class _Loop:
    """A ``BatchConsumer`` of a never-started app whose fetches come from ``fetches``; each
    entry is called when the loop waits for records and returns them (``None``: stop)."""

    def __init__(self, name: str, batch_size: int = 3) -> None:
        # mode's services run their waits on the loop current when they were made
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.handled: list[tuple[str, int, int]] = []  # topic, offset, generation
        self.changelog: list[int] = []
        self.during_handler: Callable[[], None] = lambda: None

        outer = self

        class Handler:
            async def handle(self, batch: list[Any]) -> None:
                outer.handled += [(m.topic, m.offset, m.generation_id) for m in batch]
                outer.during_handler()

            async def idle(self) -> None:
                pass

            async def fetched(self) -> None:
                pass

        app_class = make_app_class(batch_size, frozenset({RAW.topic}), Handler())
        self.app = app_class(
            name, broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False
        )
        self.app.topics._acking_topics.add(RAW.topic)
        consumer = self.consumer = self.app.consumer
        consumer.highwater = lambda tp: 1_000

        async def on_changelog(message: Any) -> None:
            self.changelog.append(message.offset)

        consumer.callback = on_changelog

    def run(self, fetches: list[Callable[[], dict[TP, list[Any]] | None]]) -> None:
        fetcher = _Fetcher()
        pending = list(fetches)

        async def wait_next_records(timeout: float) -> tuple[Any, Any]:
            if not pending:
                fetcher._stopped.set()
                return None, None
            return pending.pop(0)(), None

        self.consumer._wait_next_records = wait_next_records
        # the consumer's waits run on its own loop, which is not always the one current when
        # it was made (an app built earlier in the process leaves its loop behind)
        loop = self.consumer.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.consumer._drain_messages(fetcher))
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()

    def rebalance(self) -> None:
        """What a rebalance leaves: a new generation (its seeks are the test's to make)."""
        self.app.consumer_generation_id += 1


def test_when_a_rebalance_ends_during_the_wait_then_the_whole_fetch_is_handed_on() -> None:
    loop = _Loop("fetch-loop-wait")

    def after_a_rebalance() -> dict[TP, list[Any]]:
        loop.rebalance()  # the wait on the consumer thread spanned the rebalance
        return {CHANGELOG: _records(CHANGELOG, range(500)), RAW: _records(RAW, range(7))}

    loop.run([after_a_rebalance])
    assert loop.changelog == list(range(500))  # recovery sees every changelog record
    assert [offset for _, offset, _ in loop.handled] == list(range(7))
    assert {generation for *_, generation in loop.handled} == {1}


def test_when_the_generation_changes_mid_chunk_then_the_rest_is_read_again_after_the_seek() -> None:
    loop = _Loop("fetch-loop-mid-chunk", batch_size=3)
    rebalanced = False

    def rebalance_once_with_a_seek_to_offset_1() -> None:
        nonlocal rebalanced
        if not rebalanced:
            rebalanced = True
            loop.rebalance()
            loop.consumer._read_offset[RAW] = 1  # faust's seek to the committed offset

    loop.during_handler = rebalance_once_with_a_seek_to_offset_1
    loop.run(
        [
            lambda: {RAW: _records(RAW, range(10))},
            lambda: {RAW: _records(RAW, range(1, 10))},  # from the sought position
        ]
    )
    first, rest = loop.handled[:3], loop.handled[3:]
    assert [offset for _, offset, _ in first] == [0, 1, 2]  # one batch, then the rebalance
    # every record from the seek on is handed on in the new generation; none is skipped as
    # "already read" because the loop set no read offset after the rebalance's reset
    assert [(offset, generation) for _, offset, generation in rest] == [
        (o, 1) for o in range(1, 10)
    ]


def test_when_a_changelog_callback_spans_a_rebalance_then_its_seek_wins() -> None:
    loop = _Loop("fetch-loop-changelog")
    calls = 0

    async def on_changelog(message: Any) -> None:
        nonlocal calls
        calls += 1
        loop.changelog.append(message.offset)
        if calls == 5:  # recovery restarts: a new generation and a seek back to offset 0
            loop.rebalance()
            loop.consumer._read_offset[CHANGELOG] = None

    loop.consumer.callback = on_changelog
    loop.run(
        [
            lambda: {CHANGELOG: _records(CHANGELOG, range(100))},
            lambda: {CHANGELOG: _records(CHANGELOG, range(100))},
        ]
    )
    assert loop.changelog == [0, 1, 2, 3, 4, *range(100)]


def test_when_a_stale_batch_is_dropped_then_each_partition_still_held_goes_back_to_it(
    tmp_path: Path,
) -> None:
    """Records fetched before a rebalance are not processed; aiokafka's seek to the committed
    offsets leaves a partition without a committed offset where it was, past them, so the
    worker puts each partition it still holds back itself (to the first stale record, or to
    the committed offset if that is further), and none it lost."""
    from faust.types.tuples import Message

    from keys import Keyring, save_keyring
    from processor.kafka.worker import StreamWorker
    from tests.unit.test_keyring_reload import MASTER, settings_for

    path = tmp_path / "keyring.sealed"
    keyring = Keyring.generate()
    save_keyring(path, keyring, MASTER)
    worker = StreamWorker(settings_for(path, tmp_path, ad_stats_enabled="false"), keyring)
    consumer = worker.app.consumer
    held_uncommitted, held_committed, revoked = (TP("raw.behaviour", p) for p in (0, 1, 2))
    consumer._committed_offset[held_committed] = 7

    def message(tp: TP, offset: int) -> Any:
        return Message(
            tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp, generation_id=0
        )

    stale = [message(tp, o) for tp in (held_uncommitted, held_committed, revoked) for o in (3, 4)]
    sought: dict[TP, int] = {}

    async def seek(tp: TP, offset: int) -> None:
        sought[tp] = offset

    consumer.assignment = lambda: {held_uncommitted, held_committed}
    consumer.seek = seek
    worker.app.consumer_generation_id = 1  # a rebalance since the fetch
    asyncio.run(worker.handle(stale))
    assert sought == {held_uncommitted: 3, held_committed: 7}
    assert worker.counters.counts["in"] == 0  # nothing of the old generation was processed


def test_when_recovery_pauses_the_last_active_partitions_mid_fetch_then_none_is_drained() -> None:
    """faust hands the fetch its live set of active partitions, and aiokafka reads an empty
    set as "every partition". Recovery pauses the changelogs when it is done, the sources
    still paused: a fetch waiting then drained the paused sources too, the loop dropped them
    as inactive, and a source partition without a committed offset was never read again (a
    restarted worker fed while it joined processed 2 of 4 records, 2 runs in 3)."""
    loop = _Loop("fetch-loop-paused")
    consumer = loop.consumer
    consumer._set_active_tps({CHANGELOG, RAW})
    consumer.pause_partitions({RAW})  # faust pauses the sources until recovery is done
    buffered = {RAW: _records(RAW, range(2))}  # prefetched by the consumer thread

    class ConsumerThread:
        async def getmany(self, active_partitions: set[TP], timeout: float) -> dict[TP, Any]:
            consumer.pause_partitions({CHANGELOG})  # recovery done during the wait
            # aiokafka's ``fetched_records``: an empty set of partitions means every one
            taken = {
                tp: records
                for tp, records in buffered.items()
                if not active_partitions or tp in active_partitions
            }
            for tp in taken:
                del buffered[tp]
            return taken

    consumer._thread = ConsumerThread()
    try:
        records, _ = consumer.loop.run_until_complete(consumer._wait_next_records(1.0))
    finally:
        asyncio.set_event_loop(None)
        loop.loop.close()
    assert records == {}
    assert [r.offset for r in buffered[RAW]] == [0, 1]  # still there once the source resumes
