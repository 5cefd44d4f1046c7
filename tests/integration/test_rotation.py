"""Scheduled ad-analytics key rotation on the real broker: a worker follows an hourly
schedule kept in the keyring on a clock the test moves (``clocked_worker``: no waiting for
a boundary), then picks up a `keys rotate` written to the file while it runs (the cron
path), losing nothing and leaking nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from keys import Domain, Keyring, MasterKey, RotationSchedule, generate_master_key, save_keyring
from processor.devtools import synth
from processor.devtools.broker import EmbeddedBroker
from processor.pipeline.outcome import Route
from tests.integration.clocked_worker import COMMAND, set_clock
from tests.integration.conftest import (
    Stack,
    consent_json,
    event_json,
    item_of,
    make_stack,
    wait_for,
)

pytestmark = pytest.mark.broker

PERIOD_S = 3600
START = datetime(2026, 11, 30, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
USERS = [f"u80{n:04d}" for n in range(20)]


@pytest.fixture
def scheduled(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[tuple[Stack, MasterKey]]:
    """A stack whose keyring rotates the ad-analytics key every hour (one minute overlap)
    from ``START``; the worker's clock starts ten periods later."""
    text = generate_master_key()
    master_file = tmp_path / "master.key"
    master_file.write_text(text)
    master_file.chmod(0o600)
    master = MasterKey.from_base64(text, "test")
    plan = RotationSchedule(Domain.AD_ANALYTICS, PERIOD_S, 60, START)
    keyring = tmp_path / "keyring.sealed"
    save_keyring(keyring, Keyring.generate().with_schedule(plan), master)
    with make_stack(broker, (keyring, master_file), tmp_path) as stack:
        yield stack, master


def feed_round(stack: Stack, name: str) -> list[bytes]:
    events = [event_json(f"e-{name}-{i}", user) for i, user in enumerate(USERS)]
    stack.feed((synth.RAW_BEHAVIOUR, u.encode(), e) for u, e in zip(USERS, events, strict=True))
    return events


def key_ids(stack: Stack, route: Route) -> dict[str, str]:
    """event id -> the key id of the record's pseudonyms (checked against its prefix)."""
    out = {}
    for record in stack.output(route, timeout=0.5):
        value = orjson.loads(record.value)
        [key_id] = value["key_ids"]
        assert value["user_id"].startswith(key_id + ":")
        assert dict(record.headers)["key-ids"].decode() == key_id
        out[value["payload"]["item_id"]] = key_id  # event_json: the fed event id
    return out


def test_worker_follows_the_ad_schedule_and_a_reloaded_keyring(
    scheduled: tuple[Stack, MasterKey],
) -> None:
    stack, master = scheduled
    clock = stack.workdir / "clock"
    set_clock(clock, START_MS + 10 * PERIOD_S * 1000)
    consents = [(synth.CONSENT, u.encode(), consent_json(u, 1000)) for u in USERS]
    stack.start_worker(
        command=COMMAND,
        ad_stats_enabled="false",
        keyring_reload_interval="0.5",
        test_clock_file=str(clock),
    )
    stack.feed(consents)
    stack.wait_processed(len(USERS))
    raw_values = [v for _, _, v in consents]
    fed = len(USERS)
    for n in range(8):  # four periods, two rounds each (past each overlap)
        set_clock(clock, START_MS + (10 * PERIOD_S + n * PERIOD_S // 2 + 120) * 1000)
        raw_values += feed_round(stack, f"s{n}")
        fed += len(USERS)
        stack.wait_processed(fed)

    ads = key_ids(stack, Route.AD_ANALYTICS)
    recs = key_ids(stack, Route.RECOMMENDATION)
    scheduled_ids = {e: k for e, k in ads.items() if e.startswith("e-s")}
    assert len(scheduled_ids) == 8 * len(USERS)  # nothing lost
    periods = {f"adp-{START_MS // 1000 + (10 + n) * PERIOD_S}" for n in range(4)}
    assert set(scheduled_ids.values()) == periods
    for n in range(8):  # each round under the key of the period its clock was in
        round_ids = {k for e, k in scheduled_ids.items() if e.startswith(f"e-s{n}-")}
        assert round_ids == {f"adp-{START_MS // 1000 + (10 + n // 2) * PERIOD_S}"}, n
    assert {k for e, k in recs.items() if e.startswith("e-s")} == {"rec-1"}
    # one user's ad pseudonym changes with the period, its recommendation one does not
    ad_users = {
        orjson.loads(r.value)["user_id"]
        for r in stack.output(Route.AD_ANALYTICS)
        if item_of(r).endswith("-0")
    }
    assert len(ad_users) == 4

    # `keys rotate --domain recommendation` from cron: the worker reloads the file
    keyring = stack.keyring
    save_keyring(stack.settings.require_keyring(), keyring.rotate(Domain.RECOMMENDATION), master)
    rounds = 0

    def rotated() -> bool:
        nonlocal rounds, fed
        rounds += 1
        raw_values.extend(feed_round(stack, f"r{rounds}"))
        fed += len(USERS)
        stack.wait_processed(fed)
        return "rec-2" in key_ids(stack, Route.RECOMMENDATION).values()

    wait_for(rotated, 30, lambda: f"no rec-2 record after {rounds} rounds; {stack.workdir}")
    assert len(key_ids(stack, Route.RECOMMENDATION)) == fed - len(USERS)  # nothing lost
    assert any(b"keyring reloaded" in line for line in stack.log_lines())
    assert stack.leaks(raw_values) == []
