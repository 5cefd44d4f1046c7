"""Fields kept as sent are checked by content: their declared format, then the identifier
detectors; a failing field is dropped and counted, the event goes on. event_id becomes a
pseudonym of its domain."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import orjson
import pytest

from keys import Domain, Keyring
from processor.cli.transform_cmd import run_transform, summary
from processor.ops.scan import LeakScanner
from processor.pipeline.consent import MemoryConsentState
from processor.pipeline.kinds import IdKind
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline
from processor.pipeline.pseudonym import Pseudonymizer
from tests.unit.test_pipeline import EVENT, FakeLocator, by_route, consent_record

KEYRING = Keyring.generate()
SRC = SourceRef("raw.behaviour", 0, 1)
IMEI = "356938035643809"
PHONE = "13812345678"
ID_CARD = "11010519491231002X"


def consented() -> Pipeline:
    pipeline = Pipeline(KEYRING, consent=MemoryConsentState(), locator=FakeLocator())
    pipeline.process(consent_record(), SourceRef("consent"))
    return pipeline


def planted(**fields: Any) -> bytes:
    event = copy.deepcopy(EVENT)
    for path, value in fields.items():
        block, _, name = path.rpartition("__")
        (event[block] if block else event)[name] = value
    return orjson.dumps(event)


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("payload__item_id", PHONE, "identifier"),
        ("payload__room_id", ID_CARD, "identifier"),
        ("device__model", IMEI, "identifier"),
        ("device__model", IMEI.translate({c: c + 0xFEE0 for c in range(48, 58)}), "bad_value"),
        ("device__brand", "a@b.example", "bad_value"),
        ("network__carrier", "call 138 1234 5678", "identifier"),
        ("device__os_version", "3C:5A:B4:12:34:56", "bad_value"),
        ("device__app_version", PHONE, "identifier"),
        ("device__os", "1f2e3d4c5b6a7988", "identifier"),
        ("network__type", "x" * 17, "bad_value"),
        ("payload__amount_cents", int(IMEI), "bad_value"),
        ("payload__duration_ms", int(PHONE), "bad_value"),
        ("payload__position", -1, "bad_value"),
        ("payload__item_id", 5, "bad_type"),
    ],
)
def test_when_kept_field_holds_an_identifier_or_fails_its_format_then_only_it_is_dropped(
    path: str, value: Any, reason: str
) -> None:
    pipeline = consented()
    out = by_route(pipeline.process(planted(**{path: value}), SRC))
    assert set(out) == {Route.RECOMMENDATION, Route.AD_ANALYTICS}  # the event goes on
    block, _, name = path.rpartition("__")
    field = f"{block}.{name}"
    for record in out.values():
        assert name not in record[block]
        assert len(str(value)) < 6 or str(value) not in json.dumps(record)
    assert pipeline.stats[f"dropped_field:{field}:{reason}"] == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("device__model", "2211133C"),
        ("device__model", "SM-G9910"),
        ("device__app_version", "1.0.0.1"),
        ("network__carrier", "中国移动"),
        ("payload__item_id", "v-88812"),
        ("payload__amount_cents", 100_000_000),
        ("payload__duration_ms", 86_400_000),
    ],
)
def test_when_kept_field_is_ordinary_then_it_is_kept(path: str, value: Any) -> None:
    pipeline = consented()
    out = by_route(pipeline.process(planted(**{path: value}), SRC))
    block, _, name = path.rpartition("__")
    assert out[Route.RECOMMENDATION][block][name] == value
    assert not [k for k in pipeline.stats if k.startswith("dropped_field:")]


def test_when_event_id_is_sent_then_each_domain_gets_its_own_pseudonym_of_it() -> None:
    pipeline = consented()
    out = by_route(pipeline.process(planted(event_id=PHONE), SRC))
    again = by_route(pipeline.process(planted(event_id=PHONE), SRC))
    other = by_route(pipeline.process(planted(event_id=PHONE + "0"), SRC))
    for route, domain in (
        (Route.RECOMMENDATION, Domain.RECOMMENDATION),
        (Route.AD_ANALYTICS, Domain.AD_ANALYTICS),
    ):
        expected = Pseudonymizer(KEYRING.active(domain)).pseudonym(IdKind.EVENT_ID, PHONE)
        assert out[route]["event_id"] == expected == again[route]["event_id"]
        assert other[route]["event_id"] != expected  # unique: consumers can deduplicate
    assert out[Route.RECOMMENDATION]["event_id"] != out[Route.AD_ANALYTICS]["event_id"]


def test_when_identifiers_are_planted_in_kept_fields_then_transform_routes_without_them() -> None:
    fields = {
        "event_id": PHONE,
        "payload__item_id": IMEI,
        "payload__room_id": ID_CARD,
        "device__model": "IMEI 356938035643809",
        "network__carrier": PHONE,
        "payload__amount_cents": int(IMEI),
    }
    line = orjson.dumps(
        {"topic": "raw.behaviour", "key": "u1", "value": json.loads(planted(**fields))}
    )
    pipeline = consented()
    out = io.BytesIO()
    totals = run_transform(pipeline, io.BytesIO(line + b"\n"), out)
    lines = out.getvalue().splitlines()
    assert totals["routed"] == 1
    assert {json.loads(x)["topic"] for x in lines} == {"clean.recommendation", "clean.ad-analytics"}
    for raw in (PHONE, IMEI, ID_CARD):
        assert raw.encode() not in out.getvalue()
    assert LeakScanner.from_raw_events([planted(**fields)]).scan_lines(lines) == []
    text = summary(totals, pipeline.stats)
    assert "dropped fields: device.model identifier 1" in text
    assert "payload.amount_cents bad_value 1" in text


@pytest.mark.parametrize(
    "spelling", ["203.000.113.007", "0xCB.0x00.0x71.0x07", "203.113.7", "::ffff:0313.0.0161.07"]
)
def test_when_ipv4_is_spelled_so_parsers_disagree_then_it_is_dropped_and_counted(
    spelling: str,
) -> None:
    pipeline = consented()
    plain = by_route(pipeline.process(planted(location=None), SRC))[Route.RECOMMENDATION]
    assert plain["location"]["source"] == "ip"  # a plain address locates the event
    out = by_route(pipeline.process(planted(location=None, network__ip=spelling), SRC))
    assert "ip" not in out[Route.RECOMMENDATION]["network"]
    assert "location" not in out[Route.RECOMMENDATION]  # never from a guessed address
    assert pipeline.stats["dropped_field:network.ip:ambiguous_ip"] == 1


def test_when_identifiers_are_full_width_then_the_pipeline_gives_the_ascii_pseudonyms() -> None:
    full_width = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
    pipeline = consented()
    ascii_out = by_route(pipeline.process(planted(), SRC))[Route.RECOMMENDATION]
    wide = planted(
        device__imei=str(EVENT["device"]["imei"]).translate(full_width),
        device__mac=str(EVENT["device"]["mac"]).translate(full_width),
        user_id=str(EVENT["user_id"]).translate(full_width),
    )
    wide_out = by_route(pipeline.process(wide, SRC))[Route.RECOMMENDATION]
    # (the MAC is dropped from this route; its spellings are held together in test_canonical)
    assert wide_out["device"]["imei"] == ascii_out["device"]["imei"]
    assert wide_out["user_id"] == ascii_out["user_id"]
