"""Accuracy of the IP path with the shipped ip2region data, on tests/data/geo/china_ips.csv:
Chinese addresses whose city is public (carriers' DNS resolvers, universities, a public DNS
and a cloud region), labelled by hand with the prefecture's GB/T 2260 code before the
database was asked. docs/location.md reports the figures (bench/geo.py prints them)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from processor.devtools.benchmark.geo_accuracy import ip_accuracy, labelled_rows
from processor.pipeline.geo import build_locator
from processor.pipeline.location import Locator

DATA = Path(__file__).parent.parent / "data" / "geo"
PREFECTURE_TARGET = 0.85
PROVINCE_TARGET = 0.95


def ip_rows() -> list[dict[str, str]]:
    return labelled_rows("china_ips.csv", DATA)


@pytest.fixture(scope="module")
def locator() -> Locator:
    return build_locator()


def test_labelled_set_covers_every_province_level_division_and_both_ip_versions() -> None:
    rows = ip_rows()
    assert len(rows) >= 100
    assert len({row["city_code"][:2] for row in rows}) == 31  # mainland China
    assert {ipaddress.ip_address(row["address"]).version for row in rows} == {4, 6}


def test_when_ip_is_chinese_then_85_percent_at_prefecture_level(locator: Locator) -> None:
    prefecture, province = ip_accuracy(locator, ip_rows())
    assert prefecture >= PREFECTURE_TARGET
    assert province >= PROVINCE_TARGET


def test_when_shipped_data_is_off_then_no_ip_answers() -> None:
    assert ip_accuracy(build_locator(shipped_ip=False), ip_rows()) == (0.0, 0.0)
