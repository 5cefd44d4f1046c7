"""Broker tests: one embedded Tansu broker per session, unique topics and group per test,
workers as real subprocesses (``python -m processor worker``) so SIGKILL is real."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from keys import Keyring, MasterKey, generate_master_key, load_keyring_from, save_keyring
from processor.broker import EmbeddedBroker
from processor.demo import WorkerProcess, produce, read_topic, start_worker
from processor.outcome import Route
from processor.settings import Settings
from processor.worker import prepare_topics


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
    directory = tmp_path_factory.mktemp("keys")
    master_text = generate_master_key()
    master = directory / "master.key"
    master.write_text(master_text)
    keyring = directory / "keyring.sealed"
    save_keyring(keyring, Keyring.generate(), MasterKey.from_base64(master_text, "test"))
    return keyring, master


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

    def start_worker(self) -> WorkerProcess:
        proc = start_worker(len(self.workers), self.workdir, self.env)
        self.workers.append(proc)
        return proc

    def feed(self, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
        topics = self.settings.input_topics
        return produce(self.broker.address, ((topics[s], k, v) for s, k, v in records))

    def processed(self) -> int:
        return sum(int(w.stats().get("in", 0)) for w in self.workers)

    def wait_processed(self, n: int, timeout: float = 60.0) -> None:
        wait_for(
            lambda: self.processed() >= n,
            timeout,
            lambda: f"processed {self.processed()} of {n}; logs in {self.workdir}",
        )

    def output(self, route: Route, timeout: float = 2.0) -> list[Any]:
        return read_topic(self.broker.address, self.settings.output_topics[route], timeout=timeout)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


def wait_for(
    condition: Callable[[], bool], timeout: float, message: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {message()}")
        time.sleep(0.1)


@pytest.fixture
def stack(
    broker: EmbeddedBroker, keyring_files: tuple[Path, Path], tmp_path: Path
) -> Iterator[Stack]:
    keyring, master = keyring_files
    unique = uuid.uuid4().hex[:8]
    env = {
        "broker": broker.url,
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
    test_stack = Stack(broker, tmp_path, env, settings)
    try:
        yield test_stack
    finally:
        test_stack.close()


def kill9(worker: WorkerProcess) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)


def by_event(records: Iterable[Any]) -> dict[str, int]:
    """event_id -> how many times it was seen (duplicates are allowed, and counted)."""
    seen: Counter[str] = Counter()
    for record in records:
        value = orjson.loads(record.value)
        seen[str(value.get("event_id"))] += 1
    return dict(seen)


def quarantine_sources(records: Iterable[Any]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for record in records:
        source = orjson.loads(record.value)["source"]
        seen[f"{source['topic']}/{source.get('partition')}/{source.get('offset')}"] += 1
    return seen


def event_json(
    event_id: str,
    user_id: str | None,
    *,
    event_type: str = "view",
    event_time: int = 1_764_316_800_000,
    oaid: str = "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b",
    imei: str = "356938035643809",
) -> bytes:
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
            "payload": {"item_id": "v-1", "position": 3},
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
    out: dict[str, set[str]] = defaultdict(set)
    for route in (Route.RECOMMENDATION, Route.AD_ANALYTICS):
        for event_id in by_event(stack.output(route)):
            out[event_id].add(route.value)
    return out
