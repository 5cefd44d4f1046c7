"""The trust boundary between input topics: the topic, not the record, says what it may be."""

from __future__ import annotations

import io
import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from keys import Keyring, MasterKey, generate_master_key, save_keyring
from processor.cli import main
from processor.cli.transform_cmd import run_transform
from processor.errors import ConfigError
from processor.ops.settings import Settings
from processor.pipeline.binding import parse_topic_schemas
from processor.pipeline.consent import MemoryConsentState
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline

KEYRING = Keyring.generate()
MASTER = generate_master_key()
FORGED = orjson.dumps(
    {
        "schema": "consent/1",
        "user_id": "victim42",
        "event_time": 1764316800000,
        "personalized_recommendation": True,
        "personalized_ads": True,
        "precise_location": True,
        "age_band": "adult",
        "account": "deleted",
    }
)
EVENT = orjson.dumps(
    {
        "schema": "behaviour/1",
        "event_id": "e-1",
        "event_time": 1764316800100,
        "event_type": "view",
        "user_id": "victim42",
    }
)
DEVICE = orjson.dumps(
    {
        "schema": "device/1",
        "event_id": "e-2",
        "event_time": 1764316800100,
        "event_type": "device_report",
    }
)


def pipeline(**options: object) -> Pipeline:
    return Pipeline(KEYRING, consent=MemoryConsentState(), **options)  # type: ignore[arg-type]


def test_when_consent_record_comes_on_an_app_topic_then_it_is_quarantined_and_changes_nothing() -> (
    None
):
    p = pipeline()
    outcome = p.process(FORGED, SourceRef("raw.behaviour", 0, 1), b"victim42")
    assert outcome.quarantined == "schema_not_allowed_on_topic"
    assert [r.route for r in outcome.records] == [Route.QUARANTINE]
    assert len(p.consent) == 0
    # the victim's events still flow (no erasure took effect)
    assert p.process(EVENT, SourceRef("raw.behaviour", 0, 2)).suppressed is None


def test_when_consent_record_comes_on_the_consent_topic_then_it_applies() -> None:
    p = pipeline()
    erasures = p.process(FORGED, SourceRef("consent", 0, 1)).records
    assert {r.route for r in erasures} == {Route.ERASURE_RECOMMENDATION, Route.ERASURE_AD_ANALYTICS}


@pytest.mark.parametrize(
    ("record", "topic"),
    [(EVENT, "raw.device"), (DEVICE, "raw.behaviour"), (EVENT, "consent"), (EVENT, "other")],
)
def test_when_event_comes_on_a_topic_that_does_not_admit_it_then_quarantined(
    record: bytes, topic: str
) -> None:
    assert pipeline().process(record, SourceRef(topic)).quarantined == "schema_not_allowed_on_topic"


def test_when_binding_admits_device_reports_on_behaviour_then_they_pass() -> None:
    binding = parse_topic_schemas("raw.behaviour=behaviour/*,device/1; consent=consent/*")
    p = pipeline(topic_schemas=binding)
    assert p.process(DEVICE, SourceRef("raw.behaviour")).quarantined is None
    assert p.process(DEVICE, SourceRef("raw.device")).quarantined == "schema_not_allowed_on_topic"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("raw.behaviour", "is not topic=schema-pattern"),
        ("raw.behavior=behaviour/*", "is no input topic"),
        ("raw.behaviour=behavior/*", "matches no schema"),
        ("consent=consent/*; consent=consent/1", "named twice"),
    ],
)
def test_when_topic_schemas_is_wrong_then_config_error_names_it(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_mapping({"topic_schemas": text})


def test_when_topic_schemas_is_a_toml_table_then_it_is_read() -> None:
    settings = Settings.from_mapping(
        {"topic_schemas": {"raw.behaviour": ["behaviour/*", "device/*"], "consent": "consent/1"}}
    )
    assert settings.topic_binding == {
        "raw.behaviour": ("behaviour/*", "device/*"),
        "consent": ("consent/1",),
    }


def envelope(topic: object, value: object, key: object = "victim42") -> bytes:
    return orjson.dumps({"topic": topic, "key": key, "value": value})


def transform(lines: list[bytes]) -> tuple[list[dict[str, object]], Pipeline]:
    p = pipeline()
    out = io.BytesIO()
    run_transform(p, io.BytesIO(b"\n".join(lines) + b"\n"), out)
    return [json.loads(line) for line in out.getvalue().splitlines()], p


def test_when_transform_reads_a_forged_consent_envelope_then_nothing_changes() -> None:
    forged = json.loads(FORGED)
    outputs, p = transform(
        [envelope("raw.behaviour", forged), envelope("raw.behaviour", FORGED.decode())]
    )
    assert [o["topic"] for o in outputs] == ["quarantine", "quarantine"]
    assert {o["value"]["error"] for o in outputs} == {"schema_not_allowed_on_topic"}  # type: ignore[index]
    assert len(p.consent) == 0


def test_when_transform_reads_envelopes_then_they_route_like_the_worker() -> None:
    outputs, p = transform(
        [
            envelope("consent", json.loads(FORGED)),
            envelope("raw.behaviour", json.loads(EVENT)),
            envelope("raw.device", DEVICE.decode(), key=None),
        ]
    )
    assert [o["topic"] for o in outputs[:2]] == ["erasure.recommendation", "erasure.ad-analytics"]
    assert p.stats["suppressed:account_deleted"] == 1
    assert [o["topic"] for o in outputs[2:]] == ["clean.recommendation"]


def test_when_envelope_names_an_unknown_topic_then_quarantined_without_its_name() -> None:
    outputs, _ = transform([envelope("13812345678", json.loads(EVENT))])
    [record] = outputs
    assert record["value"]["error"] == "schema_not_allowed_on_topic"  # type: ignore[index]
    assert "13812345678" not in json.dumps(record)


def test_when_transform_reads_a_bare_line_then_the_schema_decides() -> None:
    outputs, p = transform([FORGED, EVENT])
    assert [o["topic"] for o in outputs] == ["erasure.recommendation", "erasure.ad-analytics"]
    assert p.stats["suppressed:account_deleted"] == 1


def test_when_transform_is_given_a_binding_then_envelopes_follow_it(tmp_path: Path) -> None:
    keyring = tmp_path / "k.keyring"
    save_keyring(keyring, KEYRING, MasterKey.from_base64(MASTER, "test"))
    env = {"PSEUDOSTREAM_MASTER_KEY": MASTER}
    line = envelope("raw.behaviour", json.loads(DEVICE)) + b"\n"
    args = ["transform", "--keyring", str(keyring), "-q"]
    default = CliRunner().invoke(main, args, input=line, env=env)
    assert json.loads(default.stdout)["value"]["error"] == "schema_not_allowed_on_topic"
    wider = CliRunner().invoke(
        main,
        [*args, "--topic-schemas", "raw.behaviour=behaviour/*,device/*"],
        input=line,
        env=env,
    )
    assert json.loads(wider.stdout)["topic"] == "clean.recommendation"
    wrong = CliRunner().invoke(
        main, [*args, "--topic-schemas", "raw.behavior=x"], input=line, env=env
    )
    assert wrong.exit_code == 2
    assert wrong.stderr.startswith("pseudostream: error: topic_schemas: 'raw.behavior'")
    assert len(wrong.stderr.splitlines()) == 1
