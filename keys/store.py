"""The keyring file: a JSON envelope around the AES-256-GCM sealed list of keys.

    {"format": "pseudostream-keyring/1", "check": b64, "nonce": b64, "ciphertext": b64}

``format`` and ``check`` are authenticated as associated data. ``check`` depends only on
the master key, so a mismatch means the wrong master key, while a failed decryption under
the right one means the file was altered.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from keys.errors import (
    KeyringError,
    KeyringFormatError,
    KeyringNotFoundError,
    KeyringTamperedError,
    KeyringUnsealError,
)
from keys.master import MasterKey, check_secret_file, resolve_master_key
from keys.model import (
    MATERIAL_BYTES,
    Domain,
    Key,
    KeyMaterial,
    Keyring,
    RotationSchedule,
    key_number,
    keyring_problem,
)

FORMAT = "pseudostream-keyring/1"
_NONCE_BYTES = 12
_RESTORE = "restore it from backup"
_DOMAINS = frozenset(d.value for d in Domain)


class _BadEntry(Exception):
    """A key entry is malformed; the message is ours and never holds a value."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _aad(check: str) -> bytes:
    return json.dumps({"check": check, "format": FORMAT}, sort_keys=True).encode()


def _encode_keys(keyring: Keyring) -> bytes:
    entries = [
        {
            "id": k.key_id,
            "domain": k.domain.value,
            "created": k.created_at.isoformat(),
            "retired": k.retired_at.isoformat() if k.retired_at is not None else None,
            "material": _b64(k.material.reveal()),
        }
        for k in keyring
    ]
    document: dict[str, Any] = {"keys": entries}
    schedule = keyring.schedule
    if schedule is not None:
        document["schedule"] = {
            "domain": schedule.domain.value,
            "period_s": schedule.period_s,
            "overlap_s": schedule.overlap_s,
            "start": schedule.start.isoformat(),
        }
    return json.dumps(document).encode()


def _decode_schedule(entry: object) -> RotationSchedule | None:
    if entry is None:
        return None
    where = "rotation schedule"
    if not isinstance(entry, dict):
        raise _BadEntry(f"{where} is not an object")
    domain_text, period, overlap = (
        entry.get("domain"),
        entry.get("period_s"),
        entry.get("overlap_s"),
    )
    if not isinstance(domain_text, str) or domain_text not in _DOMAINS:
        raise _BadEntry(f"{where} has an unknown domain")
    if type(period) is not int or type(overlap) is not int:
        raise _BadEntry(f"{where}: period_s and overlap_s must be whole seconds")
    start = _time(entry, "start", where)
    try:
        return RotationSchedule(Domain(domain_text), period, overlap, start)
    except KeyringFormatError as exc:  # our message, naming no value
        raise _BadEntry(str(exc)) from exc


def _time(entry: Mapping[str, Any], name: str, where: str) -> datetime:
    value = entry.get(name)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _BadEntry(f"{where}: {name!r} is not an ISO 8601 time with a zone")
    return moment


def _decode_key(entry: object, index: int) -> Key:
    where = f"key entry {index + 1}"
    if not isinstance(entry, dict):
        raise _BadEntry(f"{where} is not an object")
    key_id, domain_text, material = entry.get("id"), entry.get("domain"), entry.get("material")
    if not isinstance(key_id, str):
        raise _BadEntry(f"{where} has no id")
    where = f"key {key_id}"
    if not isinstance(domain_text, str) or domain_text not in _DOMAINS:
        raise _BadEntry(f"{where} has an unknown domain")
    domain = Domain(domain_text)
    if key_number(key_id, domain) is None:
        raise _BadEntry(f"{where} does not match its domain {domain}")
    try:
        raw = base64.b64decode(material, validate=True) if isinstance(material, str) else b""
    except binascii.Error:
        raw = b""
    if len(raw) != MATERIAL_BYTES:
        raise _BadEntry(f"{where} has no {MATERIAL_BYTES}-byte base64 material")
    retired = _time(entry, "retired", where) if entry.get("retired") is not None else None
    return Key(key_id, domain, _time(entry, "created", where), retired, KeyMaterial(raw))


