"""Writes small ip2region xdb files (structure 3.0) for tests; py-ip2region ships no maker.

Layout, as read by ``ip2region.searcher``: a 256-byte header, a vector index of 256 x 256
(first two address bytes) start/end pointers, the region strings, then the sorted segment
index (IPv4 addresses little-endian, IPv6 big-endian, then data length and pointer).
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

_HEADER = 256
_VECTOR = 256 * 256 * 8


def write_xdb(path: Path, segments: list[tuple[str, str, str]]) -> None:
    """``segments``: (first address, last address, region) of one IP version, not overlapping."""
    parsed = sorted(
        (ipaddress.ip_address(first), ipaddress.ip_address(last), region)
        for first, last, region in segments
    )
    version = parsed[0][0].version
    bits = 32 if version == 4 else 128
    width = bits // 8
    entry_size = 14 if version == 4 else 38
    # A segment must not cross a vector-index cell (its first two bytes): split it.
    pieces: list[tuple[int, int, str]] = []
    for first, last, region in parsed:
        start, end = int(first), int(last)
        while start <= end:
            cell_end = start | ((1 << (bits - 16)) - 1)
            pieces.append((start, min(end, cell_end), region))
            start = cell_end + 1
    regions: dict[str, int] = {}
    data = bytearray()
    base = _HEADER + _VECTOR
    for _, _, region in pieces:
        if region not in regions:
            regions[region] = base + len(data)
            data += region.encode()
    index_start = base + len(data)
    index = bytearray()
    vector = bytearray(_VECTOR)
    for n, (start, end, region) in enumerate(pieces):
        if version == 4:
            index += struct.pack("<II", start, end)
        else:
            index += start.to_bytes(width, "big") + end.to_bytes(width, "big")
        index += struct.pack("<HI", len(region.encode()), regions[region])
        ptr = index_start + n * entry_size
        cell = (start >> (bits - 16)) * 8
        if struct.unpack_from("<I", vector, cell)[0] == 0:
            struct.pack_into("<I", vector, cell, ptr)
        struct.pack_into("<I", vector, cell + 4, ptr)  # the cell's last entry, inclusive
    last = index_start + len(index) - entry_size
    header = struct.pack("<HHIIIHH", 3, 1, 0, index_start, last, version, 4).ljust(_HEADER, b"\0")
    path.write_bytes(header + vector + data + index)
