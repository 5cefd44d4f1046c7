"""Consent state: a user's consent/1 records applied in the consent topic's order, as the
stream table keeps them.

The order is the topic's (the account service's), never the client-supplied ``event_time``:
every record applies, so a withdrawal or a deletion request can never be outranked by an
older-looking one. ``deleted`` is final: nothing after it changes the state
(:func:`next_consent`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol


class AgeBand(StrEnum):
    ADULT = "adult"
    MINOR = "minor"  # under 18
    CHILD = "child"  # under 14
    UNKNOWN = "unknown"


class Account(StrEnum):
    ACTIVE = "active"
    DELETION_REQUESTED = "deletion_requested"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Consent:
    """One user's consent. Holds no identifier, so it can be stored and logged."""

    personalized_recommendation: bool
    personalized_ads: bool
    precise_location: bool
    age_band: AgeBand
    account: Account
    event_time: int
    guardian_consent: bool = False  # matters only for a child (under 14)

    @property
    def erased(self) -> bool:
        """No record flows: deletion requested (reversible) or deleted (final)."""
        return self.account is not Account.ACTIVE

    def for_routing(self) -> Consent | None:
        """The consent the routes see, or None when nothing of this user may flow: a child's
        data flows only with a guardian's consent, and then without ads, statistics or GPS
        (no ad consent and no precise location, whatever the record says)."""
        if self.age_band is not AgeBand.CHILD:
            return self
        if not self.guardian_consent:
            return None
        return replace(self, personalized_ads=False, precise_location=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "personalized_recommendation": self.personalized_recommendation,
            "personalized_ads": self.personalized_ads,
            "precise_location": self.precise_location,
            "age_band": self.age_band.value,
            "account": self.account.value,
            "event_time": self.event_time,
            "guardian_consent": self.guardian_consent,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Consent:
        return cls(
            personalized_recommendation=bool(data["personalized_recommendation"]),
            personalized_ads=bool(data["personalized_ads"]),
            precise_location=bool(data["precise_location"]),
            age_band=AgeBand(data["age_band"]),
            account=Account(data["account"]),
            event_time=int(data["event_time"]),
            guardian_consent=data.get("guardian_consent") is True,  # absent in older table values
        )


def next_consent(previous: Consent | None, new: Consent) -> Consent | None:
    """The state after ``new``, the next record of the user's consent topic, or None when
    it changes nothing because the account is already deleted (final: a returning person is
    a new account). Every other record applies as it comes, restricting or widening."""
    if previous is not None and previous.account is Account.DELETED:
        return None
    return new


class ConsentState(Protocol):
    """Where the pipeline reads and writes consent; the faust worker backs it by a Table."""

    def get(self, user_id: str) -> Consent | None: ...

    def put(self, user_id: str, consent: Consent) -> None: ...


class MemoryConsentState:
    """Consent kept in a dict: for `transform`, tests and benchmarks."""

    def __init__(self) -> None:
        self._by_user: dict[str, Consent] = {}

    def get(self, user_id: str) -> Consent | None:
        return self._by_user.get(user_id)

    def put(self, user_id: str, consent: Consent) -> None:
        self._by_user[user_id] = consent

    def __len__(self) -> int:
        return len(self._by_user)
