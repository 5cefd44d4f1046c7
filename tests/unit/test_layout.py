"""The package layout holds: imports go down the table, never up (docs/design.md, "Packages").

Bottom to top: ``processor/errors.py`` (the shared leaf), ``pipeline/`` (pure stages),
``ops/``, ``kafka/`` (the only code, with ``devtools/``, that imports a Kafka client),
``devtools/``, ``cli/``. ``keys/`` and ``schemas/`` import nothing of ``processor``. Every
import counts, at the top of a module or inside a function, type-only ones too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("pipeline", "ops", "kafka", "devtools", "cli")  # bottom to top
KAFKA_CLIENTS = frozenset({"faust", "aiokafka", "kafka", "mode"})
CLIENT_HOMES = frozenset({"kafka", "devtools"})
# processor/__init__.py (the version) and errors.py sit below every layer; __main__.py runs
# the command line, at the top.
LEAVES = frozenset({"processor", "processor.errors"})
ENTRY = "processor.__main__"


def module_of(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(relative: Path, source: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module or module.name) for every import of a module's source."""
    module = module_of(relative)
    package = module if relative.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, str(relative))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def layer_of(module: str) -> int | None:
    """The layer index of a ``processor.<layer>...`` module, -1 for a leaf, None otherwise."""
    parts = module.split(".")
    if parts[0] != "processor":
        return None
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    if module == ENTRY:
        return len(LAYERS)
    return -1


def violations(relative: Path, source: str) -> list[str]:
    """What in one module breaks the layout, as ``file:line: rule (imports X)``."""
    module = module_of(relative)
    parts = module.split(".")
    top = parts[0]
    sub = parts[1] if top == "processor" and len(parts) > 1 else None
    own = layer_of(module)
    found = []
    for line, target in imported(relative, source):
        where = f"{relative}:{line}"
        first = target.split(".")[0]
        if first in KAFKA_CLIENTS:
            if sub not in CLIENT_HOMES:
                found.append(
                    f"{where}: only processor/kafka/ and processor/devtools/ import a Kafka"
                    f" client (imports {target})"
                )
            continue
        if first != "processor":
            continue
        if top in ("keys", "schemas"):
            found.append(f"{where}: {top}/ imports nothing of processor (imports {target})")
            continue
        theirs = layer_of(target)
        if own is not None and theirs is not None and theirs > own:
            mine = "processor/errors.py" if own == -1 else f"processor/{LAYERS[own]}/"
            what = "the entry point" if theirs == len(LAYERS) else f"processor/{LAYERS[theirs]}/"
            found.append(f"{where}: {mine} may not import {what}, a layer above (imports {target})")
    return found


def package_modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for package in ("processor", "keys", "schemas")
        for path in (ROOT / package).rglob("*.py")
    )


def test_every_module_of_processor_keys_and_schemas_keeps_the_layout() -> None:
    found = [
        problem
        for relative in package_modules()
        for problem in violations(relative, (ROOT / relative).read_text(encoding="utf-8"))
    ]
    assert not found, "the package layout is broken:\n" + "\n".join(found)


def test_the_check_reads_every_layer() -> None:
    modules = {module_of(path) for path in package_modules()}
    assert {f"processor.{layer}" for layer in LAYERS} <= modules
    assert {"keys", "schemas", "processor.errors"} <= modules


@pytest.mark.parametrize(
    ("path", "source", "rule"),
    [
        ("processor/ops/metrics.py", "def f():\n    from faust import web\n", "Kafka client"),
        ("processor/cli/stats_cmd.py", "import kafka.errors\n", "Kafka client"),
        ("processor/pipeline/stats.py", "import mode\n", "Kafka client"),
        ("processor/errors.py", "import aiokafka\n", "Kafka client"),
        ("keys/store.py", "from processor.errors import KeyringError\n", "keys/ imports nothing"),
        ("schemas/__init__.py", "import processor.pipeline\n", "schemas/ imports nothing"),
        ("processor/pipeline/stats.py", "from processor.ops import metrics\n", "pipeline/ may not"),
        ("processor/ops/replay.py", "from processor.kafka.read import x\n", "ops/ may not"),
        ("processor/kafka/worker.py", "from processor.devtools.demo import x\n", "kafka/ may not"),
        ("processor/devtools/demo.py", "from processor.cli import main\n", "devtools/ may not"),
        ("processor/errors.py", "from processor.pipeline import kinds\n", "errors.py may not"),
        ("processor/pipeline/geo/ip.py", "from ...ops import metrics\n", "pipeline/ may not"),
        ("processor/ops/scan.py", "from ..cli import main\n", "ops/ may not"),
        ("processor/cli/bench_cmd.py", "import processor.__main__\n", "the entry point"),
    ],
)
def test_an_import_that_breaks_the_layout_is_named_with_file_line_and_rule(
    path: str, source: str, rule: str
) -> None:
    [problem] = violations(Path(path), "\n" + source)
    assert problem.startswith(f"{path}:")
    assert rule in problem


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("processor/kafka/worker.py", "import faust\nfrom aiokafka import TopicPartition\n"),
        ("processor/devtools/demo.py", "from kafka import KafkaConsumer\n"),
        ("processor/cli/stats_cmd.py", "from processor.kafka.read import read_topic\n"),
        ("processor/ops/replay.py", "from processor.pipeline.process import Pipeline\n"),
        ("processor/pipeline/policy.py", "from keys import Keyring\nimport schemas\n"),
        ("processor/pipeline/binding.py", "from processor.errors import ConfigError\n"),
        ("processor/pipeline/geo/__init__.py", "from . import gps\nfrom .ip import x\n"),
        ("processor/cli/__init__.py", "from processor import __version__\n"),
        ("keys/store.py", "from keys.errors import KeyringError\n"),
    ],
)
def test_an_import_down_the_table_passes(path: str, source: str) -> None:
    assert violations(Path(path), source) == []
