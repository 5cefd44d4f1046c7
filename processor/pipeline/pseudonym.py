"""Keyed pseudonyms: HMAC-SHA256 over the identifier kind and its canonical form.

``<key id>:<26 base32 chars>`` (128 bits of the MAC): the prefix names the key, so a
rotation is visible downstream; equal values of different kinds, domains or keys never
share a pseudonym. Results are cached per kind and raw spelling, so a device that sends
thousands of events costs one canonicalization and one HMAC per identifier.

Event ids are the exception: every event brings a new one, so a cache only costs, and an
HMAC plus base32 per event and domain was a tenth of the pipeline. Their pseudonym is
``<key id>:<32 hex chars>``, a keyed BLAKE2b (128 bits; personalization ``event_id``, so
it is no pseudonym of any identifier) of the raw id: one per raw id, for deduplication.
"""

from __future__ import annotations

import hashlib

from keys import Key
from processor.pipeline.canonical import canonicalize
from processor.pipeline.kinds import IdKind

DEFAULT_CACHE_SIZE = 65_536  # entries per identifier kind (two generations at most)
PLACEHOLDER = ""  # cached for values that are no identifier: falsy, never output


# Base32 (RFC 4648 alphabet, lower case) fifteen bits at a time from a table of every
# three-character group (32,768 strings, about 2 MB): ``base64.b32encode`` is pure Python in
# 3.11 and cost more than the HMAC on the cache-miss path.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_TRIPLES = tuple(a + b for a in _ALPHABET for b in _PAIRS)


def _b32(digest: bytes) -> str:
    """The first 128 bits of ``digest`` as 26 base32 characters (what
    ``b32encode(digest[:16])`` gives without padding): eight groups of 15 bits from the
    first 120, then the last byte and two zero bits."""
    n = int.from_bytes(digest[:15], "big")
    t = _TRIPLES
    return (
        t[n >> 105]
        + t[n >> 90 & 32767]
        + t[n >> 75 & 32767]
        + t[n >> 60 & 32767]
        + t[n >> 45 & 32767]
        + t[n >> 30 & 32767]
        + t[n >> 15 & 32767]
        + t[n & 32767]
        + _PAIRS[digest[15] << 2]
    )


# "<kind>\0", the start of every MAC'd message (an enum's ``.value`` is a slow property)
_KIND_PREFIX = {kind: kind.value.encode() + b"\x00" for kind in IdKind}
_SHA256_BLOCK = 64  # bytes; HMAC pads the key to it (RFC 2104)
_EVENT_ID_PERSON = b"event_id"
_EVENT_ID = IdKind.EVENT_ID  # read once: an enum member's class attribute is slow in 3.11
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class _HmacSha256:
    """HMAC-SHA256 under one key with the keyed inner and outer states computed once
    (RFC 2104): a MAC is two state copies and two short hashes. ``hmac.digest`` sets the
    key up again on every call, which was 60 % of its cost here."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class Pseudonymizer:
    """Pseudonyms of one key.

    ``caches[kind]`` maps raw values to pseudonyms (``PLACEHOLDER`` for placeholders): the
    compiled projections read it directly and call ``miss`` only for a value not in it. A
    full cache becomes the previous generation and a fresh one starts, so memory stays
    bounded and values still in use survive (a cheap approximation of LRU).
    """

    __slots__ = (
        "_limit",
        "_mac",
        "_prefix",
        "_previous",
        "caches",
        "computed",
        "event_mac",
        "key_id",
        "misses",
    )

    def __init__(self, key: Key, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._setup(key.key_id, key.pseudonym_key(), cache_size)

    @classmethod
    def from_secret(cls, key_id: str, secret: bytes, cache_size: int) -> Pseudonymizer:
        """Keyed hashes under a derived secret that is no keyring key (``processor.pipeline.devices``)."""
        return _SecretPseudonymizer(key_id, secret, cache_size)

    def _setup(self, key_id: str, secret: bytes, cache_size: int) -> None:
        self.key_id = key_id
        self._mac = _HmacSha256(secret)
        self.event_mac = hashlib.blake2b(  # keyed state, set up once; copied per event id
            key=secret, digest_size=16, person=_EVENT_ID_PERSON
        )
        self._prefix = key_id + ":"
        self._limit = cache_size
        self.caches: dict[IdKind, dict[str | int, str]] = {kind: {} for kind in IdKind}
        self._previous: dict[IdKind, dict[str | int, str]] = {kind: {} for kind in IdKind}
        self.misses = 0  # lookups not answered by the current generation
        self.computed = 0  # canonicalizations + HMACs actually done

    def pseudonym(self, kind: IdKind, raw: str | int) -> str | None:
        """The pseudonym of ``raw``, or None when it is a placeholder."""
        if kind is _EVENT_ID:
            return self.event_id(raw)
        cached = self.caches[kind].get(raw)
        if cached is None:
            cached = self.miss(kind, raw)
        return cached or None

    def miss(self, kind: IdKind, raw: str | int) -> str:
        """Compute (or revive from the previous generation) and cache; ``PLACEHOLDER`` for
        a value that is no identifier."""
        self.misses += 1
        return self._fill(kind, raw)

    def for_link(self, kind: IdKind, raw: str | int, canonical: str) -> str:
        """The pseudonym of ``raw`` (whose canonical form the caller has already worked out)
        for a device link: cached, or computed and cached for the projections that follow,
        without counting a miss (``misses`` are the projections' own, what the hit-ratio
        metric is about)."""
        value = self.caches[kind].get(raw)
        return self._fill(kind, raw, canonical) if value is None else value

    def _fill(self, kind: IdKind, raw: str | int, canonical: str | None = None) -> str:
        """Revive ``raw``'s pseudonym from the previous generation, or compute it (from
        ``canonical`` when the caller has it, else canonicalized here), and cache it."""
        value = self._previous[kind].get(raw)
        if value is None:
            self.computed += 1
            if canonical is None:
                canonical = canonicalize(kind, raw)
            value = PLACEHOLDER if canonical is None else self.of_canonical(kind, canonical)
        cache = self.caches[kind]
        if len(cache) >= self._limit:
            self._previous[kind] = dict(cache)
            cache.clear()  # in place: compiled projections hold this very dict
        if self._limit:
            cache[raw] = value
        return value

    def event_id(self, raw: str | int) -> str:
        """The pseudonym of an event id (never cached: each event brings a new one)."""
        mac = self.event_mac.copy()
        mac.update(str(raw).encode())
        return self._prefix + mac.hexdigest()

    def of_canonical(self, kind: IdKind, canonical: str) -> str:
        message = _KIND_PREFIX[kind] + canonical.encode("utf-8")
        return self._prefix + _b32(self._mac.digest(message))

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"


class _SecretPseudonymizer(Pseudonymizer):
    """``Pseudonymizer.from_secret``'s: mypyc compiles no ``cls.__new__(cls)``, which
    skipped ``__init__``, so this subclass has an ``__init__`` of its own."""

    __slots__ = ()

    def __init__(self, key_id: str, secret: bytes, cache_size: int) -> None:
        self._setup(key_id, secret, cache_size)
