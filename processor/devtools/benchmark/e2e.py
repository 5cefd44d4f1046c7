"""End-to-end benchmarks on a fresh embedded Tansu broker: throughput, latency, scale, memory.

One broker for the whole run; the input topics are created and preloaded once with the same
bytes for every contender; each run gets its own consumer group and its own output topics.
Contenders (each its own process, so its CPU and memory are its own):

- ``passthrough``: plain aiokafka, consume -> one record to each of the two clean topics, no
  transform (the ceiling for this client on this broker);
- ``quix``: the same job written plainly with quixstreams, ``Pipeline.process`` as transform;
- ``worker``: ``python -m processor worker``, the real thing;
- ``aiokafka-pipeline`` (opt-in): the pass-through loop with ``Pipeline.process``;
- ``worker-no-canary`` (opt-in): the worker with the live leak canary off
  (``leak_canary_fraction = 0``): next to ``worker``, the canary's cost;
- ``worker-auto`` (opt-in): ``worker --processes auto``, one member of the group per usable
  CPU under one supervisor: what one container gets out of the whole machine, next to
  quixstreams, whose librdkafka threads use a second core too.

Rounds alternate the contenders (a, b, c, a, b, c, ...) so drift hits all alike; figures
are medians. Throughput is each process's own count over its busy span (first input
fetched to last output acknowledged), the same definition as the worker's stats file.
CPU comes from psutil ``cpu_times`` of the contender and of the broker, sampled while the
contender works, per event processed between the samples. Latency: events re-stamped with
``event_time`` = now, produced at a fixed rate (half the worker's median throughput) to
fresh topics, timed on arrival at a consumer of the recommendation topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from processor.devtools import synth
from processor.devtools.benchmark import machine
from processor.devtools.benchmark.loops import OUTPUT_ROUTES
from processor.devtools.broker import EmbeddedBroker
from processor.devtools.demo import WorkerProcess, start_worker
from processor.devtools.keyring import make_keyring
from processor.errors import PseudostreamError
from processor.kafka.read import read_topic
from processor.kafka.topics import TopicSpec, create_topics
from processor.kafka.write import produce
from processor.ops.scan import LeakScanner, record_line

CONTENDERS = ("passthrough", "quix", "worker")
BROKER_FLOOR = "broker-one-hop"  # the latency runs' reference: no contender, one broker hop
OPTIONAL_CONTENDERS = ("aiokafka-pipeline", "worker-baseline", "worker-no-canary", "worker-auto")
WORKERS = ("worker", "worker-baseline", "worker-no-canary", "worker-auto")
LABELS = {
    "passthrough": "aiokafka pass-through (no transform)",
    "quix": "quixstreams + Pipeline.process",
    "worker": "pseudostream worker (faust)",
    "aiokafka-pipeline": "aiokafka + Pipeline.process",
    "worker-baseline": "worker from --baseline-src",
    "worker-no-canary": "pseudostream worker, leak canary off",
    "worker-auto": "pseudostream worker --processes auto",
}
SOURCES = (synth.RAW_BEHAVIOUR, synth.RAW_DEVICE, synth.CONSENT)
SAMPLE_EVERY = 0.1
QUIX_MISSING = (
    "quixstreams is not installed, so the quixstreams contender cannot run: "
    "pip install 'pseudostream[bench]' (or leave it out: --contenders passthrough,worker)"
)
# Blocks the policy drops anyway (minimisation) and that make synth events bigger than the
# issue's ~450-byte events; identifiers the pipeline pseudonymizes all stay.
_TRIM_NETWORK = ("ssid", "bssid", "cell")


class BenchError(PseudostreamError):
    """A benchmark cannot run or a contender failed (the message says which and why)."""


def require_quix() -> None:
    if importlib.util.find_spec("quixstreams") is None:
        raise BenchError(QUIX_MISSING)


def bench_records(n: int, seed: int = 7) -> list[tuple[str, bytes | None, bytes]]:
    """``n`` synthetic records (``processor.devtools.synth``), minimised fields trimmed (see above)."""
    out: list[tuple[str, bytes | None, bytes]] = []
    for source, key, raw in synth.generate(n, seed=seed):
        value = raw
        if source != synth.CONSENT:
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(value)
                if isinstance(event, dict):
                    network = event.get("network")
                    if isinstance(network, dict):
                        for name in _TRIM_NETWORK:
                            network.pop(name, None)
                    event.pop("phone", None)
                    value = orjson.dumps(event)
        out.append((source, key, value))
    return out


@dataclass(frozen=True)
class Plan:
    """What every benchmark of this module takes."""

    events: int = 200_000
    rounds: int = 3
    partitions: int = 4
    workdir: Path | None = None
    """Keep logs, stats files and the broker log here (default: a temporary directory)."""
    worker_settings: Mapping[str, str] = field(default_factory=dict)
    """Extra worker settings (``name: value``) for every worker run (``--set``)."""


@dataclass
class Bed:
    """The broker, keyring and input topics shared by every run of one benchmark."""

    broker: EmbeddedBroker
    workdir: Path
    keyring_file: Path
    master_file: Path
    partitions: int
    worker_settings: dict[str, str]
    """Extra worker settings (``name: value``) for every worker run (``--set``)."""
    baseline_src: Path | None = None
    """A source tree (e.g. an export of the main branch) whose worker runs as the
    ``worker-baseline`` contender: before/after in the same run."""

    def topics(self, names: Sequence[str], *, compacted: frozenset[str] = frozenset()) -> None:
        create_topics(
            [self.broker.address],
            [TopicSpec(name, self.partitions, name in compacted) for name in names],
        )

    def fresh_inputs(self, tag: str) -> dict[str, str]:
        inputs = {source: f"bench.{tag}.{source}" for source in SOURCES}
        self.topics(list(inputs.values()), compacted=frozenset({inputs[synth.CONSENT]}))
        return inputs

    def fresh_outputs(self, tag: str) -> list[str]:
        outputs = [f"bench.{tag}.out.{route}" for route in OUTPUT_ROUTES]
        self.topics(outputs)
        return outputs

    def feed(
        self, inputs: dict[str, str], records: Sequence[tuple[str, bytes | None, bytes]]
    ) -> int:
        return produce(self.broker.address, ((inputs[s], k, v) for s, k, v in records))


@contextlib.contextmanager
def bench_bed(plan: Plan) -> Iterator[Bed]:
    """A fresh broker (stopped at the end, also on errors) and a keyring for the worker."""
    with contextlib.ExitStack() as stack:
        workdir = plan.workdir
        if workdir is None:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="pseudostream-bench-"))
            )
        workdir.mkdir(parents=True, exist_ok=True)
        keyring_file, master_file = make_keyring(workdir)
        broker = EmbeddedBroker(log_file=workdir / "tansu.log").start()
        stack.callback(broker.stop)
        yield Bed(
            broker, workdir, keyring_file, master_file, plan.partitions, dict(plan.worker_settings)
        )


def start_contender(
    bed: Bed,
    kind: str,
    tag: str,
    inputs: dict[str, str],
    outputs: list[str],
    expect: int,
    settings: Mapping[str, str] | None = None,
) -> WorkerProcess:
    """The contender as a child process, its stats file and log in the bed's directory;
    ``settings`` on top of the bed's for a worker."""
    if kind in WORKERS:
        env = {
            "broker": bed.broker.url,
            "keyring": str(bed.keyring_file),
            "master_key_file": str(bed.master_file),
            "partitions": str(bed.partitions),
            "output_partitions": str(bed.partitions),
            "session_timeout": "6",
            "log_level": "warning",
            "app_id": f"bench-{tag}",
            "topic_raw_behaviour": inputs[synth.RAW_BEHAVIOUR],
            "topic_raw_device": inputs[synth.RAW_DEVICE],
            "topic_consent": inputs[synth.CONSENT],
            **{
                f"topic_{name}": topic
                for name, topic in zip(
                    (
                        "recommendation",
                        "ad_analytics",
                        "erasure_recommendation",
                        "erasure_ad_analytics",
                        "quarantine",
                    ),
                    outputs,
                    strict=True,
                )
            },
            **worker_settings(bed, kind, settings),
        }
        (bed.workdir / tag).mkdir(parents=True, exist_ok=True)
        if kind != "worker-baseline":
            return start_worker(0, bed.workdir / tag, env)
        if bed.baseline_src is None:
            raise BenchError("the worker-baseline contender needs --baseline-src DIR")
        with _pythonpath(bed.baseline_src):  # the child imports processor from there
            return start_worker(0, bed.workdir / tag, env)
    stats_file = bed.workdir / tag / f"{kind}.stats.json"
    log_file = bed.workdir / tag / f"{kind}.log"
    stats_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "processor.devtools.benchmark.loops", kind,
        "--broker", bed.broker.address, "--group", f"bench-{tag}",
        "--inputs", ",".join(inputs[s] for s in SOURCES), "--outputs", ",".join(outputs),
        "--expect", str(expect), "--stats", str(stats_file),
    ]  # fmt: skip
    with log_file.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(0, proc, stats_file, log_file)


