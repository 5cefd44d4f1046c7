"""The worker's keyring reload (`keys rotate` from cron) and its start-up check of a schedule
against the statistics windows, on a StreamWorker that is built but never started."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import Domain, Keyring, MasterKey, RotationSchedule, save_keyring
from processor.errors import ConfigError
from processor.kafka.worker import StreamWorker
from processor.ops.settings import Settings
from tests.unit.test_keys import MASTER_B64, assert_no_material

MASTER = MasterKey.from_base64(MASTER_B64, "test")


def settings_for(path: Path, tmp_path: Path, **overrides: str) -> Settings:
    env = {
        "PSEUDOSTREAM_KEYRING": str(path),
        "PSEUDOSTREAM_DATA_DIR": str(tmp_path / "data"),
        **{f"PSEUDOSTREAM_{k.upper()}": v for k, v in overrides.items()},
    }
    return Settings.load(env)


def touch_later(path: Path) -> None:
    """A distinct modification time even on coarse file systems."""
    later = time.time_ns() + 2_000_000_000
    os.utime(path, ns=(later, later))


@pytest.fixture
def worker(tmp_path: Path) -> tuple[StreamWorker, Path, Keyring]:
    path = tmp_path / "keyring.sealed"
    keyring = Keyring.generate()
    save_keyring(path, keyring, MASTER)
    return StreamWorker(settings_for(path, tmp_path), keyring), path, keyring


def test_when_keyring_file_changes_then_its_keys_serve_from_the_next_batch(
    worker: tuple[StreamWorker, Path, Keyring], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, path, keyring = worker
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER_B64)
    save_keyring(path, keyring.rotate(Domain.AD_ANALYTICS), MASTER)
    touch_later(path)
    asyncio.run(stream.keyring_watch.reload_if_changed())
    stream._follow_schedule()
    assert stream.view.active_key_ids() == {
        "recommendation": "rec-1",
        "ad-analytics": "ad-2",
        "quarantine": "quar-1",
    }


def test_when_reloaded_keyring_is_broken_then_the_keys_in_use_stay(
    worker: tuple[StreamWorker, Path, Keyring],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream, path, keyring = worker
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER_B64)
    path.write_text('{"format": "pseudostream-keyring/1", "check": "')  # half copied
    touch_later(path)
    with caplog.at_level(logging.ERROR, logger="pseudostream.worker"):
        asyncio.run(stream.keyring_watch.reload_if_changed())
    stream._follow_schedule()
    assert stream.view.active_key_ids()["ad-analytics"] == "ad-1"
    [record] = caplog.records
    assert "keyring reload failed, keeping the keys in use" in record.getMessage()
    assert "restore it from backup" in record.getMessage()
    assert_no_material(record.getMessage(), keyring)


def test_when_schedule_splits_a_statistics_window_then_the_worker_refuses(tmp_path: Path) -> None:
    path = tmp_path / "keyring.sealed"
    plan = RotationSchedule(Domain.AD_ANALYTICS, 5_400, 0, datetime(2026, 12, 1, tzinfo=UTC))
    keyring = Keyring.generate().with_schedule(plan)
    save_keyring(path, keyring, MASTER)
    with pytest.raises(ConfigError, match="ad_stats_window"):
        StreamWorker(settings_for(path, tmp_path), keyring)
    StreamWorker(settings_for(path, tmp_path, ad_stats_window="1800"), keyring)


def test_a_keyring_reload_is_audited_with_key_ids_only(
    worker: tuple[StreamWorker, Path, Keyring], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stream, path, keyring = worker
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER_B64)
    monkeypatch.setenv("PSEUDOSTREAM_AUDIT_LOG", str(audit))
    save_keyring(path, keyring.rotate(Domain.AD_ANALYTICS), MASTER)
    touch_later(path)
    asyncio.run(stream.keyring_watch.reload_if_changed())
    [entry] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert entry["action"] == "keyring_reload"
    assert sorted(entry["key_ids"]) == ["ad-1", "ad-2", "quar-1", "rec-1"]
    assert_no_material(audit.read_text(), keyring)


def test_the_worker_skips_fausts_recovery_consistency_check(
    worker: tuple[StreamWorker, Path, Keyring],
) -> None:
    """Tables live in memory: the check only ever fired on Tansu's short end offsets, and
    crashed a worker at a rebalance (tests/integration/test_drills.py, two workers)."""
    assert worker[0].app.conf.recovery_consistency_check is False
