"""Coordinates -> coarse place, from the shipped data (built by scripts/build_geo_data.py).

China: a 0.1-degree grid; most cells lie inside one prefecture and answer directly, the rest
hold the prefecture polygons clipped to the cell, tested by ray casting. Elsewhere, and for
points just outside the Chinese polygons (simplified coasts, islets), the nearest point of a
table of GeoNames cities (15,000+ people) and Chinese county seats (each mapped to its
prefecture) answers within its radius, weighted by population; failing that, the first-level region of the nearest
point within ``REGION_RADIUS_KM``.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from processor.errors import LocationDataError
from processor.pipeline.location import Place

DATA_PATH = Path(__file__).parent / "data" / "geo.json.gz"
DATA_FORMAT = 1
REGION_RADIUS_KM = 100.0
_KM_PER_DEGREE = 111.2
# The city answering for a point maximises population / (distance + _GRAVITY_KM)^2: a
# metropolis wins over its own districts (GeoNames lists many as cities of 15,000+), a town
# of its own still wins at home.
_GRAVITY_KM = 5.0
_CITY_SEARCH_KM = 50.0  # the largest radius of a world point
_WORLD_CELL = 0.5  # degrees
_WORLD_COLS = 720  # cells around the globe (360 / _WORLD_CELL)

# A clipped prefecture: its place index and rings of (x, y) pairs in 1e-5 degree from the
# cell's corner.
_Clipped = tuple[int, tuple["array[int]", ...]]
# A world point: lat, lon, city place index, region place index, radius km, population.
_WorldPoint = tuple[float, float, int, int, float, int]


def _inside(rings: Sequence[array[int]], x: float, y: float) -> bool:
    """Even-odd ray casting over all rings (outer rings and holes alike)."""
    inside = False
    for ring in rings:
        x1, y1 = ring[-2], ring[-1]
        for i in range(0, len(ring), 2):
            x2, y2 = ring[i], ring[i + 1]
            if (y2 > y) != (y1 > y) and x < (x1 - x2) * (y - y2) / (y1 - y2) + x2:
                inside = not inside
            x1, y1 = x2, y2
    return inside


class GpsIndex:
    """The loaded GPS data. ``lookup`` is pure and safe to cache."""

    def __init__(self, data: dict[str, Any]) -> None:
        grid = data["grid"]
        self._cell: float = grid["cell"]
        self._scale: int = grid["scale"]
        self._lat0: float = grid["lat0"]
        self._lon0: float = grid["lon0"]
        self._rows: int = grid["rows"]
        self._cols: int = grid["cols"]
        self.places = [Place(*row) for row in data["places"]]
        self.provinces: dict[str, str] = data["provinces"]
        self._china: list[int | tuple[_Clipped, ...] | None] = [None] * (self._rows * self._cols)
        for cell, value in data["china"]:
            self._china[cell] = (
                value
                if isinstance(value, int)
                else tuple((place, tuple(array("i", r) for r in rings)) for place, rings in value)
            )
        self._world: dict[tuple[int, int], list[_WorldPoint]] = {}
        for lat_e4, lon_e4, city, region, radius, population in data["world"]:
            lat, lon = lat_e4 / 1e4, lon_e4 / 1e4
            key = (math.floor(lat / _WORLD_CELL), math.floor(lon / _WORLD_CELL) % _WORLD_COLS)
            self._world.setdefault(key, []).append((lat, lon, city, region, radius, population))
        for points in self._world.values():
            points.sort(key=lambda p: -p[5])

    def lookup(self, lat: float, lon: float) -> Place | None:
        place = self._in_china(lat, lon)
        if place is None:
            return self._nearest(lat, lon)
        if place.city_code is None:  # Taiwan: a city from the world table, else the island
            return self._nearest(lat, lon) or place
        return place

    def region(self, lat: float, lon: float) -> Place | None:
        """The first-level region only (for IP records that know no city)."""
        place = self.lookup(lat, lon)
        if place is None or place.country in ("HK", "MO"):
            return place
        return Place(place.country, place.province_code, None, None)

    def _in_china(self, lat: float, lon: float) -> Place | None:
        row = math.floor((lat - self._lat0) / self._cell)
        col = math.floor((lon - self._lon0) / self._cell)
        if not (0 <= row < self._rows and 0 <= col < self._cols):
            return None
        cell = self._china[row * self._cols + col]
        if cell is None:
            return None
        if isinstance(cell, int):
            return self.places[cell]
        x = (lon - (self._lon0 + col * self._cell)) * self._scale
        y = (lat - (self._lat0 + row * self._cell)) * self._scale
        for place, rings in cell:
            if _inside(rings, x, y):
                return self.places[place]
        return None

    def _nearest(self, lat: float, lon: float) -> Place | None:
        coslat = max(math.cos(math.radians(lat)), 0.01)
        best, best_score = -1, 0.0
        for near_km, points in self._world_cells(lat, lon, _CITY_SEARCH_KM, coslat):
            # No point of this cell smaller than ``floor`` can beat the best so far.
            floor = best_score * (near_km + _GRAVITY_KM) ** 2
            for plat, plon, city, _, radius, population in points:
                if population <= floor:
                    break  # cells are sorted by population, largest first
                d = _distance_km(lat, lon, plat, plon, coslat)
                score = population / (d + _GRAVITY_KM) ** 2
                if d <= radius and score > best_score:
                    best, best_score = city, score
        if best >= 0:
            return self.places[best]
        region, region_d = -1, REGION_RADIUS_KM
        for _, points in self._world_cells(lat, lon, REGION_RADIUS_KM, coslat):
            for plat, plon, _, place, _, _ in points:
                d = _distance_km(lat, lon, plat, plon, coslat)
                if d < region_d:
                    region, region_d = place, d
        return self.places[region] if region >= 0 else None

    def _world_cells(
        self, lat: float, lon: float, radius_km: float, coslat: float
    ) -> Iterator[tuple[float, list[_WorldPoint]]]:
        """The world cells within ``radius_km`` with their nearest distance to the point, the
        point's own cell first (it likely holds the answer, which lets the others be skipped)."""
        row, col = math.floor(lat / _WORLD_CELL), math.floor(lon / _WORLD_CELL)
        rows = math.ceil(radius_km / (_KM_PER_DEGREE * _WORLD_CELL))
        cols = min(math.ceil(rows / coslat), _WORLD_COLS // 2)
        own = (row, col % _WORLD_COLS)
        if own in self._world:
            yield 0.0, self._world[own]
        for r in range(row - rows, row + rows + 1):
            dlat = max(0.0, r * _WORLD_CELL - lat, lat - (r + 1) * _WORLD_CELL)
            for c in range(col - cols, col + cols + 1):
                key = (r, c % _WORLD_COLS)
                if key != own and key in self._world:
                    dlon = max(0.0, c * _WORLD_CELL - lon, lon - (c + 1) * _WORLD_CELL)
                    yield _KM_PER_DEGREE * math.hypot(dlat, dlon * coslat), self._world[key]


def _distance_km(lat: float, lon: float, plat: float, plon: float, coslat: float) -> float:
    """Equirectangular distance: exact enough within the 100 km searched."""
    dlon = plon - lon
    if dlon > 180.0:
        dlon -= 360.0
    elif dlon < -180.0:
        dlon += 360.0
    return _KM_PER_DEGREE * math.hypot(plat - lat, dlon * coslat)


@functools.cache
def shipped() -> GpsIndex:
    """The shipped data, loaded once per process (it is read-only)."""
    return load(DATA_PATH)


def load(path: Path) -> GpsIndex:
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
        if data.get("format") != DATA_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {DATA_FORMAT}")
        return GpsIndex(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocationDataError(f"cannot load GPS data {path}: {exc}") from exc
