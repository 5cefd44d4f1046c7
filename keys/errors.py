"""The keyring's errors: the processor refuses to start on any of them.

Messages never contain key material: they name files, domains and settings.
"""

from __future__ import annotations


class KeyringError(Exception):
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
