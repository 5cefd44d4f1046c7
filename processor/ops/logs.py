"""Structured logs: one JSON object per line on stderr.

``{"time": "2026-11-29T02:44:22.123Z", "level": "info", "logger": "pseudostream.worker",
"message": "...", ...extras}``, plus ``"exception"`` (type and traceback) when there is
one. Log messages never carry an identifier: the worker logs counts, topic names, partition
numbers and error types, never record keys or values (the integration test runs the leak
scanner over a worker's captured log).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import orjson

# Attributes every LogRecord has; anything else was passed as ``extra=`` and is emitted.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)
QUIET_LOGGERS = ("aiokafka", "kafka", "faust", "mode")


class JsonFormatter(logging.Formatter):
    """A ``logging.Formatter`` that renders a record as one JSON line; ``fields`` are added
    to every line (the supervisor's worker processes say which one wrote it)."""

    def __init__(self, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(created * 1000) % 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self.fields,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure(
    level: str = "info", stream: IO[str] | None = None, fields: Mapping[str, Any] | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one JSON handler on ``stream`` (stderr) at
    ``level``, ``fields`` on every line; the client libraries' loggers at least WARNING;
    Python warnings logged too. Returns the handler."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(fields))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    logging.captureWarnings(True)
    return handler


__all__ = ["JsonFormatter", "configure"]
