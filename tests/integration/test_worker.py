"""The worker against the real embedded broker: counts, consent, erasure, rebalancing,
SIGKILL and restart, and a leak scan of every output topic."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import orjson
import pytest

from processor import synth
from processor.consent import MemoryConsentState
from processor.outcome import Route, SourceRef
from processor.pipeline import Pipeline
from processor.scan import LeakScanner
from tests.integration.conftest import (
    Stack,
    by_event,
    consent_json,
    event_json,
    kill9,
    quarantine_sources,
    routes_by_event,
    wait_for,
)

pytestmark = pytest.mark.broker


def _consent_first(
    records: list[tuple[str, bytes | None, bytes]],
) -> list[tuple[str, bytes | None, bytes]]:
    """All consent records first (each topic keeps its order): no cross-topic race."""
    return [r for r in records if r[0] == synth.CONSENT] + [
        r for r in records if r[0] != synth.CONSENT
    ]


def _expected(
    stack: Stack, records: list[tuple[str, bytes | None, bytes]]
) -> tuple[dict[str, set[str]], int, Counter[str]]:
    """What the pure pipeline makes of the records in this order: routes per event_id, the
    number quarantined, and the pipeline's counters."""
    pipeline = Pipeline(stack.keyring, consent=MemoryConsentState())
    routes: dict[str, set[str]] = defaultdict(set)
    quarantined = 0
    for source, key, value in records:
        outcome = pipeline.process(value, SourceRef(source), key)
        if outcome.quarantined:
            quarantined += 1
        for record in outcome.records:
            if record.route in (Route.RECOMMENDATION, Route.AD_ANALYTICS):
                routes[str(record.json()["event_id"])].add(record.route.value)
    return dict(routes), quarantined, pipeline.stats


def test_end_to_end_every_input_is_routed_quarantined_or_suppressed(stack: Stack) -> None:
    records = list(synth.generate(4000, seed=7, users=300, malformed=0.01))
    stack.start_worker()
    fed = stack.feed(records)
    stack.wait_processed(fed)
    worker = stack.workers[0]
    worker.stop()
    stats = worker.stats()
    counts = stats["counts"]
    assert counts["in"] == fed == len(records)
    assert counts["routed"] + counts["quarantined"] + counts["suppressed"] == fed
    assert counts["quarantined"] > 0
    for route, topic in stack.settings.output_topics.items():
        written = stack.output(route)
        assert len(written) == counts.get(f"out:{topic}", 0), route
        for record in written[:50]:
            headers = dict(record.headers)
            assert {"schema", "policy", "key-ids"} <= set(headers), route
    assert len(quarantine_sources(stack.output(Route.QUARANTINE))) == counts["quarantined"]


def test_no_raw_identifier_in_any_output_topic(stack: Stack) -> None:
    records = list(synth.generate(600, seed=11, users=60))
    stack.start_worker()
    stack.wait_processed(stack.feed(records))
    scanner = LeakScanner.from_raw_events(v for _, _, v in records)
    lines: list[bytes] = []
    for route in Route:
        for record in stack.output(route):
            lines.append(
                orjson.dumps(
                    {
                        "topic": record.topic,
                        "key": record.key.decode() if record.key else None,
                        "headers": {k: v.decode() for k, v in record.headers},
                        "value": orjson.loads(record.value),
                    }
                )
            )
    changelog = stack.settings.changelog_topic
    from processor.demo import read_topic

    for record in read_topic(stack.broker.address, changelog, timeout=2.0):
        lines.append(
            orjson.dumps({"key": orjson.loads(record.key), "value": orjson.loads(record.value)})
        )
    assert len(lines) > 500
    findings = scanner.scan_lines(lines)
    assert findings == []


def test_consent_change_takes_effect_for_later_events(stack: Stack) -> None:
    stack.start_worker()
    user = "u424242"
    stack.feed([(synth.CONSENT, user.encode(), consent_json(user, 1000, ads=True))])
    stack.feed([(synth.RAW_BEHAVIOUR, user.encode(), event_json("e-before", user))])
    stack.wait_processed(2)
    stack.feed([(synth.CONSENT, user.encode(), consent_json(user, 2000, ads=False))])
    stack.wait_processed(3)
    stack.feed([(synth.RAW_BEHAVIOUR, user.encode(), event_json("e-after", user))])
    stack.wait_processed(4)
    routes = routes_by_event(stack)
    assert routes["e-before"] == {"recommendation", "ad-analytics"}
    assert routes["e-after"] == {"recommendation"}


