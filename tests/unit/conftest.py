"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from keys import Keyring, MasterKey, generate_master_key, save_keyring

MASTER = generate_master_key()


@pytest.fixture
def keyring_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh sealed keyring file, its master key in ``PSEUDOSTREAM_MASTER_KEY``."""
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER)
    path = tmp_path / "test.keyring"
    save_keyring(path, Keyring.generate(), MasterKey.from_base64(MASTER, "test"))
    return path
