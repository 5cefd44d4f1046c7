"""Every private name of faust, mode and aiokafka the worker uses, held to the installed
library without a broker: each test fails when an upgrade renames, re-types or changes
the part (processor/kafka/versions.py lists the versions these passed on; the worker runs
faust's plain path on any other). The batch ack's contract is
tests/unit/test_worker_parts.py (it compares the whole ack state with faust's own ack)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

APP_ID = "library-contract"


@pytest.fixture
def app() -> Iterator[Any]:
    import faust

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield faust.App(APP_ID, broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_overridden_faust_factories_keep_their_names_and_signatures() -> None:
    from faust import App
    from faust.transport.drivers import aiokafka as driver

    assert _parameters(App._new_transport) == ["self"]
    assert driver.Transport.Consumer is driver.Consumer  # what BatchTransport replaces
    assert _parameters(driver.Consumer._new_consumer_thread) == ["self"]
    assert _parameters(driver.AIOKafkaConsumerThread._create_worker_consumer) == [
        "self",
        "transport",
    ]
    drain = driver.Consumer._drain_messages
    assert inspect.iscoroutinefunction(drain)
    assert _parameters(drain) == ["self", "fetcher"]
    getmany = driver.Consumer._getmany  # BatchConsumer hands it a copy of the active set
    assert inspect.iscoroutinefunction(getmany)
    assert _parameters(getmany) == ["self", "active_partitions", "timeout"]


def test_the_aiokafka_consumer_keeps_fetch_max_wait_ms_where_start_reads_it() -> None:
    from aiokafka import AIOKafkaConsumer

    async def made() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=1500)

    assert asyncio.run(made())._fetch_max_wait_ms == 1500
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_the_fetch_state_the_loop_reads_is_on_a_new_consumer(app: Any) -> None:
    consumer = app.consumer
    assert consumer._read_offset[TP("t", 0)] is None  # a defaultdict of None
    assert consumer._committed_offset[TP("t", 0)] is None
    assert consumer._buffered_partitions == set()
    assert len(consumer._unacked_messages) == 0
    assert hasattr(consumer._unacked_messages, "add")
    assert hasattr(consumer._unacked_messages, "discard")
    assert consumer._n_acked == 0
    assert not consumer._stopped.is_set()
    wait = type(consumer)._wait_next_records
    assert inspect.iscoroutinefunction(wait)
    assert _parameters(wait) == ["self", "timeout"]


def test_to_message_makes_a_message_of_the_current_generation(app: Any) -> None:
    tp = TP("raw", 3)
    record = ConsumerRecord("raw", 3, 17, 1_000, 0, b"k", b"v", None, 1, 1, ())
    app.consumer_generation_id = 4
    message = app.consumer._to_message(tp, record)
    assert (message.topic, message.partition, message.offset) == ("raw", 3, 17)
    assert (message.key, message.value, message.generation_id) == (b"k", b"v", 4)
    assert message.tp == tp
    assert message.timestamp == 1.0


def test_add_gap_records_a_compacted_gap_above_the_committed_offset(app: Any) -> None:
    consumer = app.consumer
    tp = TP("raw", 0)
    consumer._committed_offset[tp] = 5
    asyncio.get_event_loop().run_until_complete(consumer._add_gap(tp, 3, 9))
    assert [(i.begin, i.end) for i in consumer._gap[tp]] == [(6, 10)]


def test_the_consumer_thread_and_the_producer_refuse_before_they_started(app: Any) -> None:
    from faust.exceptions import ConsumerNotStarted, NotReady

    with pytest.raises(ConsumerNotStarted):
        app.consumer._thread._ensure_consumer()
    with pytest.raises(NotReady):
        app.producer._ensure_producer()


def test_the_hot_path_reads_and_writes_the_dict_inside_faust_memory_store(app: Any) -> None:
    """``store_dict`` relies on faust's memory store keeping its entries in ``.data``: a
    write through either is seen by the other (recovery writes the store, the batch path
    the dict)."""
    from processor.kafka.tables import memory_store, store_dict

    store = memory_store(app.Table("t", partitions=1))
    plain = store_dict(store)
    assert type(plain) is dict
    plain[("cell", 0)] = 3
    store[("cell", 1)] = 4
    assert store.get(("cell", 0)) == 3 and plain[("cell", 1)] == 4


def test_the_memory_store_drops_keys_of_partitions_it_no_longer_holds(app: Any) -> None:
    """The worker writes the store and its ``_key_partition`` map directly
    (processor.kafka.tables.key_partitions); faust must keep dropping a revoked
    partition's keys by that map after a rebalance."""
    from processor.kafka.tables import apply_to_store, changelog_table, memory_store

    table = changelog_table(app, "contract", "contract-changelog", 4)
    store = memory_store(table)
    apply_to_store(store, "kept", {"v": 1}, 1)
    apply_to_store(store, "revoked", {"v": 2}, 2)
    apply_to_store(store, "deleted", {"v": 3}, 1)
    apply_to_store(store, "deleted", None, 1)
    assert store._key_partition == {"kept": 1, "revoked": 2}
    asyncio.get_event_loop().run_until_complete(
        store.on_recovery_completed({TP("contract-changelog", 1)}, set())
    )
    assert dict(store.data) == {"kept": {"v": 1}}
    assert store._key_partition == {"kept": 1}


def test_ack_notifies_through_waiting_for_ack(app: Any) -> None:
    """``ack_all`` wakes a commit that waits for acks the way ``Consumer.ack`` does."""
    from faust.transport import consumer as faust_consumer

    assert "notify(self._waiting_for_ack)" in inspect.getsource(faust_consumer.Consumer.ack)
    assert app.consumer._waiting_for_ack is None


def test_table_recovery_exposes_the_state_the_worker_watches(app: Any) -> None:
    recovery = app.tables.recovery
    assert recovery.in_recovery is False
    assert dict(recovery.active_offsets) == {}
    assert dict(recovery.active_highwaters) == {}
    assert dict(recovery.actives_for_table) == {}
