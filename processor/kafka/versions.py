"""The faust-streaming and aiokafka versions the fast path was tested with.

The fast path (:mod:`processor.kafka.consumer`, :mod:`processor.kafka.checkpoint`) overrides
and reads private parts of both libraries. On any other version the worker says so in one
line and runs faust's plain path instead (an agent over ``stream.take_events``, no private
overrides): the same outputs, slower. tests/unit/test_library_contract.py fails when an
upgrade changes one of those parts; after it passes, add the new version here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import version

log = logging.getLogger("pseudostream.worker")

TESTED: Mapping[str, frozenset[str]] = {
    "faust-streaming": frozenset({"0.15.3"}),
    "aiokafka": frozenset({"0.14.0"}),
}


def untested(installed: Callable[[str], str] = version) -> list[str]:
    """``"name version"`` of each library installed at a version not in :data:`TESTED`."""
    found = {name: installed(name) for name in TESTED}
    return [f"{name} {v}" for name, v in found.items() if v not in TESTED[name]]


def choose_fast_path(fast_path: bool, installed: Callable[[str], str] = version) -> bool:
    """The ``fast_path`` setting -> whether to run the fast path: only on the tested
    versions (else one warning line, and faust's plain path)."""
    if not fast_path:
        return False
    others = untested(installed)
    if not others:
        return True
    tested = ", ".join(f"{n} {'/'.join(sorted(v))}" for n, v in TESTED.items())
    log.warning(
        "untested %s (the fast path was tested with %s): running faust's plain path,"
        " the same outputs, slower",
        ", ".join(others),
        tested,
    )
    return False