# What a worker contender sets on top of the bed's and the caller's settings.
_CONTENDER_SETTINGS: dict[str, dict[str, str]] = {
    "worker-no-canary": {"leak_canary_fraction": "0"},
    "worker-auto": {"processes": "auto"},
}


def worker_settings(bed: Bed, kind: str, settings: Mapping[str, str] | None) -> dict[str, str]:
    """The settings a worker contender runs with, beyond its topics and keys: the bed's
    (``--set``), the caller's, then the contender's own."""
    return {**bed.worker_settings, **(settings or {}), **_CONTENDER_SETTINGS.get(kind, {})}


@contextlib.contextmanager
def _pythonpath(path: Path) -> Iterator[None]:
    """Children import ``processor`` from ``path``. ``PYTHONSAFEPATH``: else ``python -m``
    puts the working directory first, and run from a checkout it would import that one."""
    names = ("PYTHONPATH", "PYTHONSAFEPATH")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["PYTHONPATH"] = str(path.resolve())
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_baseline_src(path: Path) -> None:
    """Refuse a ``--baseline-src`` whose worker would not run its own code: the same
    import a baseline worker does, in the same environment."""
    with _pythonpath(path):
        found = subprocess.run(
            [sys.executable, "-c", "import processor; print(processor.__file__)"],
            capture_output=True,
            text=True,
            check=False,
        )
    origin = found.stdout.strip()
    if found.returncode != 0 or not Path(origin).resolve().is_relative_to(path.resolve()):
        where = origin or (found.stderr.strip().splitlines() or ["nowhere"])[-1]
        raise BenchError(
            f"--baseline-src {path}: a worker started from it would import processor from"
            f" {where}, not from it; give the root of a pseudostream source tree (the folder"
            " that holds processor/), e.g. a `git worktree add` of the baseline commit"
        )


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def watch(
    procs: Sequence[WorkerProcess], broker_pid: int, expect: int, timeout: float
) -> dict[str, Any]:
    """Sample the contender processes (with their own child processes: a supervisor's
    workers) until together they counted ``expect`` inputs: CPU of contenders and broker
    and each process's RSS between the first and the last sample that saw progress."""
    handles = [psutil.Process(p.proc.pid) for p in procs]
    broker = psutil.Process(broker_pid)

    def sample() -> tuple[float, float]:
        """CPU of the contenders and of the broker; the contenders' RSS goes to ``rss``."""
        every = [p for h in handles for p in (h, *h.children(recursive=True))]
        rss.extend(p.memory_info().rss / 2**20 for p in every)
        return sum(_cpu(p) for p in every), _cpu(broker)

    deadline = time.monotonic() + timeout
    rss: list[float] = []
    # sampled at the start too: a short run can be over before two samples see progress
    # (then it is measured from here), and a contender may be gone before a later sample
    started = time.monotonic()
    client, broker_cpu = sample()
    start = (started, 0, client, broker_cpu)
    first: tuple[float, int, float, float] | None = None  # time, count, client cpu, broker cpu
    count = 0
    while True:
        count = sum(int(p.stats().get("in", 0)) for p in procs)
        now = time.monotonic()
        dead = [p for p in procs if p.proc.poll() is not None]
        if count < expect and dead:
            raise BenchError(
                f"contender exited with {dead[0].proc.returncode} after {count:,} of "
                f"{expect:,} inputs; see {dead[0].log_file}"
            )
        if count > 0:
            with contextlib.suppress(psutil.Error):
                client, broker_cpu = sample()
                if first is None:
                    first = (now, count, client, broker_cpu)
        if count >= expect:
            break
        if now > deadline:
            raise BenchError(
                f"timed out after {timeout:.0f}s with {count:,} of {expect:,} inputs processed; "
                f"see {procs[0].log_file}"
            )
        time.sleep(SAMPLE_EVERY)
    if first is None or first[1] >= count:  # no progress seen between two samples
        first = start
    events = max(1, count - first[1])
    span = max(1e-9, now - first[0])
    return {
        "sampled_events_per_second": round(events / span),
        "client_cpu_us_per_event": round((client - first[2]) / events * 1e6, 1),
        "broker_cpu_us_per_event": round((broker_cpu - first[3]) / events * 1e6, 1),
        "client_cpu_share": round((client - first[2]) / span, 2),
        "broker_cpu_share": round((broker_cpu - first[3]) / span, 2),
        "rss_peak_mb": round(max(rss), 1) if rss else None,
        "rss_median_mb": round(statistics.median(rss), 1) if rss else None,
    }


