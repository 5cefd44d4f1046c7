"""Offline coarse location: GPS and IP to a prefecture-level city (China) or a city of
15,000+ people / first-level region (elsewhere). No network call, ever.

    locator = build_locator(mmdb_path=..., xdb_path=...)   # at start-up; LocationDataError
    # (IP: the shipped ip2region files for China unless shipped_ip=False or replaced)
    checked = check_coordinates(lat, lon)                   # (lat, lon) or a reason code
    locator.from_gps(*checked), locator.from_ip(truncate(address))   # Place | None

Data sources, licences and accuracy: docs/location.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from processor.pipeline.location import IPAddress, Locator, Place

from . import gps
from .ip import MmdbSource, XdbSource, shipped_xdb, truncate

__all__ = ["GeoLocator", "build_locator", "check_coordinates", "shipped_xdb", "truncate"]

# GPS answers are computed for the coordinate rounded to 0.01 degree (about 1 km, far finer
# than a prefecture): the rounded pair is the cache key, and the answer depends on it alone.
_GPS_STEPS_PER_DEGREE = 100


def check_coordinates(lat: object, lon: object) -> tuple[float, float] | str:
    """A valid pair as floats, else the reason code the pipeline counts:
    ``not_a_number`` (strings, bools, None, ...), ``nan``, ``out_of_range`` (inf included),
    ``null_island`` (0, 0: what broken clients send for "no fix")."""
    if isinstance(lat, bool) or isinstance(lon, bool):
        return "not_a_number"
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return "not_a_number"
    try:
        flat, flon = float(lat), float(lon)
    except OverflowError:  # an int beyond float range
        return "out_of_range"
    if math.isnan(flat) or math.isnan(flon):
        return "nan"
    if not (-90.0 <= flat <= 90.0 and -180.0 <= flon <= 180.0):
        return "out_of_range"
    if flat == 0.0 and flon == 0.0:
        return "null_island"
    return flat, flon


class GeoLocator:
    """The ``Locator`` of the pipeline: shipped GPS data, IP databases (ip2region xdb files, at
    most one per IP version, and an optional MMDB), LRU caches."""

    def __init__(
        self,
        gps_index: gps.GpsIndex,
        xdbs: Sequence[XdbSource],
        mmdb: MmdbSource | None,
        cache_size: int,
    ) -> None:
        self._gps = gps_index
        self._xdbs = tuple(xdbs)
        self._mmdb = mmdb
        self._gps_at: Callable[[int, int], Place | None] = self._gps_uncached
        self._ip_at: Callable[[IPAddress], Place | None] = self._ip_uncached
        if cache_size > 0:
            self._gps_at = functools.lru_cache(maxsize=cache_size)(self._gps_uncached)
            self._ip_at = functools.lru_cache(maxsize=cache_size)(self._ip_uncached)

    def from_gps(self, lat: float, lon: float) -> Place | None:
        return self._gps_at(round(lat * _GPS_STEPS_PER_DEGREE), round(lon * _GPS_STEPS_PER_DEGREE))

    def from_ip(self, network_address: IPAddress) -> Place | None:
        # Defence in depth: the caller should have truncated already; this is idempotent.
        return self._ip_at(truncate(network_address))

    def _gps_uncached(self, lat_steps: int, lon_steps: int) -> Place | None:
        return self._gps.lookup(
            lat_steps / _GPS_STEPS_PER_DEGREE, lon_steps / _GPS_STEPS_PER_DEGREE
        )

    def _ip_uncached(self, address: IPAddress) -> Place | None:
        china = next((p for x in self._xdbs if (p := x.lookup(address)) is not None), None)
        if china is not None and china.province_code is not None:
            return china
        # ip2region knows only "China" (or Taiwan, at island level) here: MMDB may know more.
        other = self._mmdb.lookup(address) if self._mmdb is not None else None
        return other or china


def build_locator(
    mmdb_path: Path | None = None,
    xdb_path: Path | None = None,
    *,
    shipped_ip: bool = True,
    cache_size: int = 65536,
) -> Locator:
    """Load everything at start-up; raises ``LocationDataError`` naming a missing or corrupt
    file. IP lookups try ip2region first (the better source for China), then MMDB. The
    shipped ip2region files (China, IPv4 and IPv6) answer unless ``shipped_ip`` is false or
    the operator's ``xdb_path`` holds the same IP version (it replaces the shipped one)."""
    gps_index = gps.shipped()
    xdbs = [XdbSource(xdb_path, gps_index)] if xdb_path is not None else []
    if shipped_ip:
        given = {x.ip_version for x in xdbs}
        xdbs += [x for x in shipped_xdb() if x.ip_version not in given]
    mmdb = MmdbSource(mmdb_path, gps_index) if mmdb_path is not None else None
    return GeoLocator(gps_index, xdbs, mmdb, cache_size)
