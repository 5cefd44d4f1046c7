"""Location lookups/s, the shipped data's memory and load time, and the accuracy figures: ``python bench/geo.py --help``
(the benchmark is :mod:`processor.devtools.benchmark.geo`)."""

from processor.devtools.benchmark.geo import main

if __name__ == "__main__":
    raise SystemExit(main())