def run_once(
    bed: Bed,
    kind: str,
    tag: str,
    inputs: dict[str, str],
    expect: int,
    *,
    settings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One contender over the ``expect`` preloaded inputs (``settings``: see
    :func:`start_contender`)."""
    outputs = bed.fresh_outputs(tag)
    procs = [start_contender(bed, kind, tag, inputs, outputs, expect, settings)]
    assert bed.broker.pid is not None  # noqa: S101 - started by test_bed
    try:
        result = watch(procs, bed.broker.pid, expect, timeout=max(120.0, expect / 500))
        if kind not in WORKERS:  # the loops exit by themselves once flushed (workers do not)
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.proc.wait(30)
    finally:
        for p in procs:
            p.stop()
    stats = procs[0].stats()
    own = stats.get("events_per_second")
    processes = worker_settings(bed, kind, settings).get("processes", "1").strip()
    several = kind in WORKERS and processes != "1"
    # a supervisor's processes each count their own span: their sum is the sampler's rate
    result["events_per_second"] = (
        round(float(own)) if own and not several else result["sampled_events_per_second"]
    )
    result["contender"] = kind
    result["output_topics"] = outputs
    result["inputs"] = int(stats.get("in", 0))
    if stats.get("cpu_us_per_event"):  # a worker: its own CPU split
        result["main_thread_cpu_us_per_event"] = stats["cpu_us_per_event"]
    return result


def round_line(round_no: int, rounds: int, kind: str, run: Mapping[str, Any]) -> str:
    line = (
        f"round {round_no}/{rounds} {kind:<18} {run['events_per_second']:>8,} events/s  "
        f"client {run['client_cpu_us_per_event']} µs/event, broker {run['broker_cpu_us_per_event']} µs/event"
    )
    split = run.get("main_thread_cpu_us_per_event")
    if split:
        line += "\n    main thread µs/event: " + ", ".join(f"{k} {v}" for k, v in split.items())
    return line


def _median(runs: Sequence[dict[str, Any]], field: str) -> float | None:
    values = [float(r[field]) for r in runs if r.get(field) is not None]
    return round(statistics.median(values), 1) if values else None


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    fields = (
        "events_per_second",
        "client_cpu_us_per_event",
        "broker_cpu_us_per_event",
        "client_cpu_share",
        "broker_cpu_share",
        "rss_peak_mb",
        "rss_median_mb",
    )
    kinds = list(dict.fromkeys(r["contender"] for r in runs))
    return {
        kind: {f: _median([r for r in runs if r["contender"] == kind], f) for f in fields}
        for kind in kinds
    }


# -- latency at a fixed rate ------------------------------------------------------------


def _stampable(
    records: Sequence[tuple[str, bytes | None, bytes]],
) -> list[tuple[str, bytes | None, dict[str, Any]]]:
    out = []
    for source, key, value in records:
        if source == synth.CONSENT:
            continue
        with contextlib.suppress(orjson.JSONDecodeError):
            event = orjson.loads(value)
            if isinstance(event, dict) and "event_time" in event:
                out.append((source, key, event))
    return out


async def _fixed_rate(
    broker: str,
    inputs: dict[str, str],
    watch_topic: str,
    events: Sequence[tuple[str, bytes | None, dict[str, Any]]],
    rate: float,
    seconds: float,
) -> list[float]:
    """Produce ``rate`` events/s for ``seconds``, each stamped with ``event_time`` = now;
    return arrival - event_time (ms) of every record on ``watch_topic`` stamped then."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None, fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=1, acks="all")
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    total = int(rate * seconds)
    collector: asyncio.Task[None] | None = None
    try:
        partitions = consumer.partitions_for_topic(watch_topic) or set()
        consumer.assign([TopicPartition(watch_topic, p) for p in partitions])
        await consumer.seek_to_end()
        start_ms = time.time() * 1000

        async def collect(until: Callable[[], bool]) -> None:
            while not until():
                fetched = await consumer.getmany(timeout_ms=50)
                arrived = time.time() * 1000
                for records in fetched.values():
                    for record in records:
                        stamp = orjson.loads(record.value).get("event_time")
                        if isinstance(stamp, int) and stamp >= start_ms:
                            latencies.append(arrived - stamp)

        t0 = time.monotonic()
        stop_at: list[float] = []
        collector = asyncio.create_task(
            collect(lambda: bool(stop_at) and time.monotonic() > stop_at[0])
        )
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - t0) * rate))
            while sent < due:
                source, key, event = events[sent % len(events)]
                event["event_time"] = int(time.time() * 1000)
                await producer.send(inputs[source], orjson.dumps(event), key=key)
                sent += 1
            await asyncio.sleep(0.005)
        await producer.flush()
        stop_at.append(time.monotonic() + 3.0)  # let the last outputs arrive
        await collector
    finally:
        if collector is not None and not collector.done():  # the producing side failed
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        await producer.stop()
        await consumer.stop()
    return latencies


