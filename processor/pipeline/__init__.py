"""The pure pipeline (``processor.pipeline.process``) and the modules it runs."""

from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import find_spec


def build() -> str:
    """``"compiled"`` when the pipeline's hot modules were compiled with mypyc at install
    (``PSEUDOSTREAM_COMPILE=1``, setup.py), else ``"plain Python"``; nothing is imported."""
    spec = find_spec(__name__ + ".process")
    origin = spec.origin if spec is not None else None
    return "compiled" if origin and origin.endswith(tuple(EXTENSION_SUFFIXES)) else "plain Python"
