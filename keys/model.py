"""Domains, keys and the immutable keyring.

Each domain has exactly one active key and any number of retired ones; retired keys stay so
that records pseudonymized or sealed under them can still be recognized. Key ids are
``<short>-<n>`` (``rec-2``, ``ad-1``, ``quar-1``), ``n`` counting up per domain.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from processor.errors import KeyringFormatError

MATERIAL_BYTES = 32


class Domain(StrEnum):
    """Whose pseudonyms a key makes; keys of one domain never serve another."""

    RECOMMENDATION = "recommendation"
    AD_ANALYTICS = "ad-analytics"
    QUARANTINE = "quarantine"


_SHORT = {Domain.RECOMMENDATION: "rec", Domain.AD_ANALYTICS: "ad", Domain.QUARANTINE: "quar"}
_KEY_ID = re.compile(r"(?P<short>[a-z]+)-(?P<n>[1-9][0-9]*)")


def key_number(key_id: str, domain: Domain) -> int | None:
    """The ``n`` of ``<short>-<n>``, or None if the id is not one of ``domain``."""
    match = _KEY_ID.fullmatch(key_id)
    if match is None or match["short"] != _SHORT[domain]:
        return None
    return int(match["n"])


def hkdf_sha256(secret: bytes, info: bytes) -> bytes:
    """32 bytes bound to ``info``: one secret yields independent keys per purpose."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


class KeyMaterial:
    """Secret bytes that never print; equality is constant-time."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @classmethod
    def random(cls) -> KeyMaterial:
        return cls(secrets.token_bytes(MATERIAL_BYTES))

    def reveal(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyMaterial):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return "KeyMaterial(<hidden>)"


@dataclass(frozen=True, repr=False)
class Key:
    """One key of one domain. Its material is only reachable through derived keys."""

    key_id: str
    domain: Domain
    created_at: datetime
    retired_at: datetime | None
    # A wrapper rather than bytes, so dataclass eq and pytest's field diffs cannot print it.
    material: KeyMaterial

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def _info(self, purpose: bytes) -> bytes:
        return (
            b"pseudostream/v1/"
            + purpose
            + b"/"
            + self.domain.value.encode()
            + b"/"
            + self.key_id.encode()
        )

    @cached_property
    def _pseudonym_key(self) -> bytes:
        return hkdf_sha256(self.material.reveal(), self._info(b"pseudonym"))

    @cached_property
    def _sealing_key(self) -> bytes:
        return hkdf_sha256(self.material.reveal(), self._info(b"seal"))

    def pseudonym_key(self) -> bytes:
        """32-byte HMAC-SHA256 key for pseudonyms made under this key id."""
        return self._pseudonym_key

    def sealing_key(self) -> bytes:
        """32-byte AES-256-GCM key for records sealed under this key id."""
        return self._sealing_key

    def __repr__(self) -> str:
        status = "active" if self.active else "retired"
        return f"Key({self.key_id!r}, {self.domain.value}, {status})"


def keyring_problem(keys: Iterable[Key]) -> str | None:
    """What makes ``keys`` unfit for a keyring (phrased after "keyring X "), or None."""
    keys = tuple(keys)
    for key_id, count in Counter(k.key_id for k in keys).items():
        if count > 1:
            return f"has the key id {key_id} {count} times"
    for key in keys:
        if key_number(key.key_id, key.domain) is None:
            return f"has a key id {key.key_id!r} that is not <{_SHORT[key.domain]}>-<n>"
        if len(key.material.reveal()) != MATERIAL_BYTES:
            return f"has key {key.key_id} that is not {MATERIAL_BYTES} bytes"
    active = Counter(k.domain for k in keys if k.active)
    for domain in Domain:
        if active[domain] == 0:
            return f"has no active key for domain {domain}"
        if active[domain] > 1:
            return f"has {active[domain]} active keys for domain {domain}"
    return None


def _order(key: Key) -> tuple[int, bool, float, int]:
    # Domain order, then the active key, then retired ones newest first.
    retired = key.retired_at.timestamp() if key.retired_at is not None else 0.0
    return (
        list(Domain).index(key.domain),
        not key.active,
        -retired,
        -(key_number(key.key_id, key.domain) or 0),
    )


@dataclass(frozen=True, repr=False)
class Keyring:
    """All keys of all domains; every change returns a new keyring."""

    keys: tuple[Key, ...]

    def __post_init__(self) -> None:
        problem = keyring_problem(self.keys)
        if problem is not None:
            raise KeyringFormatError(f"keyring {problem}")
        # Canonical order makes equality independent of how the keys were listed.
        object.__setattr__(self, "keys", tuple(sorted(self.keys, key=_order)))

    @classmethod
    def generate(cls, now: datetime | None = None) -> Keyring:
        """A fresh keyring: one new active key per domain."""
        created = utc_now(now)
        return cls(
            tuple(Key(f"{_SHORT[d]}-1", d, created, None, KeyMaterial.random()) for d in Domain)
        )

    def active(self, domain: Domain) -> Key:
        return self.keys_for(domain)[0]

    def keys_for(self, domain: Domain) -> tuple[Key, ...]:
        """The domain's keys: the active one first, then retired ones newest first."""
        return tuple(k for k in self.keys if k.domain == domain)

    def get(self, key_id: str) -> Key:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        raise KeyringFormatError(f"keyring has no key {key_id!r}")

    def rotate(self, domain: Domain, now: datetime | None = None) -> Keyring:
        """A keyring whose new key is active for ``domain``; the previous one is retired."""
        at = utc_now(now)
        previous = self.active(domain)
        n = max(key_number(k.key_id, domain) or 0 for k in self.keys_for(domain)) + 1
        fresh = Key(f"{_SHORT[domain]}-{n}", domain, at, None, KeyMaterial.random())
        others = tuple(k for k in self.keys if k is not previous)
        return Keyring((*others, replace(previous, retired_at=at), fresh))

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"Keyring({', '.join(map(repr, self.keys))})"
