"""Domains, keys and the immutable keyring.

Each domain has exactly one active key and any number of retired ones; retired keys stay so
that records pseudonymized or sealed under them can still be recognized. Key ids are
``<short>-<n>`` (``rec-2``, ``ad-1``, ``quar-1``), ``n`` counting up per domain.

The ad-analytics domain may also follow a :class:`RotationSchedule` stored in the keyring:
each period then has its own key, derived (HKDF) from the domain's key that was active when
the period started, with the id ``adp-<period start, Unix seconds>`` (``adp-1764460800``).
Derived keys are never stored; every worker computes the same one from the same keyring.
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

from keys.errors import KeyringFormatError

MATERIAL_BYTES = 32


class Domain(StrEnum):
    """Whose pseudonyms a key makes; keys of one domain never serve another."""

    RECOMMENDATION = "recommendation"
    AD_ANALYTICS = "ad-analytics"
    QUARANTINE = "quarantine"


_SHORT = {Domain.RECOMMENDATION: "rec", Domain.AD_ANALYTICS: "ad", Domain.QUARANTINE: "quar"}
_KEY_ID = re.compile(r"(?P<short>[a-z]+)-(?P<n>[1-9][0-9]*)")
# Only ad-analytics may be scheduled: recommendation pseudonyms must stay stable for the
# recommender's long-term features, and sealed quarantine records must stay readable.
SCHEDULABLE = frozenset({Domain.AD_ANALYTICS})
_PERIOD_SHORT = {Domain.AD_ANALYTICS: "adp"}
# Whole seconds keep ``<short>-<Unix seconds>`` ids unique; periods under an hour are meant
# for tests (`keys schedule` warns), since ad statistics need whole windows per period.
MIN_PERIOD_S = 1


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


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class RotationSchedule:
    """A domain's key changes every ``period_s`` seconds from ``start`` (whole seconds, UTC);
    for ``overlap_s`` after each boundary the previous period's key is still accepted
    (erasure notices name the user under both keys)."""

    domain: Domain
    period_s: int
    overlap_s: int
    start: datetime

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise KeyringFormatError(f"rotation schedule {problem}")

    def problem(self) -> str | None:
        """What makes this schedule invalid (phrased after "rotation schedule "), or None."""
        if self.domain not in SCHEDULABLE:
            return f"for {self.domain}: only {', '.join(sorted(SCHEDULABLE))} rotates on a schedule"
        if self.period_s < MIN_PERIOD_S:
            return f"period must be at least {MIN_PERIOD_S} s, got {self.period_s}"
        if not 0 <= self.overlap_s < self.period_s:
            return f"overlap must be 0 or more and shorter than the period, got {self.overlap_s} s"
        if self.start.tzinfo is None or self.start.microsecond:
            return "start must be a whole second with a time zone"
        return None

    @property
    def period_ms(self) -> int:
        return self.period_s * 1000

    @property
    def start_ms(self) -> int:
        return _ms(self.start)

    def period_start_ms(self, at_ms: int) -> int | None:
        """Start of the period in force at ``at_ms``, or None before the schedule starts."""
        if at_ms < self.start_ms:
            return None
        return at_ms - (at_ms - self.start_ms) % self.period_ms

    def next_change_ms(self, at_ms: int) -> int:
        """The next moment after ``at_ms`` at which the keys in force change: a boundary,
        or the end of the current overlap."""
        start = self.period_start_ms(at_ms)
        overlap_end = self.start_ms if start is None else start + self.overlap_s * 1000
        return overlap_end if at_ms < overlap_end else self.next_boundary_ms(at_ms)

    def next_boundary_ms(self, at_ms: int) -> int:
        """The first boundary after ``at_ms`` (the start, before the schedule starts)."""
        start = self.period_start_ms(at_ms)
        return self.start_ms if start is None else start + self.period_ms

    def key_id(self, period_start_ms: int) -> str:
        return f"{_PERIOD_SHORT[self.domain]}-{period_start_ms // 1000}"

    def derives(self, key_id: str) -> bool:
        """Whether ``key_id`` names one of this schedule's period keys."""
        return key_id.startswith(_PERIOD_SHORT[self.domain] + "-")


@dataclass(frozen=True, repr=False)
class Keyring:
    """All keys of all domains, and the ad-analytics rotation schedule if any; every
    change returns a new keyring."""

    keys: tuple[Key, ...]
    schedule: RotationSchedule | None = None

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
        """The domain's newest stored key (the base of its scheduled period keys)."""
        return self.keys_for(domain)[0]

    def active_at(self, domain: Domain, at_ms: int) -> Key:
        """The stored key that was active at ``at_ms`` (the oldest one before any was)."""
        for key in self.keys_for(domain):
            if _ms(key.created_at) <= at_ms:
                return key
        return self.keys_for(domain)[-1]

    def scheduled(self, domain: Domain) -> RotationSchedule | None:
        schedule = self.schedule
        return schedule if schedule is not None and schedule.domain == domain else None

    def period_key(self, domain: Domain, period_start_ms: int) -> Key:
        """The derived key of the scheduled period starting at ``period_start_ms``: bound to
        the stored key active at that moment, the domain, and the period start."""
        schedule = self.scheduled(domain)
        if schedule is None:
            raise KeyringFormatError(f"keyring has no rotation schedule for {domain}")
        base = self.active_at(domain, period_start_ms)
        key_id = schedule.key_id(period_start_ms)
        info = b"pseudostream/v1/period/" + base.key_id.encode() + b"/" + key_id.encode()
        material = KeyMaterial(hkdf_sha256(base.material.reveal(), info))
        moment = datetime.fromtimestamp(period_start_ms / 1000, UTC)
        return Key(key_id, domain, moment, None, material)

    def in_force(self, domain: Domain, at_ms: int) -> Key:
        """The key that makes ``domain``'s pseudonyms at ``at_ms``: the period key when the
        domain follows a schedule that has started, else the active stored key."""
        schedule = self.scheduled(domain)
        start = schedule.period_start_ms(at_ms) if schedule is not None else None
        if start is None:
            return self.active(domain)
        return self.period_key(domain, start)

    def accepted(self, domain: Domain, at_ms: int) -> tuple[Key, ...]:
        """The keys in force at ``at_ms``, current first: during a schedule's overlap also
        the previous period's key (or the stored key, right after the schedule started)."""
        current = self.in_force(domain, at_ms)
        schedule = self.scheduled(domain)
        start = schedule.period_start_ms(at_ms) if schedule is not None else None
        if schedule is None or start is None or at_ms >= start + schedule.overlap_s * 1000:
            return (current,)
        previous = start - schedule.period_ms
        if previous < schedule.start_ms:
            return (current, self.active_at(domain, start - 1))
        return (current, self.period_key(domain, previous))

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
        return Keyring((*others, replace(previous, retired_at=at), fresh), self.schedule)

    def with_schedule(self, schedule: RotationSchedule | None) -> Keyring:
        """This keyring following ``schedule`` (None: no schedule, the stored keys serve)."""
        return Keyring(self.keys, schedule)

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        schedule = f", {self.schedule!r}" if self.schedule is not None else ""
        return f"Keyring({', '.join(map(repr, self.keys))}{schedule})"
