"""Fuzzing the decode -> validate -> canonicalize -> project path with hypothesis, against
the invariants of fuzz/invariants.py (the atheris target checks the same ones).

Brief in CI (bounded examples); longer on demand:
``PSEUDOSTREAM_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/unit/test_fuzz_pipeline.py``
(read at import, before the clean-environment fixture runs). See docs/drills.md.
"""

from __future__ import annotations

import json
import os
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.invariants import Checker, check_canonical
from keys import Keyring
from processor.devtools import synth
from processor.pipeline.kinds import IdKind
from processor.pipeline.outcome import SourceRef
from tests.unit.test_pipeline_properties import json_values  # junk of every JSON type

EXAMPLES = int(os.environ.get("PSEUDOSTREAM_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CHECKER = Checker(Keyring.generate())
SEEDS: list[bytes] = [v for _, _, v in synth.generate(120, seed=9, users=15) if v.startswith(b"{")]

# Where raw clients put identifiers, in the spellings they use, and junk of every JSON type.
ID_PATHS = [
    "user_id",
    "device.imei",
    "device.meid",
    "device.imsi",
    "device.iccid",
    "device.oaid",
    "device.android_id",
    "device.mac",
    "network.ip",
    "network.ssid",
    "network.bssid",
    "phone",
    "payload.target_user_id",
]
OTHER_PATHS = [
    "schema",
    "event_id",
    "event_time",
    "event_type",
    "device",
    "device.brand",
    "network",
    "network.cell",
    "network.cell.lac",
    "location",
    "location.lat",
    "location.lon",
    "location.source",
    "payload",
    "payload.query",
    "payload.text",
    "payload.amount_cents",
    "account",
    "age_band",
    "personalized_ads",
    "unknown_block.x",
]
identifiers = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF:-. +", min_size=1, max_size=40),
    st.text(alphabet="0123456789０１２３４５６７８９", min_size=6, max_size=20),
    st.integers(min_value=0, max_value=10**25),
    st.sampled_from(
        [
            "::ffff:61.128.128.68",
            "2408:8207:0:0::1",
            "3c-5a-b4-12-34-56",
            "3c5a.b412.3456",
            "+86 138-1234-5678",
            "00000000-0000-0000-0000-000000000000",
            "02:00:00:00:00:00",
            "unknown",
            "[nc]123",
        ]
    ),
)
mutation = st.one_of(
    st.tuples(st.sampled_from(ID_PATHS), identifiers),
    st.tuples(st.sampled_from(ID_PATHS + OTHER_PATHS), json_values),
    st.tuples(st.sampled_from(ID_PATHS + OTHER_PATHS), st.just(...)),  # ... = delete
)


def _mutate(event: dict[str, Any], path: str, value: Any) -> None:
    *blocks, name = path.split(".")
    holder: Any = event
    for block in blocks:
        if not isinstance(holder, dict):
            return
        holder = holder.setdefault(block, {}) if holder.get(block) is not None else {}
    if not isinstance(holder, dict):
        return
    if value is ...:
        holder.pop(name, None)
    else:
        holder[name] = value


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A real-looking event with a few fields replaced, deleted or junked, then encoded the
    way broken clients do (UTF-8, a BOM, UTF-16, Latin-1, or cut short)."""
    event = orjson.loads(draw(st.sampled_from(SEEDS)))
    for path, value in draw(st.lists(mutation, min_size=1, max_size=4)):
        _mutate(event, path, value)
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))  # json: ints of any size
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@FUZZ
@given(data=st.binary(max_size=2000), key=st.none() | st.binary(max_size=40))
def test_fuzz_any_bytes_keep_every_invariant(data: bytes, key: bytes | None) -> None:
    CHECKER.check(data, key)


@FUZZ
@given(data=mutated_events())
def test_fuzz_mutated_events_keep_every_invariant(data: bytes) -> None:
    CHECKER.check(data, b"u1")


@FUZZ
@given(consent=mutated_events(), event=mutated_events())
def test_fuzz_events_after_a_mutated_consent_keep_every_invariant(
    consent: bytes, event: bytes
) -> None:
    """A consent record (often junked) changes the state the next event is routed under."""
    CHECKER.check(consent, None, SourceRef("consent", 1, 7))
    CHECKER.check(event)


@FUZZ
@given(kind=st.sampled_from(list(IdKind)), raw=identifiers | st.text(max_size=60))
def test_fuzz_canonical_forms_are_fixed_points(kind: IdKind, raw: str | int) -> None:
    check_canonical(kind, raw)


def test_a_user_id_the_user_also_typed_as_the_whole_query_is_not_a_leak() -> None:
    """Found by hypothesis: user id ``00;`` and query ``00;``. No detector sees an identifier
    in ``00;``, so the scrubber keeps it; it is what the user typed, not the id field."""
    events = (orjson.loads(v) for _, _, v in synth.generate(400, seed=3, users=10))
    event = next(e for e in events if "query" in (e.get("payload") or {}))
    event["user_id"] = event["payload"]["query"] = "00;"
    CHECKER.check(orjson.dumps(event), b"u1")
