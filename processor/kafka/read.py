"""Read a whole topic, from its start to its end: the one reader of whole topics outside the
worker's own loop (``pseudostream stats``, quarantine replay's consent state, the demo's
sample, the tests).

kafka-python, no consumer group, nothing committed. The end is the end offset each partition
had when reading began, and then a quiet spell: Tansu's end offsets can be one batch short,
so reaching them is not enough to know the topic was read whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from processor.kafka.topics import BrokerError, wait_until_answering
from processor.ops.settings import bootstrap_servers

_POLL_MS = 300


_START_IT = "start it, or point the broker setting (--config, PSEUDOSTREAM_BROKER) at it"


class TopicNotFoundError(BrokerError):
    """The topic does not exist (yet) on a broker that answers."""


class Record(NamedTuple):
    """One record as read (the fields of kafka-python's ``ConsumerRecord`` that we use)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


def assign_all(consumer: Any, topic: str, wait: float) -> list[Any]:
    """Assign every partition of ``topic`` to a kafka-python ``consumer`` (no group join);
    TopicNotFoundError when the topic has no partitions after ``wait`` seconds."""
    from kafka import TopicPartition

    deadline = time.monotonic() + wait
    partitions = consumer.partitions_for_topic(topic)
    while not partitions and time.monotonic() < deadline:
        time.sleep(0.1)
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise TopicNotFoundError(f"topic {topic!r} not found on the broker")
    parts = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(parts)
    return parts


def read_topic(
    servers: str | Sequence[str],
    topic: str,
    *,
    client_options: Mapping[str, Any] | None = None,
    limit: int | None = None,
    idle: float = 0.6,
    wait: float = 10.0,
) -> Iterator[Record]:
    """Every record of ``topic`` from the start (at most ``limit``), until each partition is
    at the end offset it had when reading began and no record came for ``idle`` seconds.

    ``servers``: a broker setting (``kafka://h:9092;...``) or a list of ``host:port``;
    ``client_options``: kafka-python keyword arguments (``processor.kafka.clients.kafka_python_options``).
    Raises :class:`BrokerError` when the broker does not answer within ``wait`` seconds or a
    fetch fails, :class:`TopicNotFoundError` when the topic does not exist by then."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    addresses = bootstrap_servers(servers) if isinstance(servers, str) else list(servers)
    options = dict(client_options or {})
    if options.get("security_protocol", "PLAINTEXT") == "PLAINTEXT":
        try:  # fail fast: kafka-python alone takes 30 s to give up on a dead address
            wait_until_answering(addresses, wait)
        except BrokerError as exc:
            raise BrokerError(f"{exc}: {_START_IT}") from exc
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=addresses,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            request_timeout_ms=int(wait * 1000) + 1000,
            **options,
        )
    except KafkaError as exc:
        raise BrokerError(
            f"broker at {','.join(addresses)} did not answer ({type(exc).__name__}): {_START_IT}"
        ) from exc
    try:
        parts = assign_all(consumer, topic, wait)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        count = 0
        last_record = time.monotonic()
        while limit is None or count < limit:
            polled = consumer.poll(timeout_ms=_POLL_MS, max_records=5000)
            if not polled:
                at_end = all(consumer.position(tp) >= ends[tp] for tp in parts)
                if at_end and time.monotonic() - last_record >= idle:
                    return
                continue
            last_record = time.monotonic()
            for records in polled.values():
                for r in records:
                    yield Record(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        tuple(r.headers or ()),
                        r.timestamp,
                    )
                    count += 1
                    if limit is not None and count >= limit:
                        return
    except KafkaError as exc:
        raise BrokerError(f"reading {topic!r} failed ({type(exc).__name__}); try again") from exc
    finally:
        consumer.close()


__all__ = ["Record", "TopicNotFoundError", "assign_all", "read_topic"]
