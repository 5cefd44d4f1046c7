"""Parts of the worker that need no broker: the stats file's CPU split per event, and the
batch ack held to faust's own per-message ack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processor.kafka.checkpoint import ack_all
from processor.kafka.statsfile import Counters, count_delivery_failure, delivery_failures


def test_cpu_split_is_none_before_any_acknowledged_input() -> None:
    counters = Counters()
    assert counters.cpu_us_per_event() is None
    counters.cpu_first = 1.0
    counters.cpu_last = 2.0
    assert counters.cpu_us_per_event() is None  # nothing acknowledged yet
    assert counters.snapshot({})["cpu_us_per_event"] is None


def test_cpu_split_per_event_with_the_rest_as_other() -> None:
    counters = Counters()
    counters.counts["in"] = 1000
    counters.cpu_first, counters.cpu_last = 10.0, 10.1  # 100 ms of the main thread
    counters.cpu.update(pipeline=0.06, produce=0.01, settle=0.005)
    split = counters.cpu_us_per_event()
    assert split == pytest.approx(
        {"pipeline": 60.0, "produce": 10.0, "settle": 5.0, "other": 25.0, "total": 100.0}
    )
    assert counters.snapshot({})["cpu_us_per_event"] == split


def _consumer_and_messages(name: str) -> tuple[Any, list[Any]]:
    """A faust consumer (never started: no broker) that acks topic ``raw``, with a committed
    offset on partition 1, and messages covering every branch of faust's ``ack``."""
    import faust
    from faust.types import TP
    from faust.types.tuples import Message

    app = faust.App(name, broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    app.topics._acking_topics.add("raw")  # what subscribing to it does
    consumer = app.consumer
    consumer._committed_offset[TP("raw", 1)] = 10

    def message(topic: str, partition: int, offset: int) -> Any:
        m = Message(
            topic, partition, offset, 0.0, 0, None, b"k", b"v", None, tp=TP(topic, partition)
        )
        consumer._unacked_messages.add(m)
        return m

    already = message("raw", 0, 2)
    already.acked = True
    messages = [
        message("raw", 0, 0),
        message("raw", 0, 1),
        already,
        message("raw", 0, 1),  # the same offset again
        message("raw", 1, 9),  # below the committed offset
        message("raw", 1, 10),
        message("other", 0, 4),  # a topic without acks
    ]
    return consumer, messages


def _state(consumer: Any, messages: list[Any]) -> tuple[Any, ...]:
    return (
        {tp: list(v) for tp, v in consumer._acked.items()},
        {tp: set(v) for tp, v in consumer._acked_index.items()},
        consumer._n_acked,
        sorted((m.tp, m.offset) for m in consumer._unacked_messages),
        [m.acked for m in messages],
    )


def test_the_batch_ack_leaves_faust_in_the_state_its_own_ack_does() -> None:
    faust_consumer, faust_messages = _consumer_and_messages("ack-faust")
    for m in faust_messages:
        faust_consumer.ack(m)
    ours, our_messages = _consumer_and_messages("ack-ours")
    ack_all(ours, our_messages)
    assert _state(ours, our_messages) == _state(faust_consumer, faust_messages)
    assert ours._n_acked == 3  # (0, 0), (0, 1) and (1, 10)


def test_delivery_failures_are_counted_across_runs_on_the_same_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert delivery_failures(data_dir) == 0
    count_delivery_failure(data_dir)  # creates the directory
    count_delivery_failure(data_dir)
    assert delivery_failures(data_dir) == 2
    (data_dir / "delivery-failures").write_text("garbage")
    assert delivery_failures(data_dir) == 0


def test_gc_tuned_for_batches_freezes_startup_and_raises_the_young_threshold() -> None:
    import gc

    from processor.kafka.worker import YOUNG_GC_THRESHOLD, tune_gc_for_batches

    saved = gc.get_threshold()
    try:
        tune_gc_for_batches()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *saved[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
