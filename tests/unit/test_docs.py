"""The README and docs name only what exists: every file path, module, class member and test
they quote in backticks is checked against the tree (by reading the sources, not importing
them). The changelog is history and may name what is gone."""

from __future__ import annotations

import ast
import glob
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "deploy" / "README.md", *(ROOT / "docs").glob("*.md")])
SOURCE_DIRS = ("processor", "keys", "schemas", "tests", "bench", "fuzz", "scripts")
TOP_DIRS = (*SOURCE_DIRS, "docs", "deploy")

_QUOTED = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(rf"(?<![\w/.-])(?:{'|'.join(TOP_DIRS)})/[\w./{{}},*-]*")
_DOTTED = re.compile(r"(?<![\w./-])(?:processor|keys|schemas|fuzz)(?:\.\w+)+")
_MEMBER = re.compile(r"(?<![\w.])([A-Z]\w*)\.(\w+)")
_TEST = re.compile(r"(?<![\w./-])test_\w+(?![\w.])")
_IMPORT = re.compile(r"\bfrom ((?:processor|keys|schemas|fuzz)[\w.]*) import (\w+(?:, *\w+)*)")


def _quoted(doc: Path) -> list[str]:
    return _QUOTED.findall(doc.read_text("utf-8"))


def _expand(path: str) -> list[str]:
    """``a/b_v{4,6}.x`` -> ``a/b_v4.x``, ``a/b_v6.x``."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [p for part in match.group(1).split(",") for p in _expand(head + part + tail)]


@cache
def _modules() -> dict[str, ast.Module]:
    found = {}
    for top in SOURCE_DIRS:
        for file in (ROOT / top).rglob("*.py"):
            parts = file.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = ast.parse(file.read_text("utf-8"))
    return found


def _names(body: list[ast.stmt]) -> set[str]:
    """Names a module or class body defines (functions, classes, assignments, imports)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


@cache
def _classes() -> dict[str, set[str]]:
    """Class name -> its members (methods, class attributes, ``self.x`` assignments),
    merged over classes of the same name."""
    classes: dict[str, set[str]] = {}
    for module in _modules().values():
        for node in ast.walk(module):
            if isinstance(node, ast.ClassDef):
                members = classes.setdefault(node.name, set()) | _names(node.body)
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                        members.add(inner.attr)
                classes[node.name] = members
    return classes


def _is_class(module: ast.Module, name: str) -> bool:
    return any(isinstance(node, ast.ClassDef) and node.name == name for node in module.body)


def _dotted_exists(dotted: str) -> bool:
    """``processor.ops.settings.Settings`` names a module, then at most a top-level name
    of it and a member of that."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = _modules().get(".".join(parts[:cut]))
        if module is None:
            continue
        rest = parts[cut:]
        if not rest:
            return True
        if rest[0] not in _names(module.body):
            return False
        if len(rest) == 1:
            return True
        return _is_class(module, rest[0]) and rest[1] in _classes()[rest[0]]
    return False


@cache
def _test_names() -> set[str]:
    return {
        node.name
        for name, module in _modules().items()
        if name.startswith("tests.")
        for node in ast.walk(module)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _problems(doc: Path) -> list[str]:
    problems = [
        f"no module or name {module}.{name.strip()}"
        for module, names in _IMPORT.findall(doc.read_text("utf-8"))
        for name in names.split(",")
        if not _dotted_exists(f"{module}.{name.strip()}")
    ]
    for text in _quoted(doc):
        for quoted in _PATH.findall(text):
            for one in _expand(quoted.split("::")[0].rstrip(".,")):
                if not glob.glob(str(ROOT / one)):
                    problems.append(f"no file {one}")
        for dotted in _DOTTED.findall(text):
            if not _dotted_exists(dotted):
                problems.append(f"no module or name {dotted}")
        for cls, member in _MEMBER.findall(text):
            if cls in _classes() and member not in _classes()[cls]:
                problems.append(f"no {cls}.{member}")
        for test in _TEST.findall(text):
            if test.endswith(".py"):
                continue
            if test not in _test_names():
                problems.append(f"no test {test}")
        if re.fullmatch(r"test_\w+\.py", text) and not list(ROOT.glob(f"tests/**/{text}")):
            problems.append(f"no test file {text}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_name_a_doc_quotes_exists(doc: Path) -> None:
    assert _problems(doc) == []


def test_the_docs_check_finds_a_stale_name(tmp_path: Path) -> None:
    doc = tmp_path / "stale.md"
    doc.write_text(
        "`processor/pipeline/nowhere.py`, `processor.pipeline.process.Nowhere`, "
        "`Pipeline.no_such_method`, `test_no_such_case`, `processor/pipeline/process.py`, "
        "`processor.pipeline.process.Pipeline.process`, `Consumer.ack` (faust's: not checked)\n"
        "```python\nfrom processor.pipeline.process import Pipeline, Nothing\n```\n"
    )
    assert _problems(doc) == [
        "no module or name processor.pipeline.process.Nothing",
        "no file processor/pipeline/nowhere.py",
        "no module or name processor.pipeline.process.Nowhere",
        "no Pipeline.no_such_method",
        "no test test_no_such_case",
    ]


def test_no_doc_points_outside_the_project() -> None:
    for doc in DOCS:
        text = doc.read_text("utf-8")
        assert "../shared" not in text and "DESIGN.md" not in text, doc
