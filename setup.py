"""Optional compilation of the pipeline's hot modules with mypyc (README, "Compiled pipeline").

``pip install .`` (or ``-e .``) installs plain Python, as pyproject.toml describes. With
``PSEUDOSTREAM_COMPILE=1`` in the build's environment, the modules of ``COMPILED`` are also
compiled to C extensions, which Python imports in place of their ``.py`` files. Should that
compilation fail (no C compiler, no Python headers, no mypy), the build says so and
installs plain Python: ``pseudostream --version`` tells which one runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import cast

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# Hot in `pseudostream bench core` and fixed code (the validators and projections are
# generated at run time and stay interpreted). Not geo/: compiled, its `__file__` is not the
# module's path, and it finds its data files by it.
COMPILED = [
    "processor/pipeline/canonical.py",
    "processor/pipeline/consent.py",
    "processor/pipeline/detect.py",
    "processor/pipeline/devices.py",
    "processor/pipeline/location.py",
    "processor/pipeline/outcome.py",
    "processor/pipeline/process.py",
    "processor/pipeline/pseudonym.py",
    "processor/pipeline/validate.py",
]
# What mypy needs to type the compiled modules in an isolated build environment: the typed
# libraries they import (the rest of the dependencies are ignored imports, or not reached).
COMPILE_REQUIRES = ["mypy>=1.15", "orjson>=3.10", "cryptography>=44", "phonenumbers>=9.0"]

COMPILE = os.environ.get("PSEUDOSTREAM_COMPILE", "") == "1"


def _plain(why: object) -> None:
    print(
        f"pseudostream: not compiling the pipeline ({why}); installing plain Python",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """All or nothing: the compiled modules share one support library, so a partial build
    would leave extensions that cannot import. On failure, remove what was built."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError, OSError) as exc:
            for ext in self.extensions:  # the built files, and their copies in the tree (-e)
                built = Path(self.get_ext_fullpath(ext.name))
                built.unlink(missing_ok=True)
                Path(*ext.name.split(".")[:-1], built.name).unlink(missing_ok=True)
            self.extensions = []
            _plain(exc)


def _remove_compiled_in_place() -> None:
    """A compiled editable install (``-e``) left the extensions beside the sources, where
    Python would still import them instead: a plain install removes them."""
    for module in [*COMPILED, "processor/pipeline/_native__mypyc.py"]:
        path = Path(module)
        for built in path.parent.glob(path.stem + ".*.so"):
            built.unlink()
            print(f"pseudostream: removed {built}, compiled before", file=sys.stderr)


def ext_modules() -> list[Extension]:
    if not COMPILE:
        _remove_compiled_in_place()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:  # also while pip asks for setup_requires, before it has them
        _plain(exc)
        return []

    # One group: one support library, processor/pipeline/_native__mypyc*.so, beside the
    # modules (a top-level one would not be found through an editable install's finder).
    extensions = mypycify(COMPILED, opt_level="3", group_name="processor.pipeline._native")
    return cast("list[Extension]", extensions)  # setuptools' (distutils' only without it)


setup(
    ext_modules=ext_modules(),
    cmdclass={"build_ext": OptionalBuildExt},
    setup_requires=COMPILE_REQUIRES if COMPILE else [],
)
