"""An unexpected exception inside the pipeline (a bug): quarantined as ``internal_error``
naming the stage that failed, logged once per stage and exception type with its traceback,
never with its message (which may quote the record)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from keys import Keyring
from processor.ops.logs import JsonFormatter
from processor.ops.scan import LeakScanner
from processor.pipeline.canonical import _CANONICALIZERS
from processor.pipeline.location import IPAddress, Place
from processor.pipeline.outcome import SourceRef
from processor.pipeline.process import Pipeline
from tests.unit.test_pipeline import EVENT, SRC, raw

# What the injected failures quote in their messages: the raw record's identifiers.
PLANTED = "call me 13812345678, IMEI 356938035643809"


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The pipeline's log as the worker writes it (JSON lines)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("pseudostream.pipeline")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def _leaky(*args: Any) -> Any:
    """A failure whose message quotes what it was given, as ``int()`` or ``KeyError`` do."""
    raise ValueError(f"cannot handle {args!r} {PLANTED}")


class _FailingLocator:
    def from_gps(self, lat: float, lon: float) -> Place | None:
        return _leaky(lat, lon)

    def from_ip(self, network_address: IPAddress) -> Place | None:
        return _leaky(network_address)


def _fail_canonicalizers(mp: pytest.MonkeyPatch) -> None:
    for kind in list(_CANONICALIZERS):
        mp.setitem(_CANONICALIZERS, kind, _leaky)


def _anonymous() -> bytes:
    """An event without a user id: no consent lookup, no device links."""
    event = {k: v for k, v in EVENT.items() if k != "user_id"}
    return raw(event)


# (what fails, the stage it must be named, the record to send); each patch is applied
# before the pipeline is built, as generated code binds its helpers when compiled. The
# failures are planted where the pipeline calls out of its compiled modules (a library, a
# state or locator object, generated code): the same seams whether it runs compiled or not
# (setup.py; compiled, calls between those modules do not go through the patched names).
CASES: list[tuple[str, Callable[[pytest.MonkeyPatch], None], str, Callable[[], bytes]]] = [
    (
        "decode",
        lambda mp: mp.setattr("orjson.loads", _leaky),
        "decode",
        raw,
    ),
    (
        "content test",
        lambda mp: mp.setattr("processor.pipeline.validate._identifier", _leaky),
        "validate",
        raw,
    ),
    (
        "consent lookup",
        lambda mp: mp.setattr("processor.pipeline.consent.MemoryConsentState.get", _leaky),
        "consent",
        raw,
    ),
    (
        "device links",
        lambda mp: mp.setattr("processor.pipeline.devices.MemoryDeviceState.links", _leaky),
        "devices",
        raw,
    ),
    (
        "text cut",
        lambda mp: mp.setattr("processor.pipeline.process.truncate_text", _leaky),
        "scrub",
        lambda: raw(payload={**EVENT["payload"], "text": "x" * 3000}),
    ),
    (
        "location",
        lambda mp: mp.setattr("processor.pipeline.location.NullLocator.from_ip", _leaky),
        "coarsen",
        raw,
    ),
    (
        "output record",
        lambda mp: mp.setattr("processor.pipeline.project.Routed", _leaky),
        "project",
        raw,
    ),
    (
        "pseudonym",
        _fail_canonicalizers,
        "pseudonymize",
        _anonymous,
    ),
    (
        "scrubber",
        lambda mp: mp.setattr("processor.pipeline.scrub.find_identifiers", _leaky),
        "scrub",
        raw,
    ),
]


@pytest.mark.parametrize(
    ("patch", "stage", "record"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_when_a_stage_fails_unexpectedly_then_the_quarantine_record_names_that_stage(
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    patch: Callable[[pytest.MonkeyPatch], None],
    stage: str,
    record: Callable[[], bytes],
) -> None:
    patch(monkeypatch)
    outcome = Pipeline(keyring).process(record(), SRC, b"k")
    monkeypatch.undo()  # the decode case's failure is in orjson, which .json() below uses
    assert outcome.quarantined == "internal_error"
    quarantined = outcome.records[0].json()
    assert (quarantined["stage"], quarantined["detail"]) == (stage, "ValueError")


def test_when_gps_lookup_fails_then_the_stage_is_coarsen(keyring: Keyring) -> None:
    pipeline = Pipeline(keyring, locator=_FailingLocator())
    outcome = pipeline.process(raw(), SRC)
    assert outcome.records[0].json()["stage"] == "coarsen"


def test_when_a_failure_repeats_then_it_is_logged_once_per_stage_and_type(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO
) -> None:
    calls = iter(range(10_000))

    def scrub_fails(text: str) -> Any:
        # KeyError for even calls, ValueError for odd ones: two types in one stage
        if next(calls) % 2:
            _leaky(text)
        raise KeyError(text)

    monkeypatch.setattr("processor.pipeline.scrub.find_identifiers", scrub_fails)
    monkeypatch.setattr("processor.pipeline.validate._identifier", _leaky)
    pipeline = Pipeline(keyring)
    for _ in range(50):
        pipeline.process(raw(), SRC)  # validation fails
    with monkeypatch.context() as mp:
        mp.setattr("processor.pipeline.validate._identifier", lambda _: None)
        pipeline = Pipeline(keyring)
    for _ in range(50):
        pipeline.process(raw(), SRC)  # scrubbing fails, two types
    entries = [orjson.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [(e["stage"], e["error"]) for e in entries] == [
        ("validate", "ValueError"),
        ("scrub", "KeyError"),
        ("scrub", "ValueError"),
    ]
    assert pipeline.stats["quarantined:internal_error"] == 50
    assert all(e["level"] == "error" and e["logger"] == "pseudostream.pipeline" for e in entries)


def test_when_a_failure_is_logged_then_the_log_holds_the_traceback_but_no_value(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO
) -> None:
    monkeypatch.setattr("processor.pipeline.scrub.find_identifiers", _leaky)
    record = raw()
    Pipeline(keyring).process(record, SourceRef("raw.behaviour", 3, 7), b"u10293847")
    log = log_lines.getvalue()
    [entry] = [orjson.loads(line) for line in log.splitlines()]
    trace = entry["exception"]
    # the frames down to the failure, the generated projection's own line among them
    # (no consent record: the recommendation route's reduced variant)
    assert "<pseudostream generated project recommendation reduced #" in trace
    assert "d['text'] = scrub(v)" in trace
    assert "in scrub_text" in trace and trace.endswith("ValueError")
    assert PLANTED not in log and "13812345678" not in log  # source lines name no value
    scanner = LeakScanner.from_raw_events([record])
    assert scanner.scan_text(log) == []


def test_when_exceptions_are_chained_then_each_type_is_logged_without_its_message(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO
) -> None:
    def wrapped(*args: Any) -> Any:
        try:
            _leaky(*args)
        except ValueError as exc:
            raise RuntimeError(PLANTED) from exc

    monkeypatch.setattr("processor.pipeline.location.NullLocator.from_ip", wrapped)
    Pipeline(keyring).process(raw(), SRC)
    [entry] = [orjson.loads(line) for line in log_lines.getvalue().splitlines()]
    trace = entry["exception"]
    assert trace.index("ValueError") < trace.index("direct cause") < trace.index("RuntimeError")
    assert PLANTED not in trace
