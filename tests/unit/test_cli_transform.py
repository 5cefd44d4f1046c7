"""`pseudostream transform`, `schemas export` and `scan` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from click.testing import CliRunner

from keys import generate_master_key
from processor.cli import main
from processor.devtools import synth
from tests.unit.conftest import MASTER


def raw_lines(n: int = 400) -> bytes:
    return b"".join(v + b"\n" for _, _, v in synth.generate(n, seed=11, users=60, malformed=0.02))


def test_when_lines_are_transformed_then_each_output_line_is_a_routed_record(
    keyring_path: Path,
) -> None:
    result = CliRunner().invoke(
        main, ["transform", "--keyring", str(keyring_path)], input=raw_lines()
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines
    topics = {line["topic"] for line in lines}
    assert topics <= {
        "clean.recommendation",
        "clean.ad-analytics",
        "quarantine",
        "erasure.recommendation",
        "erasure.ad-analytics",
    }
    assert "clean.recommendation" in topics
    for line in lines:
        assert set(line) == {"topic", "key", "value"}
        assert line["value"]["schema"].split("/")[0] in line["topic"]
    assert "transform: " in result.stderr
    assert " quarantined" in result.stderr


def test_when_strict_and_a_line_is_quarantined_then_exit_1(keyring_path: Path) -> None:
    data = raw_lines(50) + b"{not json\n"
    strict = CliRunner().invoke(
        main, ["transform", "--keyring", str(keyring_path), "--strict", "-q"], input=data
    )
    assert strict.exit_code == 1
    assert strict.stderr == ""
    assert json.loads(strict.stdout.splitlines()[-1])["value"]["error"] == "bad_json"
    lenient = CliRunner().invoke(main, ["transform", "--keyring", str(keyring_path)], input=data)
    assert lenient.exit_code == 0


def test_when_keyring_is_missing_then_one_line_error_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER)
    result = CliRunner().invoke(
        main, ["transform", "--keyring", str(tmp_path / "none.keyring")], input=b"{}\n"
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("pseudostream: error: no keyring at ")
    assert "keys init" in result.stderr


def test_when_master_key_is_wrong_then_transform_refuses_to_start(
    keyring_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", generate_master_key())
    result = CliRunner().invoke(
        main, ["transform", "--keyring", str(keyring_path)], input=raw_lines(10)
    )
    assert result.exit_code == 2
    assert "master key does not open it" in result.stderr
    assert result.stdout == ""


def test_when_transform_output_is_scanned_then_no_raw_identifier_is_found(
    keyring_path: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_bytes(raw_lines())
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main, ["transform", "--keyring", str(keyring_path)], input=raw.read_bytes()
    )
    out.write_text(result.stdout)
    scan = CliRunner().invoke(main, ["scan", str(out), "--raw", str(raw)])
    assert scan.exit_code == 0, scan.output
    leaky = CliRunner().invoke(main, ["scan", str(raw), "--raw", str(raw)])
    assert leaky.exit_code == 1  # the scanner does find identifiers where they are


def test_when_schemas_are_exported_then_each_is_valid_json_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").glob("*.schema.json"))
    assert [f.name for f in files] == sorted(
        f"{name}.schema.json"
        for name in (
            "behaviour.1",
            "device.1",
            "consent.1",
            "clean.recommendation.1",
            "clean.ad-analytics.1",
            "quarantine.1",
            "erasure.2",
            "stats.ad.1",
        )
    )
    for file in files:
        jsonschema.Draft202012Validator.check_schema(orjson.loads(file.read_bytes()))
