"""The audit trail: who looked a person up, unsealed or replayed quarantine, rotated or
reloaded keys, and which policy a worker started with.

One JSON line per action, appended to the file named by ``PSEUDOSTREAM_AUDIT_LOG`` (nothing
is written when it is unset): ``{"time": ISO-8601 UTC, "action": ..., "actor": ...,
**fields}``. The actor is ``PSEUDOSTREAM_ACTOR`` (set it to the person behind a service
account) or else the OS user. Callers pass key ids, counts and policy versions: never a raw
value and never key bytes. Shipping the file to a topic or a SIEM: docs/privacy.md.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime

import orjson

from processor.errors import ConfigError

AUDIT_LOG_ENV = "PSEUDOSTREAM_AUDIT_LOG"
ACTOR_ENV = "PSEUDOSTREAM_ACTOR"
_RESERVED = ("time", "action", "actor")


def _actor() -> str:
    actor = os.environ.get(ACTOR_ENV)
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return f"uid:{os.getuid()}"


def append_audit(action: str, /, **fields: object) -> None:
    """Append one audit line for ``action``; a no-op when ``PSEUDOSTREAM_AUDIT_LOG`` is
    unset. A log that cannot be written is an error (an action must not go unrecorded)."""
    path = os.environ.get(AUDIT_LOG_ENV)
    if not path:
        return
    clash = [name for name in _RESERVED if name in fields]
    if clash:
        raise ValueError(f"audit field {clash[0]!r} is reserved")
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "actor": _actor(),
        **fields,
    }
    line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
    try:
        # one write() of a whole line on an O_APPEND file: concurrent writers do not interleave
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"{AUDIT_LOG_ENV}: cannot append to {path!r} ({exc.strerror or type(exc).__name__})"
        ) from exc


__all__ = ["ACTOR_ENV", "AUDIT_LOG_ENV", "append_audit"]
