"""Location interface: what the pipeline asks of the geo lookup (implemented in processor.pipeline.geo)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Place:
    """A coarse place: never finer than a prefecture-level city (China) or a city that does
    not single out a village (elsewhere)."""

    country: str  # ISO 3166-1 alpha-2
    province_code: (
        str | None
    )  # China: 6-digit GB/T 2260 province code; elsewhere first-level region code
    city_code: str | None  # China: 6-digit GB/T 2260 prefecture code; elsewhere a stable city id
    city: str | None  # display name

    def to_json(self, source: str) -> dict[str, str | None]:
        return {
            "country": self.country,
            "province_code": self.province_code,
            "city_code": self.city_code,
            "city": self.city,
            "source": source,
        }


class Locator(Protocol):
    """Offline coarse location. Implementations never do network calls."""

    def from_gps(self, lat: float, lon: float) -> Place | None:
        """A place for a valid coordinate (already range-checked), or None when unknown."""
        ...

    def from_ip(self, network_address: IPAddress) -> Place | None:
        """A place for an address already truncated to /24 (IPv4) or /48 (IPv6)."""
        ...


class NullLocator:
    """Knows no place; used where no geo data is configured."""

    def from_gps(self, lat: float, lon: float) -> Place | None:
        return None

    def from_ip(self, network_address: IPAddress) -> Place | None:
        return None
