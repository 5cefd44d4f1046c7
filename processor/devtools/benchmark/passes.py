"""Child of ``bench core --baseline-src``: one fresh pipeline's passes over a records file.

Run by path, ``python passes.py RECORDS``, with ``PYTHONPATH`` naming a source tree: it
imports the pipeline of that tree (this one's or a baseline's), so nothing of this package
is imported at module level. RECORDS is a pickle of ``[(input topic, bytes), ...]`` written
by the parent. Prints one JSON line: events per CPU-second of the first pass (caches empty)
and the best of two warm passes, and the file the pipeline came from.
"""

from __future__ import annotations

import gc
import json
import pickle
import sys
import time
from typing import Any


def main(path: str) -> dict[str, Any]:
    from keys import Keyring
    from processor.pipeline import process
    from processor.pipeline.geo import build_locator
    from processor.pipeline.outcome import SourceRef

    with open(path, "rb") as file:
        generated: list[tuple[str, bytes]] = pickle.load(file)  # noqa: S301 - our parent's file
    records = [value for _, value in generated]
    source_of = {value: SourceRef(topic, 0, 0) for topic, value in generated}
    pipeline = process.Pipeline(Keyring.generate(), locator=build_locator())

    def one_pass() -> float:
        gc.collect()
        run = pipeline.process
        start = time.thread_time()
        for value in records:
            run(value, source_of[value])
        return len(records) / (time.thread_time() - start)

    first = one_pass()
    return {"first_pass": first, "warm": max(one_pass(), one_pass()), "source": process.__file__}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
