"""The privacy policy's rules as a user checks them: `pseudostream transform` over hand-written
lines (their order is the consent topic's order), `subject lookup` and the audit log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.errors import ConfigError
from processor.ops.audit import append_audit

USER = "u10293847"
DEVICE = {
    "imei": "356938035643809",
    "meid": "A0000012345678",
    "oaid": "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b",
    "android_id": "1f2e3d4c5b6a7988",
    "mac": "3C:5A:B4:12:34:56",
    "brand": "Xiaomi",
}


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PSEUDOSTREAM_AUDIT_LOG", str(path))
    return path


def consent(time: int, user: str = USER, **changes: Any) -> dict[str, Any]:
    record = {
        "schema": "consent/1",
        "user_id": user,
        "event_time": time,
        "personalized_recommendation": True,
        "personalized_ads": True,
        "precise_location": True,
        "age_band": "adult",
        "account": "active",
    }
    return {**record, **changes}


def event(n: int, user: str | None = USER, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema": "behaviour/1",
        "event_id": f"e-{n}",
        "event_time": 1764316800000 + n,
        "event_type": "gift",
        "device": dict(DEVICE),
        "network": {"ip": "61.128.128.68", "type": "wifi"},
        # the item id repeats the event id: outputs carry only the event id's pseudonym
        "payload": {"item_id": f"e-{n}", "target_user_id": "u55", "amount_cents": 52000},
    }
    if user is not None:
        record["user_id"] = user
    return {**record, **changes}


def envelope(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the worker would read it: on its topic, keyed by its user (a logged-out
    event by its Android ID)."""
    topic = "consent" if record["schema"] == "consent/1" else "raw.behaviour"
    key = record.get("user_id") or record.get("device", {}).get("android_id")
    return {"topic": topic, "key": key, "value": record}


def transform(keyring_path: Path, *records: dict[str, Any]) -> list[dict[str, Any]]:
    """Envelope lines through ``pseudostream transform``, bound to their topics as in the
    worker."""
    lines = "".join(json.dumps(envelope(r)) + "\n" for r in records)
    result = CliRunner().invoke(main, ["transform", "--keyring", str(keyring_path)], input=lines)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def item_of(line: dict[str, Any]) -> object:
    return line["value"].get("payload", {}).get("item_id")


def topics_of(lines: list[dict[str, Any]], event_id: str) -> set[str]:
    return {line["topic"] for line in lines if item_of(line) == event_id}


def test_a_withdrawal_with_an_older_event_time_still_stops_ad_records(keyring_path: Path) -> None:
    lines = transform(
        keyring_path,
        consent(2000),
        event(1),
        consent(1000, personalized_ads=False),  # the client's clock was behind
        event(2),
    )
    assert topics_of(lines, "e-1") == {"clean.recommendation", "clean.ad-analytics"}
    assert topics_of(lines, "e-2") == {"clean.recommendation"}


def test_deleted_then_active_stays_suppressed_and_devices_are_erased(keyring_path: Path) -> None:
    logged_out = event(3, user=None)
    lines = transform(
        keyring_path,
        consent(1),
        event(1),
        consent(2, account="deleted"),
        consent(3),  # deletion is final
        event(2),
        logged_out,  # the deleted user's phone, logged out
    )
    before = [line for line in lines if item_of(line) == "e-1"]
    notices = [line for line in lines if line["topic"].startswith("erasure.")]
    assert {n["topic"] for n in notices} == {"erasure.recommendation", "erasure.ad-analytics"}
    named = {p for n in notices for p in (*n["value"]["user"], *n["value"]["devices"])}
    device_pseudonyms = {
        v for line in before for k, v in line["value"]["device"].items() if k != "brand"
    }
    assert device_pseudonyms and device_pseudonyms <= named
    assert topics_of(lines, "e-2") == set()
    [after] = [line for line in lines if item_of(line) == "e-3"]
    assert not named & set(json.dumps(after).replace('"', " ").split())
    for notice in notices:  # one domain per notice
        prefix = "rec-" if notice["topic"] == "erasure.recommendation" else "ad-"
        assert all(
            p.startswith(prefix) for p in (*notice["value"]["user"], *notice["value"]["devices"])
        )


def test_a_child_without_guardian_consent_yields_nothing(keyring_path: Path) -> None:
    lines = transform(keyring_path, consent(1, age_band="child"), event(1))
    assert lines == []


def test_without_a_consent_record_no_user_or_device_pseudonym(keyring_path: Path) -> None:
    [line] = transform(keyring_path, event(1))
    assert line["topic"] == "clean.recommendation"
    assert "user_id" not in line["value"]
    assert set(line["value"]["device"]) == {"brand"}


