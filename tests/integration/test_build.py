"""The optional compiled build (setup.py): without ``PSEUDOSTREAM_COMPILE=1`` the package is
plain Python as it always was, and a compilation that fails falls back to plain Python.

Real wheel builds from a copy of the source tree, with this environment's setuptools and
mypy (``--no-build-isolation``: nothing downloaded). That the compiled modules behave as the
plain ones is the unit tests' job, run against a compiled tree by ``scripts/test-compiled``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "processor", "schemas", "keys")


def _sources(tmp_path: Path) -> Path:
    """A copy of the sources, without compiled files or caches."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.so")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    return src


def _wheel(tmp_path: Path, src: Path | None = None, **env: str) -> tuple[list[str], str]:
    """Build a wheel from ``src`` (default: a fresh copy of the sources) with ``env`` added;
    the names in the wheel and its file name."""
    src = src or _sources(tmp_path)
    environ = {k: v for k, v in os.environ.items() if k != "PSEUDOSTREAM_COMPILE"} | env
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--wheel-dir", str(tmp_path / "dist"), str(src)],
        check=True,
        env=environ,
        capture_output=True,
    )
    [wheel] = (tmp_path / "dist").glob("pseudostream-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist(), wheel.name


def test_when_built_without_the_variable_then_the_wheel_is_plain_python(tmp_path: Path) -> None:
    names, wheel = _wheel(tmp_path)
    assert wheel.endswith("-py3-none-any.whl")
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))]
    assert "processor/pipeline/process.py" in names


def test_when_built_plain_after_a_compiled_editable_install_then_its_modules_are_removed(
    tmp_path: Path,
) -> None:
    src = _sources(tmp_path)
    left = [
        src / "processor/pipeline/process.cpython-311-x86_64-linux-gnu.so",
        src / "processor/pipeline/_native__mypyc.cpython-311-x86_64-linux-gnu.so",
    ]
    for path in left:
        path.write_bytes(b"")
    _wheel(tmp_path, src)
    assert not [path for path in left if path.exists()]
    assert (src / "processor/pipeline/process.py").exists()


def test_when_the_compiler_fails_then_the_wheel_falls_back_to_plain_python(
    tmp_path: Path,
) -> None:
    # `false` as the C compiler: mypyc translates the modules, every compile step fails
    names, _ = _wheel(tmp_path, PSEUDOSTREAM_COMPILE="1", CC="false")
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    assert {"processor/pipeline/process.py", "processor/pipeline/pseudonym.py"} <= set(names)
