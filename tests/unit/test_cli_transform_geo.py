"""`pseudostream transform` locates an event that carries only a Chinese IP address with the
shipped IP data, without any operator file."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main

EVENT = orjson.dumps(
    {
        "schema": "behaviour/1",
        "event_id": "e-1",
        "event_time": 1764316800123,
        "event_type": "view",
        "user_id": "u1",
        "network": {"ip": "61.139.2.69"},
    }
)


@pytest.fixture(autouse=True)
def no_operator_files(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEO_CITY_DB", "GEO_IP2REGION_DB", "GEO_SHIPPED_IP"):
        monkeypatch.delenv(f"PSEUDOSTREAM_{name}", raising=False)


def _location(keyring: Path, *options: str) -> object:
    result = CliRunner().invoke(
        main, ["transform", "--keyring", str(keyring), "-q", *options], input=EVENT
    )
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    return json.loads(line)["value"].get("location")


def test_when_event_has_only_a_chinese_ip_then_prefecture_from_ip(
    keyring_path: Path,
) -> None:
    assert _location(keyring_path) == {
        "country": "CN",
        "province_code": "510000",
        "city_code": "510100",
        "city": "成都市",
        "source": "ip",
    }


def test_when_shipped_ip_data_is_off_then_no_location(
    keyring_path: Path,
) -> None:
    assert _location(keyring_path, "--no-shipped-ip") is None