_LATENCY_POOL = 20_000  # records the latency runs cycle through, at least


def latency_once(
    bed: Bed,
    kind: str,
    tag: str,
    events: Sequence[tuple[str, bytes | None, dict[str, Any]]],
    consents: Sequence[tuple[str, bytes | None, bytes]],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """The contender on fresh topics, warmed up, then fed at ``rate`` events/s."""
    inputs = bed.fresh_inputs(tag)
    outputs = bed.fresh_outputs(tag)
    warm = 200
    total = warm + int(rate * seconds)
    # warm-up records first, like the preloaded runs: consent records (the compacted topic is
    # never empty in production; quixstreams stalled on empty partitions) and events
    warmup = [*consents[:warm], *((s, k, orjson.dumps(e)) for s, k, e in events[:warm])]
    total += len(warmup) - warm
    bed.feed(inputs, warmup)
    proc = start_contender(bed, kind, tag, inputs, outputs, total)
    try:
        deadline = time.monotonic() + 120
        while int(proc.stats().get("in", 0)) < len(warmup):  # joined the group, caches warm
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{kind} did not process the warm-up events; see {proc.log_file}")
            time.sleep(SAMPLE_EVERY)
        latencies = asyncio.run(
            _fixed_rate(bed.broker.address, inputs, outputs[0], events, rate, seconds)
        )
    finally:
        proc.stop()
    if not latencies:
        raise BenchError(f"{kind}: no output arrived during the latency run; see {proc.log_file}")
    return _latency_result(kind, rate, seconds, latencies)


def broker_floor_once(
    bed: Bed,
    tag: str,
    events: Sequence[tuple[str, bytes | None, dict[str, Any]]],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """The broker alone, one hop: the same fixed-rate producer onto fresh topics, timed on
    arrival at a consumer of the behaviour topic itself. A contender's path has two such
    hops; on Tansu's memory storage a hop slows as its partitions grow (docs/benchmarks.md)."""
    inputs = bed.fresh_inputs(tag)
    latencies = asyncio.run(
        _fixed_rate(bed.broker.address, inputs, inputs[synth.RAW_BEHAVIOUR], events, rate, seconds)
    )
    if not latencies:
        raise BenchError("the broker floor run timed no record (the broker did not deliver)")
    return _latency_result(BROKER_FLOOR, rate, seconds, latencies)


def _latency_result(
    kind: str, rate: float, seconds: float, latencies: list[float]
) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "contender": kind,
        "rate": round(rate),
        "seconds": seconds,
        "outputs_timed": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2], 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "max_ms": round(ordered[-1], 1),
    }


