"""The produce side: every output and changelog record of a batch handed to aiokafka's
producer through its public batch API (``create_batch``, ``append``, ``send_batch``,
``partitions_for``), one producer batch per partition and worker batch.

``producer.send`` does work per record the worker does not need: a metadata wait, a set of
the topic's partitions for an ``assert``, a future per record that the sender resolves
with a metadata tuple, and the callbacks of a ``gather`` over them all. A ``send_batch``
future resolves when the whole batch is acknowledged and fails when it fails, which is
all the worker awaits (:class:`processor.kafka.checkpoint.Checkpoint`). Linger, retries
and backpressure stay the producer's: ``send_batch`` waits while the partition's previous
batch has not been drained to the broker.

Keyed records get their partition here, from a cache of the murmur2 hash aiokafka's default
partitioner computes in pure Python (5-6 % of the worker's CPU in a profile; the same keys
recur for every event of a user or device); records without a key get a random partition,
as aiokafka's partitioner gives them. Changelog records carry their partition (the shard's).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from processor.pipeline.outcome import Headers, Send

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from aiokafka.producer.message_accumulator import BatchBuilder
    from faust.transport.drivers.aiokafka import Producer as FaustProducer
    from faust.types import ProducerT

ChangelogEntry = tuple[str, bytes, bytes | None, int | None]  # value None: tombstone


@lru_cache(maxsize=262_144)
def key_hash(key: bytes) -> int:
    """Kafka's default partitioning hash of a record key (murmur2, positive), cached."""
    from aiokafka.partitioner import murmur2

    hashed: int = murmur2(key) & 0x7FFFFFFF
    return hashed


class BatchWriter:
    """One worker batch's records, gathered into a producer batch per partition and sent
    with :meth:`close`. A record the producer would refuse (over ``max_request_bytes``) is
    refused here, before anything of the batch is sent."""

    def __init__(self, producer: AIOKafkaProducer, max_request_bytes: int) -> None:
        from aiokafka.errors import MessageSizeTooLargeError
        from aiokafka.record.default_records import DefaultRecordBatchBuilder

        self._producer = producer
        self._limit = max_request_bytes
        self._estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
        self._too_large = MessageSizeTooLargeError
        # (topic, partition) -> its producer batches, the last one open
        self._builders: dict[tuple[str, int], list[BatchBuilder]] = {}

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        listed = list(headers) if headers else []
        builders = self._builders.get((topic, partition))
        if builders is None:
            builders = self._builders[topic, partition] = [self._producer.create_batch()]
        if builders[-1].append(timestamp=None, key=key, value=value, headers=listed) is not None:
            return
        size = self._estimate(key, value, listed)
        if size > self._limit:
            raise self._too_large(
                f"the record is {size} bytes, over the producer's request limit of {self._limit}"
            )
        builders.append(self._producer.create_batch())  # the open one is full
        if builders[-1].append(timestamp=None, key=key, value=value, headers=listed) is None:
            raise self._too_large(f"the record is {size} bytes, over the producer's batch size")

    async def close(self) -> list[Awaitable[Any]]:
        """Hand every batch to the producer; returns their delivery futures (shielded by
        aiokafka, so a cancelled wait does not cancel the producer's own)."""
        send_batch = self._producer.send_batch

        async def send(topic: str, partition: int, builders: list[BatchBuilder]) -> list[Any]:
            # in order: a partition's second batch waits for its first to drain
            return [await send_batch(b, topic, partition=partition) for b in builders]

        sent = await asyncio.gather(
            *(send(topic, p, builders) for (topic, p), builders in self._builders.items())
        )
        self._builders = {}
        return [future for futures in sent for future in futures]


class Producer:
    """Hands a batch's records to faust's aiokafka producer."""

    def __init__(self, producer: ProducerT, max_request_bytes: int) -> None:
        # faust's aiokafka driver's Producer service; its aiokafka producer starts later
        self._faust_producer = cast("FaustProducer", producer)
        self._max_request_bytes = max_request_bytes

    def _aiokafka(self) -> AIOKafkaProducer:
        producer: AIOKafkaProducer = self._faust_producer._ensure_producer()  # noqa: SLF001 - faust's only handle on its started aiokafka producer (tests/unit/test_library_contract.py)
        return producer

    async def send(
        self, sends: Iterable[Send], changelog: Iterable[ChangelogEntry]
    ) -> tuple[list[Awaitable[Any]], Counter[str]]:
        """Every record to the producer; returns the delivery futures (one per producer
        batch) and the output records per topic. Raises what the producer raises."""
        producer = self._aiokafka()
        writer = BatchWriter(producer, self._max_request_bytes)
        append = writer.append
        counts: dict[str, int] = {}  # topic -> partitions, from the metadata once per batch
        hash_of = key_hash
        randrange = random.randrange  # spreads keyless records, as aiokafka's partitioner does
        topics_out: Counter[str] = Counter()
        for topic, log_key, log_value, partition in changelog:
            n = counts.get(topic) or await _count(producer, topic, counts)
            # no partition known: where the default partitioner puts the key
            append(
                topic,
                hash_of(log_key) % n if partition is None else partition,
                log_key,
                log_value,
                None,
            )
        for topic, key, value, headers in sends:
            n = counts.get(topic) or await _count(producer, topic, counts)
            append(topic, randrange(n) if key is None else hash_of(key) % n, key, value, headers)
            topics_out[topic] += 1
        return await writer.close(), topics_out


async def _count(producer: AIOKafkaProducer, topic: str, counts: dict[str, int]) -> int:
    count = counts[topic] = len(await producer.partitions_for(topic))
    return count
