"""Broker tests: one embedded Tansu broker per session, unique topics and group per test,
workers as real subprocesses (``python -m processor worker``) so SIGKILL is real."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keys import Keyring, load_keyring_from
from processor.devtools.broker import EmbeddedBroker, free_port
from processor.devtools.demo import (
    WORKER_COMMAND,
    WorkerProcess,
    start_worker,
)
from processor.devtools.keyring import make_keyring
from processor.devtools.synth import CONSENT
from processor.kafka.read import Record, read_topic
from processor.kafka.topics import prepare_topics
from processor.kafka.write import produce_placed
from processor.ops.scan import Finding, LeakScanner, record_line
from processor.ops.settings import Settings
from processor.pipeline.consent import MemoryConsentState
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    embedded = EmbeddedBroker(log_file=log).start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def keyring_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_keyring(tmp_path_factory.mktemp("keys"))


# Stack.wait_accounted: the workers' input count is at rest after this long without a change
# (their stats files are rewritten every 0.25 s); while it moves, outputs are read this often.
_ACCOUNT_REST = 0.5
_ACCOUNT_BUSY_EVERY = 5.0


@dataclass
class Stack:
    """Topics, settings and workers of one test; ``close`` stops every worker it started."""

    broker: EmbeddedBroker
    workdir: Path
    env: dict[str, str]
    settings: Settings
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def keyring(self) -> Keyring:
        return load_keyring_from(
            self.settings.require_keyring(), self.settings.master_key_file, os.environ
        )

    def start_worker(
        self, *, command: Sequence[str] = WORKER_COMMAND, **overrides: str
    ) -> WorkerProcess:
        """A worker subprocess with this stack's settings, ``overrides`` on top."""
        proc = start_worker(len(self.workers), self.workdir, {**self.env, **overrides}, command)
        self.workers.append(proc)
        return proc

    def start_ready_worker(self, **overrides: str) -> WorkerProcess:
        """A worker with a web port of its own, returned once its ``/ready`` answers 200:
        the group gave it partitions (a rebalance onto it is over) and it recovered its
        tables. Waiting on that instead of a fixed time."""
        port = free_port()
        worker = self.start_worker(web_port=str(port), **overrides)
        url = f"http://127.0.0.1:{port}/ready"
        wait_for(
            lambda: http_get(url)[0] == 200,
            60,
            lambda: f"worker {worker.index} not ready: {http_get(url)}; {self.workdir}",
        )
        return worker

    def feed(self, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
        return len(self.feed_placed(records))

    def feed_placed(self, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> list[Fed]:
        """Produce (logical source, key, value) records; each comes back with its offset."""
        records = list(records)
        topics = self.settings.input_topics
        placed = produce_placed(self.broker.address, ((topics[s], k, v) for s, k, v in records))
        return [Fed(s, k, v, p, o) for (s, k, v), (p, o) in zip(records, placed, strict=True)]

    def processed(self) -> int:
        return sum(int(w.stats().get("in", 0)) for w in self.workers)

    def wait_processed(self, n: int, timeout: float = 60.0) -> None:
        wait_for(
            lambda: self.processed() >= n,
            timeout,
            lambda: f"processed {self.processed()} of {n}; logs in {self.workdir}",
        )

    def output(self, route: Route, timeout: float = 2.0) -> list[Record]:
        """The route's topic read to its end (nothing new for ``timeout`` seconds)."""
        topic = self.settings.output_topics[route]
        return list(read_topic(self.broker.address, topic, idle=timeout))

    def output_lines(self) -> list[bytes]:
        """Every record of every output topic and of the consent changelog as one JSON line
        (topic, message key, headers, value): what the leak scanner reads."""
        lines: list[bytes] = []
        for route in Route:
            lines.extend(
                record_line(r.topic, r.key, r.headers, r.value)
                for r in self.output(route, timeout=1.0)
            )
        changelog = self.settings.changelog_topic
        for record in read_topic(self.broker.address, changelog, idle=1.0):
            lines.append(
                orjson.dumps({"key": orjson.loads(record.key), "value": orjson.loads(record.value)})
            )
        return lines

    def log_lines(self) -> list[bytes]:
        """Everything the workers wrote to stdout and stderr."""
        return [
            line
            for worker in self.workers
            if worker.log_file.exists()
            for line in worker.log_file.read_bytes().splitlines()
        ]

    def leaks(self, raw_values: Iterable[bytes]) -> list[Finding]:
        """Raw identifiers of ``raw_values`` (or identifier-shaped values) found in any
        output topic, the changelog, or the workers' logs."""
        scanner = LeakScanner.from_raw_events(raw_values)
        return scanner.scan_lines(self.output_lines()) + scanner.scan_lines(self.log_lines())

    def account(self, expected: Expected) -> Accounting:
        """What the outputs say happened to each input (see :class:`Accounting`)."""
        copies: Counter[tuple[str, str]] = Counter()
        for route in (Route.RECOMMENDATION, Route.AD_ANALYTICS):
            for event_id, n in by_event(self.output(route, timeout=0.5)).items():
                copies[(event_id, route.value)] += n
        quarantined: dict[str, str] = {}
        for record in self.output(Route.QUARANTINE, timeout=0.5):
            body = orjson.loads(record.value)
            ref = source_ref(body["source"])
            copies[(ref, "quarantine")] += 1
            quarantined[ref] = body["error"]
        routes: dict[str, set[str]] = defaultdict(set)
        for event_id, name in copies:
            if name != "quarantine":
                routes[event_id].add(name)
        return Accounting(expected, dict(routes), quarantined, copies)

    def wait_accounted(self, expected: Expected, timeout: float = 60.0) -> Accounting:
        """Wait until every expected output and quarantine record is there.

        Reading every output topic whole takes seconds of CPU, taken from the workers it
        waits for: while their input count still moves, it is read at most every
        ``_ACCOUNT_BUSY_EVERY`` seconds; once the count rests, and at the deadline, at once."""
        latest: list[Accounting] = []
        deadline = time.monotonic() + timeout
        count, moved, read = self.processed(), time.monotonic(), 0.0

        def complete() -> bool:
            nonlocal count, moved, read
            now, processed = time.monotonic(), self.processed()
            if processed != count:
                count, moved = processed, now
            busy = now - moved < _ACCOUNT_REST and now - read < _ACCOUNT_BUSY_EVERY
            if latest and busy and now < deadline:
                return False
            latest[:] = [self.account(expected)]
            read = time.monotonic()
            return not latest[0].missing()

        wait_for(complete, timeout, lambda: f"missing {latest[0].missing()[:10]}; {self.workdir}")
        return latest[0]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


@dataclass(frozen=True)
class Fed:
    """One input record as produced: logical source topic, key, value, partition, offset."""

    source: str
    key: bytes | None
    value: bytes | None  # None: a tombstone, which the worker reads as empty bytes
    partition: int
    offset: int

    @property
    def ref(self) -> str:
        return f"{self.source}/{self.partition}/{self.offset}"


def source_ref(source: dict[str, Any]) -> str:
    """A quarantine record's ``source`` as ``topic/partition/offset`` (like :attr:`Fed.ref`)."""
    return f"{source['topic']}/{source.get('partition')}/{source.get('offset')}"


@dataclass
class Expected:
    """What the pure pipeline makes of the inputs in this order: the clean routes of each
    event_id, the quarantine reason of each quarantined input (by ``Fed.ref``), and the
    suppressions by reason."""

    routes: dict[str, set[str]]
    quarantined: dict[str, str]
    suppressed: Counter[str]


def expected_outcomes(keyring: Keyring, fed: Iterable[Fed], **options: Any) -> Expected:
    """``options`` go to :class:`Pipeline` (e.g. ``max_record_bytes``, as the worker's)."""
    pipeline = Pipeline(keyring, consent=MemoryConsentState(), **options)
    routes: dict[str, set[str]] = defaultdict(set)
    quarantined: dict[str, str] = {}
    suppressed: Counter[str] = Counter()
    for f in fed:
        value = f.value if f.value is not None else b""  # as the worker reads a tombstone
        outcome = pipeline.process(value, SourceRef(f.source, f.partition, f.offset), f.key)
        if outcome.quarantined:
            quarantined[f.ref] = outcome.quarantined
        elif outcome.suppressed:
            suppressed[outcome.suppressed] += 1
        for record in outcome.records:
            if record.route in (Route.RECOMMENDATION, Route.AD_ANALYTICS):
                routes[str(record.json()["event_id"])].add(record.route.value)
    return Expected(dict(routes), quarantined, suppressed)


@dataclass
class Accounting:
    """Observed outputs against :class:`Expected`: clean routes per event_id, quarantine
    reasons per input offset, and how many copies of each (at-least-once allows more
    than one after a crash; they are counted, not hidden)."""

    expected: Expected
    routes: dict[str, set[str]]
    quarantined: dict[str, str]
    copies: Counter[tuple[str, str]]

    def missing(self) -> list[str]:
        lost = [
            f"{event_id}:{route}"
            for event_id, wanted in self.expected.routes.items()
            for route in sorted(wanted - self.routes.get(event_id, set()))
        ]
        return lost + [ref for ref in self.expected.quarantined if ref not in self.quarantined]

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.copies.values())

    def assert_exact(self) -> None:
        """Every input has exactly its expected outcome: nothing lost, nothing routed where
        it must not go, every quarantine record at its input's offset with its reason."""
        assert self.missing() == []
        assert self.routes == self.expected.routes
        assert self.quarantined == self.expected.quarantined


def http_get(url: str) -> tuple[int, bytes]:
    """GET a worker page: (status, body); (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http://127.0.0.1
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def metric_samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A worker's /metrics as (name, sorted labels) -> value."""
    status, body = http_get(base + "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def top_once(base: str) -> subprocess.CompletedProcess[str]:
    """``pseudostream top --once`` against the worker (or supervisor) at ``base``."""
    return subprocess.run(
        [sys.executable, "-m", "processor", "top", "--url", base + "/metrics", "--once"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def wait_for(
    condition: Callable[[], bool], timeout: float, message: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {message()}")
        time.sleep(0.1)


@contextlib.contextmanager
def make_stack(
    broker: EmbeddedBroker,
    keyring_files: tuple[Path, Path],
    workdir: Path,
    *,
    broker_url: str | None = None,
) -> Iterator[Stack]:
    """A stack with its own topics and group on ``broker``; workers connect to
    ``broker_url`` (default: the broker itself; the connection drill puts a proxy there)."""
    keyring, master = keyring_files
    unique = uuid.uuid4().hex[:8]
    env = {
        "broker": broker_url or broker.url,
        "keyring": str(keyring),
        "master_key_file": str(master),
        "topic_prefix": f"t{unique}.",
        "app_id": f"it-{unique}",
        "partitions": "4",
        "output_partitions": "2",
        "session_timeout": "6",
        "commit_interval": "0.5",
        "batch_size": "500",
        "log_level": "info",
    }
    settings = Settings.load({f"PSEUDOSTREAM_{k.upper()}": v for k, v in env.items()})
    prepare_topics(settings)
    test_stack = Stack(broker, workdir, env, settings)
    try:
        yield test_stack
    finally:
        test_stack.close()


@pytest.fixture
def stack(
    broker: EmbeddedBroker, keyring_files: tuple[Path, Path], tmp_path: Path
) -> Iterator[Stack]:
    with make_stack(broker, keyring_files, tmp_path) as test_stack:
        yield test_stack


def kill9(worker: WorkerProcess) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)


def by_event(records: Iterable[Any]) -> dict[str, int]:
    """event_id (pseudonym) -> how many times it was seen (duplicates are allowed, and
    counted)."""
    seen: Counter[str] = Counter()
    for record in records:
        value = orjson.loads(record.value)
        seen[str(value.get("event_id"))] += 1
    return dict(seen)


def by_item(records: Iterable[Any]) -> dict[str, int]:
    """The fed event_id of :func:`event_json` events (their item id) -> copies seen."""
    seen: Counter[str] = Counter()
    for record in records:
        seen[item_of(record)] += 1
    return dict(seen)


def item_of(record: Any) -> str:
    return str(orjson.loads(record.value)["payload"]["item_id"])


def quarantine_sources(records: Iterable[Any]) -> Counter[str]:
    return Counter(source_ref(orjson.loads(record.value)["source"]) for record in records)


def consent_first(
    records: list[tuple[str, bytes | None, bytes]],
) -> list[tuple[str, bytes | None, bytes]]:
    """All consent records first (each topic keeps its order): no cross-topic race."""
    return [r for r in records if r[0] == CONSENT] + [r for r in records if r[0] != CONSENT]


def event_json(
    event_id: str,
    user_id: str | None,
    *,
    event_type: str = "view",
    event_time: int = 1_764_316_800_000,
    oaid: str = "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b",
    imei: str = "356938035643809",
) -> bytes:
    """A behaviour event whose ``payload.item_id`` repeats its ``event_id``: outputs carry
    only a pseudonym of the event id, the item id is kept, so tests match by it."""
    return orjson.dumps(
        {
            "schema": "behaviour/1",
            "event_id": event_id,
            "event_time": event_time,
            "event_type": event_type,
            "user_id": user_id,
            "phone": "+8613812345678",
            "device": {
                "imei": imei,
                "oaid": oaid,
                "android_id": "9774d56d682e549c",
                "mac": "3C:5A:B4:12:34:56",
                "brand": "Xiaomi",
                "model": "2211133C",
            },
            "network": {"ip": "61.128.128.68", "type": "wifi", "ssid": "Home-5G"},
            "location": {"lat": 29.557, "lon": 106.577, "accuracy_m": 12, "source": "gps"},
            "payload": {"item_id": event_id, "position": 3},
        }
    )


def consent_json(
    user_id: str,
    event_time: int,
    *,
    ads: bool = True,
    rec: bool = True,
    account: str = "active",
    age_band: str = "adult",
) -> bytes:
    return orjson.dumps(
        {
            "schema": "consent/1",
            "user_id": user_id,
            "event_time": event_time,
            "personalized_recommendation": rec,
            "personalized_ads": ads,
            "precise_location": True,
            "age_band": age_band,
            "account": account,
        }
    )


def routes_by_event(stack: Stack) -> dict[str, set[str]]:
    """The fed event_id of each :func:`event_json` event -> the clean routes it reached."""
    out: dict[str, set[str]] = defaultdict(set)
    for route in (Route.RECOMMENDATION, Route.AD_ANALYTICS):
        for event_id in by_item(stack.output(route)):
            out[event_id].add(route.value)
    return out


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of a broker (asyncio, in its own thread).

    ``cut()`` closes every open connection and stops listening, so clients see their
    broker connection drop and reconnects refused; ``restore()`` listens again. The broker
    keeps running (and keeps its memory-stored data) all the while.
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        from processor.devtools.broker import free_port

        self.port = port or free_port()
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def start(self) -> CuttableProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when a network path dies
        self._writers.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_w, broker_w))

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pump(client_r, broker_w), pump(broker_r, client_w))
        self._writers.difference_update((client_w, broker_w))