# -- the benchmarks ---------------------------------------------------------------------

Say = Callable[[str], None]


def _preload(
    bed: Bed, events: int, say: Say
) -> tuple[dict[str, str], list[tuple[str, bytes | None, bytes]]]:
    records = bench_records(events)
    inputs = bed.fresh_inputs("in")
    started = time.monotonic()
    bed.feed(inputs, records)
    say(
        f"preloaded {len(records):,} records (mean {statistics.mean(map(len, (v for _, _, v in records))):.0f} "
        f"bytes) in {time.monotonic() - started:.1f}s"
    )
    return inputs, records


def _header(
    plan: Plan, records: Sequence[tuple[str, bytes | None, bytes]], bed: Bed
) -> dict[str, Any]:
    return {
        "events": plan.events,
        "mean_event_bytes": round(statistics.mean(len(v) for _, _, v in records)),
        "partitions": bed.partitions,
        "rounds": plan.rounds,
        "worker_settings": bed.worker_settings,
        **machine(),
    }


def run_e2e(
    plan: Plan,
    *,
    contenders: Sequence[str] = CONTENDERS,
    latency_seconds: float = 10.0,
    latency_rate: float | None = None,
    latency_rounds: int = 1,
    baseline_src: Path | None = None,
    say: Say = print,
) -> dict[str, Any]:
    """Throughput rounds (alternating), then latency at half the worker's rate."""
    if "quix" in contenders:
        require_quix()
    if "worker-baseline" in contenders and baseline_src is not None:
        check_baseline_src(baseline_src)  # before the broker starts
    with bench_bed(plan) as bed:
        bed.baseline_src = baseline_src
        inputs, records = _preload(bed, plan.events, say)
        runs = []
        for round_no in range(1, plan.rounds + 1):
            for kind in contenders:
                run = run_once(
                    bed, kind, f"r{round_no}-{kind}-{uuid.uuid4().hex[:6]}", inputs, len(records)
                )
                run["round"] = round_no
                runs.append(run)
                say(round_line(round_no, plan.rounds, kind, run))
        medians = summarize(runs)
        result: dict[str, Any] = {"benchmark": "e2e", **_header(plan, records, bed)}
        result["leak_scan"] = leak_scan(bed, runs, records, say)
        result["runs"] = runs
        result["medians"] = medians
        result.update(_ratios(medians))
        latency: dict[str, Any] = {}
        latency_runs: list[dict[str, Any]] = []
        reference = (medians.get("worker") or medians[contenders[0]])["events_per_second"]
        rate = latency_rate or (reference / 2 if reference else 0)
        if latency_seconds > 0 and rate:
            # a small --events run may hold consent records only (they come first)
            pool = records if len(records) >= _LATENCY_POOL else bench_records(_LATENCY_POOL)
            stampable = _stampable(pool)
            consents = [r for r in pool if r[0] == synth.CONSENT]
            for round_no in range(1, latency_rounds + 1):
                for kind in (BROKER_FLOOR, *contenders):
                    tag = f"lat{round_no}-{kind}-{uuid.uuid4().hex[:6]}"
                    run = (
                        broker_floor_once(bed, tag, stampable, rate, latency_seconds)
                        if kind == BROKER_FLOOR
                        else latency_once(
                            bed, kind, tag, stampable, consents, rate, latency_seconds
                        )
                    )
                    run["round"] = round_no
                    latency_runs.append(run)
                    say(
                        f"latency {round_no}/{latency_rounds} {kind:<18} at {rate:,.0f}/s: "
                        f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms"
                    )
            for kind in (BROKER_FLOOR, *contenders):
                mine = [r for r in latency_runs if r["contender"] == kind]
                latency[kind] = {
                    "rate": mine[0]["rate"],
                    "seconds": latency_seconds,
                    "rounds": len(mine),
                    "outputs_timed": sum(r["outputs_timed"] for r in mine),
                    **{f: _median(mine, f) for f in ("p50_ms", "p99_ms", "max_ms")},
                }
        result["latency_runs"] = latency_runs
        result["latency"] = latency
        result["targets"] = _targets(result)
        return result


