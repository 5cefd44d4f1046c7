"""Shared test set-up: every test runs with a clean PSEUDOSTREAM_* environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings leaking in from the developer's shell must not change test outcomes."""
    for name in list(os.environ):
        if name.startswith("PSEUDOSTREAM_"):
            monkeypatch.delenv(name)
