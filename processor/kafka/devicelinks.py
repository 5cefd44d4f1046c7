"""The worker's side of "deletion reaches devices" (:mod:`processor.pipeline.devices`).

- **Links** (user -> device identifiers seen with them) live in a faust ``Table`` like the
  consent table: keyed by the keyed hash of the user id, partitioned like the inputs (the
  user's partition), changelog ``<app_id>-devices-changelog``; values hold link ids (keyed
  hashes) and pseudonyms, never a raw identifier. Their changelog entries ride with the
  batch, before its input is acked.
- **Erased identifiers** must be known to every worker, whichever partition a device's
  later events arrive on: they go to a compacted topic of their own
  (``<app_id>-erased-identifiers``, key = link id), which each worker reads to its end
  before it resumes its inputs after a rebalance, then follows every second. Erasures are
  rare; the set stays small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from processor.kafka.clients import aiokafka_options
from processor.kafka.produce import ChangelogEntry
from processor.kafka.tables import apply_to_store, changelog_table, memory_store, store_dict
from processor.ops.settings import Settings
from processor.pipeline.devices import DeviceLink

if TYPE_CHECKING:
    from faust.types import AppT

_EMPTY_FETCHES_AT_END = 3  # Tansu's end offsets can be a batch short: read until quiet


async def start_reader(settings: Settings) -> Any:
    """A started aiokafka consumer outside any group, from the earliest offsets, for the
    worker's own reads of whole topics (changelog catch-up, erased identifiers)."""
    from aiokafka import AIOKafkaConsumer

    from processor.ops.settings import bootstrap_servers

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings.broker),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **aiokafka_options(settings),
    )
    await consumer.start()
    return consumer


class DeviceLinkTable:
    """:class:`processor.pipeline.devices.DeviceState` for the worker."""

    def __init__(self, app: AppT, settings: Settings, key_of: Callable[[str], str]) -> None:
        self.table = changelog_table(
            app, "devices", settings.devices_changelog_topic, settings.partitions
        )
        self._settings = settings
        self._store = memory_store(self.table)
        self._dict = store_dict(self._store)
        self._key_of = key_of
        self._erased: set[str] = set()
        self._erased_topic = settings.erased_topic
        self._consumer: Any = None
        self._lock = asyncio.Lock()
        self.partition: int | None = None  # of the record being processed (the user's)
        self.pending: list[ChangelogEntry] = []

    # -- DeviceState -------------------------------------------------------------------

    def links(self, user: str) -> list[DeviceLink]:
        value = self._dict.get(self._key_of(user))
        return [DeviceLink.from_json(link) for link in value] if value else []

    def set_links(self, user: str, links: list[DeviceLink]) -> None:
        key = self._key_of(user)
        value = [link.to_json() for link in links] or None
        if self.partition is not None:
            apply_to_store(self._store, key, value, self.partition)
        elif value is None:
            self._dict.pop(key, None)
        else:
            self._dict[key] = value
        # faust's "json" codec for table keys and values, so recovery reads them back
        self.pending.append(
            (
                self._settings.devices_changelog_topic,
                orjson.dumps(key),
                None if value is None else orjson.dumps(value),
                self.partition,
            )
        )

    def erase(self, link_ids: Iterable[str], at_ms: int) -> None:
        value = orjson.dumps({"erased_at": at_ms})
        for link_id in link_ids:
            if link_id not in self._erased:
                self._erased.add(link_id)
                self.pending.append((self._erased_topic, link_id.encode(), value, None))

    def is_erased(self, link_id: str) -> bool:
        return link_id in self._erased

    def has_erased(self) -> bool:
        return bool(self._erased)

    # -- recovery and the erased identifiers of other workers --------------------------

    def apply_changelog(self, key: str, value: Any, partition: int) -> None:
        """One link changelog record read back (``value`` None deletes the user's links)."""
        apply_to_store(self._store, key, value, partition)

    @property
    def erased_count(self) -> int:
        return len(self._erased)

    async def read_erased(self) -> int:
        """Read the erased-identifier topic to its end (at start-up and after a rebalance,
        before the inputs resume); returns how many identifiers are known erased."""
        from aiokafka import TopicPartition

        async with self._lock:
            if self._consumer is None:
                consumer = await start_reader(self._settings)
                await consumer.topics()  # fetches the cluster's metadata
                partitions = consumer.partitions_for_topic(self._erased_topic) or set()
                if not partitions:
                    await consumer.stop()
                    raise RuntimeError(f"topic {self._erased_topic!r} has no partitions")
                consumer.assign([TopicPartition(self._erased_topic, p) for p in partitions])
                await consumer.seek_to_beginning()
                self._consumer = consumer
            empty = 0
            while empty < _EMPTY_FETCHES_AT_END:
                empty = 0 if await self._fetch(200) else empty + 1
            return len(self._erased)

    async def follow_erased(self) -> None:
        """Every second: the identifiers other workers erased since the last read."""
        if self._consumer is None or self._lock.locked():
            return
        async with self._lock:
            await self._fetch(0)

    async def _fetch(self, timeout_ms: int) -> int:
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=10_000)
        n = 0
        for records in batch.values():
            for record in records:
                if record.key is not None and record.value is not None:
                    self._erased.add(record.key.decode())
                    n += 1
        return n

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    def __len__(self) -> int:
        return len(self._store)


__all__ = ["DeviceLinkTable", "start_reader"]
