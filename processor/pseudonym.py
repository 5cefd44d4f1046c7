"""Keyed pseudonyms: HMAC-SHA256 over the identifier kind and its canonical form.

``<key id>:<26 base32 chars>`` (128 bits of the MAC): the prefix names the key, so a
rotation is visible downstream; equal values of different kinds, domains or keys never
share a pseudonym. Results are cached per kind and raw spelling, so a device that sends
thousands of events costs one canonicalization and one HMAC per identifier.
"""

from __future__ import annotations

import hmac

from keys import Key
from processor.canonical import canonicalize
from processor.kinds import IdKind

DEFAULT_CACHE_SIZE = 65_536  # entries per identifier kind (two generations at most)
PLACEHOLDER = ""  # cached for values that are no identifier: falsy, never output


# Base32 (RFC 4648 alphabet, lower case) ten bits at a time: ``base64.b32encode`` is pure
# Python in 3.11 and cost more than the HMAC on the cache-miss path.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def _b32(digest: bytes) -> str:
    """The first 128 bits of ``digest`` as 26 base32 characters (what
    ``b32encode(digest[:16])`` gives without padding): 130 bits, the last two zero."""
    n = int.from_bytes(digest[:16], "big") << 2
    p = _PAIRS
    return (
        p[n >> 120]
        + p[n >> 110 & 1023]
        + p[n >> 100 & 1023]
        + p[n >> 90 & 1023]
        + p[n >> 80 & 1023]
        + p[n >> 70 & 1023]
        + p[n >> 60 & 1023]
        + p[n >> 50 & 1023]
        + p[n >> 40 & 1023]
        + p[n >> 30 & 1023]
        + p[n >> 20 & 1023]
        + p[n >> 10 & 1023]
        + p[n & 1023]
    )


class Pseudonymizer:
    """Pseudonyms of one key.

    ``caches[kind]`` maps raw values to pseudonyms (``PLACEHOLDER`` for placeholders): the
    compiled projections read it directly and call ``miss`` only for a value not in it. A
    full cache becomes the previous generation and a fresh one starts, so memory stays
    bounded and values still in use survive (a cheap approximation of LRU).
    """

    __slots__ = (
        "_hmac_key",
        "_limit",
        "_prefix",
        "_previous",
        "caches",
        "computed",
        "key_id",
        "misses",
    )

    def __init__(self, key: Key, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.key_id = key.key_id
        self._hmac_key = key.pseudonym_key()
        self._prefix = key.key_id + ":"
        self._limit = cache_size
        self.caches: dict[IdKind, dict[str | int, str]] = {kind: {} for kind in IdKind}
        self._previous: dict[IdKind, dict[str | int, str]] = {kind: {} for kind in IdKind}
        self.misses = 0  # lookups not answered by the current generation
        self.computed = 0  # canonicalizations + HMACs actually done

    def pseudonym(self, kind: IdKind, raw: str | int) -> str | None:
        """The pseudonym of ``raw``, or None when it is a placeholder."""
        cached = self.caches[kind].get(raw)
        if cached is None:
            cached = self.miss(kind, raw)
        return cached or None

    def miss(self, kind: IdKind, raw: str | int) -> str:
        """Compute (or revive from the previous generation) and cache; ``PLACEHOLDER`` for
        a value that is no identifier."""
        self.misses += 1
        value = self._previous[kind].get(raw)
        if value is None:
            self.computed += 1
            canonical = canonicalize(kind, raw)
            value = PLACEHOLDER if canonical is None else self.of_canonical(kind, canonical)
        cache = self.caches[kind]
        if len(cache) >= self._limit:
            self._previous[kind] = dict(cache)
            cache.clear()  # in place: compiled projections hold this very dict
        if self._limit:
            cache[raw] = value
        return value

    def of_canonical(self, kind: IdKind, canonical: str) -> str:
        message = kind.value.encode() + b"\x00" + canonical.encode("utf-8")
        return self._prefix + _b32(hmac.digest(self._hmac_key, message, "sha256"))

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"
