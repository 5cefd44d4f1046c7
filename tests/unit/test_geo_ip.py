"""IP lookups through MMDB and ip2region xdb databases built here, and through the shipped
ip2region data (China, IPv4 and IPv6)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from processor.errors import LocationDataError
from processor.pipeline.geo import build_locator
from processor.pipeline.geo.ip import shipped_xdb_paths
from processor.pipeline.geo.xdb_maker import write_xdb
from processor.pipeline.location import Locator, Place

CHENGDU = Place("CN", "510000", "510100", "成都市")


def _city(country: str, lat: float, lon: float) -> dict[str, Any]:
    return {
        "country": {"iso_code": country},
        "city": {"geoname_id": 1, "names": {"en": "somewhere small"}},
        "location": {"latitude": lat, "longitude": lon, "accuracy_radius": 20},
    }


MMDB_RECORDS: dict[str, dict[str, Any]] = {
    "1.0.0.0/24": _city("JP", 35.6895, 139.6917),  # Tokyo
    "5.0.0.0/24": _city("FR", 48.8049, 2.1204),  # Versailles: answered as Paris
    "5.0.0.77/32": _city("JP", 35.6895, 139.6917),  # finer than /24: must never be seen
    "2.0.0.0/24": {"country": {"iso_code": "FR"}},
    "3.0.0.0/24": {
        "country": {"iso_code": "US"},
        "subdivisions": [{"iso_code": "NY"}],
        "location": {"latitude": 40.7128, "longitude": -74.006, "accuracy_radius": 500},
    },
    "36.0.3.0/24": _city("CN", 30.657, 104.066),  # Chengdu
    "2001:db8:1::/48": _city("DE", 52.52, 13.405),  # Berlin
}

XDB_SEGMENTS = [
    ("1.0.0.0", "1.0.0.255", "日本|0|0|0|0"),
    ("36.0.0.0", "36.0.0.255", "中国|0|四川省|成都市|电信"),  # v2 layout
    ("36.0.1.0", "36.0.1.255", "中国|重庆|重庆市|联通|CN"),  # v3 layout, short province name
    ("36.0.2.0", "36.0.2.255", "中国|湖北省|仙桃市|移动|CN"),
    ("36.0.3.0", "36.0.3.255", "中国|0|0|0|电信"),
    ("36.0.4.0", "36.0.4.255", "中国|香港|0|0|HK"),
    ("36.0.5.0", "36.0.5.255", "中国|四川省|0|电信|CN"),
    ("36.1.255.0", "36.2.0.255", "中国|广东省|深圳市|电信|CN"),  # crosses a /16
]


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ipdb")
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    for network, record in MMDB_RECORDS.items():
        writer.insert_network(IPSet([network]), record)
    mmdb = folder / "city.mmdb"
    writer.to_db_file(str(mmdb))
    xdb = folder / "ip2region_v4.xdb"
    write_xdb(xdb, XDB_SEGMENTS)
    return mmdb, xdb


@pytest.fixture(scope="module")
def locator(databases: tuple[Path, Path]) -> Locator:
    mmdb, xdb = databases
    return build_locator(mmdb_path=mmdb, xdb_path=xdb, shipped_ip=False)


def _at(locator: Locator, address: str) -> Place | None:
    return locator.from_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("36.0.0.0", CHENGDU),
        ("36.0.1.0", Place("CN", "500000", "500000", "重庆市")),
        ("36.0.2.0", Place("CN", "420000", "429004", "仙桃市")),
        ("36.0.4.0", Place("HK", "810000", "810000", "香港特别行政区")),
        ("36.0.5.0", Place("CN", "510000", None, None)),
        ("36.1.255.0", Place("CN", "440000", "440300", "深圳市")),
        ("36.2.0.0", Place("CN", "440000", "440300", "深圳市")),
    ],
)
def test_when_ip_is_chinese_then_xdb_answers(
    locator: Locator, address: str, expected: Place
) -> None:
    assert _at(locator, address) == expected


def test_when_xdb_knows_only_china_then_mmdb_answers(locator: Locator) -> None:
    assert _at(locator, "36.0.3.0") == CHENGDU


def test_when_ip_is_foreign_then_mmdb_city(locator: Locator) -> None:
    place = _at(locator, "1.0.0.0")
    assert place is not None
    assert (place.country, place.city) == ("JP", "Tokyo")


def test_when_mmdb_names_a_village_then_the_city_large_enough(locator: Locator) -> None:
    place = _at(locator, "5.0.0.0")
    assert place is not None
    assert (place.country, place.city) == ("FR", "Paris")


def test_when_mmdb_record_has_no_city_then_first_level_region(locator: Locator) -> None:
    assert _at(locator, "3.0.0.0") == Place("US", "US.NY", None, None)


def test_when_mmdb_record_has_only_a_country_then_country(locator: Locator) -> None:
    assert _at(locator, "2.0.0.0") == Place("FR", None, None, None)


def test_when_address_is_not_truncated_then_it_is_truncated_first(locator: Locator) -> None:
    assert _at(locator, "5.0.0.77") == _at(locator, "5.0.0.0")
    assert _at(locator, "36.0.0.213") == CHENGDU


def test_when_address_is_ipv4_mapped_then_unwrapped(locator: Locator) -> None:
    assert _at(locator, "::ffff:36.0.0.9") == CHENGDU


def test_when_address_is_ipv6_then_mmdb_answers(locator: Locator) -> None:
    place = _at(locator, "2001:db8:1:ab::1")
    assert place is not None
    assert (place.country, place.city) == ("DE", "Berlin")


def test_when_address_is_in_no_database_then_none(locator: Locator) -> None:
    assert _at(locator, "9.9.9.0") is None
    assert _at(locator, "2001:db9::") is None


def test_when_only_mmdb_is_given_then_chinese_ip_from_mmdb(databases: tuple[Path, Path]) -> None:
    only_mmdb = build_locator(mmdb_path=databases[0], shipped_ip=False)
    assert _at(only_mmdb, "36.0.3.0") == CHENGDU
    assert _at(only_mmdb, "36.0.0.0") is None


def test_when_shipped_data_is_off_and_no_database_is_given_then_ip_gives_none() -> None:
    assert _at(build_locator(shipped_ip=False), "61.139.2.0") is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("61.139.2.69", CHENGDU),  # China Telecom Sichuan's resolver
        ("202.96.134.133", Place("CN", "440000", "440300", "深圳市")),
        ("202.96.209.133", Place("CN", "310000", "310000", "上海市")),
        ("210.34.0.1", Place("CN", "350000", "350200", "厦门市")),
        ("2402:f000:1:801::8:28", Place("CN", "110000", "110000", "北京市")),  # Tsinghua
    ],
)
def test_when_no_database_is_given_then_shipped_data_gives_the_prefecture(
    address: str, expected: Place
) -> None:
    assert _at(build_locator(), address) == expected


def test_when_shipped_data_is_asked_abroad_then_none() -> None:
    locator = build_locator()
    assert _at(locator, "8.8.8.8") is None
    assert _at(locator, "2001:4860:4860::8888") is None


def test_when_shipped_data_holds_hong_kong_or_taiwan_then_sar_or_island() -> None:
    locator = build_locator()
    assert _at(locator, "202.45.84.0") == Place("HK", "810000", "810000", "香港特别行政区")
    assert _at(locator, "140.112.0.0") == Place("TW", None, None, None)  # Taiwan University


def test_when_operator_xdb_is_ipv4_then_shipped_ipv6_still_answers(
    databases: tuple[Path, Path],
) -> None:
    locator = build_locator(xdb_path=databases[1])
    assert _at(locator, "36.0.1.0") == Place("CN", "500000", "500000", "重庆市")  # operator's
    assert _at(locator, "61.139.2.0") is None  # the shipped IPv4 file is replaced
    assert _at(locator, "2402:f000::") == Place("CN", "110000", "110000", "北京市")


def test_when_mmdb_is_given_then_shipped_xdb_answers_chinese_addresses_first(
    databases: tuple[Path, Path],
) -> None:
    locator = build_locator(mmdb_path=databases[0])
    assert _at(locator, "61.139.2.0") == CHENGDU
    place = _at(locator, "1.0.0.0")  # abroad: the MMDB
    assert place is not None
    assert place.country == "JP"


def test_when_mmdb_record_is_country_only_with_a_centroid_then_country_only(
    tmp_path: Path,
) -> None:
    # GeoLite2 gives Chinese addresses it cannot place China's centroid, which lies in Henan.
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-City")
    writer.insert_network(
        IPSet(["9.0.0.0/24"]),
        {"country": {"iso_code": "CN"}, "location": {"latitude": 34.7732, "longitude": 113.722}},
    )
    writer.insert_network(
        IPSet(["9.0.1.0/24"]),
        {"country_code": "CN", "city": "", "state1": "", "latitude": 34.7732, "longitude": 113.722},
    )
    writer.to_db_file(str(tmp_path / "c.mmdb"))
    locator = build_locator(mmdb_path=tmp_path / "c.mmdb", shipped_ip=False)
    assert _at(locator, "9.0.0.0") == Place("CN", None, None, None)
    assert _at(locator, "9.0.1.0") == Place("CN", None, None, None)


def test_when_mmdb_has_the_flat_ip_location_db_layout_then_city(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=4, database_type="ip-location-db")
    writer.insert_network(
        IPSet(["9.0.0.0/24"]),
        {
            "country_code": "CN",
            "city": "Chengdu",
            "state1": "Sichuan",
            "latitude": 30.657,
            "longitude": 104.066,
        },
    )
    writer.to_db_file(str(tmp_path / "flat.mmdb"))
    locator = build_locator(mmdb_path=tmp_path / "flat.mmdb", shipped_ip=False)
    assert _at(locator, "9.0.0.0") == CHENGDU


def test_when_xdb_is_gzipped_and_cut_short_then_error_names_the_path(tmp_path: Path) -> None:
    whole = shipped_xdb_paths()[0].read_bytes()
    path = tmp_path / "cut.xdb.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(LocationDataError, match=re.escape("cut.xdb.gz")):
        build_locator(xdb_path=path)


@pytest.mark.parametrize("kind", ["mmdb_path", "xdb_path"])
def test_when_database_is_missing_then_error_names_the_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nowhere.db"
    with pytest.raises(LocationDataError, match=re.escape("nowhere.db")):
        build_locator(**{kind: path})  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["mmdb_path", "xdb_path"])
def test_when_database_is_corrupt_then_error_names_the_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"\x07" * 1000)
    with pytest.raises(LocationDataError, match=re.escape("corrupt.db")):
        build_locator(**{kind: path})  # type: ignore[arg-type]
