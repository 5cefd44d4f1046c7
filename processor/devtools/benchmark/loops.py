"""The comparison loops of the end-to-end benchmark, each run as its own process so its CPU
and memory are its own:

- ``passthrough``: plain aiokafka, consume -> produce the same bytes to the two clean topics,
  no transform; the ceiling for this client on this broker;
- ``aiokafka-pipeline``: the same loop with ``Pipeline.process`` as the transform (what the
  worker would cost without faust);
- ``quix``: the job written plainly with quixstreams (an Application, one StreamingDataFrame
  per input topic, ``.apply(expand=True)``, ``.to_topic`` choosing the topic per record).

Each consumes until it has seen ``--expect`` input records, then flushes, writes its
counters (same keys as the worker's stats file: ``in``, ``busy_seconds``,
``events_per_second``) and exits 0.

    python -m processor.devtools.benchmark.loops passthrough --broker H:P --group G \
        --inputs a,b,c --outputs rec,ad,erasure-rec,erasure-ad,quarantine --expect N --stats FILE
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from processor.pipeline.outcome import Route

# Route order of ``--outputs``; the pass-through writes to the first two.
OUTPUT_ROUTES = tuple(Route)
BATCH = 2000
STATS_EVERY = 0.25


class Progress:
    """The counters a loop writes to its stats file (read by the benchmark's sampler): a
    daemon thread writes them every ``STATS_EVERY`` seconds, so the last count is written
    even when no more input arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._flush, name="stats", daemon=True).start()

    def _flush(self) -> None:
        written = -1
        while True:
            time.sleep(STATS_EVERY)
            if self.count != written:
                written = self.count
                self.write()

    def begin(self) -> None:
        """The first input arrived: the busy span starts here."""
        if self.first is None:
            self.first = time.monotonic()

    def add(self, n: int) -> None:
        self.begin()
        self.count += n
        self.last = time.monotonic()

    def write(self) -> None:
        busy = (self.last - self.first) if self.first is not None and self.last else 0.0
        data = {
            "in": self.count,
            "busy_seconds": round(busy, 3),
            "events_per_second": round(self.count / busy, 1) if busy > 0 else None,
        }
        with self._lock:  # the loop's final write and the thread's
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_bytes(orjson.dumps(data))
            tmp.replace(self.path)


def _pipeline_transform() -> Callable[[bytes | None, bytes | None, str, int, int], list[Any]]:
    """``Pipeline.process`` with a fresh keyring and the shipped geo data, as the worker
    loads it; returns the routed records. Topics are named ``bench.<tag>.<input>``: the
    pipeline is given the logical input name, as the worker gives it."""
    from keys import Keyring
    from processor.pipeline.binding import INPUT_TOPICS
    from processor.pipeline.geo import build_locator
    from processor.pipeline.outcome import SourceRef
    from processor.pipeline.process import Pipeline

    pipeline = Pipeline(Keyring.generate(), locator=build_locator())
    process = pipeline.process
    logical: dict[str, str] = {}

    def transform(
        value: bytes | None, key: bytes | None, topic: str, partition: int, offset: int
    ) -> list[Any]:
        name = logical.get(topic)
        if name is None:
            name = next((n for n in INPUT_TOPICS if topic.endswith("." + n)), topic)
            logical[topic] = name
        return process(value or b"", SourceRef(name, partition, offset), key).records

    return transform


class Job(NamedTuple):
    """What every loop is given: where to read, where to write, how much, where to report."""

    broker: str
    group: str
    inputs: Sequence[str]
    outputs: Sequence[str]
    expect: int
    progress: Progress


async def aiokafka_loop(job: Job, *, transform: bool) -> None:
    """getmany -> send each output -> await the batch's deliveries -> commit."""
    broker, group, inputs, outputs, expect, progress = job
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    routes = dict(zip(OUTPUT_ROUTES, outputs, strict=True))
    fan_out = (outputs[0], outputs[1])
    process = _pipeline_transform() if transform else None
    consumer = AIOKafkaConsumer(
        *inputs,
        bootstrap_servers=broker,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1500,
    )
    # the worker's producer settings (processor.ops.settings defaults)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker, linger_ms=5, max_batch_size=1 << 20, acks="all"
    )
    await producer.start()
    await consumer.start()
    try:
        while progress.count < expect:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            futures = []
            n = 0
            if fetched:
                progress.begin()
            for tp, messages in fetched.items():
                n += len(messages)
                for m in messages:
                    if process is None:
                        for topic in fan_out:
                            futures.append(await producer.send(topic, m.value, key=m.key))
                        continue
                    for record in process(m.value, m.key, tp.topic, tp.partition, m.offset):
                        key = record.key.encode() if record.key is not None else None
                        futures.append(
                            await producer.send(routes[record.route], record.value, key=key)
                        )
            if not n:
                continue
            await asyncio.gather(*futures)
            await consumer.commit()
            progress.add(n)
    finally:
        progress.write()
        await consumer.stop()
        await producer.stop()


def quix_loop(job: Job) -> None:
    """What a quixstreams user would write for this job, with our pipeline as the transform."""
    broker, group, inputs, outputs, expect, progress = job
    from quixstreams import Application, message_context
    from quixstreams.models.serializers import Serializer

    class RecordValue(Serializer):
        def __call__(self, *args: Any, **kwargs: Any) -> bytes:
            data: bytes = args[0].value  # (value, ctx): the routed record's JSON bytes
            return data

    class RecordKey(Serializer):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            key = args[0]  # the routed record's key (a pseudonym) or None
            return key.encode() if key is not None else None

    transform = _pipeline_transform()
    app = Application(
        broker_address=broker,
        consumer_group=group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        loglevel="WARNING",
        # Tansu makes a group join wait half the session timeout (DESIGN.md): the same
        # 6 s as the other contenders, not librdkafka's 45 s
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1500},
    )
    out = {
        route: app.topic(name, key_serializer=RecordKey(), value_serializer=RecordValue())
        for route, name in zip(OUTPUT_ROUTES, outputs, strict=True)
    }

    def process(value: bytes | None, key: bytes | None, timestamp: int, headers: Any) -> list[Any]:
        progress.begin()
        ctx = message_context()
        records = transform(value, key, ctx.topic, ctx.partition, ctx.offset)
        progress.add(1)
        if progress.count >= expect:
            app.stop()
        return records

    for name in inputs:
        sdf = app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="bytes"))
        sdf = sdf.apply(process, metadata=True, expand=True)
        sdf.to_topic(lambda record, key, ts, headers: out[record.route], key=lambda r: r.key)
    app.run()
    progress.last = time.monotonic()  # run() returns after the producer flushed and committed
    progress.write()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processor.devtools.benchmark.loops")
    parser.add_argument("kind", choices=("passthrough", "aiokafka-pipeline", "quix"))
    parser.add_argument("--broker", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--inputs", required=True, help="comma-separated input topics")
    parser.add_argument(
        "--outputs", required=True, help="rec,ad,erasure-rec,erasure-ad,quarantine topics"
    )
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args(argv)
    inputs = args.inputs.split(",")
    outputs = args.outputs.split(",")
    if len(outputs) != len(OUTPUT_ROUTES):
        parser.error(f"--outputs needs {len(OUTPUT_ROUTES)} topics")
    job = Job(args.broker, args.group, inputs, outputs, args.expect, Progress(args.stats))
    if args.kind == "quix":
        quix_loop(job)
    else:
        asyncio.run(aiokafka_loop(job, transform=args.kind == "aiokafka-pipeline"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
