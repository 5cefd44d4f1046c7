"""IP address -> coarse place, from ip2region xdb files (shipped for China, or the operator's)
and an operator-supplied MaxMind MMDB.

Both readers answer with raw database content; turning it into a ``Place`` goes through the
GPS index (an MMDB city's coordinates) or the shipped GB/T 2260 names (ip2region's Chinese
names), so every source yields the same codes.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import json
import zlib
from pathlib import Path
from typing import Any

import maxminddb
from ip2region import searcher as xdb_searcher
from ip2region import util as xdb_util

from processor.errors import LocationDataError
from processor.pipeline.location import IPAddress, Place

from . import gps
from .gps import GpsIndex

# Suffixes that ip2region may or may not write after a province or prefecture name.
_SUFFIXES = (
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "自治州",
    "自治县",
    "地区",
    "林区",
    "省",
    "市",
    "盟",
    "州",  # ZX's short form of an autonomous prefecture: 延边州
    "县",  # Hainan's province-administered counties: 白沙县
)
# Prefectures renamed or merged since the data was collected (old stem -> current stem).
_RENAMED = {"莱芜": "济南", "襄樊": "襄阳", "思茅": "普洱", "巢湖": "合肥"}
# The provenance of the shipped ip2region files (China only), which lists them; written by
# scripts/build_ip_data.py; docs/location.md.
SHIPPED_IP_DATA = Path(__file__).parent / "data" / "ip2region.json"
_CHINA = frozenset({"中国", "China", "CN"})
_MIN_STEM = 2  # shorter stems (one character) would match several prefectures


def _stem(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= _MIN_STEM:
            return name[: -len(suffix)]
    return name


def truncate(address: IPAddress) -> IPAddress:
    """Unwrap IPv4-mapped IPv6, then keep the /24 (IPv4) or /48 (IPv6) network address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFF00)
    return ipaddress.IPv6Address(int(address) & ~((1 << 80) - 1))


class MmdbSource:
    """A MaxMind DB, memory-mapped: the GeoIP2/GeoLite2 City layout, or the flat one of the
    ip-location-db packages (``country_code``, ``city``, ``latitude``, ``longitude``)."""

    def __init__(self, path: Path, gps: GpsIndex) -> None:
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise LocationDataError(f"cannot open MMDB {path}: {exc}") from exc
        self._gps = gps

    def lookup(self, address: IPAddress) -> Place | None:
        try:
            record: Any = self._reader.get(address)
        except ValueError:  # the database holds no addresses of this version
            return None
        if not isinstance(record, dict):
            return None
        country = record.get("country_code") or (
            record.get("country") or record.get("registered_country") or {}
        ).get("iso_code")
        location = record.get("location") or record
        lat, lon = location.get("latitude"), location.get("longitude")
        if isinstance(lat, float) and isinstance(lon, float):
            # A city record's coordinates go through the GPS lookup, so the answer is a
            # prefecture / a city of 15,000+ people even where the database names a village.
            # A record naming no region holds the country's centroid (China's lies in Henan):
            # the country only.
            place = None
            if record.get("city"):  # a dict, or the flat layout's name ("" for none)
                place = self._gps.lookup(lat, lon)
            elif record.get("subdivisions") or record.get("state1"):
                place = self._gps.region(lat, lon)
            if place is not None and (country is None or place.country == country):
                return place
        return Place(country, None, None, None) if isinstance(country, str) else None


class XdbSource:
    """An ip2region xdb file (one IP version per file, gzipped or not), loaded whole into
    memory."""

    def __init__(self, path: Path, gps: GpsIndex) -> None:
        try:
            content = path.read_bytes()
            if content[:2] == b"\x1f\x8b":  # gzip magic: the shipped files are compressed
                content = gzip.decompress(content)
            header = xdb_util.Header(content[: xdb_util.HeaderInfoLength])
            version = xdb_util.version_from_header(header)
            if (
                version is None
                or len(content) < xdb_util.HeaderInfoLength + xdb_util.VectorIndexLength
            ):
                raise ValueError("not an ip2region xdb file")
        except (OSError, ValueError, IndexError, EOFError, zlib.error) as exc:
            raise LocationDataError(f"cannot open xdb {path}: {exc}") from exc
        self._searcher = xdb_searcher.new_with_buffer(version, content)
        self.ip_version: int = version.id
        self._gps = gps
        self._provinces = {_stem(name): code for code, name in gps.provinces.items()}
        self._cities: dict[str, dict[str, Place]] = {}
        for place in gps.places:
            if place.country in ("CN", "HK", "MO") and place.city_code and place.city:
                self._cities.setdefault(place.province_code or "", {})[_stem(place.city)] = place
        for cities in self._cities.values():
            # Databases shorten autonomous prefectures to their first characters (延边 for
            # 延边朝鲜族自治州): a prefix naming one prefecture of the province names it.
            prefixes: dict[str, list[Place]] = {}
            for stem, place in cities.items():
                for end in range(_MIN_STEM, len(stem)):
                    prefixes.setdefault(stem[:end], []).append(place)
            for prefix, places in prefixes.items():
                if len(places) == 1 and prefix not in cities:
                    cities[prefix] = places[0]
            for old, new in _RENAMED.items():
                if new in cities:
                    cities[old] = cities[new]

    def lookup(self, address: IPAddress) -> Place | None:
        """A place when the database puts the address in China (HK, MO, TW included)."""
        if address.version != self.ip_version:
            return None
        try:
            region = self._searcher.search(address.packed)
        except (ValueError, IndexError):
            return None
        return self._parse(region.split("|")) if region else None

    def _parse(self, fields: list[str]) -> Place | None:
        # Layouts seen: "国家|区域|省份|城市|ISP" (v2, "0" for unknown) and
        # "国家|省份|城市|ISP|ISO code" (v3); so look the names up rather than trust positions.
        stems = [_stem(f) for f in fields if f and f != "0"]
        for i, stem in enumerate(stems):
            code = self._provinces.get(stem)
            if code is None:
                continue
            if code[:2] == "71":
                return Place("TW", None, None, None)
            cities = self._cities.get(code, {})
            if len(cities) == 1:  # a municipality or a SAR: the province is the city
                return next(iter(cities.values()))
            for city in stems[i + 1 :]:
                if city in cities:
                    return cities[city]
            return Place("CN", code, None, None)
        return Place("CN", None, None, None) if stems and stems[0] in _CHINA else None


def shipped_xdb_paths() -> list[Path]:
    """The shipped ip2region files, as their provenance record lists them (a build without
    IPv6 lists the IPv4 file only)."""
    try:
        files = json.loads(SHIPPED_IP_DATA.read_text(encoding="utf-8"))["files"]
        return [SHIPPED_IP_DATA.with_name(name) for name in files]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocationDataError(f"cannot read {SHIPPED_IP_DATA}: {exc}") from exc


@functools.cache
def shipped_xdb() -> tuple[XdbSource, ...]:
    """The shipped ip2region files, loaded once per process (read-only)."""
    return tuple(XdbSource(path, gps.shipped()) for path in shipped_xdb_paths())
