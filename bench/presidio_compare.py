"""The free-text detectors next to Presidio's pattern recognizers on the labelled corpus: ``python bench/presidio_compare.py --help``
(the benchmark is :mod:`processor.devtools.benchmark.presidio_compare`)."""

from processor.devtools.benchmark.presidio_compare import main

if __name__ == "__main__":
    raise SystemExit(main())
