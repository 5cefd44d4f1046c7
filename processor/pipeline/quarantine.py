"""Quarantine records: the reason in clear, the original bytes sealed with the quarantine key.

Whoever reads the quarantine topic learns why a record failed and where it came from, but
not what it held: the original key and value are AES-256-GCM sealed under the quarantine
domain's key, bound (as associated data) to the key id and the source coordinates.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys import Domain, Keyring
from processor.errors import KeyringError, RecordError
from processor.pipeline.outcome import Route, Routed, SourceRef

SCHEMA = "quarantine/1"
DEFAULT_MAX_KEY_BYTES = 1024
MAX_KEY_BYTES_LIMIT = 16_384  # what the request headroom below leaves room for, sealed
_NONCE_BYTES = 12
_REQUEST_HEADROOM = 65_536  # the record's key, fields and headers, and the request's framing


def request_bytes(max_record_bytes: int) -> int:
    """Producer request limit that fits every record the worker emits: at least faust's
    default, and twice the input limit plus headroom, since a quarantine record holds its
    original base64 inside base64 (16/9 of it). faust's default (1,000,000 bytes) alone
    made a quarantined input over about 560 kB undeliverable, and the worker exited on it
    at every start."""
    return max(1_048_576, 2 * max_record_bytes + _REQUEST_HEADROOM)


def sealable_bytes(max_record_bytes: int) -> int:
    """The longest original sealed whole (at least ``max_record_bytes``): a longer one
    (``too_large``) is sealed cut to this length so its record still fits the request."""
    return (request_bytes(max_record_bytes) - _REQUEST_HEADROOM) * 9 // 16


def _aad(key_id: str, source: dict[str, Any]) -> bytes:
    return orjson.dumps(
        [key_id, source.get("topic"), source.get("partition"), source.get("offset")]
    )


def _envelope(key: bytes | None, value: bytes, max_key_bytes: int) -> bytes:
    if key is not None and len(key) > max_key_bytes:
        # A key this long is no record key an app sends: keeping it whole would let one
        # record outgrow every limit (a 1.3 MB key once made the worker exit at each start).
        return orjson.dumps(
            {
                "key": None,
                "key_sha256": hashlib.sha256(key).hexdigest(),
                "key_bytes": len(key),
                "value": base64.b64encode(value).decode(),
            }
        )
    return orjson.dumps(
        {
            "key": base64.b64encode(key).decode() if key is not None else None,
            "value": base64.b64encode(value).decode(),
        }
    )


class Sealer:
    """Seals originals with the active quarantine key; opens them with any key of the ring."""

    def __init__(
        self,
        keyring: Keyring,
        policy_version: str,
        max_sealed_bytes: int | None = None,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    ) -> None:
        active = keyring.active(Domain.QUARANTINE)
        # An original longer than this is sealed cut to it (``original_bytes`` says how long
        # it was): sealed whole, its quarantine record would be too large to produce.
        self._max_sealed_bytes = max_sealed_bytes
        self._max_key_bytes = max_key_bytes  # a longer message key is sealed as its SHA-256
        self._keyring = keyring
        self._key_id = active.key_id
        self._aead = AESGCM(active.sealing_key())
        self._policy_version = policy_version
        self._headers = (
            ("schema", SCHEMA.encode()),
            ("policy", policy_version.encode()),
            ("key-ids", self._key_id.encode()),
        )

    def record(
        self,
        error: RecordError,
        source: SourceRef,
        key: bytes | None,
        value: bytes,
        received_at: int,
    ) -> Routed:
        src: dict[str, Any] = {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
        }
        original_bytes = len(value)
        if self._max_sealed_bytes is not None and original_bytes > self._max_sealed_bytes:
            value = value[: self._max_sealed_bytes]
        nonce = os.urandom(_NONCE_BYTES)
        envelope = _envelope(key, value, self._max_key_bytes)
        sealed = nonce + self._aead.encrypt(nonce, envelope, _aad(self._key_id, src))
        body: dict[str, Any] = {
            "schema": SCHEMA,
            "policy": self._policy_version,
            "error": error.code,
            "stage": error.stage,
            "source": {k: v for k, v in src.items() if v is not None},
            "received_at": received_at,
            "key_id": self._key_id,
            "sealed": base64.b64encode(sealed).decode(),
        }
        if error.detail:
            body["detail"] = error.detail
        if len(value) < original_bytes:
            body["original_bytes"] = original_bytes
        # The message key says where the record came from: unique, and no identifier.
        msg_key = f"{source.topic}/{source.partition if source.partition is not None else '-'}/{source.offset if source.offset is not None else '-'}"
        return Routed(Route.QUARANTINE, msg_key, orjson.dumps(body), self._headers)

    def unseal(self, record: dict[str, Any]) -> tuple[bytes | None, bytes]:
        """The original (key, value) of a quarantine record; KeyringError if no key opens it.
        The key is None when there was none, or when only its SHA-256 was kept."""
        envelope = self.envelope(record)
        raw_key = envelope["key"]
        return (
            base64.b64decode(raw_key) if raw_key is not None else None,
            base64.b64decode(envelope["value"]),
        )

    def envelope(self, record: dict[str, Any]) -> dict[str, Any]:
        """The sealed envelope opened: ``key`` and ``value`` (base64), or ``key_sha256`` and
        ``key_bytes`` in place of a key too long to keep; KeyringError if no key opens it."""
        try:
            key = self._keyring.get(str(record["key_id"]))
            sealed = base64.b64decode(record["sealed"], validate=True)
            source = dict(record.get("source", {}))
            source.setdefault("partition", None)
            source.setdefault("offset", None)
            plain = AESGCM(key.sealing_key()).decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(key.key_id, source)
            )
        except (KeyError, ValueError, InvalidTag) as exc:
            raise KeyringError(
                f"quarantine record from {record.get('source')} cannot be opened with this keyring"
                f" ({type(exc).__name__})"
            ) from exc
        envelope: dict[str, Any] = orjson.loads(plain)
        return envelope
