"""Produce a list of records and wait for every acknowledgement: how the demo, the
benchmarks and the tests feed the input topics (the worker has its own batched producer)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def _produce(
    broker: str, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=broker,
        linger_ms=5,
        acks="all",
        max_batch_size=1 << 20,
        max_request_size=16 << 20,  # the drills feed records over the 1 MiB record limit
    )
    await producer.start()
    try:
        futures = []
        for topic, key, value in records:
            futures.append(await producer.send(topic, value, key=key))
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


def produce(broker: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Produce (topic, key, value) records with aiokafka; returns the count acknowledged."""
    return len(produce_placed(broker, records))


def produce_placed(
    broker: str, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> list[tuple[int, int]]:
    """Like :func:`produce`, returning each record's (partition, offset), in input order
    (a None value is a tombstone)."""
    return asyncio.run(_produce(broker, records))


__all__ = ["produce", "produce_placed"]
