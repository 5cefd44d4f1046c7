"""The worker's start-up choices against the embedded broker: faust's plain path (what the
worker runs on untested faust or aiokafka versions, forced here with ``fast_path = false``)
gives exactly the fast path's outcomes, and the ``policy`` setting is the policy the
outputs follow."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from processor.devtools import synth
from processor.pipeline import build
from processor.pipeline.outcome import Route
from schemas import load_policy
from tests.integration.conftest import Stack, consent_first, expected_outcomes

pytestmark = pytest.mark.broker


def test_faust_plain_path_gives_every_input_its_expected_outcome(stack: Stack) -> None:
    records = consent_first(list(synth.generate(1500, seed=23, users=120, malformed=0.01)))
    consent_n = sum(1 for r in records if r[0] == synth.CONSENT)
    worker = stack.start_worker(fast_path="false")
    # faust's stream interleaves the topics, so the consent records go in first (the fast
    # path reads a fetch's consent partitions first)
    fed = stack.feed_placed(records[:consent_n])
    stack.wait_processed(consent_n)
    fed += stack.feed_placed(records[consent_n:])
    account = stack.wait_accounted(expected_outcomes(stack.keyring, fed), 90)
    account.assert_exact()  # duplicates are allowed (at-least-once: a producer retry, a rebalance)
    stack.wait_processed(len(fed))
    assert worker.stats()["counts"]["batches"] >= 1
    # the start line names the path and the pipeline's build (compiled or plain, setup.py)
    started = f"plain faust path; pipeline {build()}".encode()
    assert any(started in line for line in stack.log_lines())


def test_a_policy_that_drops_a_field_is_the_policy_of_the_outputs(
    stack: Stack, tmp_path: Path
) -> None:
    document = load_policy()
    document["policy"] = "operator-no-brand/1"
    del document["routes"][Route.RECOMMENDATION.value]["fields"]["device.brand"]
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(document))
    records = list(synth.generate(300, seed=29, users=40))
    stack.start_worker(policy=str(policy))
    stack.wait_processed(stack.feed(records))
    recommendation = stack.output(Route.RECOMMENDATION)
    assert recommendation
    for record in recommendation:
        assert dict(record.headers)["policy"] == b"operator-no-brand/1"
        assert "brand" not in (orjson.loads(record.value).get("device") or {})
    ads = [orjson.loads(r.value) for r in stack.output(Route.AD_ANALYTICS)]
    assert any("brand" in (value.get("device") or {}) for value in ads)  # that route keeps it
    started = [line for line in stack.log_lines() if b"policy operator-no-brand/1" in line]
    assert started, "the worker logs the policy it started with"
