"""The shipped IP data: the files are the ones the provenance record describes, and the
refresh script's reduction (scripts/build_ip_data.py) keeps what the truncated lookup needs."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import struct
from pathlib import Path
from types import ModuleType

import pytest

from processor.pipeline.geo.ip import SHIPPED_IP_DATA, shipped_xdb_paths

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_ip_data.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_ip_data", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record() -> dict[str, object]:
    record: dict[str, object] = json.loads(SHIPPED_IP_DATA.read_text(encoding="utf-8"))
    return record


def test_shipped_files_match_the_recorded_checksums() -> None:
    files = _record()["files"]
    assert isinstance(files, dict)
    shipped = sorted(path.name for path in SHIPPED_IP_DATA.parent.glob("ip2region_v*.xdb.gz"))
    assert sorted(files) == shipped
    assert "ip2region_v4.xdb.gz" in shipped
    for path in shipped_xdb_paths():
        packed = path.read_bytes()
        assert len(packed) == files[path.name]["bytes"]
        assert hashlib.sha256(packed).hexdigest() == files[path.name]["sha256"]
        xdb = gzip.decompress(packed)
        assert hashlib.sha256(xdb).hexdigest() == files[path.name]["xdb_sha256"]


def test_provenance_names_source_version_licence_and_date(script: ModuleType) -> None:
    record = _record()
    assert record["source"] == f"npm {script.PACKAGE}@{script.VERSION}"
    assert record["integrity"] == script.INTEGRITY
    for key in ("published", "licence", "ipv4_data", "ipv6_data", "reduction"):
        assert record[key]
    assert (SHIPPED_IP_DATA.parent / "ip2region-LICENSE.txt").read_text().startswith("MIT")


def test_when_blocks_mix_places_then_the_larger_share_wins(script: ModuleType) -> None:
    a, b = ("四川省", "成都市"), ("广东省", "深圳市")
    ranges = [
        (0, 99, a),  # block 0: 100 a, 156 b -> b
        (100, 511, b),  # block 1: all b -> merged with block 0
        (512, 700, None),  # block 2: 189 abroad, 67 a -> none
        (701, 1023, a),  # block 3: all a
    ]
    assert list(script.per_block(ranges, 256)) == [(0, 511, b), (768, 1023, a)]


def test_when_whole_blocks_repeat_a_place_then_one_range(script: ModuleType) -> None:
    a = ("四川省", "成都市")
    ranges = [(0, 255, a), (256, 1023, a), (1024, 2047, None), (2048, 4095, a)]
    assert list(script.per_block(ranges, 256)) == [(0, 1023, a), (2048, 4095, a)]


def test_when_ipv4_source_is_read_then_ranges_outside_china_have_no_place(
    script: ModuleType,
) -> None:
    records = [
        (0, 255, "中国|0|四川省|成都市|电信"),
        (256, 511, "日本|0|0|0|0"),
        (512, 767, "中国|0|0|0|0"),
    ]
    index = 8
    data = bytearray()
    entries = bytearray()
    base = index + 12 * len(records)
    for start, end, region in records:
        body = struct.pack("<I", 1) + region.encode()
        entries += struct.pack("<III", start, end, (len(body) << 24) | (base + len(data)))
        data += body
    db = struct.pack("<II", index, index + 12 * (len(records) - 1)) + entries + data
    assert script.ipv4_ranges(bytes(db)) == [
        (0, 255, ("四川省", "成都市")),
        (256, 511, None),
        (512, 767, ("0", "0")),
    ]
