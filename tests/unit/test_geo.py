"""Coordinate checks, address truncation and GPS lookups of processor.pipeline.geo."""

from __future__ import annotations

import gzip
import ipaddress
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.errors import LocationDataError
from processor.pipeline.geo import GeoLocator, build_locator, check_coordinates, gps, truncate
from processor.pipeline.location import Locator, Place


@pytest.fixture(scope="module")
def locator() -> Locator:
    return build_locator()


@pytest.mark.parametrize(
    ("lat", "lon", "reason"),
    [
        ("29.5", "106.5", "not_a_number"),
        (True, 106.5, "not_a_number"),
        (29.5, False, "not_a_number"),
        (None, 106.5, "not_a_number"),
        ([29.5], 106.5, "not_a_number"),
        (math.nan, 106.5, "nan"),
        (29.5, math.nan, "nan"),
        (math.inf, 106.5, "out_of_range"),
        (29.5, -math.inf, "out_of_range"),
        (90.01, 106.5, "out_of_range"),
        (29.5, 180.5, "out_of_range"),
        (10**400, 0, "out_of_range"),
        (0, 0, "null_island"),
        (0.0, -0.0, "null_island"),
    ],
)
def test_when_coordinates_are_bad_then_reason(lat: object, lon: object, reason: str) -> None:
    assert check_coordinates(lat, lon) == reason


def test_when_coordinates_are_valid_then_floats() -> None:
    assert check_coordinates(29, 106.5) == (29.0, 106.5)
    assert check_coordinates(-90, 180) == (-90.0, 180.0)


@given(st.ip_addresses())
def test_truncation_is_idempotent(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    once = truncate(address)
    assert truncate(once) == once
    assert int(once) & (0xFF if once.version == 4 else (1 << 80) - 1) == 0


@pytest.mark.parametrize(
    ("lat", "lon", "city_code"),
    [
        (29.718, 106.631, "500000"),  # Yubei district -> Chongqing
        (31.385, 120.981, "320500"),  # Kunshan -> Suzhou
        (22.937, 113.384, "440100"),  # Panyu -> Guangzhou
        (39.955, 116.820, "131000"),  # Yanjiao, across the river from Beijing -> Langfang
        (30.362, 113.454, "429004"),  # Xiantao keeps its own code
        (44.306, 86.080, "659001"),  # Shihezi (corps city) keeps its own code
        (35.067, 112.602, "419001"),  # Jiyuan keeps its own code
        (19.543, 110.797, "469005"),  # Wenchang (Hainan county-level city)
    ],
)
def test_when_point_is_in_china_then_prefecture(
    locator: Locator, lat: float, lon: float, city_code: str
) -> None:
    place = locator.from_gps(lat, lon)
    assert place is not None
    assert (place.country, place.city_code, place.province_code) == (
        "CN",
        city_code,
        city_code[:2] + "0000",
    )


def test_when_point_is_in_yubei_then_chongqing(locator: Locator) -> None:
    assert locator.from_gps(29.718, 106.631) == Place("CN", "500000", "500000", "重庆市")


def test_when_point_is_in_hong_kong_then_sar_level(locator: Locator) -> None:
    assert locator.from_gps(22.28, 114.16) == Place("HK", "810000", "810000", "香港特别行政区")


def test_when_point_is_in_taiwan_then_a_taiwanese_city(locator: Locator) -> None:
    place = locator.from_gps(25.033, 121.565)
    assert place is not None
    assert (place.country, place.city) == ("TW", "Taipei")


def test_when_point_is_in_a_paris_suburb_then_the_metropolis(locator: Locator) -> None:
    place = locator.from_gps(48.8049, 2.1204)  # Versailles
    assert place is not None
    assert (place.country, place.city, place.province_code) == ("FR", "Paris", "FR.11")


def test_when_point_is_in_the_open_ocean_then_none(locator: Locator) -> None:
    assert locator.from_gps(30.0, -40.0) is None


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=-90, max_value=90, allow_nan=False),
    st.floats(min_value=-180, max_value=180, allow_nan=False),
)
def test_any_valid_coordinate_gives_a_place_or_none(
    locator: Locator, lat: float, lon: float
) -> None:
    place = locator.from_gps(lat, lon)
    assert place is None or isinstance(place, Place)


def test_when_cache_is_on_then_same_answers_as_uncached(locator: Locator) -> None:
    uncached = build_locator(cache_size=0)
    points = [(29.718 + i * 0.013, 106.631 - i * 0.017) for i in range(50)]
    assert [locator.from_gps(*p) for p in points] == [uncached.from_gps(*p) for p in points]
    assert isinstance(uncached, GeoLocator)


def test_when_gps_data_is_missing_then_location_data_error(tmp_path: Path) -> None:
    with pytest.raises(LocationDataError, match=re.escape("missing.json.gz")):
        gps.load(tmp_path / "missing.json.gz")


def test_when_gps_data_is_of_another_format_then_location_data_error(tmp_path: Path) -> None:
    path = tmp_path / "geo.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"format": 99}).encode()))
    with pytest.raises(LocationDataError, match="format 99"):
        gps.load(path)


def _tiny_index() -> gps.GpsIndex:
    """One 0.1-degree cell split between two prefectures, and two world points."""
    return gps.GpsIndex(
        {
            "format": 1,
            "grid": {
                "cell": 0.1,
                "scale": 100000,
                "lat0": 30.0,
                "lon0": 100.0,
                "rows": 2,
                "cols": 2,
            },
            "places": [
                ["CN", "510000", "510100", "West"],
                ["CN", "510000", "510300", "East"],
                ["XX", "XX.01", "1", "Town"],
                ["XX", "XX.01", None, None],
            ],
            "provinces": {"510000": "四川省"},
            # Cell 0 lies in "West"; cell 1 is split at x = 0.04 degree.
            "china": [
                [0, 0],
                [
                    1,
                    [
                        [0, [[0, 0, 4000, 0, 4000, 10000, 0, 10000, 0, 0]]],
                        [1, [[4000, 0, 10000, 0, 10000, 10000, 4000, 10000, 4000, 0]]],
                    ],
                ],
            ],
            "world": [[305000, 1010000, 2, 3, 50, 20000]],
        }
    )


def test_when_point_is_in_a_split_cell_then_its_side_of_the_border() -> None:
    index = _tiny_index()
    assert index.lookup(30.05, 100.05) == Place("CN", "510000", "510100", "West")
    assert index.lookup(30.05, 100.13) == Place("CN", "510000", "510100", "West")
    assert index.lookup(30.05, 100.15) == Place("CN", "510000", "510300", "East")


def test_when_no_city_is_near_then_first_level_region() -> None:
    index = _tiny_index()
    assert index.lookup(30.5, 101.3) == Place("XX", "XX.01", "1", "Town")  # 29 km
    assert index.lookup(30.5, 101.75) == Place("XX", "XX.01", None, None)  # 72 km
    assert index.lookup(30.5, 102.5) is None  # 144 km
