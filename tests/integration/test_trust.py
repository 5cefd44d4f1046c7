"""Trust boundaries against the real broker: a consent record forged on an app topic, a
record with a huge key, a quarantine record over 1 MB replayed, and the worker's web pages."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.devtools import synth
from processor.devtools.broker import free_port
from processor.kafka.read import read_topic
from processor.kafka.write import produce
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline
from processor.pipeline.quarantine import Sealer, request_bytes
from tests.integration.conftest import (
    Stack,
    consent_json,
    event_json,
    http_get,
    routes_by_event,
    wait_for,
)

pytestmark = pytest.mark.broker


def test_forged_consent_on_an_app_topic_is_quarantined_and_changes_nothing(stack: Stack) -> None:
    stack.start_worker()
    victim = "victim42"
    stack.feed([(synth.CONSENT, victim.encode(), consent_json(victim, 1000, ads=True))])
    stack.wait_processed(1)
    forged = consent_json(victim, 2000, ads=True, account="deleted")
    stack.feed(
        [
            (synth.RAW_BEHAVIOUR, victim.encode(), forged),
            (synth.RAW_DEVICE, victim.encode(), forged),
            (synth.RAW_BEHAVIOUR, victim.encode(), event_json("e-after", victim)),
        ]
    )
    stack.wait_processed(4)
    quarantined = [orjson.loads(r.value) for r in stack.output(Route.QUARANTINE)]
    assert [q["error"] for q in quarantined] == ["schema_not_allowed_on_topic"] * 2
    for erasure in (Route.ERASURE_RECOMMENDATION, Route.ERASURE_AD_ANALYTICS):
        assert stack.output(erasure) == []  # no notice naming the victim's pseudonyms
    # the consent state is the genuine one: the victim's later event still reaches both routes
    assert routes_by_event(stack)["e-after"] == {"recommendation", "ad-analytics"}
    assert len(list(read_topic(stack.broker.address, stack.settings.changelog_topic, idle=1))) == 1


def test_the_worker_serves_its_own_pages_and_none_of_fausts(stack: Stack) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stack.env["web_port"] = str(port)
    stack.start_worker()
    wait_for(lambda: http_get(base + "/health")[0] == 200, 30, lambda: "no /health")
    # no consent table (age band, ad consent, account status) or cluster map over HTTP
    for page in ("/table/", "/table/consent/", "/router/", "/stats/", "/graph/", "/performance/"):
        assert http_get(base + page)[0] == 404, page
    assert http_get(base + "/metrics")[0] == 200
    assert http_get(base + "/ready")[0] in (200, 503)


def test_a_record_with_a_huge_key_is_quarantined_by_its_hash_and_the_worker_goes_on(
    stack: Stack,
) -> None:
    worker = stack.start_worker()
    key = b"k" * 1_300_000
    stack.feed(
        [
            (synth.RAW_BEHAVIOUR, key, b"not json"),
            (synth.RAW_BEHAVIOUR, b"u1", event_json("e-1", "u1")),
        ]
    )
    stack.wait_processed(2)
    assert worker.proc.poll() is None
    [record] = stack.output(Route.QUARANTINE)
    body = orjson.loads(record.value)
    assert body["error"] == "bad_json"
    assert len(record.value) < request_bytes(stack.settings.max_record_bytes)
    envelope = Sealer(stack.keyring, "default/1").envelope(body)
    assert envelope["key"] is None
    assert envelope["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert routes_by_event(stack)["e-1"] == {"recommendation"}


def test_replay_of_a_quarantine_record_over_1_mb_requarantines_it(stack: Stack) -> None:
    keyring = stack.keyring
    big = b"{" + b"7" * 1_500_000  # bad JSON, quarantined by a worker with a 2 MB limit
    outcome = Pipeline(keyring, max_record_bytes=2_000_000).process(
        big, SourceRef("raw.behaviour", 0, 9), b"u1"
    )
    [record] = outcome.records
    assert len(record.value) > 2_000_000
    produce(
        stack.broker.address, [(stack.settings.output_topics[Route.QUARANTINE], None, record.value)]
    )

    env = {f"PSEUDOSTREAM_{k.upper()}": v for k, v in stack.env.items()}
    result = CliRunner().invoke(main, ["quarantine", "replay", "-q"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 quarantined again" in result.stdout
    [again] = [r for r in stack.output(Route.QUARANTINE) if r.headers]
    again_body = orjson.loads(again.value)
    assert again_body["error"] == "too_large"  # the 1 MiB limit of this configuration
    assert len(again.value) < request_bytes(stack.settings.max_record_bytes)
