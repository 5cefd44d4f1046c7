"""The free-text scrubber's time on adversarial inputs at 64 KiB and 1 MiB (docs/free-text.md).

    python bench/scrub_linear.py

Each input is a long run of what one pattern consumes or anchors on
(``processor.devtools.benchmark.pii.ADVERSARIAL``), scrubbed whole (the pipeline would cut it to
``max_text_chars`` first). Thread CPU time, best of two; linear time gives a ratio near 16.
"""

import argparse
from collections.abc import Sequence

from processor.devtools.benchmark.pii import ADVERSARIAL, repeated, scrub_seconds


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print("| input (repeated) | 64 KiB | 1 MiB | ratio (16x text) |")
    print("| --- | ---: | ---: | ---: |")
    for name, unit in ADVERSARIAL.items():
        small, large = repeated(unit, 64 * 1024), repeated(unit, 1024 * 1024)
        scrub_seconds(small[:1000])  # compiled patterns, loaded place names
        a = min(scrub_seconds(small) for _ in range(2))
        b = min(scrub_seconds(large) for _ in range(2))
        print(f"| {name} (`{unit!r}`) | {a * 1000:.0f} ms | {b:.2f} s | {b / max(a, 1e-6):.1f} |")
    return 0