def _decode_keys(plaintext: bytes, path: Path) -> Keyring:
    try:
        document = json.loads(plaintext)
        entries = document["keys"] if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise _BadEntry("no list of keys")
        keys = tuple(_decode_key(entry, i) for i, entry in enumerate(entries))
        schedule = _decode_schedule(document.get("schedule"))
    except (ValueError, KeyError, _BadEntry) as exc:
        # json errors name positions only, and _BadEntry messages are ours.
        reason = str(exc) if isinstance(exc, _BadEntry) else "sealed content is not a key list"
        raise KeyringFormatError(f"keyring {path} is malformed ({reason}); {_RESTORE}") from exc
    problem = keyring_problem(keys)
    if problem is not None:
        raise KeyringFormatError(f"keyring {path} {problem}; {_RESTORE}")
    return Keyring(keys, schedule)


def _field(envelope: Mapping[str, Any], name: str, path: Path) -> bytes:
    value = envelope.get(name)
    if not isinstance(value, str):
        raise KeyringFormatError(f"keyring {path} has no {name!r} field; {_RESTORE}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise KeyringTamperedError(_tampered(path)) from exc


def _tampered(path: Path) -> str:
    return f"keyring {path}: integrity check failed, the file was altered or corrupted; {_RESTORE}"


def load_keyring(path: Path, master: MasterKey) -> Keyring:
    """Opens the sealed keyring at ``path``; every failure is a KeyringError saying why."""
    check_secret_file(path, "keyring", KeyringError)
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyringNotFoundError(
            f"no keyring at {path}; create one with `pseudostream keys init --keyring {path}`"
        ) from exc
    except OSError as exc:
        raise KeyringError(f"cannot read keyring {path}: {exc.strerror}") from exc
    try:
        envelope = json.loads(text)
    except ValueError as exc:
        raise KeyringFormatError(
            f"keyring {path} is not JSON (truncated, or not a keyring file); {_RESTORE}"
        ) from exc
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise KeyringFormatError(
            f"keyring {path} is not a {FORMAT} file (unknown format or version)"
        )
    check = _field(envelope, "check", path)
    nonce = _field(envelope, "nonce", path)
    ciphertext = _field(envelope, "ciphertext", path)
    if not hmac.compare_digest(check, master.check_value()):
        raise KeyringUnsealError(
            f"keyring {path}: the master key does not open it"
            " (wrong PSEUDOSTREAM_MASTER_KEY or --master-key-file?)"
        )
    if len(nonce) != _NONCE_BYTES:
        raise KeyringTamperedError(_tampered(path))
    try:
        plaintext = master.keyring_cipher().decrypt(nonce, ciphertext, _aad(envelope["check"]))
    except InvalidTag as exc:
        raise KeyringTamperedError(_tampered(path)) from exc
    return _decode_keys(plaintext, path)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable: after a crash the new keys must not vanish while
    # pseudonyms made under them are already downstream.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_keyring(path: Path, keyring: Keyring, master: MasterKey) -> None:
    """Seals ``keyring`` to ``path`` atomically (a reader sees the old or the new file), 0600."""
    check = _b64(master.check_value())
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ciphertext = master.keyring_cipher().encrypt(nonce, _encode_keys(keyring), _aad(check))
    envelope = {
        "format": FORMAT,
        "check": check,
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
    }
    data = (json.dumps(envelope, indent=2) + "\n").encode()
    tmp: str | None = None
    try:
        # mkstemp creates the file 0600, so the keys are never readable by others.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise KeyringError(f"cannot write keyring {path}: {exc.strerror}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_keyring_from(
    path: Path, master_key_file: Path | None, environ: Mapping[str, str]
) -> Keyring:
    """The keyring at ``path`` under the master key from the file or the environment."""
    return load_keyring(path, resolve_master_key(master_key_file, environ))
