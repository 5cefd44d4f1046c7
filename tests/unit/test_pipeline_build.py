"""Which build of the pipeline runs, compiled with mypyc or plain Python (setup.py), is
visible: ``pseudostream --version``, the worker's start line, the benchmarks' JSON."""

from __future__ import annotations

from click.testing import CliRunner

from processor import __version__
from processor.cli import main
from processor.pipeline import build, process


def test_version_names_the_pipeline_build_that_runs() -> None:
    expected = "plain Python" if process.__file__.endswith(".py") else "compiled"
    assert build() == expected
    out = CliRunner().invoke(main, ["--version"]).output
    assert out == f"pseudostream, version {__version__} (pipeline: {expected})\n"
