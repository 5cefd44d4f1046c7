"""read_topic, the one reader of whole topics (stats, quarantine replay, the demo, these
tests), on the embedded broker."""

from __future__ import annotations

import uuid

import pytest

from processor.devtools.broker import EmbeddedBroker, free_port
from processor.kafka.read import TopicNotFoundError, read_topic
from processor.kafka.topics import BrokerError, TopicSpec, create_topics
from processor.kafka.write import produce_placed


def new_topic(broker: EmbeddedBroker, partitions: int = 3) -> str:
    name = f"read-{uuid.uuid4().hex[:8]}"
    create_topics([broker.address], [TopicSpec(name, partitions)])
    return name


def test_every_record_of_every_partition_is_read_once_with_key_value_and_headers(
    broker: EmbeddedBroker,
) -> None:
    topic = new_topic(broker)
    records = [(topic, f"k{i}".encode(), f"v{i}".encode()) for i in range(300)]
    placed = produce_placed(broker.address, [*records, (topic, b"gone", None)])
    read = list(read_topic(broker.address, topic))
    assert len(read) == 301
    assert {(r.partition, r.offset) for r in read} == set(placed)
    by_key = {r.key: r.value for r in read}
    assert by_key[b"k7"] == b"v7" and by_key[b"gone"] is None  # a tombstone is a record too
    assert all(r.topic == topic and r.headers == () for r in read)


def test_limit_stops_after_that_many_records(broker: EmbeddedBroker) -> None:
    topic = new_topic(broker)
    produce_placed(broker.address, [(topic, None, b"x")] * 50)
    assert len(list(read_topic(f"kafka://{broker.address}", topic, limit=7))) == 7


def test_an_empty_topic_reads_as_nothing(broker: EmbeddedBroker) -> None:
    assert list(read_topic(broker.address, new_topic(broker), idle=0.3)) == []


def test_a_missing_topic_is_named(broker: EmbeddedBroker) -> None:
    with pytest.raises(TopicNotFoundError, match="topic 'no-such-topic' not found"):
        list(read_topic(broker.address, "no-such-topic", wait=1.0))


def test_a_broker_that_does_not_answer_says_what_to_do() -> None:
    with pytest.raises(BrokerError, match=r"did not answer.*start it, or point the broker"):
        list(read_topic(f"kafka://127.0.0.1:{free_port()}", "any", wait=1.0))
