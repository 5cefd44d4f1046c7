"""The master key that seals the keyring at rest: where it comes from and what it derives."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import KeyringError, MasterKeyError
from keys.model import hkdf_sha256

log = logging.getLogger("pseudostream.keys")
MASTER_KEY_ENV = "PSEUDOSTREAM_MASTER_KEY"
MASTER_KEY_BYTES = 32
_HOW_TO_MAKE = "`pseudostream keys new-master-key` makes one"


class MasterKey:
    """32 secret bytes; ``source`` says where they came from, for error messages."""

    __slots__ = ("_raw", "source")

    def __init__(self, raw: bytes, source: str) -> None:
        if len(raw) != MASTER_KEY_BYTES:
            raise MasterKeyError(
                f"master key from {source} is {len(raw)} bytes, expected {MASTER_KEY_BYTES}"
                f" (base64 of {MASTER_KEY_BYTES} random bytes); {_HOW_TO_MAKE}"
            )
        self._raw = raw
        self.source = source

    @classmethod
    def from_base64(cls, text: str, source: str) -> MasterKey:
        text = text.strip()
        if not text:
            raise MasterKeyError(f"master key from {source} is empty; {_HOW_TO_MAKE}")
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise MasterKeyError(
                f"master key from {source} is not valid base64; {_HOW_TO_MAKE}"
            ) from exc
        return cls(raw, source)

    def check_value(self) -> bytes:
        """Stored in the clear beside the keyring to tell a wrong master key from tampering."""
        return hmac.digest(self._raw, b"pseudostream keyring check", "sha256")[:16]

    def keyring_cipher(self) -> AESGCM:
        # A derived key, so the master key itself is never used for two purposes.
        return AESGCM(hkdf_sha256(self._raw, b"pseudostream/v1/keyring"))

    def __repr__(self) -> str:
        return f"MasterKey(source={self.source!r})"


def check_secret_file(path: Path, what: str, error: type[KeyringError]) -> None:
    """Refuse a secret file that group or others may write (whoever can replace the keyring
    and its master key makes the worker pseudonymize under keys they know); warn when they
    may read it. Kubernetes mounts
    secrets 0644 unless the volume sets ``defaultMode`` (docs/keys.md). A file that cannot
    be stat'ed is left to the read that follows, which says why."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o022:
        raise error(
            f"{what} {path} is writable by group or others (mode {mode:04o}); run: chmod 600 {path}"
        )
    if mode & 0o044:
        log.warning(
            "%s %s is readable by group or others (mode %04o); run: chmod 600 %s",
            what,
            path,
            mode,
            path,
        )


def generate_master_key() -> str:
    """A fresh master key as base64 text."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode("ascii")


def resolve_master_key(master_key_file: Path | None, environ: Mapping[str, str]) -> MasterKey:
    """The master key from ``master_key_file`` if given, else from the environment."""
    if master_key_file is not None:
        source = f"master key file {master_key_file}"
        check_secret_file(master_key_file, "master key file", MasterKeyError)
        try:
            text = master_key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not ASCII base64 text"
            raise MasterKeyError(f"cannot read {source}: {reason}") from exc
        return MasterKey.from_base64(text, source)
    if MASTER_KEY_ENV in environ:
        return MasterKey.from_base64(environ[MASTER_KEY_ENV], MASTER_KEY_ENV)
    raise MasterKeyError(
        f"no master key: set {MASTER_KEY_ENV} (base64 of {MASTER_KEY_BYTES} bytes)"
        f" or pass --master-key-file; {_HOW_TO_MAKE}"
    )
