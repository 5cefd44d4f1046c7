"""JSON log lines: one object per line with time, level, logger, message and extras."""

from __future__ import annotations

import io
import logging

import orjson

from processor.ops.logs import configure


def test_one_json_object_per_line_with_extras_and_exceptions() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure("info", stream)
        log = logging.getLogger("pseudostream.test")
        log.info("processed %d records", 12, extra={"partition": 3})
        log.debug("not shown")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.captureWarnings(False)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["message"] == "processed 12 records"
    assert first["level"] == "info"
    assert first["logger"] == "pseudostream.test"
    assert first["partition"] == 3
    assert first["time"].endswith("Z")
    assert second["level"] == "error"
    assert "ValueError: boom" in second["exception"]
