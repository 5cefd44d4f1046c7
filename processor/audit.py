"""The audit log: one JSON line per action that an auditor may ask about.

The file is named by ``PSEUDOSTREAM_AUDIT_LOG``; nothing is written when it is unset. Each
line is ``{"time": <ISO-8601 UTC>, "action": ..., "actor": ..., **fields}``. Callers pass
pseudonyms, key ids, topic names and counts, never a raw value or key bytes.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime

import orjson

AUDIT_LOG_ENV = "PSEUDOSTREAM_AUDIT_LOG"
ACTOR_ENV = "PSEUDOSTREAM_ACTOR"


def _actor() -> str:
    actor = os.environ.get(ACTOR_ENV)
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container UID without a passwd entry
        return f"uid:{os.getuid()}"


def append_audit(action: str, /, **fields: object) -> None:
    """Append one entry to the audit log, if one is configured.

    One ``write`` of one line to a file opened with ``O_APPEND``, so the entries of several
    processes sharing the file do not interleave; the file is created readable by its owner
    only."""
    path = os.environ.get(AUDIT_LOG_ENV)
    if not path:
        return
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "action": action,
        "actor": _actor(),
        **fields,
    }
    line = orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


__all__ = ["ACTOR_ENV", "AUDIT_LOG_ENV", "append_audit"]
