"""Accuracy of the location lookups on labelled sets (``tests/data/geo/``), measured the
same way by the accuracy tests and by ``bench/geo.py``.

- GPS: the share of points whose prefecture (GB/T 2260 ``city_code``) the locator names,
  next to the nearest-prefecture-seat baseline (what a nearest-populated-place lookup does);
- IP: the shares of addresses answered with the labelled prefecture, and with its province.
"""

from __future__ import annotations

import csv
import ipaddress
import math
from pathlib import Path

from processor.pipeline.location import Locator

GEO_DATA = Path("tests/data/geo")  # from the checkout, like RESULTS_DIR


def labelled_rows(name: str, data: Path = GEO_DATA) -> list[dict[str, str]]:
    with (data / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def gps_accuracy(locator: Locator, rows: list[dict[str, str]]) -> float:
    right = 0
    for row in rows:
        place = locator.from_gps(float(row["lat"]), float(row["lon"]))
        right += place is not None and place.city_code == row["city_code"]
    return right / len(rows)


def nearest_seat_accuracy(rows: list[dict[str, str]], data: Path = GEO_DATA) -> float:
    """Nearest prefecture seat: what a nearest-populated-place lookup does."""
    seats = [
        (float(s["lat"]), float(s["lon"]), s["city_code"])
        for s in labelled_rows("prefecture_seats.csv", data)
    ]
    right = 0
    for row in rows:
        lat, lon = float(row["lat"]), float(row["lon"])
        coslat = math.cos(math.radians(lat))
        nearest = min(seats, key=lambda s: (s[0] - lat) ** 2 + ((s[1] - lon) * coslat) ** 2)
        right += nearest[2] == row["city_code"]
    return right / len(rows)


def ip_accuracy(locator: Locator, rows: list[dict[str, str]]) -> tuple[float, float]:
    """Shares of rows answered with the labelled prefecture, and with its province."""
    city = province = 0
    for row in rows:
        place = locator.from_ip(ipaddress.ip_address(row["address"]))
        if place is None:
            continue
        city += place.city_code == row["city_code"]
        province += (place.province_code or "")[:2] == row["city_code"][:2]
    return city / len(rows), province / len(rows)


__all__ = ["GEO_DATA", "gps_accuracy", "ip_accuracy", "labelled_rows", "nearest_seat_accuracy"]
