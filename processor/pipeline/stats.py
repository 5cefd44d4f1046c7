"""Ad statistics: tumbling-window counts of events and distinct devices, k-suppressed.

Pure (no Kafka import): the worker feeds it the parsed ``clean.ad-analytics`` records of a
batch and persists the changes it returns to a changelog; ``docs/stats.md`` is the reference.

- A **cell** is (event_type, the ad item, place): the item is ``payload.item_id``, else
  ``payload.room_id``; the place is the city (``city_code``, else the city name), with its
  province and country as the coarser levels.
- A **device** is its ad-domain pseudonym, first present of oaid, android_id, imei, meid.
  A record with none (limit-ad-tracking devices, whose ids the policy drops, or no device
  block) is not counted at all, only tallied as ``events_without_device``.
- State is one flat mapping (the faust table's store) of JSON-able tuple keys, so the
  changelog and the state hold pseudonyms, codes and counts, never a raw identifier:
  ``("c", shard, window_start, cell)`` -> events, ``("d", shard, window_start, cell, device)``
  -> 1, ``("n", shard, window_start)`` -> events without device, ``("m", shard, stream)`` ->
  newest event time of an input topic, ``("w", shard)`` -> [closed_until, late events not yet
  reported].
- A **shard** is an input partition: each worker aggregates the partitions it owns and its
  state moves with them (co-partitioned changelog). Partners sum shards (see the docs).
- When a window closes, cells with at least ``k`` distinct devices are published at city
  level; the others are pooled per province, then per country, and a pool with fewer than
  ``k`` devices is suppressed. A summary record per window says what was suppressed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Container, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

SCHEMA = "stats.ad/1"
DEVICE_FIELDS = ("oaid", "android_id", "imei", "meid")  # preference order for "a device"
LEVELS = ("city", "province", "country")

# store key tags
_CELL, _DEVICE, _NO_DEVICE, _SHARD, _MARK = "c", "d", "n", "w", "m"

Key = tuple[Any, ...]
Change = tuple[Key, Any]  # value None = delete (a tombstone in the changelog)
# (event_type, item_field, item, country, province_code, city) ; None where unknown
Cell = tuple[str, str | None, str | None, str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """Window size, grace and k, validated once (settings ``stats_*``)."""

    window_ms: int = 3_600_000
    grace_ms: int = 60_000
    k: int = 10

    def __post_init__(self) -> None:
        # messages name the settings (processor.ops.settings: ad_stats_*)
        if self.window_ms < 1000:
            raise ValueError(f"ad_stats_window: must be at least 1 second, got {self.window_ms} ms")
        if self.grace_ms < 0:
            raise ValueError(f"ad_stats_grace: must be 0 or positive, got {self.grace_ms} ms")
        if self.k < 2:
            raise ValueError(
                f"ad_stats_k: must be at least 2 (1 publishes single devices), got {self.k}"
            )

    def window_of(self, event_time_ms: int) -> int:
        return event_time_ms - event_time_ms % self.window_ms


def cell_of(record: Mapping[str, Any]) -> tuple[Cell, str | None]:
    """The cell of one ``clean.ad-analytics`` record and its device pseudonym (or None)."""
    payload = record.get("payload") or {}
    item_field: str | None = None
    item: str | None = None
    for name in ("item_id", "room_id"):
        value = payload.get(name)
        if isinstance(value, str) and value:
            item_field, item = name, value
            break
    location = record.get("location") or {}
    city = location.get("city_code") or location.get("city")
    cell: Cell = (
        str(record.get("event_type")),
        item_field,
        item,
        location.get("country"),
        location.get("province_code"),
        city,
    )
    device = record.get("device") or {}
    for name in DEVICE_FIELDS:
        pseudonym = device.get(name)
        if isinstance(pseudonym, str) and pseudonym:
            return cell, pseudonym
    return cell, None


def _encode_cell(cell: Cell) -> str:
    return orjson.dumps(cell).decode()


def _decode_cell(text: str) -> Cell:
    e, f, i, c, p, t = orjson.loads(text)
    return (e, f, i, c, p, t)


@dataclass(slots=True)
class _Pool:
    events: int = 0
    devices: set[str] = field(default_factory=set)
    cells: int = 0


@dataclass(frozen=True, slots=True)
class Closed:
    """What closing one window of one shard produced: the records to publish (key, value)
    and the state changes (tombstones of the window, the shard's new bookkeeping)."""

    records: list[tuple[str, dict[str, Any]]]
    changes: list[Change]


def record_key(value: Mapping[str, Any]) -> str:
    """Stable message key: a hash of (window, shard, record kind, level, cell), so a window
    emitted again after a crash replaces itself downstream instead of adding up."""
    identity = orjson.dumps(
        [
            value["window_start"],
            value["shard"],
            value["record"],
            value.get("level"),
            value.get("event_type"),
            value.get("item_field"),
            value.get("item"),
            value.get("country"),
            value.get("province_code"),
            value.get("city"),
        ]
    )
    return base64.b32encode(hashlib.sha256(identity).digest()[:20]).decode().lower()


class StatsAggregator:
    """Adds records to the windowed state and closes windows; every mutation is also
    returned as a change for the changelog (so the worker can await it with the batch)."""

    def __init__(self, config: StatsConfig, store: MutableMapping[Any, Any] | None = None) -> None:
        self.config = config
        self.store: MutableMapping[Any, Any] = {} if store is None else store
        self._open: set[tuple[int, int]] = set()  # (shard, window_start) with state
        self._dirty: set[Key] = set()
        self._marks: dict[int, dict[str, int]] = {}  # shard -> stream -> newest event time
        self.rebuild()

    def rebuild(self) -> None:
        """Re-derive the open-window index from the store (after changelog recovery or a
        rebalance that took partitions away)."""
        keys = list(self.store)
        self._open = {(k[1], k[2]) for k in keys if k[0] in (_CELL, _NO_DEVICE)}
        self._marks = {}
        for k in keys:
            if k[0] == _MARK:
                self._marks.setdefault(k[1], {})[k[2]] = self.store[k]

    def _shard_meta(self, shard: int) -> list[int]:
        """[end of the newest published window, late events not yet reported]."""
        meta = self.store.get((_SHARD, shard))
        return list(meta) if meta is not None else [0, 0]

    def watermark(self, shard: int, caught_up: Container[tuple[int, str]] = ()) -> int:
        """The shard's event-time watermark: the slowest of its input streams (one shard
        reads several topics, and a fetch can run ahead on one of them), ignoring streams
        read to their end (``caught_up``, known to the adapter) unless all are."""
        marks = self._marks.get(shard)
        if not marks:
            return 0
        behind = [t for stream, t in marks.items() if (shard, stream) not in caught_up]
        return min(behind) if behind else max(marks.values())

    def add(self, shard: int, record: Mapping[str, Any], now_ms: int, stream: str = "") -> str:
        """Count one ad record read from ``stream`` (the input topic) of ``shard``; returns
        ``counted``, ``late`` or ``no_device``."""
        event_time = record.get("event_time")
        if not isinstance(event_time, int):
            return "no_device"  # the contract requires it; nothing to place in a window
        # once per ad record in the worker: the store and the dirty set are written inline
        # (not through _set) and the shard's bookkeeping is copied only when it changes
        store = self.store
        dirty = self._dirty
        window_ms = self.config.window_ms
        window = event_time - event_time % window_ms  # StatsConfig.window_of
        meta = store.get((_SHARD, shard))
        if window + window_ms <= (meta[0] if meta is not None else 0):  # already published
            late = self._shard_meta(shard)
            late[1] += 1
            self._set((_SHARD, shard), late)
            return "late"
        # the watermark never runs ahead of the wall clock: one bad client clock must not
        # close every open window
        mark = min(event_time, now_ms)
        marks = self._marks.get(shard)
        if marks is None:
            marks = self._marks[shard] = {}
        if mark > marks.get(stream, 0):
            marks[stream] = mark
            key: Key = (_MARK, shard, stream)
            store[key] = mark
            dirty.add(key)
        self._open.add((shard, window))
        cell, device = cell_of(record)
        if device is None:
            key = (_NO_DEVICE, shard, window)
            store[key] = store.get(key, 0) + 1
            dirty.add(key)
            return "no_device"
        encoded = _encode_cell(cell)
        key = (_CELL, shard, window, encoded)
        store[key] = store.get(key, 0) + 1
        dirty.add(key)
        key = (_DEVICE, shard, window, encoded, device)
        if key not in store:
            store[key] = 1
            dirty.add(key)
        return "counted"

    def _set(self, key: Key, value: Any) -> None:
        self.store[key] = value
        self._dirty.add(key)

    def drain_changes(self) -> list[Change]:
        """The changes since the last call, one per key (latest value)."""
        store = self.store
        changes: list[Change] = [(key, store.get(key)) for key in self._dirty]
        self._dirty.clear()
        return changes

    def due(
        self,
        now_ms: int,
        idle_shards: Iterable[int] = (),
        caught_up: Container[tuple[int, str]] = (),
    ) -> list[tuple[int, int]]:
        """Windows to close: end + grace reached by the shard's watermark, or by the wall
        clock for a shard that has been idle (no traffic to move its watermark)."""
        idle = set(idle_shards)
        result = []
        for shard, window in self._open:
            limit = self.watermark(shard, caught_up)
            if shard in idle:
                limit = max(limit, now_ms)
            if window + self.config.window_ms + self.config.grace_ms <= limit:
                result.append((shard, window))
        return sorted(result, key=lambda sw: (sw[1], sw[0]))

    def close(self, shard: int, window: int) -> Closed:
        """Publish one window of one shard and drop its state."""
        store = self.store
        cells: dict[str, int] = {}
        devices: dict[str, set[str]] = {}
        doomed: list[Key] = []
        for key in list(store):
            if len(key) < 3 or key[1] != shard or key[2] != window:
                continue
            tag = key[0]
            if tag == _CELL:
                cells[key[3]] = store[key]
            elif tag == _DEVICE:
                devices.setdefault(key[3], set()).add(key[4])
            elif tag != _NO_DEVICE:
                continue
            doomed.append(key)
        no_device = int(store.get((_NO_DEVICE, shard, window), 0))
        pools = {_decode_cell(c): _Pool(n, devices.get(c, set()), 1) for c, n in cells.items()}
        meta = self._shard_meta(shard)
        published, summary = fold(pools, self.config.k)
        base = {
            "schema": SCHEMA,
            "window_start": window,
            "window_end": window + self.config.window_ms,
            "shard": shard,
            "k": self.config.k,
        }
        records: list[tuple[str, dict[str, Any]]] = []
        for cell_value in published:
            value = {**base, "record": "cell", **cell_value}
            records.append((record_key(value), value))
        summary_value = {
            **base,
            "record": "summary",
            **summary,
            "events_without_device": no_device,
            "late_events": meta[1],
        }
        records.append((record_key(summary_value), summary_value))
        changes: list[Change] = []
        for key in doomed:
            del store[key]
            self._dirty.discard(key)
            changes.append((key, None))
        meta[0] = max(meta[0], window + self.config.window_ms)
        meta[1] = 0
        store[(_SHARD, shard)] = meta
        self._dirty.discard((_SHARD, shard))
        changes.append(((_SHARD, shard), meta))
        self._open.discard((shard, window))
        return Closed(records, changes)


def fold(pools: Mapping[Cell, _Pool], k: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """k-threshold folding city -> province -> country -> suppressed.

    A pool with at least ``k`` distinct devices is published at its level; the others are
    pooled one level up (devices as a union, events and cells summed) and tried again there;
    a country pool below ``k`` is suppressed. A cell without a city starts at its province,
    one without a province (outside China) goes from its city to its country. Returns the
    published values (sorted, so the output is deterministic) and the suppression summary."""
    by_level: dict[str, dict[Cell, _Pool]] = {level: {} for level in LEVELS}
    for cell, pool in pools.items():
        level = "city" if cell[5] is not None else "province" if cell[4] is not None else "country"
        _merge(by_level[level], _at(cell, level), pool)
    published: list[dict[str, Any]] = []
    suppressed_cells = suppressed_events = 0
    for level in LEVELS:
        for cell, pool in sorted(by_level[level].items(), key=lambda kv: orjson.dumps(kv[0])):
            if len(pool.devices) >= k:
                published.append(_value(cell, level, pool))
            elif level == "country":
                suppressed_cells += pool.cells
                suppressed_events += pool.events
            else:
                up = "province" if level == "city" and cell[4] is not None else "country"
                _merge(by_level[up], _at(cell, up), pool)
    summary = {
        "cells_published": len(published),
        "suppressed_cells": suppressed_cells,
        "suppressed_events": suppressed_events,
    }
    return published, summary


def _at(cell: Cell, level: str) -> Cell:
    """The cell coarsened to ``level``."""
    e, f, i, country, province, _city = cell
    if level == "city":
        return cell
    if level == "province":
        return (e, f, i, country, province, None)
    return (e, f, i, country, None, None)


def _merge(pools: dict[Cell, _Pool], cell: Cell, pool: _Pool) -> None:
    into = pools.setdefault(cell, _Pool())
    into.events += pool.events
    into.devices |= pool.devices
    into.cells += pool.cells


def _value(cell: Cell, level: str, pool: _Pool) -> dict[str, Any]:
    event_type, item_field, item, country, province, city = cell
    key_ids = sorted({d.split(":", 1)[0] for d in pool.devices})
    value = {
        "level": level,
        "event_type": event_type,
        "item_field": item_field,
        "item": item,
        "country": country,
        "province_code": province if level in ("city", "province") else None,
        "city": city if level == "city" else None,
        "events": pool.events,
        "devices": len(pool.devices),
        "folded_cells": pool.cells,
        "key_ids": key_ids,
    }
    return {name: v for name, v in value.items() if v is not None}  # contract: absent, not null


__all__ = [
    "DEVICE_FIELDS",
    "SCHEMA",
    "Closed",
    "StatsAggregator",
    "StatsConfig",
    "cell_of",
    "fold",
    "record_key",
]