def test_ad_record_has_no_exact_amount_or_target_and_recommendation_no_mac_or_ip(
    keyring_path: Path,
) -> None:
    lines = transform(keyring_path, consent(1), event(1))
    by_topic = {line["topic"]: line["value"] for line in lines}
    ad, rec = by_topic["clean.ad-analytics"], by_topic["clean.recommendation"]
    assert ad["payload"] == {"item_id": "e-1", "amount_band": "100-999.99 yuan"}
    assert "mac" not in rec["device"] and "ip" not in rec.get("network", {})


def test_subject_lookup_prints_the_pseudonyms_transform_wrote_and_is_audited(
    keyring_path: Path, audit_log: Path
) -> None:
    lines = transform(keyring_path, consent(1), event(1))
    written = {
        (line["topic"], k): v
        for line in lines
        for k, v in (
            ("user_id", line["value"]["user_id"]),
            ("imei", line["value"]["device"]["imei"]),
        )
    }
    result = CliRunner().invoke(
        main,
        [
            "subject", "lookup", "--keyring", str(keyring_path), "--user-id", USER,
            "--device-id", "imei=35-693803-564380-9",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [row.split("\t") for row in result.stdout.splitlines()]
    assert {(d, k) for d, _, k, _ in rows} == {
        (d, k) for d in ("recommendation", "ad-analytics") for k in ("user_id", "imei")
    }
    printed = {p for *_, p in rows}
    assert set(written.values()) <= printed
    assert all(p.startswith(key_id + ":") for _, key_id, _, p in rows)
    [entry] = [orjson.loads(line) for line in audit_log.read_bytes().splitlines()]
    assert entry["action"] == "subject_lookup"
    assert entry["kinds"] == ["user_id", "imei"] and entry["pseudonyms"] == len(rows)
    text = audit_log.read_text()
    assert USER not in text and "356938035643809" not in text and "564380" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device-id", "serial=R58M"], "expected KIND=VALUE"),
        (["--device-id", "imei"], "expected KIND=VALUE"),
        (
            ["--device-id", "oaid=00000000-0000-0000-0000-000000000000"],
            "--device-id oaid: a placeholder",
        ),
    ],
)
def test_subject_lookup_refuses_a_bad_identifier_in_one_line(
    keyring_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        main, ["subject", "lookup", "--keyring", str(keyring_path), "--user-id", USER, *args]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_when_the_audit_log_is_unset_nothing_is_written(tmp_path: Path) -> None:
    append_audit("subject_lookup", kinds=["user_id"])
    assert "PSEUDOSTREAM_AUDIT_LOG" not in os.environ
    assert list(tmp_path.iterdir()) == []


def test_an_audit_line_names_time_action_and_actor(
    audit_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_ACTOR", "alice@ops")
    append_audit("keys_rotate", domain="ad-analytics", key_id="ad-2")
    append_audit("keyring_reload", key_ids=["rec-1", "ad-2"])
    first, second = (orjson.loads(line) for line in audit_log.read_bytes().splitlines())
    assert first["time"].endswith("Z") and first["time"][:2] == "20"
    assert first == {**first, "action": "keys_rotate", "actor": "alice@ops", "key_id": "ad-2"}
    assert second["action"] == "keyring_reload"
    assert audit_log.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_an_unwritable_audit_log_is_an_error_not_a_silent_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_AUDIT_LOG", str(tmp_path / "missing-dir" / "audit.jsonl"))
    with pytest.raises(ConfigError, match="PSEUDOSTREAM_AUDIT_LOG: cannot append"):
        append_audit("subject_lookup")


def test_key_rotation_appends_an_audit_line_without_key_material(
    keyring_path: Path, audit_log: Path
) -> None:
    result = CliRunner().invoke(
        main, ["keys", "rotate", "--keyring", str(keyring_path), "--domain", "ad-analytics"]
    )
    assert result.exit_code == 0, result.output
    [entry] = [orjson.loads(line) for line in audit_log.read_bytes().splitlines()]
    assert (entry["action"], entry["domain"], entry["key_id"]) == (
        "keys_rotate",
        "ad-analytics",
        "ad-2",
    )
    assert set(entry) == {"time", "action", "actor", "keyring", "domain", "key_id"}


def test_the_effective_policy_for_the_start_up_audit_names_fields_by_action() -> None:
    from processor.pipeline.policy import compile_policy

    summary = compile_policy().summary()
    orjson.dumps(summary)  # an audit line holds it as JSON
    assert summary["without_consent_record"] == {
        "personalized_recommendation": False,
        "personalized_ads": False,
        "precise_location": False,
    }
    ad = summary["routes"]["ad-analytics"]
    assert ad["age_band_not"] == ["child", "minor"]
    assert "payload.amount_cents as amount_band" in ad["variants"]["full"]["band"]
    assert "user_id" not in ad["variants"]["limit_ad_tracking"].get("pseudonym", [])
    rec = summary["routes"]["recommendation"]["variants"]["full"]
    assert "device.mac" not in rec["pseudonym"] and "network.ip" not in rec["pseudonym"]
