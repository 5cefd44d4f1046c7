"""Geo lookup benchmark: lookups/s on one core (GPS and IP, cached and uncached) on a stream
where users repeat locations, the memory and load time of the shipped data, and the accuracy
figures (GPS, and the IP path on tests/data/geo/china_ips.csv).

    .venv/bin/python bench/geo.py [--events 200000] [--mmdb PATH] [--xdb PATH]

Without --mmdb/--xdb, synthetic databases of a few thousand networks are built (mmdb-writer,
processor/pipeline/geo/xdb_maker.py) for the speed runs; pass real files to measure those, and to set
their IP accuracy next to the shipped data's.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import ipaddress
import random
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import maxminddb
import psutil
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from processor.devtools.benchmark.geo_accuracy import (
    gps_accuracy,
    ip_accuracy,
    labelled_rows,
    nearest_seat_accuracy,
)
from processor.pipeline.geo import build_locator, gps, shipped_xdb
from processor.pipeline.geo.ip import XdbSource, shipped_xdb_paths
from processor.pipeline.geo.xdb_maker import write_xdb
from processor.pipeline.location import IPAddress, Locator, Place

USERS = 20_000
NETWORKS = 4_000


def _rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def _stream(events: int, rng: random.Random) -> tuple[list[tuple[float, float]], list[IPAddress]]:
    """Users at home (in China but 5% abroad), GPS jitter of ~100 m, each user on two
    addresses; user activity is skewed (a few heavy users), as in the real stream."""
    homes = [(float(r["lat"]), float(r["lon"])) for r in labelled_rows("county_seats.csv")]
    homes += [(float(r["lat"]), float(r["lon"])) for r in labelled_rows("world_points.csv")] * 4
    users = []
    for _ in range(USERS):
        lat, lon = rng.choice(homes)
        home = (lat + rng.uniform(-0.2, 0.2), lon + rng.uniform(-0.2, 0.2))
        # 36/8: in the synthetic xdb; 64/8: only in the synthetic MMDB.
        ips = [ipaddress.IPv4Address((first << 24) + rng.randrange(1 << 24)) for first in (36, 64)]
        users.append((home, ips))
    weights = [1 / (i + 1) ** 0.8 for i in range(USERS)]
    points: list[tuple[float, float]] = []
    addresses: list[IPAddress] = []
    for home, ips in rng.choices(users, weights, k=events):
        points.append((home[0] + rng.gauss(0, 0.001), home[1] + rng.gauss(0, 0.001)))
        addresses.append(rng.choice(ips))
    return points, addresses


def _synthetic_databases(folder: Path, rng: random.Random) -> tuple[Path, Path]:
    cities = labelled_rows("county_seats.csv")
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    for n in range(NETWORKS):
        city = rng.choice(cities)
        record = {
            "country": {"iso_code": "CN"},
            "city": {"geoname_id": n, "names": {"en": city["name"]}},
            "location": {"latitude": float(city["lat"]), "longitude": float(city["lon"])},
        }
        network = ipaddress.IPv4Network(((64 << 24) + n * (1 << 12), 20))
        writer.insert_network(IPSet([str(network)]), record)
    mmdb = folder / "bench.mmdb"
    writer.to_db_file(str(mmdb))
    regions = ["中国|0|四川省|成都市|电信", "中国|广东省|深圳市|移动|CN", "中国|0|0|0|电信"]
    segments = []
    for n in range(NETWORKS):
        first = (36 << 24) + n * (1 << 12)
        segments.append(
            (
                str(ipaddress.IPv4Address(first)),
                str(ipaddress.IPv4Address(first + (1 << 12) - 1)),
                rng.choice(regions),
            )
        )
    xdb = folder / "bench.xdb"
    write_xdb(xdb, segments)
    return mmdb, xdb


def _rate(calls: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    calls()
    return n / (time.perf_counter() - start)


def _run(name: str, lookup: Callable[..., object], items: Sequence[tuple[object, ...]]) -> None:
    """The first half of the stream warms the cache (a worker runs for days); the second half
    is timed."""
    half = len(items) // 2
    for item in items[:half]:
        lookup(*item)
    rate = _rate(lambda: [lookup(*i) for i in items[half:]], len(items) - half)
    print(f"  {name:<28} {rate:>12,.0f} lookups/s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--mmdb", type=Path)
    parser.add_argument("--xdb", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(7)  # noqa: S311 - a reproducible stream, not secrecy
    with tempfile.TemporaryDirectory() as tmp:
        mmdb, xdb = args.mmdb, args.xdb
        if mmdb is None and xdb is None:
            mmdb, xdb = _synthetic_databases(Path(tmp), rng)
        points, addresses = _stream(2 * args.events, rng)
        for name, load in (("GPS data", gps.shipped), ("shipped IP data", shipped_xdb)):
            before = _rss_mb()
            start = time.perf_counter()
            load()
            load_s = time.perf_counter() - start
            after = _rss_mb()
            print(
                f"{name} loaded in {load_s:.2f} s; RSS +{after - before:.1f} MB "
                f"(process {after:.0f} MB)"
            )
        cached = build_locator(mmdb, xdb)
        uncached = build_locator(mmdb, xdb, cache_size=0)
        print(
            f"stream: {args.events:,} events timed after as many to warm up, {USERS:,} users "
            "(5% abroad), ~100 m GPS jitter"
        )
        _run("GPS cached (65536)", cached.from_gps, points)
        _run("GPS uncached", uncached.from_gps, points)
        ip_items = [(a,) for a in addresses]
        _run("IP cached (65536)", cached.from_ip, ip_items)
        _run("IP uncached", uncached.from_ip, ip_items)
        print(f"process RSS after the runs: {_rss_mb():.0f} MB")
    print("accuracy at prefecture level (polygons / nearest prefecture seat baseline):")
    for name in ("china_points.csv", "county_seats.csv"):
        rows = labelled_rows(name)
        print(
            f"  {name:<20} {len(rows):>5} points  {gps_accuracy(cached, rows):7.2%} / "
            f"{nearest_seat_accuracy(rows):.2%}"
        )
    rows = [r for r in labelled_rows("china_points.csv") if r["kind"] != "downtown"]
    print(
        f"  {'  not downtown':<20} {len(rows):>5} points  {gps_accuracy(cached, rows):7.2%} / "
        f"{nearest_seat_accuracy(rows):.2%}"
    )
    _ip_accuracy(args.mmdb, args.xdb)
    if args.mmdb is not None:
        _agreement(args.mmdb, random.Random(5))  # noqa: S311 - reproducible draws
    return 0


def _ip_accuracy(mmdb: Path | None, xdb: Path | None) -> None:
    """Prefecture / province shares on the labelled addresses, per IP version a database
    holds; a given xdb also at the exact address (never done by the processor: it shows what
    truncation costs)."""
    rows = labelled_rows("china_ips.csv")
    contenders: list[tuple[str, Locator, set[int]]] = [
        ("shipped ip2region", build_locator(), {4, 6})
    ]
    if xdb is not None:
        source = XdbSource(xdb, gps.shipped())
        versions = {source.ip_version}
        contenders.append(
            (f"xdb {xdb.name}", build_locator(xdb_path=xdb, shipped_ip=False), versions)
        )
        contenders.append((f"xdb {xdb.name}, exact address", _Untruncated(source), versions))
    if mmdb is not None:
        with maxminddb.open_database(str(mmdb)) as reader:
            versions = {4, 6} if reader.metadata().ip_version == 6 else {4}
        locator = build_locator(mmdb_path=mmdb, shipped_ip=False)
        contenders.append((f"mmdb {mmdb.name}", locator, versions))
    print("IP accuracy (china_ips.csv): prefecture / province")
    for version in (4, 6):
        subset = [r for r in rows if ipaddress.ip_address(r["address"]).version == version]
        for name, locator, versions in contenders:
            if version in versions:
                prefecture, province = ip_accuracy(locator, subset)
                print(
                    f"  IPv{version} {name:<36} {len(subset):>4}  {prefecture:7.1%} / {province:.1%}"
                )


def _agreement(mmdb: Path, rng: random.Random, n: int = 10_000) -> None:
    """The shipped IPv4 data against an MMDB on addresses drawn from the shipped ranges
    (weighted by size, truncated): where the shipped data names a mainland prefecture, how
    often the MMDB names a city, the same province, the same prefecture."""
    xdb = gzip.decompress(shipped_xdb_paths()[0].read_bytes())
    first, last = struct.unpack_from("<II", xdb, 8)  # the segment index, 14 bytes an entry
    segments = [struct.unpack_from("<II", xdb, at) for at in range(first, last + 1, 14)]
    shipped = build_locator(cache_size=0)
    other = build_locator(mmdb_path=mmdb, shipped_ip=False, cache_size=0)
    counts = {"prefecture": 0, "city": 0, "province": 0, "same": 0}
    weights = [end - start + 1 for start, end in segments]
    for start, end in rng.choices(segments, weights, k=n):
        address = ipaddress.IPv4Address(rng.randrange(start, end + 1) & ~0xFF)
        ours, theirs = shipped.from_ip(address), other.from_ip(address)
        if ours is None or ours.country != "CN" or ours.city_code is None:
            continue
        counts["prefecture"] += 1
        if theirs is not None:
            counts["city"] += theirs.city_code is not None
            counts["province"] += theirs.province_code == ours.province_code
            counts["same"] += theirs.city_code == ours.city_code
    base = counts["prefecture"]
    print(
        f"agreement on {base:,} addresses the shipped data puts in a mainland prefecture: "
        f"{mmdb.name} names a city for {counts['city'] / base:.1%}, the same province for "
        f"{counts['province'] / base:.1%}, the same prefecture for {counts['same'] / base:.1%}"
    )


class _Untruncated:
    def __init__(self, source: XdbSource) -> None:
        self._source = source

    def from_gps(self, lat: float, lon: float) -> Place | None:
        return None

    def from_ip(self, network_address: IPAddress) -> Place | None:
        return self._source.lookup(network_address)
