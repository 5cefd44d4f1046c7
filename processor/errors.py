"""The one exception tree of pseudostream.

    PseudostreamError            base of everything we raise on purpose
    ├── ConfigError              a setting is missing or invalid (names the setting)
    ├── KeyringError             the keyring cannot be used; the processor refuses to start
    │   ├── MasterKeyError       master key missing, not base64, or not 32 bytes
    │   ├── KeyringNotFoundError no keyring file at the given path
    │   ├── KeyringUnsealError   the master key does not open this keyring
    │   ├── KeyringTamperedError right master key, but the sealed file was altered
    │   └── KeyringFormatError   unreadable structure, unknown version, missing domain
    ├── PolicyError              contract or policy data is invalid (found at start-up)
    ├── LocationDataError        a geo database is missing or unreadable (found at start-up)
    └── RecordError              one input record cannot be processed: it is quarantined

Messages never contain key material or raw identifiers: they name paths, kinds and
settings, not values. Wrap lower-level errors with ``raise ... from exc``.
"""

from __future__ import annotations


class PseudostreamError(Exception):
    """Base class of all errors pseudostream raises on purpose."""


class ConfigError(PseudostreamError):
    """A setting is missing or invalid; the message names the setting."""


class KeyringError(PseudostreamError):
    """The keyring cannot be used."""


class MasterKeyError(KeyringError):
    """The master key is missing, not base64, or not 32 bytes."""


class KeyringNotFoundError(KeyringError):
    """No keyring file at the given path."""


class KeyringUnsealError(KeyringError):
    """The master key does not open this keyring."""


class KeyringTamperedError(KeyringError):
    """The master key is right but the sealed file was altered."""


class KeyringFormatError(KeyringError):
    """The keyring's structure is unreadable, of an unknown version, or lacks a domain."""


class PolicyError(PseudostreamError):
    """Contract or policy data is invalid."""


class LocationDataError(PseudostreamError):
    """A geo database is missing or unreadable."""


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