def leak_scan(
    bed: Bed,
    runs: Sequence[dict[str, Any]],
    records: Sequence[tuple[str, bytes | None, bytes]],
    say: Say = print,
) -> dict[str, Any]:
    """Every output record of every run that pseudonymizes (all but the pass-through, which
    copies raw records on purpose) through the leak scanner built from the inputs: after
    the timed rounds, so it costs no contender anything. The runs share inputs and keys,
    so most of their records are byte for byte the same: each distinct record (route, key,
    headers, value) is scanned once, which finds exactly what scanning every copy would.
    Findings are counted per contender; ``findings`` counts those of this tree's code only:
    a ``worker-baseline`` is another tree, whose leaks are reported, not this tree's fault."""
    scanner = LeakScanner.from_raw_events(value for _, _, value in records)
    verdict: dict[bytes, list[str]] = {}  # distinct line -> the kinds found in it
    scanned = 0
    kinds: Counter[str] = Counter()
    by_contender: Counter[str] = Counter()
    for run in runs:
        if run["contender"] == "passthrough":
            continue
        for topic in run["output_topics"]:
            route = topic.rpartition(".out.")[2]
            lines = [
                record_line(route, r.key, r.headers, r.value)
                for r in read_topic([bed.broker.address], topic)
            ]
            scanned += len(lines)
            new = list(dict.fromkeys(line for line in lines if line not in verdict))
            for line in new:
                verdict[line] = []
            for finding in scanner.scan_lines(new):
                verdict[new[finding.line - 1]].append(finding.kind)
            for line in lines:
                found = verdict[line]
                if found and run["contender"] != "worker-baseline":
                    kinds.update(found)
                by_contender[run["contender"]] += len(found)
    findings = sum(kinds.values())
    per = ", ".join(f"{kind} {n}" for kind, n in by_contender.items() if n)
    say(
        f"leak scan: {scanned:,} output records of every run but the pass-through"
        f" ({len(verdict):,} distinct), {findings} findings"
        + (f" ({dict(kinds)})" if kinds else "")
        + (f"; per contender, every copy: {per}" if per else "")
    )
    return {
        "records": scanned,
        "distinct": len(verdict),
        "findings": findings,
        "kinds": dict(kinds),
        "findings_by_contender": dict(by_contender),
    }


