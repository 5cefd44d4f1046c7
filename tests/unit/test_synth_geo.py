"""The synthetic stream's addresses lie in their users' cities as the shipped IP data places
them, so the demo's IP-derived cities match its GPS-derived ones."""

from __future__ import annotations

import ipaddress

import orjson

from processor.devtools import synth
from processor.pipeline.geo import build_locator


def test_synthetic_addresses_give_the_city_of_the_events_coordinates() -> None:
    locator = build_locator()
    same = both = 0
    for _, _, value in synth.generate(3000, seed=3, users=300, malformed=0):
        event = orjson.loads(value)
        ip = event.get("network", {}).get("ip")
        if ip is None:
            continue
        by_ip = locator.from_ip(ipaddress.ip_address(ip))
        assert by_ip is not None and by_ip.city_code is not None, ip
        location = event.get("location")
        if location is not None:
            both += 1
            by_gps = locator.from_gps(location["lat"], location["lon"])
            same += by_gps is not None and by_gps.city_code == by_ip.city_code
    # GPS jitter of up to 0.08 degree crosses a prefecture border now and then (Guangzhou ->
    # Foshan, Xi'an -> Xianyang).
    assert both > 1000
    assert same / both >= 0.97
