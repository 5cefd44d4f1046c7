"""The contracts' error: found at start-up, never per record."""

from __future__ import annotations


class PolicyError(Exception):
    """Contract or policy data is invalid."""
