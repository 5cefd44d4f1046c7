"""The one exception tree of pseudostream.

    PseudostreamError            base of everything processor raises on purpose
    ├── ConfigError              a setting is missing or invalid (names the setting)
    ├── LocationDataError        a geo database is missing or unreadable (found at start-up)
    └── RecordError              one input record cannot be processed: it is quarantined

    KeyringError (keys.errors)   the keyring cannot be used; the processor refuses to start
    ├── MasterKeyError           master key missing, not base64, or not 32 bytes
    ├── KeyringNotFoundError     no keyring file at the given path
    ├── KeyringUnsealError       the master key does not open this keyring
    ├── KeyringTamperedError     right master key, but the sealed file was altered
    └── KeyringFormatError       unreadable structure, unknown version, missing domain

    PolicyError (schemas.errors) contract or policy data is invalid (found at start-up)

``EXPECTED_ERRORS`` is all three roots: what the CLI turns into one line and exit code 2.

Messages never contain key material or raw identifiers: they name paths, kinds and
settings, not values. Wrap lower-level errors with ``raise ... from exc``.
"""

from __future__ import annotations

from keys.errors import (
    KeyringError,
    KeyringFormatError,
    KeyringNotFoundError,
    KeyringTamperedError,
    KeyringUnsealError,
    MasterKeyError,
)
from schemas.errors import PolicyError

__all__ = [
    "EXPECTED_ERRORS",
    "ConfigError",
    "KeyringError",
    "KeyringFormatError",
    "KeyringNotFoundError",
    "KeyringTamperedError",
    "KeyringUnsealError",
    "LocationDataError",
    "MasterKeyError",
    "PolicyError",
    "PseudostreamError",
    "RecordError",
]


class PseudostreamError(Exception):
    """Base class of all errors pseudostream raises on purpose."""


class ConfigError(PseudostreamError):
    """A setting is missing or invalid; the message names the setting."""


class LocationDataError(PseudostreamError):
    """A geo database is missing or unreadable."""


# Everything raised on purpose: ``keys`` and ``schemas`` import nothing of ``processor``, so
# their errors have their own bases and are caught beside ours.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (PseudostreamError, KeyringError, PolicyError)


class RecordError(PseudostreamError):
    """One input record cannot be processed; it becomes a quarantine record.

    ``code`` is a stable machine-readable reason (e.g. ``bad_json``), ``stage`` the
    pipeline stage that refused it, ``detail`` a human hint that holds no raw value.
    """

    def __init__(self, code: str, stage: str, detail: str = "") -> None:
        super().__init__(f"{stage}: {code}" + (f" ({detail})" if detail else ""))
        self.code = code
        self.stage = stage
        self.detail = detail
