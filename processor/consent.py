"""Consent state: the latest consent/1 record per user, as the stream table keeps it."""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def erased(self) -> bool:
        return self.account is not Account.ACTIVE

    def to_json(self) -> dict[str, Any]:
        return {
            "personalized_recommendation": self.personalized_recommendation,
            "personalized_ads": self.personalized_ads,
            "precise_location": self.precise_location,
            "age_band": self.age_band.value,
            "account": self.account.value,
            "event_time": self.event_time,
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
        )


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
