"""The worker's stats file (``stats_file``): what it did, as JSON, rewritten when a batch
was acknowledged; and the count of earlier runs that ended with a failed delivery, which
the next run exports as a metric (the failing process is gone before it is scraped)."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

DELIVERY_FAILURES_FILE = "delivery-failures"


class Counters:
    """What the worker did: the one count of acknowledged batches, which the stats file,
    the log and the Prometheus metrics (:func:`processor.ops.metrics.counted`) all read.

    ``counts``: ``in`` (input records; ``in:<topic>`` by source topic), ``routed``,
    ``quarantined`` and ``suppressed`` (``in`` is their sum; the latter two also by reason,
    ``quarantined:<reason>``), ``out:<topic>`` (output records delivered),
    ``pseudonyms:<domain>`` (pseudonyms in them), ``batches``. The pipeline's own counts
    (dropped fields, locations, ... as it processed them) are
    :attr:`processor.pipeline.process.Pipeline.stats`, which the snapshot includes."""

    PHASES = ("pipeline", "produce", "settle")

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, float] = {"pipeline": 0.0, "deliver": 0.0}
        # CPU of the event loop's thread per phase (``time.thread_time``): a profile without
        # a profiler (py-spy, which pauses the process to sample, overstated the producer)
        self.cpu: dict[str, float] = dict.fromkeys(self.PHASES, 0.0)
        self.cpu_first: float | None = None
        self.cpu_last: float | None = None
        self._monotonic = monotonic
        self.started: float = monotonic()
        self.first_event: float | None = None
        self.last_event: float | None = None

    def cpu_us_per_event(self) -> dict[str, float] | None:
        """Main-thread CPU per acknowledged input, µs: each phase, ``other`` (fetching and
        faust's per-message work, acks, timers) and ``total``, from the first batch
        on; the consumer's own thread (decoding fetched records) is not in it."""
        n = self.counts.get("in", 0)
        if not n or self.cpu_first is None or self.cpu_last is None:
            return None
        total = self.cpu_last - self.cpu_first
        split = {**self.cpu, "other": total - sum(self.cpu.values()), "total": total}
        return {k: round(v * 1e6 / n, 1) for k, v in split.items()}

    def snapshot(self, pipeline_stats: Mapping[str, int]) -> dict[str, Any]:
        busy = (self.last_event - self.first_event) if self.first_event and self.last_event else 0.0
        counts = dict(self.counts)
        return {
            "pid": os.getpid(),
            "in": counts.get("in", 0),
            "counts": counts,
            "pipeline": dict(pipeline_stats),
            "busy_seconds": round(busy, 3),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "events_per_second": round(counts.get("in", 0) / busy, 1) if busy > 0 else None,
            "cpu_us_per_event": self.cpu_us_per_event(),
            "uptime_seconds": round(self._monotonic() - self.started, 3),
        }

    def summary(self) -> str:
        c = self.counts
        return (
            f"in={c['in']} routed={c['routed']} quarantined={c['quarantined']}"
            f" suppressed={c['suppressed']}"
        )


def write_stats_file(path: Path, stats: Mapping[str, Any]) -> None:
    """Replace ``path`` at once (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2))
    tmp.replace(path)


def delivery_failures(data_dir: Path) -> int:
    """How many earlier runs on ``data_dir`` ended with a failed delivery (exit 75): the
    process is gone before Prometheus could scrape a counter, so the next run exports it."""
    try:
        return int((data_dir / DELIVERY_FAILURES_FILE).read_text() or 0)
    except (OSError, ValueError):
        return 0


def count_delivery_failure(data_dir: Path) -> None:
    with contextlib.suppress(OSError):  # exiting anyway; the log line says why
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / DELIVERY_FAILURES_FILE).write_text(str(delivery_failures(data_dir) + 1))
