"""The worker's start-up choices, on workers built but never started (no broker): the
library version check and its fallback to faust's plain path, ``broker_commit_every``, the
``policy`` setting, and the injectable clock."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP
from faust.types.tuples import Message

from keys import Domain, Keyring, RotationSchedule, save_keyring
from processor.errors import ConfigError, PolicyError
from processor.kafka.checkpoint import ack_all
from processor.kafka.versions import TESTED, choose_fast_path, untested
from processor.kafka.worker import StreamWorker
from schemas import load_policy
from tests.unit.test_keyring_reload import MASTER, settings_for
from tests.unit.test_rotation import DAY_MS, START, START_MS


def as_tested(name: str) -> str:
    return sorted(TESTED[name])[0]


def another_aiokafka(name: str) -> str:
    return "0.99.0" if name == "aiokafka" else as_tested(name)


def test_on_the_as_testeds_the_fast_path_runs() -> None:
    assert untested(as_tested) == []
    assert choose_fast_path(True, as_tested) is True


def test_on_an_unas_tested_the_worker_warns_once_and_takes_the_plain_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "pseudostream.worker"):
        assert choose_fast_path(True, another_aiokafka) is False
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "untested aiokafka 0.99.0" in message
    assert "plain path" in message


def test_fast_path_false_takes_the_plain_path_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "pseudostream.worker"):
        assert choose_fast_path(False, as_tested) is False
    assert caplog.records == []


def test_the_installed_libraries_are_the_tested_ones() -> None:
    """The pins in pyproject.toml and :data:`TESTED` move together."""
    assert untested() == []


def _worker(tmp_path: Path, **overrides: str) -> StreamWorker:
    path = tmp_path / "keyring.sealed"
    keyring = Keyring.generate()
    save_keyring(path, keyring, MASTER)
    return StreamWorker(
        settings_for(path, tmp_path, ad_stats_enabled="false", **overrides), keyring
    )


def test_the_plain_path_registers_an_agent_and_the_fast_path_none(tmp_path: Path) -> None:
    plain = _worker(tmp_path, fast_path="false")
    assert not plain.fast_path
    assert [agent.name for agent in plain.app.agents.values()] == ["pseudostream.process"]
    fast = _worker(tmp_path)
    assert fast.fast_path
    assert list(fast.app.agents) == []


def test_broker_commit_every_reaches_faust_for_the_plain_path(tmp_path: Path) -> None:
    worker = _worker(tmp_path, fast_path="false", broker_commit_every="250")
    assert worker.app.conf.broker_commit_every == 250


def test_when_broker_commit_every_messages_were_acked_then_the_fast_path_commits(
    tmp_path: Path,
) -> None:
    worker = _worker(tmp_path, broker_commit_every="3")
    consumer = worker.app.consumer
    consumer.app.topics._acking_topics.add("raw")
    turn = 0
    commits: list[int] = []  # the fetch-loop turn of each commit

    async def commit(*args: Any, **kwargs: Any) -> bool:
        commits.append(turn)
        return True

    consumer.commit = commit

    def acked(offsets: range) -> None:
        messages = [
            Message("raw", 0, o, 0.0, 0, None, b"k", b"v", None, tp=TP("raw", 0)) for o in offsets
        ]
        ack_all(consumer, messages)

    async def turns() -> None:
        nonlocal turn
        for offsets in (range(2), range(2, 4), range(4, 6), range(6, 7)):
            turn += 1
            acked(offsets)
            await worker.fetched()

    asyncio.run(turns())
    assert commits == [2, 4]  # after 4 acks, then after 3 more (counted again from 0)
    assert consumer._n_acked == 0


def test_broker_commit_every_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="broker_commit_every: must be at least 1"):
        settings_for(tmp_path / "k", tmp_path, broker_commit_every="0")


def test_the_policy_setting_is_the_policy_the_worker_runs(tmp_path: Path) -> None:
    document = load_policy()
    document["policy"] = "operator/7"
    del document["routes"]["recommendation"]["fields"]["device.brand"]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    worker = _worker(tmp_path, policy=str(path))
    assert worker.pipeline.policy.version == "operator/7"
    assert _worker(tmp_path).pipeline.policy.version == load_policy()["policy"]


def test_a_broken_policy_file_is_refused_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text("{")
    with pytest.raises(PolicyError, match="not readable JSON"):
        _worker(tmp_path, policy=str(path))


class _Clock:
    def __init__(self, wall_ms: int) -> None:
        self.now_ms = wall_ms
        self.seconds = 0.0

    def wall_ms(self) -> int:
        return self.now_ms

    def monotonic(self) -> float:
        return self.seconds


def test_the_scheduled_key_switch_follows_the_injected_clock(tmp_path: Path) -> None:
    """No waiting for a boundary: the worker's clock is set past it."""
    plan = RotationSchedule(Domain.AD_ANALYTICS, 86_400, 0, START)
    keyring = Keyring.generate(datetime(2026, 11, 1, tzinfo=UTC)).with_schedule(plan)
    path = tmp_path / "keyring.sealed"
    save_keyring(path, keyring, MASTER)
    clock = _Clock(START_MS + DAY_MS + 5)
    settings = settings_for(path, tmp_path, ad_stats_enabled="false")
    worker = StreamWorker(settings, keyring, clock=clock)
    assert worker.view.active_key_ids()["ad-analytics"] == f"adp-{(START_MS + DAY_MS) // 1000}"
    clock.now_ms = START_MS + 2 * DAY_MS
    worker._follow_schedule()  # what the next batch does when its boundary passed
    assert worker.view.active_key_ids()["ad-analytics"] == f"adp-{(START_MS + 2 * DAY_MS) // 1000}"
