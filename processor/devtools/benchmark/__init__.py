"""Benchmarks behind ``pseudostream bench`` (and the thin ``bench/*.py`` scripts).

- :mod:`processor.devtools.benchmark.core`: the pipeline on one core next to a naive baseline;
- :mod:`processor.devtools.benchmark.e2e`: the worker on a fresh embedded Tansu broker next to a
  plain aiokafka pass-through and a plain quixstreams job, same run, alternating rounds;
  latency at a fixed rate, 1 vs 2 workers, worker memory;
- :mod:`processor.devtools.benchmark.loops`: the comparison loops, each run as its own process;
- ``adstats``, ``canary``, ``geo``, ``presidio_compare``, ``scrub_linear``: the benchmarks of
  one part (each a ``main(argv)`` behind ``bench/<name>.py``); ``geo_accuracy`` and ``pii``:
  the accuracy measures they share with the accuracy tests.

Every benchmark prints a table and writes JSON (default ``bench/results/<name>.json``).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import orjson

from processor.pipeline import build

RESULTS_DIR = Path("bench/results")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
        "python": sys.version.split()[0],
        "pipeline_build": build(),  # this tree's: compiled with mypyc or plain (setup.py)
        "load_average_at_start": [round(x, 2) for x in load],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
