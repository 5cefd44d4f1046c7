"""Deletion reaches devices: which device identifiers each user was seen with, and which
identifiers were erased for good.

The pipeline links a user to the device identifiers of their events, under keyed hashes
(:class:`LinkHasher`: no raw value is stored), together with those devices' pseudonyms
under every key in the ring, so that the erasure notices of a deleted account can name the
devices too. An erased identifier (the deleted user's id and their devices) is remembered
by its keyed hash, and no later output carries its pseudonym. Links are bounded per user
and expire (``retention_ms``); erased identifiers are kept.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from keys import Domain, Keyring
from processor.pipeline.kinds import IdKind
from processor.pipeline.pseudonym import Pseudonymizer

_LINK_LABEL = b"pseudostream/subject-link/v1"
DEFAULT_MAX_DEVICES = 16
DEFAULT_RETENTION_MS = 400 * 86_400_000  # a little over a year: see docs/privacy.md


class LinkHasher:
    """Identifier -> link id (``link:<26 base32 chars>``): HMAC-SHA256 over the kind and
    canonical value under a key derived from the oldest quarantine-domain key still in the
    ring, so key rotations do not move the links; cached per raw spelling. None for a
    placeholder (no identifier)."""

    __slots__ = ("_pseudonymizer",)

    def __init__(self, keyring: Keyring, cache_size: int) -> None:
        base = keyring.keys_for(Domain.QUARANTINE)[-1].sealing_key()
        secret = hmac.digest(base, _LINK_LABEL, "sha256")
        self._pseudonymizer = Pseudonymizer.from_secret("link", secret, cache_size)

    def __call__(self, kind: IdKind, raw: str | int) -> str | None:
        return self._pseudonymizer.pseudonym(kind, raw)

    def of_canonical(self, kind: IdKind, raw: str | int, canonical: str) -> str:
        """The link id of ``raw``, whose canonical form the caller has already worked out."""
        return self._pseudonymizer.for_link(kind, raw, canonical)

    @property
    def caches(self) -> dict[IdKind, dict[str | int, str]]:
        """The link ids computed so far, by kind and raw spelling (``""``: a placeholder);
        the hot path reads them directly and calls the hasher only for a value not there."""
        return self._pseudonymizer.caches


class DeviceLink(NamedTuple):
    """One device identifier seen with a user: its link id, when it was last seen (wall
    clock, ms) and its pseudonyms per domain under every key of the ring at that time."""

    device: str
    seen_ms: int
    pseudonyms: dict[str, list[str]]

    def to_json(self) -> list[Any]:
        return [self.device, self.seen_ms, self.pseudonyms]

    @classmethod
    def from_json(cls, data: list[Any]) -> DeviceLink:
        device, seen_ms, pseudonyms = data
        return cls(str(device), int(seen_ms), {str(d): list(p) for d, p in pseudonyms.items()})


class DeviceState(Protocol):
    """Where the pipeline keeps device links and erased identifiers; the worker backs it by a
    faust table (``processor.kafka.devicelinks``). ``user`` is the canonical user id: a stored form
    must key it by a keyed hash."""

    def links(self, user: str) -> list[DeviceLink]: ...

    def set_links(self, user: str, links: list[DeviceLink]) -> None:
        """Replace the user's links; an empty list forgets the user."""

    def erase(self, link_ids: Iterable[str], at_ms: int) -> None:
        """Remember these identifiers as erased, for good."""

    def is_erased(self, link_id: str) -> bool: ...

    def has_erased(self) -> bool:
        """Any erased identifier at all (the pipeline skips its checks while there is none)."""

    @property
    def erased_count(self) -> int:
        """How many identifiers are erased. None is ever un-erased, so while the count stays
        the same, so does the set (the pipeline keeps what it found not erased)."""


class MemoryDeviceState:
    """Device state in dicts: for `transform`, tests and benchmarks."""

    def __init__(self) -> None:
        self._links: dict[str, list[DeviceLink]] = {}
        self._erased: dict[str, int] = {}

    def links(self, user: str) -> list[DeviceLink]:
        return list(self._links.get(user, ()))

    def set_links(self, user: str, links: list[DeviceLink]) -> None:
        if links:
            self._links[user] = list(links)
        else:
            self._links.pop(user, None)

    def erase(self, link_ids: Iterable[str], at_ms: int) -> None:
        for link_id in link_ids:
            self._erased.setdefault(link_id, at_ms)

    def is_erased(self, link_id: str) -> bool:
        return link_id in self._erased

    def has_erased(self) -> bool:
        return bool(self._erased)

    @property
    def erased_count(self) -> int:
        return len(self._erased)


def merge_links(
    links: list[DeviceLink], new: Iterable[DeviceLink], now_ms: int, retention_ms: int, limit: int
) -> list[DeviceLink]:
    """``links`` updated with ``new`` (a device seen again keeps the union of its
    pseudonyms), without links older than ``retention_ms``, at most ``limit`` of them (the
    most recently seen)."""
    by_device = {link.device: link for link in links if now_ms - link.seen_ms < retention_ms}
    for link in new:
        old = by_device.get(link.device)
        if old is None:
            by_device[link.device] = link
            continue
        domains = dict.fromkeys([*link.pseudonyms, *old.pseudonyms])
        by_device[link.device] = link._replace(
            pseudonyms={
                d: list(dict.fromkeys([*link.pseudonyms.get(d, ()), *old.pseudonyms.get(d, ())]))
                for d in domains
            }
        )
    newest = sorted(by_device.values(), key=lambda link: link.seen_ms, reverse=True)
    return newest[:limit]
