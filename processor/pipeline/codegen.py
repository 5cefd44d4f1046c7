"""Turns a compiled plan into straight-line Python, once at start-up.

The hot path runs ~50 field operations per event; a generic loop pays for the dispatch on
every one (measured: ~70 µs/event). Generating the code for each plan once, as
dataclasses and attrs do for ``__init__``, leaves only the dictionary work (see
bench/core.py). Field names come from our own contracts and are embedded with ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Source:
    """Python source being built, line by line with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._indent = 0

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self._indent + line)

    def indent(self) -> None:
        self._indent += 1

    def dedent(self) -> None:
        self._indent -= 1

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def compile_function(
    source: Source, name: str, namespace: dict[str, Any], label: str
) -> Callable[..., Any]:
    """Define ``name`` from ``source`` in a fresh namespace. ``label`` names it in tracebacks
    and profiles; the source stays readable on the function as ``__source__``."""
    scope = dict(namespace)
    code = compile(source.text, f"<pseudostream {label}>", "exec")
    exec(code, scope)  # noqa: S102 - our own generated code, built from checked plans
    function: Callable[..., Any] = scope[name]
    function.__source__ = source.text  # type: ignore[attr-defined]
    return function
