"""`quarantine replay` against the real embedded broker: a record quarantined by a limit
since raised routes again, consent is loaded first, bad records are quarantined once per
run, broken seals are reported, and a second run continues where the first stopped."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.kafka.read import read_topic
from processor.kafka.replay import Replayer
from processor.kafka.write import produce
from processor.ops.replay import RUN_HEADER
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline
from tests.integration.conftest import Stack, by_item, consent_json, event_json

pytestmark = pytest.mark.broker

T0 = 1_764_316_800_000


def _quarantined(pipeline: Pipeline, raw: bytes, source: SourceRef, key: bytes | None) -> bytes:
    outcome = pipeline.process(raw, source, key)
    assert outcome.quarantined, outcome
    (record,) = outcome.records
    return record.value


def test_replay_routes_fixed_records_again_and_requarantines_bad_ones(stack: Stack) -> None:
    keyring = stack.keyring
    settings = stack.settings
    quarantine_topic = settings.output_topics[Route.QUARANTINE]
    # consent of u1 allows ads: the replayed event only gets an ad record if replay loads it
    stack.feed([("consent", b"u1", consent_json("u1", T0))])

    tiny = Pipeline(keyring, max_record_bytes=60)  # the "bug": a limit far too small
    good = _quarantined(
        tiny, event_json("e-good", "u1", event_time=T0 + 1), SourceRef("raw.behaviour", 1, 7), b"u1"
    )
    bad = _quarantined(tiny, b"{not json", SourceRef("raw.behaviour", 2, 3), b"u9")
    deleted = _quarantined(
        tiny, consent_json("u2", T0, account="deleted"), SourceRef("consent", 0, 5), b"u2"
    )
    tampered = orjson.loads(good)
    tampered["source"]["offset"] = 8  # the seal is bound to its source: it no longer opens
    produce(
        stack.broker.address,
        [
            (quarantine_topic, b"k1", good),
            (quarantine_topic, b"k2", bad),
            (quarantine_topic, b"k3", deleted),
            (quarantine_topic, b"k4", orjson.dumps(tampered)),
            (quarantine_topic, b"k5", b"not a quarantine record"),
        ],
    )

    report = Replayer(settings, keyring, Pipeline(keyring)).run()
    counts = report.counts
    assert report.consent_records == 1
    assert counts["read"] == 5
    assert (counts["routed"], counts["quarantined"], counts["consent_requeued"]) == (1, 1, 1)
    assert (counts["unseal_failed"], counts["unreadable"]) == (1, 1)
    assert report.details["quarantined:bad_json"] == 1
    assert any("seal" in line for line in report.problems)

    recommendation = stack.output(Route.RECOMMENDATION)
    assert by_item(recommendation) == {"e-good": 1}
    assert by_item(stack.output(Route.AD_ANALYTICS)) == {"e-good": 1}  # consent was loaded
    (rec,) = recommendation
    assert rec.key is not None and b"u1" not in rec.key  # the worker's pseudonymous key
    assert {k for k, _ in rec.headers} >= {"schema", "policy", "key-ids"}

    requeued = stack.output(Route.QUARANTINE)
    assert len(requeued) == 6
    # Partitions are read one after the other: the re-quarantined record can be anywhere.
    [again] = [r for r in requeued if RUN_HEADER in dict(r.headers or ())]
    assert orjson.loads(again.value)["error"] == "bad_json"
    assert dict(again.headers)[RUN_HEADER] == report.run_id.encode()
    consent_topic = settings.input_topics["consent"]
    consent = read_topic(stack.broker.address, consent_topic, idle=1.0)
    assert sorted(orjson.loads(r.value)["user_id"] for r in consent) == ["u1", "u2"]  # handed back

    # a second run continues after the committed offsets: only the re-quarantined record
    second = Replayer(settings, keyring, Pipeline(keyring)).run()
    assert (second.counts["read"], second.counts["quarantined"]) == (1, 1)

    # from the beginning, dry: every original once, duplicates skipped, nothing produced
    env = {f"PSEUDOSTREAM_{k.upper()}": v for k, v in stack.env.items()}
    result = CliRunner().invoke(
        main, ["quarantine", "replay", "--from-beginning", "--dry-run", "-q"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "7 quarantine records read" in result.stdout
    assert "2 duplicates skipped" in result.stdout
    assert len(stack.output(Route.QUARANTINE)) == 7
