"""atheris (libFuzzer) target for the decode -> validate -> canonicalize -> project path.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python -m fuzz.fuzz_pipeline fuzz-corpus/ -max_total_time=300

The corpus directory is seeded with synthetic events (all three schemas) when empty; every
input is checked against fuzz/invariants.py, and a broken invariant stops the run with the
crashing input saved by libFuzzer (``crash-*``). See docs/drills.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from fuzz.invariants import Checker, check_canonical
    from processor.devtools import synth
    from processor.pipeline import canonical, process, project, validate  # noqa: F401
    from processor.pipeline.kinds import IdKind

_KINDS = list(IdKind)
_CHECKER = Checker()


def test_one_input(data: bytes) -> None:
    """The first byte picks the target: the whole pipeline on the rest, or a canonicalizer."""
    if data[:1] == b"\x00" and len(data) > 2:
        text = data[2:].decode("utf-8", "replace")
        check_canonical(_KINDS[data[1] % len(_KINDS)], text)
        return
    _CHECKER.check(data, b"u1")


def _seed(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for i, (_, _, value) in enumerate(synth.generate(200, seed=1, users=20, malformed=0.05)):
        (corpus / f"seed-{i:04d}").write_bytes(value)


def main() -> None:
    corpora = [a for a in sys.argv[1:] if not a.startswith("-")]
    for corpus in corpora:
        _seed(Path(corpus))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
