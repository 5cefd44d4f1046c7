"""The live leak canary's CPU per input at several sampling fractions, no broker: ``python bench/canary.py --help``
(the benchmark is :mod:`processor.devtools.benchmark.canary`)."""

from processor.devtools.benchmark.canary import main

if __name__ == "__main__":
    raise SystemExit(main())