def _ratios(medians: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    passthrough = (medians.get("passthrough") or {}).get("events_per_second")
    quix = (medians.get("quix") or {}).get("events_per_second")
    for kind in ("worker", "worker-auto"):
        rate = (medians.get(kind) or {}).get("events_per_second")
        name = kind.replace("-", "_")
        if rate and passthrough:
            out[f"{name}_share_of_passthrough_pct"] = round(100 * rate / passthrough, 1)
        if rate and quix:
            out[f"{name}_vs_quix"] = round(rate / quix, 2)
    worker = (medians.get("worker") or {}).get("events_per_second")
    without = medians.get("worker-no-canary") or {}
    if worker and without.get("events_per_second"):
        out["canary_events_per_second_change_pct"] = round(
            100 * (worker / without["events_per_second"] - 1), 1
        )
    cpu = (medians.get("worker") or {}).get("client_cpu_us_per_event")
    cpu_without = without.get("client_cpu_us_per_event")
    if cpu and cpu_without:
        out["canary_cpu_per_event_change_pct"] = round(100 * (cpu / cpu_without - 1), 1)
    return out


def _targets(result: dict[str, Any]) -> dict[str, bool | None]:
    share = result.get("worker_share_of_passthrough_pct")
    vs_quix = result.get("worker_vs_quix")
    auto_vs_quix = result.get("worker_auto_vs_quix")
    p99 = (result.get("latency", {}).get("worker") or {}).get("p99_ms")
    rss = (result["medians"].get("worker") or {}).get("rss_peak_mb")
    return {
        "worker_at_least_60pct_of_passthrough": None if share is None else share >= 60,
        "worker_at_least_1.2x_quix": None if vs_quix is None else vs_quix >= 1.2,
        "worker_auto_at_least_1.2x_quix": None if auto_vs_quix is None else auto_vs_quix >= 1.2,
        "worker_p99_under_100ms_at_half_rate": None if p99 is None else p99 < 100,
        "worker_rss_under_300mb": None if rss is None else rss < 300,
        "no_leak_in_any_output": result["leak_scan"]["findings"] == 0,
    }


def run_scale(plan: Plan, say: Say = print) -> dict[str, Any]:
    """The worker with 1 and with 2 processes (``worker --processes 2``: one supervisor,
    two members of one group) on the same preloaded topics, alternating. Rates are the
    sampler's (inputs over the time between the first and the last count, both processes
    together), CPU is the whole process tree's."""
    with bench_bed(plan) as bed:
        inputs, records = _preload(bed, plan.events, say)
        runs = []
        for round_no in range(1, plan.rounds + 1):
            for processes in (1, 2):
                tag = f"s{round_no}-{processes}p-{uuid.uuid4().hex[:6]}"
                run = run_once(
                    bed,
                    "worker",
                    tag,
                    inputs,
                    len(records),
                    settings={"processes": str(processes)},
                )
                run["round"] = round_no
                run["processes"] = processes
                runs.append(run)
                say(
                    f"round {round_no}/{plan.rounds} {processes} process(es)"
                    f" {run['events_per_second']:>8,} events/s,"
                    f" client {run['client_cpu_us_per_event']} µs/event"
                    f" (CPU: workers {run['client_cpu_share']:.2f} cores,"
                    f" broker {run['broker_cpu_share']:.2f})"
                )
        by = {str(n): summarize([r for r in runs if r["processes"] == n])["worker"] for n in (1, 2)}
        one, two = by["1"], by["2"]
        return {
            "benchmark": "scale",
            **_header(plan, records, bed),
            "runs": runs,
            "medians": by,
            "two_vs_one": _ratio(two["events_per_second"], one["events_per_second"]),
            "cpu_per_event_two_vs_one": _ratio(
                two["client_cpu_us_per_event"], one["client_cpu_us_per_event"]
            ),
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def run_memory(plan: Plan, say: Say = print) -> dict[str, Any]:
    """Worker RSS sampled while it processes ``events`` preloaded records."""
    with bench_bed(plan) as bed:
        inputs, records = _preload(bed, plan.events, say)
        runs = []
        for round_no in range(1, plan.rounds + 1):
            run = run_once(
                bed, "worker", f"m{round_no}-{uuid.uuid4().hex[:6]}", inputs, len(records)
            )
            run["round"] = round_no
            runs.append(run)
            say(
                f"round {round_no}/{plan.rounds} worker RSS peak {run['rss_peak_mb']} MB, median {run['rss_median_mb']} MB"
            )
        medians = summarize(runs)["worker"]
        return {
            "benchmark": "memory",
            **_header(plan, records, bed),
            "runs": runs,
            "rss_peak_mb": medians["rss_peak_mb"],
            "rss_median_mb": medians["rss_median_mb"],
            "target_rss_under_300mb": (medians["rss_peak_mb"] or 0) < 300,
        }
