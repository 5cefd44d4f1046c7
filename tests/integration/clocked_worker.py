"""A worker whose wall clock is a file the test writes (Unix ms): the rotation test moves
time on by writing it, instead of sleeping until a key boundary passes.

Run with the usual ``PSEUDOSTREAM_*`` settings and ``PSEUDOSTREAM_TEST_CLOCK_FILE``:
``python -m tests.integration.clocked_worker``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLOCK_FILE_ENV = "PSEUDOSTREAM_TEST_CLOCK_FILE"
COMMAND = ("-m", "tests.integration.clocked_worker")


class FileClock:
    """:class:`processor.kafka.clock.Clock` whose wall time is the number in a file;
    durations (stall detection, batch seconds) stay real."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def wall_ms(self) -> int:
        return int(self._path.read_text())

    def monotonic(self) -> float:
        return time.monotonic()


def set_clock(path: Path, wall_ms: int) -> None:
    """Move the clock at once (a reader never sees half a number)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(wall_ms))
    tmp.replace(path)


def main() -> int:
    from processor.kafka.keywatch import load_keyring
    from processor.kafka.worker import StreamWorker
    from processor.ops.logs import configure
    from processor.ops.settings import Settings

    settings = Settings.load()
    configure(settings.log_level)
    clock = FileClock(Path(os.environ[CLOCK_FILE_ENV]))
    worker = StreamWorker(settings, load_keyring(settings), clock=clock)
    worker.view.topics_present = True  # the test's stack created them
    return worker.run()


if __name__ == "__main__":
    raise SystemExit(main())
