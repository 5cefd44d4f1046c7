"""The leak scanner reports what the free-text detectors find, in text and in JSON values."""

from __future__ import annotations

import json

import pytest

from processor.ops.scan import LeakScanner


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("comment: 139 3233 2113", "phone"),
        ("comment: 一三九三二三三二一一三", "phone"),
        ("comment: 快递寄到北京市朝阳区建国路88号", "address"),
        ("comment: vx：lily_2024", "wechat"),
        ("comment: 京A·12345", "plate"),
        ("comment: lily[at]qq.com", "email"),
    ],
)
def test_when_free_text_holds_personal_data_then_scanner_reports_its_kind(
    text: str, kind: str
) -> None:
    assert [finding.kind for finding in LeakScanner().scan_text(text)] == [kind]


def test_when_json_value_holds_a_spelled_phone_then_found_at_its_path() -> None:
    line = json.dumps({"payload": {"text": "电话 139.3233.2113"}}, ensure_ascii=False)
    findings = LeakScanner().scan_lines([line])
    assert [(f.kind, f.where, f.excerpt) for f in findings] == [
        ("phone", "payload.text", "13***13")
    ]


@pytest.mark.parametrize(
    "line",
    [
        {"event_time": 1764316800123, "text": "第13集播放量1380万"},
        {"version": "1.2.3.4", "text": "[phone] [address]"},
        {"log": "listening on 127.0.0.1:8080 and 0.0.0.0"},
    ],
)
def test_when_output_holds_numbers_markers_or_local_addresses_then_no_finding(
    line: dict[str, object],
) -> None:
    assert LeakScanner().scan_lines([json.dumps(line, ensure_ascii=False)]) == []


def test_when_a_report_row_holds_a_run_of_figures_then_no_phone_is_read_into_it() -> None:
    """A benchmark table's row (seen in CI): three floats in a row read like 17x xxxx xx89."""
    row = "quixstreams + Pipeline.process          11,501          64.3             0   171.4   319.9   189.4"
    assert LeakScanner().scan_text(row) == []
    assert [f.kind for f in LeakScanner().scan_text("call 139 3233.2113")] == ["phone"]
