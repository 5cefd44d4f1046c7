"""Unexpected exceptions inside the pipeline (bugs): the stage they hit, and a log entry that
cannot carry record content.

An exception's message may quote what it was given (``int()`` quotes its argument, a
``KeyError`` is the missing key, a ``UnicodeDecodeError`` holds the bytes), and what a stage
is given is the record. So no message is ever logged or quarantined: the quarantine record
names the stage and the exception type, and the log gets the type, the stage and the
traceback's frames (file, line, function and source line: code, never data; no locals),
once per stage and exception type and pipeline, so a bug that hits every record logs once
while the ``quarantined:internal_error`` count keeps counting.
"""

from __future__ import annotations

import logging
import traceback

from processor.errors import RecordError
from processor.pipeline.codegen import GENERATED_FILE_PREFIX

log = logging.getLogger("pseudostream.pipeline")

# A generated function calls these helpers: when one of them fails, its stage failed, not
# the generated function's (the projection pseudonymizes and scrubs as it copies).
_HELPER_STAGES = {
    "processor.pipeline.pseudonym": "pseudonymize",
    "processor.pipeline.scrub": "scrub",
}
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"

Logged = set[tuple[str, type[BaseException]]]


def failed_stage(exc: BaseException, stage: str) -> str:
    """``stage``, the one the pipeline was in, or the stage of the helper a generated
    function was calling when ``exc`` was raised."""
    in_generated = False
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if in_generated:
            return _HELPER_STAGES.get(frame.f_globals.get("__name__", ""), stage)
        in_generated = frame.f_code.co_filename.startswith(GENERATED_FILE_PREFIX)
    return stage


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def traceback_without_values(exc: BaseException) -> str:
    """``exc``'s traceback as Python prints it (chained exceptions included), with each
    exception's type but never its message."""
    parts: list[str] = []
    current: BaseException | None = exc
    link = ""
    while current is not None and len(parts) < 16:  # a cycle of contexts is possible
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(f"Traceback (most recent call last):\n{frames}{_type_name(current)}\n{link}")
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    return "".join(reversed(parts)).rstrip("\n")


def internal_error(exc: Exception, stage: str, logged: Logged) -> RecordError:
    """The quarantine error for ``exc``, raised in ``stage`` (see :func:`failed_stage`);
    logged with its traceback unless ``logged`` already holds its (stage, type)."""
    stage = failed_stage(exc, stage)
    name = _type_name(exc)
    if (stage, type(exc)) not in logged and log.isEnabledFor(logging.ERROR):
        logged.add((stage, type(exc)))
        # exc_text, not exc_info: a formatter would add the message to exc_info's traceback
        record = log.makeRecord(
            log.name,
            logging.ERROR,
            __file__,
            0,
            "unexpected %s in pipeline stage %s: record quarantined as internal_error"
            " (logged once per stage and exception type)",
            (name, stage),
            None,
            extra={"stage": stage, "error": name},
        )
        record.exc_text = traceback_without_values(exc)
        log.handle(record)
    return RecordError("internal_error", stage, type(exc).__name__)