def test_erasure_notice_carries_pseudonyms_and_later_events_are_suppressed(stack: Stack) -> None:
    stack.start_worker()
    user = "u777001"
    stack.feed(
        [
            (synth.CONSENT, user.encode(), consent_json(user, 1000)),
            (synth.RAW_BEHAVIOUR, user.encode(), event_json("e-1", user)),
        ]
    )
    stack.wait_processed(2)
    stack.feed(
        [(synth.CONSENT, user.encode(), consent_json(user, 2000, account="deletion_requested"))]
    )
    stack.wait_processed(3)
    stack.feed(
        [(synth.RAW_BEHAVIOUR, user.encode(), event_json(f"e-late-{i}", user)) for i in range(5)]
        + [(synth.RAW_DEVICE, user.encode(), event_json("e-late-device", user))]
        + [(synth.CONSENT, user.encode(), consent_json(user, 3000, account="deleted"))]
    )
    stack.wait_processed(10)
    erasures = [orjson.loads(r.value) for r in stack.output(Route.ERASURE)]
    assert len(erasures) == 1
    recommendation = [orjson.loads(r.value) for r in stack.output(Route.RECOMMENDATION)]
    assert [r["event_id"] for r in recommendation] == ["e-1"]
    assert recommendation[0]["user_id"] in erasures[0]["pseudonyms"]["recommendation"]
    assert erasures[0]["pseudonyms"]["ad-analytics"]
    ads = [orjson.loads(r.value) for r in stack.output(Route.AD_ANALYTICS)]
    assert [a["event_id"] for a in ads] == ["e-1"]
    assert ads[0]["user_id"] in erasures[0]["pseudonyms"]["ad-analytics"]
    assert user not in str(erasures)


def test_two_workers_split_partitions_and_one_takes_over_after_sigkill(stack: Stack) -> None:
    first = stack.start_worker()
    records = _consent_first(list(synth.generate(6000, seed=3, users=400)))
    stack.feed(records[:500])
    stack.wait_processed(500)
    second = stack.start_worker()
    wait_for(lambda: second.proc.poll() is None and second.log_file.exists(), 10)
    time.sleep(5)  # let the group rebalance onto two members
    stack.feed(records[500:3500])
    wait_for(lambda: int(second.stats().get("in", 0)) > 0, 40, lambda: "second worker got nothing")
    stack.wait_processed(3500)
    assert int(first.stats().get("in", 0)) > 0
    kill9(first)
    stack.feed(records[3500:])
    expected, _, _ = _expected(stack, records)
    wait_for(
        lambda: set(routes_by_event(stack)) >= set(expected),
        60,
        lambda: f"{len(set(expected) - set(routes_by_event(stack)))} events missing",
    )
    assert routes_by_event(stack) == expected


def test_sigkill_and_restart_loses_no_event(stack: Stack) -> None:
    records = _consent_first(list(synth.generate(12_000, seed=5, users=800, malformed=0.005)))
    consent_n = sum(1 for r in records if r[0] == synth.CONSENT)
    worker = stack.start_worker()
    stack.feed(records[:consent_n])
    stack.wait_processed(consent_n)
    time.sleep(1.0)  # past one commit interval: the consent offsets are committed
    stack.feed(records[consent_n:])
    wait_for(lambda: stack.processed() >= consent_n + 3000, 60)
    kill9(worker)
    restarted = stack.start_worker()
    expected, quarantined, _ = _expected(stack, records)

    def complete() -> bool:
        return set(routes_by_event(stack)) >= set(expected)

    wait_for(complete, 90, lambda: f"{len(set(expected) - set(routes_by_event(stack)))} missing")
    observed = routes_by_event(stack)
    assert observed == expected  # nothing lost, nothing routed where it must not go
    assert len(quarantine_sources(stack.output(Route.QUARANTINE))) == quarantined
    recommendation = by_event(stack.output(Route.RECOMMENDATION))
    duplicates = sum(n - 1 for n in recommendation.values())
    restarted_in = int(restarted.stats().get("in", 0))
    print(
        f"\nkill -9 after {len(records) - restarted_in} of {len(records)}: "
        f"restart reprocessed {restarted_in}, {duplicates} duplicate recommendation records"
    )
