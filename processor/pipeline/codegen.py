"""Turns a compiled plan into straight-line Python, once at start-up.

The hot path runs ~50 field operations per event; a generic loop pays for the dispatch on
every one (measured: ~70 µs/event). Generating the code for each plan once, as
dataclasses and attrs do for ``__init__``, leaves only the dictionary work (see
bench/core.py). Field names come from our own contracts and are embedded with ``repr``.

Each function's source is registered with ``linecache`` under a file name of its own (as
attrs does), so tracebacks, pdb and profilers such as py-spy show the generated lines.
"""

from __future__ import annotations

import itertools
import linecache
import weakref
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


GENERATED_FILE_PREFIX = "<pseudostream generated "  # the file name of every generated function
_serial = itertools.count(1)


def compile_function(
    source: Source, name: str, namespace: dict[str, Any], label: str
) -> Callable[..., Any]:
    """Define ``name`` from ``source`` in a fresh namespace. ``label`` names it in tracebacks
    and profiles (``<pseudostream generated LABEL #N>``, N unique per function, since
    recompiled projectors share a label); the source stays readable on the function as
    ``__source__`` (:func:`source_of`) and in ``linecache`` for as long as the function lives."""
    text = source.text
    filename = f"{GENERATED_FILE_PREFIX}{label} #{next(_serial)}>"
    scope = dict(namespace)
    exec(compile(text, filename, "exec"), scope)  # noqa: S102 - our own code, from checked plans
    function: Callable[..., Any] = scope[name]
    function.__source__ = text  # type: ignore[attr-defined]
    # mtime None: linecache.checkcache keeps the entry (there is no file to compare with)
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    weakref.finalize(function, linecache.cache.pop, filename, None).atexit = False
    return function


def source_of(function: Callable[..., Any]) -> str:
    """The Python source :func:`compile_function` generated ``function`` from."""
    text: str = function.__source__  # type: ignore[attr-defined]
    return text
