"""What the ad statistics cost the worker (off and on, alternating, one embedded broker): ``python bench/adstats.py --help``
(the benchmark is :mod:`processor.devtools.benchmark.adstats`)."""

from processor.devtools.benchmark.adstats import main

if __name__ == "__main__":
    raise SystemExit(main())
