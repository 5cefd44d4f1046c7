"""The free-text scrubber's time on adversarial inputs at 64 KiB and 1 MiB: ``python bench/scrub_linear.py --help``
(the benchmark is :mod:`processor.devtools.benchmark.scrub_linear`)."""

from processor.devtools.benchmark.scrub_linear import main

if __name__ == "__main__":
    raise SystemExit(main())
