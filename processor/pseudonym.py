"""Keyed pseudonyms: HMAC-SHA256 over the identifier kind and its canonical form.

``<key id>:<26 base32 chars>`` (128 bits of the MAC): the prefix names the key, so a
rotation is visible downstream; equal values of different kinds, domains or keys never
share a pseudonym. Results are cached per raw spelling, so a device that sends thousands
of events costs one canonicalization and one HMAC per identifier.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from functools import lru_cache

from keys import Key
from processor.canonical import canonicalize
from processor.kinds import IdKind

DEFAULT_CACHE_SIZE = 262_144


def _b32(digest: bytes) -> str:
    return base64.b32encode(digest[:16]).decode("ascii").rstrip("=").lower()


class Pseudonymizer:
    """Pseudonyms of one key. ``pseudonym(kind, raw)`` is None for placeholders."""

    __slots__ = ("_hmac_key", "_prefix", "key_id", "pseudonym")

    def __init__(self, key: Key, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.key_id = key.key_id
        self._hmac_key = key.pseudonym_key()
        self._prefix = key.key_id + ":"
        compute: Callable[[IdKind, str | int], str | None] = self._compute
        self.pseudonym = lru_cache(maxsize=cache_size)(compute) if cache_size else compute

    def _compute(self, kind: IdKind, raw: str | int) -> str | None:
        canonical = canonicalize(kind, raw)
        if canonical is None:
            return None
        return self.of_canonical(kind, canonical)

    def of_canonical(self, kind: IdKind, canonical: str) -> str:
        message = kind.value.encode() + b"\x00" + canonical.encode("utf-8")
        return self._prefix + _b32(hmac.digest(self._hmac_key, message, "sha256"))

    def cache_info(self) -> tuple[int, int]:
        """(hits, misses) of the cache, for the hit-ratio metric."""
        info = getattr(self.pseudonym, "cache_info", None)
        if info is None:
            return (0, 0)
        stats = info()
        return (stats.hits, stats.misses)

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"
