"""Writes ip2region xdb files (structure 3.0); py-ip2region ships no maker. Used by
scripts/build_ip_data.py for the shipped data, and by the tests and bench/geo.py.

Layout, as read by ``ip2region.searcher``: a 256-byte header, a vector index of 256 x 256
(first two address bytes) start/end pointers, the region strings, then the sorted segment
index (IPv4 addresses little-endian, IPv6 big-endian, then data length and pointer). Addresses
in no segment have no region (the searcher answers ""), so a file may cover part of the space.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from pathlib import Path

_HEADER = 256
_VECTOR = 256 * 256 * 8


def write_xdb(path: Path, segments: list[tuple[str, str, str]]) -> None:
    """``segments``: (first address, last address, region) of one IP version, not overlapping."""
    parsed = sorted(
        (int(ipaddress.ip_address(first)), int(ipaddress.ip_address(last)), region)
        for first, last, region in segments
    )
    bits = ipaddress.ip_address(segments[0][0]).max_prefixlen
    path.write_bytes(xdb_bytes(parsed, bits))


def xdb_bytes(segments: Sequence[tuple[int, int, str]], bits: int) -> bytes:
    """The xdb file of sorted, non-overlapping (first, last, region) segments of ``bits``-bit
    addresses (32 or 128); ``createdAt`` is 0, so the same input gives the same bytes."""
    width = bits // 8
    entry_size = 14 if bits == 32 else 38
    # A segment must not cross a vector-index cell (its first two bytes): split it.
    pieces: list[tuple[int, int, str]] = []
    for first, end, region in segments:
        start = first
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
        if bits == 32:
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
    version = 4 if bits == 32 else 6
    header = struct.pack("<HHIIIHH", 3, 1, 0, index_start, last, version, 4).ljust(_HEADER, b"\0")
    return bytes(header + vector + data + index)
