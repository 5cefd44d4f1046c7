"""Pipeline throughput on one core next to a naive baseline: ``pseudostream bench core``.

python bench/core.py [--events 100000] [--rounds 3] [--json bench/results/core.json]
"""

from processor.devtools.benchmark.core import main

if __name__ == "__main__":
    raise SystemExit(main())
