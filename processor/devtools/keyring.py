"""A throwaway keyring for the demo, the benchmarks and the tests' workers."""

from __future__ import annotations

from pathlib import Path

from keys import Keyring, MasterKey, generate_master_key, save_keyring


def make_keyring(workdir: Path, keyring: Keyring | None = None) -> tuple[Path, Path]:
    """A new master key (``master.key``, owner-only: a key file others can read makes the
    worker warn) and ``keyring`` (default: a new one) sealed with it (``keyring.sealed``),
    both in ``workdir``; returns (keyring file, master key file)."""
    master_file = workdir / "master.key"
    keyring_file = workdir / "keyring.sealed"
    master_text = generate_master_key()
    master_file.write_text(master_text)
    master_file.chmod(0o600)
    master = MasterKey.from_base64(master_text, str(master_file))
    save_keyring(keyring_file, keyring if keyring is not None else Keyring.generate(), master)
    return keyring_file, master_file


__all__ = ["make_keyring"]
