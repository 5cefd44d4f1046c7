"""What the pipeline returns for one input record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple

import orjson


class Route(StrEnum):
    """Logical outputs; the physical topic names come from configuration."""

    RECOMMENDATION = "recommendation"
    AD_ANALYTICS = "ad-analytics"
    ERASURE_RECOMMENDATION = "erasure.recommendation"
    ERASURE_AD_ANALYTICS = "erasure.ad-analytics"
    QUARANTINE = "quarantine"


DEFAULT_TOPICS: dict[Route, str] = {
    Route.RECOMMENDATION: "clean.recommendation",
    Route.AD_ANALYTICS: "clean.ad-analytics",
    Route.ERASURE_RECOMMENDATION: "erasure.recommendation",
    Route.ERASURE_AD_ANALYTICS: "erasure.ad-analytics",
    Route.QUARANTINE: "quarantine",
}


class SourceRef(NamedTuple):
    """Where an input record came from (partition/offset unknown for stdin). A NamedTuple:
    one is built per input, where a frozen dataclass costs 2.5x more."""

    topic: str
    partition: int | None = None
    offset: int | None = None


class Routed(NamedTuple):
    """One output record, ready for the wire: ``value`` is UTF-8 JSON bytes, ``key`` a
    pseudonym (or a non-identifying id) or None, ``headers`` name schema, policy and keys.
    (A NamedTuple: built on the hot path, where a frozen dataclass costs 4x more.)"""

    route: Route
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def json(self) -> dict[str, Any]:
        decoded: dict[str, Any] = orjson.loads(self.value)
        return decoded


class Outcome(NamedTuple):
    """Every input ends as exactly one outcome: routed records, a quarantine record (also in
    ``records``, with ``quarantined`` set to its reason code), or a counted suppression
    (``suppressed`` says why nothing was routed, e.g. ``account_deleted``)."""

    records: list[Routed]
    quarantined: str | None = None
    suppressed: str | None = None
    event_time: int | None = None
    """A valid behaviour or device event's own ``event_time`` (ms), for the latency metric;
    None for consent records and quarantined input."""

    @property
    def counted_as(self) -> str:
        """What the counters call this outcome: ``quarantined``, ``suppressed`` or
        ``routed`` (``transform`` and replay count by it; the worker's batch loop spells the
        same rule out, tests/unit/test_batch_runner.py holds it to this)."""
        if self.quarantined:
            return "quarantined"
        return "suppressed" if self.suppressed else "routed"


Headers = tuple[tuple[str, bytes], ...]
Send = tuple[str, bytes | None, bytes, Headers]  # topic, key, value, headers


def sends_of(records: Iterable[Routed], topics: Mapping[Route, str]) -> list[Send]:
    """Routed records -> what a producer sends: the route's topic (``topics``), the key as
    UTF-8 bytes (None stays None), the value and the headers."""
    return [
        (topics[r.route], r.key.encode() if r.key is not None else None, r.value, r.headers)
        for r in records
    ]
