"""faust tables as the worker uses them: in-memory stores read and written through their
inner dict on the hot path, with changelog records the worker produces itself (they ride
with the batch's outputs, so an input is acked only after its state change is delivered).

The consent table's keys are keyed hashes of the canonical user id (HMAC-SHA256 under a key
derived from the keyring, see :func:`table_key_function`) and its values hold no identifier,
so its changelog topic carries no raw identifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, MutableMapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from processor.kafka.produce import ChangelogEntry
from processor.pipeline.consent import Consent

if TYPE_CHECKING:
    from faust.stores.memory import Store as MemoryStore
    from faust.types import AppT, TableT

    from keys import Keyring

_TABLE_KEY_LABEL = b"pseudostream/consent-table/v1"


def changelog_table(
    app: AppT, name: str, changelog_topic: str, partitions: int
) -> TableT[Any, Any]:
    """A faust ``Table`` with a compacted changelog in faust's json codec, partitioned like
    the inputs (the worker writes the changelog itself: :mod:`processor.kafka.produce`)."""
    return app.Table(
        name,
        partitions=partitions,
        changelog_topic=app.topic(
            changelog_topic,
            partitions=partitions,
            compacting=True,
            deleting=False,
            key_serializer="json",
            value_serializer="json",
        ),
    )


def memory_store(table: TableT[Any, Any]) -> MemoryStore[Any, Any]:
    """The table's store, which is faust's memory store (the app is made with
    ``store="memory://"``)."""
    from faust.stores.memory import Store

    store = table.data
    if not isinstance(store, Store):  # pragma: no cover - the app is always made in memory
        raise TypeError(f"expected faust's memory store, got {type(store).__name__}")
    return store


def store_dict(store: MemoryStore[Any, Any]) -> MutableMapping[Any, Any]:
    """The dict inside a faust memory store, for the hot path: the store's own ``get``,
    ``in`` and item assignment are pure-Python mapping methods around it (a few % of the
    worker's CPU). Partition bookkeeping (:func:`key_partitions`) stays on the store."""
    inner: MutableMapping[Any, Any] = store.data
    return inner


def key_partitions(store: MemoryStore[Any, Any]) -> MutableMapping[Any, int]:
    """Which partition owns each key of a memory store: faust drops a revoked partition's
    keys by it after a rebalance (``Store.on_recovery_completed``). faust fills it only when
    it applies changelog records itself; the worker writes the store directly, so it keeps
    this map too (tests/unit/test_library_contract.py holds faust to it)."""
    partitions: MutableMapping[Any, int] = store._key_partition  # noqa: SLF001 - faust has no public way to say which partition owns a key written directly
    return partitions


def apply_to_store(store: MemoryStore[Any, Any], key: Any, value: Any, partition: int) -> None:
    """Write one changelog record into a faust memory store (value None deletes), telling
    the store which partition owns the key so faust drops it when the partition moves."""
    owners = key_partitions(store)
    if value is None:
        store.data.pop(key, None)
        owners.pop(key, None)
        return
    store.data[key] = value
    owners[key] = partition


def table_key_function(keyring: Keyring, cache_size: int = 262_144) -> Callable[[str], str]:
    """Canonical user id -> consent-table key: 160 bits of HMAC-SHA256 in lowercase base32,
    under a key derived from the oldest quarantine-domain key still in the ring, so rotations
    do not move the table's keys (dropping that key from the ring does: see docs/worker.md).
    Base32 like the pseudonyms: hex would hold digit runs that look like phone numbers."""
    from keys import Domain

    base = keyring.keys_for(Domain.QUARANTINE)[-1].sealing_key()
    derived = hmac.digest(base, _TABLE_KEY_LABEL, "sha256")

    def key_of(user_id: str) -> str:
        digest = hmac.new(derived, user_id.encode("utf-8"), hashlib.sha256).digest()
        return base64.b32encode(digest[:20]).decode("ascii").lower()

    return lru_cache(maxsize=cache_size)(key_of)


class TableConsentState:
    """:class:`processor.pipeline.consent.ConsentState` backed by a faust Table.

    Reads go straight to the table's store; writes update the store and queue the
    changelog entry (to the partition of the consent record being processed, which is the
    user's partition because consent and raw topics are co-partitioned) in :attr:`pending`,
    which the worker produces with the batch's outputs, so the batch waits for them too.
    """

    def __init__(
        self, table: TableT[Any, Any], key_of: Callable[[str], str], changelog_topic: str
    ) -> None:
        self.table = table
        self._store = memory_store(table)
        self._dict = store_dict(self._store)
        self._owners = key_partitions(self._store)
        self._key_of = key_of
        self._changelog_topic = changelog_topic
        self._cache: dict[str, tuple[Any, Consent]] = {}
        self.partition: int | None = None
        self.pending: list[ChangelogEntry] = []

    def get(self, user_id: str) -> Consent | None:
        key = self._key_of(user_id)
        value = self._dict.get(key)
        if value is None:
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] is value:
            return cached[1]
        consent = Consent.from_json(value)
        self._cache[key] = (value, consent)
        return consent

    def put(self, user_id: str, consent: Consent) -> None:
        key = self._key_of(user_id)
        value = consent.to_json()
        self._dict[key] = value
        if self.partition is not None:
            self._owners[key] = self.partition
        self._cache[key] = (value, consent)
        # faust's "json" codec for table keys and values, so recovery reads them back
        self.pending.append(
            (self._changelog_topic, orjson.dumps(key), orjson.dumps(value), self.partition)
        )

    def apply_changelog(self, key: str, value: dict[str, Any] | None, partition: int) -> None:
        """One changelog record read back (``value`` None deletes the key)."""
        apply_to_store(self._store, key, value, partition)

    def __len__(self) -> int:
        return len(self._store)
