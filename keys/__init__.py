"""The keyring: per-domain keys with versioned ids, sealed at rest under a master key.

    keyring = load_keyring_from(path, master_key_file, os.environ)
    key = keyring.active(Domain.AD_ANALYTICS)   # key.key_id == "ad-3"
    hmac_key = key.pseudonym_key()

Key material never appears in ``repr``, ``str``, equality diffs or error messages.
"""

from __future__ import annotations

from keys.master import MasterKey, generate_master_key, resolve_master_key
from keys.model import Domain, Key, Keyring, RotationSchedule
from keys.store import load_keyring, load_keyring_from, save_keyring

__all__ = [
    "Domain",
    "Key",
    "Keyring",
    "MasterKey",
    "RotationSchedule",
    "generate_master_key",
    "load_keyring",
    "load_keyring_from",
    "resolve_master_key",
    "save_keyring",
]
