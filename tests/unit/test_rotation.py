"""Scheduled rotation of the ad-analytics keys: derivation, boundaries, overlap, the
pipeline following the schedule, the keyring file, and `keys schedule`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from keys import Domain, Keyring, MasterKey, RotationSchedule, load_keyring, save_keyring
from processor.cli import main
from processor.errors import ConfigError, KeyringFormatError
from processor.kafka.adstats import check_schedule_fits_windows
from processor.pipeline.consent import MemoryConsentState
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline
from tests.unit.test_keys import MASTER_B64, assert_no_material
from tests.unit.test_pipeline import FakeLocator, by_route, consent_record, raw

START = datetime(2026, 11, 30, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
DAY_MS = 86_400_000
SRC = SourceRef("raw.behaviour", 0, 1)
# what the output contracts (schemas/contracts/clean.*.json) and the leak scanner expect
CONTRACT_PSEUDONYM = re.compile(r"^[a-z]+-[0-9]+:[a-z2-7]{26}$")
SCANNER_KEY_ID = re.compile(r"^[a-z]{2,8}-[0-9]{1,10}$")


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    plan = RotationSchedule(Domain.AD_ANALYTICS, 86_400, 3_600, START)
    return Keyring.generate(datetime(2026, 11, 1, tzinfo=UTC)).with_schedule(plan)


def secret(keyring: Keyring, domain: Domain, at_ms: int) -> bytes:
    return keyring.in_force(domain, at_ms).pseudonym_key()


def test_period_key_is_deterministic_and_named_after_its_start(keyring: Keyring) -> None:
    key = keyring.in_force(Domain.AD_ANALYTICS, START_MS + DAY_MS + 5)
    assert key.key_id == f"adp-{(START_MS + DAY_MS) // 1000}"
    assert SCANNER_KEY_ID.fullmatch(key.key_id)
    assert key.pseudonym_key() == secret(keyring, Domain.AD_ANALYTICS, START_MS + 2 * DAY_MS - 1)
    reread = Keyring(keyring.keys, keyring.schedule)  # another worker, same keyring
    assert reread.in_force(Domain.AD_ANALYTICS, START_MS + DAY_MS).pseudonym_key() == (
        key.pseudonym_key()
    )


def test_period_keys_differ_per_period_and_from_other_domains(keyring: Keyring) -> None:
    secrets = {secret(keyring, Domain.AD_ANALYTICS, START_MS + n * DAY_MS) for n in range(5)} | {
        keyring.active(Domain.AD_ANALYTICS).pseudonym_key()
    }
    assert len(secrets) == 6
    assert secret(keyring, Domain.RECOMMENDATION, START_MS) not in secrets
    assert keyring.in_force(Domain.RECOMMENDATION, START_MS + DAY_MS).key_id == "rec-1"


def test_before_the_start_the_stored_key_serves(keyring: Keyring) -> None:
    assert keyring.in_force(Domain.AD_ANALYTICS, START_MS - 1).key_id == "ad-1"
    assert keyring.schedule is not None
    assert keyring.schedule.next_change_ms(START_MS - 1) == START_MS


def test_overlap_accepts_the_previous_key_until_it_ends(keyring: Keyring) -> None:
    def accepted(at_ms: int) -> list[str]:
        return [k.key_id for k in keyring.accepted(Domain.AD_ANALYTICS, at_ms)]

    first, second = f"adp-{START_MS // 1000}", f"adp-{(START_MS + DAY_MS) // 1000}"
    assert accepted(START_MS) == [first, "ad-1"]  # right after the start: the stored key
    assert accepted(START_MS + 3_600_000) == [first]
    assert accepted(START_MS + DAY_MS + 3_599_999) == [second, first]
    assert accepted(START_MS + DAY_MS + 3_600_000) == [second]
    plan = keyring.schedule
    assert plan is not None
    assert plan.next_change_ms(START_MS + DAY_MS) == START_MS + DAY_MS + 3_600_000
    assert plan.next_change_ms(START_MS + DAY_MS + 3_600_000) == START_MS + 2 * DAY_MS


def test_a_stored_rotation_takes_effect_at_the_next_boundary(keyring: Keyring) -> None:
    rotated = keyring.rotate(Domain.AD_ANALYTICS, datetime.fromtimestamp(START_MS / 1000 + 60, UTC))
    assert rotated.schedule == keyring.schedule
    during = START_MS + 120_000
    assert secret(rotated, Domain.AD_ANALYTICS, during) == secret(
        keyring, Domain.AD_ANALYTICS, during
    )
    after = START_MS + DAY_MS
    assert secret(rotated, Domain.AD_ANALYTICS, after) != secret(
        keyring, Domain.AD_ANALYTICS, after
    )


@pytest.mark.parametrize("domain", [Domain.RECOMMENDATION, Domain.QUARANTINE])
def test_only_ad_analytics_may_be_scheduled(domain: Domain) -> None:
    with pytest.raises(KeyringFormatError, match="only ad-analytics"):
        RotationSchedule(domain, 86_400, 0, START)


@pytest.mark.parametrize(
    ("period", "overlap", "message"),
    [(0, 0, "at least 1 s"), (60, 60, "shorter than the period"), (60, -1, "0 or more")],
)
def test_bad_schedules_are_refused(period: int, overlap: int, message: str) -> None:
    with pytest.raises(KeyringFormatError, match=message):
        RotationSchedule(Domain.AD_ANALYTICS, period, overlap, START)


def test_schedule_survives_sealing(tmp_path: Path, keyring: Keyring) -> None:
    master = MasterKey.from_base64(MASTER_B64, "test")
    path = tmp_path / "keyring.json"
    save_keyring(path, keyring, master)
    assert load_keyring(path, master).schedule == keyring.schedule


def test_statistics_refuse_a_schedule_that_splits_a_window(keyring: Keyring) -> None:
    check_schedule_fits_windows(keyring.schedule, 3600.0)
    with pytest.raises(ConfigError, match="ad_stats_window"):
        check_schedule_fits_windows(keyring.schedule, 7 * 3600.0)
    odd = RotationSchedule(Domain.AD_ANALYTICS, 86_400, 0, START.replace(minute=30))
    with pytest.raises(ConfigError, match="keys schedule"):
        check_schedule_fits_windows(odd, 3600.0)


# -- the pipeline ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def scheduled_pipeline(keyring: Keyring, now_ms: int) -> Pipeline:
    pipeline = Pipeline(
        keyring, consent=MemoryConsentState(), locator=FakeLocator(), clock=Clock(now_ms)
    )
    pipeline.process(consent_record(), SourceRef("consent"))
    return pipeline


def test_at_the_boundary_ad_pseudonyms_change_and_recommendation_ones_stay(
    keyring: Keyring,
) -> None:
    pipeline = scheduled_pipeline(keyring, START_MS + DAY_MS - 10)
    before = by_route(pipeline.process(raw(), SRC))
    assert pipeline.follow_schedule(START_MS + DAY_MS - 1) == []
    assert pipeline.follow_schedule(START_MS + DAY_MS) == [f"adp-{(START_MS + DAY_MS) // 1000}"]
    after = by_route(pipeline.process(raw(), SRC))
    rec_before, rec_after = before[Route.RECOMMENDATION], after[Route.RECOMMENDATION]
    ad_before, ad_after = before[Route.AD_ANALYTICS], after[Route.AD_ANALYTICS]
    assert rec_after["user_id"] == rec_before["user_id"]
    assert rec_after["key_ids"] == ["rec-1"]
    assert ad_after["user_id"] != ad_before["user_id"]
    assert ad_after["device"]["oaid"] != ad_before["device"]["oaid"]
    assert ad_after["key_ids"] == [f"adp-{(START_MS + DAY_MS) // 1000}"]
    assert ad_after["user_id"].startswith(ad_after["key_ids"][0] + ":")
    assert CONTRACT_PSEUDONYM.fullmatch(ad_after["user_id"])
    assert pipeline.stats["out:ad-analytics"] == 2  # the counter survives the swap


def test_erasure_in_the_overlap_names_the_user_under_both_period_keys(keyring: Keyring) -> None:
    pipeline = scheduled_pipeline(keyring, START_MS + DAY_MS - 10)
    ad_before = by_route(pipeline.process(raw(), SRC))[Route.AD_ANALYTICS]["user_id"]
    pipeline.follow_schedule(START_MS + DAY_MS + 60_000)
    ad_after = by_route(pipeline.process(raw(), SRC))[Route.AD_ANALYTICS]["user_id"]
    [erasure] = [
        r
        for r in pipeline.process(
            consent_record(account="deleted", event_time=1764316800500), SourceRef("consent")
        ).records
        if r.route is Route.ERASURE_AD_ANALYTICS
    ]
    body = erasure.json()
    assert body["user"][:2] == [ad_after, ad_before]
    assert body["user"][2].startswith("ad-1:")  # the stored key too
    assert dict(erasure.headers)["key-ids"].decode().split(",")[:2] == [
        ad_after.split(":")[0],
        ad_before.split(":")[0],
    ]


def test_after_the_overlap_erasure_names_only_the_current_period_key(keyring: Keyring) -> None:
    pipeline = scheduled_pipeline(keyring, START_MS + DAY_MS + 3_600_000)
    records = pipeline.process(
        consent_record(account="deleted", event_time=1764316800500), SourceRef("consent")
    ).records
    [ad] = [r.json()["user"] for r in records if r.route is Route.ERASURE_AD_ANALYTICS]
    assert [p.split(":")[0] for p in ad] == [f"adp-{(START_MS + DAY_MS) // 1000}", "ad-1"]


def test_a_reloaded_keyring_serves_from_the_next_follow(keyring: Keyring) -> None:
    plain = Keyring(keyring.keys)
    pipeline = scheduled_pipeline(plain, START_MS)
    rotated = plain.rotate(Domain.RECOMMENDATION)
    pipeline.use_keyring(rotated)
    assert pipeline.follow_schedule(START_MS + 1) == ["rec-2"]
    out = by_route(pipeline.process(raw(), SRC))
    assert out[Route.RECOMMENDATION]["key_ids"] == ["rec-2"]
    assert out[Route.AD_ANALYTICS]["key_ids"] == ["ad-1"]


# -- `keys schedule` and `keys list` ------------------------------------------------------


@pytest.fixture
def keyring_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER_B64)
    path = tmp_path / "keyring.json"
    assert run("init", "--keyring", path).exit_code == 0
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["keys", *map(str, args)])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--domain", "recommendation", "--period", "7d"), "only ad-analytics"),
        (("--domain", "quarantine", "--period", "7d"), "keys rotate --domain quarantine"),
        (("--domain", "ad-analytics", "--period", "7x"), "not a duration"),
        (("--domain", "ad-analytics"), "--period"),
        (("--domain", "ad-analytics", "--period", "1d", "--overlap", "2d"), "shorter than"),
        (("--domain", "ad-analytics", "--period", "1d", "--start", "2026-12-01"), "with a zone"),
        (("--domain", "ad-analytics", "--off", "--period", "1d"), "--off takes no"),
    ],
)
def test_keys_schedule_refuses_bad_input_and_leaves_the_keyring(
    keyring_path: Path, args: tuple[str, ...], message: str
) -> None:
    before = keyring_path.read_bytes()
    result = run("schedule", "--keyring", keyring_path, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert keyring_path.read_bytes() == before


def test_keys_schedule_then_list_shows_keys_in_force_and_next(keyring_path: Path) -> None:
    result = run(
        "schedule", "--keyring", keyring_path, "--domain", "ad-analytics",
        "--period", "1d", "--overlap", "6h", "--start", "2026-01-01T00:00:00Z",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "every 86400 s" in result.stdout and "for 21600 s" in result.stdout
    listed = run("list", "--keyring", keyring_path)
    assert listed.exit_code == 0
    statuses = {line.split()[2] for line in listed.stdout.splitlines() if line.startswith("adp-")}
    assert {"scheduled", "next"} <= statuses
    assert "in force: adp-" in listed.stdout
    assert_no_material(
        listed.output, load_keyring(keyring_path, MasterKey.from_base64(MASTER_B64, "t"))
    )
    off = run("schedule", "--keyring", keyring_path, "--domain", "ad-analytics", "--off")
    assert off.exit_code == 0 and "ad-1 makes pseudonyms" in off.stdout
    assert "adp-" not in run("list", "--keyring", keyring_path).stdout


def test_a_reloaded_keyring_with_the_same_ids_but_new_material_serves_too(
    keyring: Keyring,
) -> None:
    pipeline = scheduled_pipeline(Keyring(keyring.keys), START_MS)
    before = by_route(pipeline.process(raw(), SRC))[Route.RECOMMENDATION]["user_id"]
    pipeline.use_keyring(Keyring.generate())  # `keys init --force`: rec-1 again, new material
    assert pipeline.follow_schedule(START_MS + 1) == ["rec-1", "ad-1"]
    after = by_route(pipeline.process(raw(), SRC))[Route.RECOMMENDATION]["user_id"]
    assert after.startswith("rec-1:") and after != before
