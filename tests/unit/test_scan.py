"""The leak scanner: clean outputs pass, every identifier spelling is found, never re-leaked."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from keys import Keyring
from processor.cli.transform_cmd import run_transform
from processor.devtools import synth
from processor.ops.scan import Finding, LeakScanner, mask
from processor.pipeline.kinds import IdKind
from processor.pipeline.process import Pipeline
from schemas import Role, load_roles

_RAW_EVENT = {
    "schema": "behaviour/1",
    "event_id": "e-01HF3Z8K2M",
    "event_time": 1764316800123,
    "event_type": "view",
    "user_id": "u10293847",
    "phone": "+8613812345678",
    "device": {
        "imei": "356938035643809",
        "meid": "A0000012345678",
        "imsi": "460001234567890",
        "iccid": "89860012345678901234",
        "oaid": "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b",
        "android_id": "9774d56d682e549d",
        "mac": "3C:5A:B4:12:34:56",
        "app_version": "5.2.1",
    },
    "network": {
        "ip": "61.128.128.68",
        "ssid": "Home-5G",
        "bssid": "a4:5e:60:11:22:33",
        "cell": {"mcc": 460, "mnc": 0, "lac": 4301, "cid": 20571},
    },
    "location": {"lat": 29.557, "lon": 106.577, "accuracy_m": 12},
    "payload": {"target_user_id": "u55", "query": "hi"},
}
_PSEUDONYM = "rec-1:k5x2c7abcdefghijklmnopqrst"
_CLEAN_RECORD = {
    "topic": "clean.recommendation",
    "key": _PSEUDONYM,
    "value": {
        "schema": "behaviour/1",
        "policy": "default/3",
        "key_ids": ["rec-1", "ad-2"],
        "event_id": "e-01HF3Z8K2M",
        "event_time": 1764316800123,
        "user_id": _PSEUDONYM,
        "device": {
            "imei": "rec-1:abcdefghijklmnopqrstuvwxyz",
            "oaid": "ad-12:zzzzzzzzzzzzzzzzzzzzzzzzzz",
            "app_version": "5.2.1",
            "os_version": "14",
            "model": "2211133C",
        },
        "location": {
            "country": "CN",
            "province_code": "510000",
            "city_code": "510100",
            "city": "成都",
        },
        "payload": {
            "item_id": "v-88812",
            "room_id": "r-77",
            "amount_cents": 600,
            "duration_ms": 5123,
            "query": "主播 [phone] 好看",
        },
    },
}


def _raw_scanner() -> LeakScanner:
    return LeakScanner.from_raw_events([json.dumps(_RAW_EVENT).encode(), b"not json", b"[1]"])


def _kinds(findings: list[Finding]) -> list[str]:
    return [finding.kind for finding in findings]


def test_when_output_is_clean_then_no_findings() -> None:
    lines = [json.dumps(_CLEAN_RECORD, ensure_ascii=False), "worker started, version 5.2.1, 510100"]
    assert _raw_scanner().scan_lines(lines) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("imei 356938035643809", "imei"),
        ("imei 35-693803-564380-9", "imei"),
        ("imsi 460001234567890", "imsi"),
        ("iccid 89860012345678901234", "iccid"),
        ("meid A0000012345678", "meid"),
        ("mac 3C:5A:B4:12:34:56", "mac"),
        ("mac 3c-5a-b4-12-34-56", "mac"),
        ("mac 3c5a.b412.3456", "mac"),
        ("mac 3C5AB4123456", "mac"),
        ("from 61.128.128.68:443", "ipv4"),
        ("from 2001:db8:85a3::8a2e:370:7334", "ipv6"),
        ("call 13812345678", "phone"),
        ("call +86 138 1234 5678", "phone"),
        ("id 11010519491231002X", "idcard"),
        ("mail zhang.san@qq.com", "email"),
        ("oaid 6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b", "oaid"),
        ("aid 9774d56d682e549d", "android_id"),
        ('{"lat": 29.5571, "lon": 106.5771}', "coordinate"),
        ("手机１３８１２３４５６７８", "phone"),
    ],
)
def test_when_identifier_shaped_value_in_text_then_found(text: str, kind: str) -> None:
    assert kind in _kinds(LeakScanner().scan_text(text, line_no=7))


@pytest.mark.parametrize(
    "text",
    [
        "version 5.2.1",
        "v5.2.1.100",
        "city 500000 at 1764316800123",
        "bind 0.0.0.0 and 127.0.0.1",
        "mac 02:00:00:00:00:00",
        "oaid 00000000-0000-0000-0000-000000000000",
        "at 12:34:56",
        "hash 356938035643808",  # not Luhn-valid
        "Timer commit is overlapping (interval=0.5 runtime=2.768942260001495)",  # a fraction
        f"user {_PSEUDONYM}",
    ],
)
def test_when_value_is_not_personal_then_not_found(text: str) -> None:
    assert LeakScanner().scan_text(text) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("user u10293847 logged in", "raw:user_id"),
        ("target u55.", "raw:user_id"),
        ("device 35 693803 564380 9", "raw:imei"),
        ("device 35693803564380", "raw:imei"),
        ("phone 138-1234-5678", "raw:phone"),
        ("phone 0086 138 1234 5678", "raw:phone"),
        ("mac 3C5A.B412.3456", "raw:mac"),
        ("bssid A4-5E-60-11-22-33", "raw:bssid"),
        ("ip ::ffff:61.128.128.68", "raw:ip"),
        ("meid 268435457803430008", "raw:meid"),
        ("wifi Home-5G here", "raw:ssid"),
        ("cell 460-0-4301-20571", "raw:cell"),
        ("lat=29.557", "raw:coordinate"),
    ],
)
def test_when_raw_value_in_any_spelling_then_found(text: str, kind: str) -> None:
    assert kind in _kinds(_raw_scanner().scan_text(text))


def test_when_short_user_id_inside_longer_token_then_not_found() -> None:
    assert _raw_scanner().scan_text("users u551 and xu55") == []


def test_when_raw_ipv6_then_any_compression_found() -> None:
    scanner = LeakScanner([(IdKind.IP, "2001:DB8::1")])
    for text in ("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001"):
        assert "raw:ip" in _kinds(scanner.scan_text(f"from {text} ok"))


def test_when_placeholders_in_raw_events_then_not_searched() -> None:
    scanner = LeakScanner([(IdKind.IMEI, "000000000000000"), (IdKind.USER_ID, "unknown")])
    assert scanner.scan_text("imei 000000000000000 user unknown") == []


def test_when_json_line_then_where_is_json_path() -> None:
    line = json.dumps({"value": {"device": {"imei": "356938035643809"}, "u10293847": 1}})
    findings = _raw_scanner().scan_lines([line.encode()])
    assert {(f.line, f.kind, f.where) for f in findings} == {
        (1, "raw:imei", "value.device.imei"),
        (1, "raw:user_id", "value.u10293847 (key)"),
    }


def test_when_found_then_report_never_holds_the_raw_value() -> None:
    raw_values = [
        "356938035643809",
        "13812345678",
        "61.128.128.68",
        "3C:5A:B4:12:34:56",
        "u10293847",
    ]
    findings = _raw_scanner().scan_lines([" ".join(raw_values)])
    assert len(findings) == len(raw_values)
    report = "\n".join(f"{f.line} {f.kind} {f.where} {f.excerpt}" for f in findings)
    for value in raw_values:
        assert value not in report


def test_when_values_of_one_line_are_split_identifiers_then_not_joined() -> None:
    # A line's values are scanned in one pass: nothing may match across two of them.
    line = json.dumps(
        {
            "a": "138123",
            "b": "45678",
            "c": "3C:5A:B4",
            "d": "12:34:56",
            "e": "61.128",
            "f": "128.68",
        }
    )
    assert _raw_scanner().scan_lines([line]) == []


def test_when_identifier_follows_another_value_then_found_with_its_own_path() -> None:
    line = json.dumps(
        {"a": "x", "b": "13812345678", "c": ["y", "61.128.128.68"], "app_version": "61.128.128.69"}
    )
    findings = LeakScanner().scan_lines([line])
    assert [(f.kind, f.where, f.excerpt) for f in findings] == [
        ("phone", "b", "13***78"),
        ("ipv4", "c[1]", "61***68"),
    ]


def test_when_raw_value_is_not_a_window_then_found_as_substring_in_json() -> None:
    line = json.dumps({"value": {"ip": "::FFFF:61.128.128.68", "room": "r-128", "n": 61}})
    findings = _raw_scanner().scan_lines([line])
    assert [(f.kind, f.where) for f in findings] == [("raw:ip", "value.ip")]


def test_when_raw_value_holds_a_control_character_then_found_only_whole() -> None:
    scanner = LeakScanner([(IdKind.SSID, "my\x00wifi!")])
    assert scanner.scan_lines([json.dumps({"a": "my", "b": "wifi!"})]) == []
    findings = scanner.scan_lines([json.dumps({"a": "x", "b": "MY\x00WIFI!"})])
    assert [(f.kind, f.where) for f in findings] == [("raw:ssid", "b")]


def test_when_non_ascii_text_then_windows_still_found() -> None:
    assert _kinds(_raw_scanner().scan_text("成都 u10293847 İ Home-5G")) == [
        "raw:user_id",
        "raw:ssid",
    ]


def test_when_realistic_pipeline_output_then_no_findings_quickly() -> None:
    raw = [value for _, _, value in synth.generate(3000, seed=1, malformed=0.01)]
    out = io.BytesIO()
    run_transform(Pipeline(Keyring.generate()), io.BytesIO(b"\n".join(raw) + b"\n"), out)
    lines = out.getvalue().splitlines()
    started = time.perf_counter()
    findings = LeakScanner.from_raw_events(raw).scan_lines(lines)
    assert findings == []
    assert len(lines) > 2000
    assert time.perf_counter() - started < 10  # about 1 s; it took minutes before indexing


@pytest.mark.parametrize(("value", "masked"), [("356938035643809", "35***09"), ("u55", "u***")])
def test_when_masked_then_only_ends_shown(value: str, masked: str) -> None:
    assert mask(value) == masked


def _run_scan(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", "scan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_when_cli_finds_leak_then_exit_1_with_masked_report(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps(_RAW_EVENT) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(_CLEAN_RECORD) + "\n" + '{"value": {"ssid": "Home-5G"}}\n')
    result = _run_scan(str(out), "--raw", str(raw))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{out}:2 raw:ssid value.ssid Ho***5G",
        "scanned 2 lines, 1 findings",
    ]


def test_when_cli_input_is_clean_then_exit_0() -> None:
    result = _run_scan("-", stdin=json.dumps(_CLEAN_RECORD) + "\n")
    assert (result.returncode, result.stdout) == (0, "scanned 1 lines, 0 findings\n")


def test_when_cli_file_is_missing_then_one_line_error_and_exit_2(tmp_path: Path) -> None:
    result = _run_scan(str(tmp_path / "missing.jsonl"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "missing.jsonl" in result.stderr


def test_when_the_role_table_names_an_identifier_field_then_the_scanner_looks_for_it() -> None:
    roles = {**load_roles(), "payload.coupon_phone": Role("identifier", "phone")}
    raw = b'{"schema": "behaviour/1", "payload": {"coupon_phone": "13912345678"}}'
    output = b'{"payload": {"code": "139-1234-5678"}}'
    assert [f.kind for f in LeakScanner.from_raw_events([raw], roles).scan_lines([output])] == [
        "raw:phone"
    ]
    assert [f.kind for f in LeakScanner.from_raw_events([raw]).scan_lines([output])] == ["phone"]


def test_when_every_identifier_field_of_the_role_table_holds_a_value_then_each_is_found() -> None:
    event: dict[str, Any] = {}
    for n, (path, role) in enumerate(sorted(load_roles().items())):
        if role.role != "identifier" or role.kind == "event_id":
            continue
        block, _, name = path.rpartition(".")
        (event.setdefault(block, {}) if block else event)[name] = f"zq{n:02d}value"
    scanner = LeakScanner.from_raw_events([orjson.dumps(event)])
    found = scanner.scan_lines([orjson.dumps({"copy": event})])
    assert len(found) == sum(
        1 for r in load_roles().values() if r.role == "identifier" and r.kind != "event_id"
    )


@pytest.mark.parametrize(
    "line",
    [
        b"1.041071040292594e+10",
        b"runtime=1.041071040292594e+10 s",
        b'{"score": 1.041071040292594e+20}',
        b'{"x": 13812345678.0, "y": 356938035643809.0, "z": 3.56938035643809e14}',
    ],
)
def test_when_a_float_looks_like_an_id_then_it_is_no_finding(line: bytes) -> None:
    assert LeakScanner().scan_lines([line]) == []


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b"client 61.128.128.68 connected", "ipv4"),
        (b"call 13812345678.", "phone"),
        (b'{"imei": "356938035643809"}', "imei"),
        (b"v1.2 id 1f2e3d4c5b6a7988", "android_id"),
    ],
)
def test_when_an_id_stands_next_to_a_dot_then_it_is_still_found(line: bytes, kind: str) -> None:
    assert [f.kind for f in LeakScanner().scan_lines([line])] == [kind]


def test_a_quarantine_records_sealed_base64_is_not_scanned_but_plaintext_there_is() -> None:
    """Ciphertext in base64 can start like a labelled WeChat id ("wx" + "Ab12cd" + "/"); the
    canary flagged one such quarantine record now and then."""
    scanner = LeakScanner()
    sealed = "wxAb12cd/" + "A" * 23
    assert scanner.scan_lines([orjson.dumps({"value": {"sealed": sealed}})]) == []
    assert scanner.scan_lines([orjson.dumps({"value": {"note": sealed}})]) != []
    plain = orjson.dumps({"value": {"sealed": "call me 13912345678"}})
    assert [f.kind for f in scanner.scan_lines([plain])] == ["phone"]
