"""The worker against the real embedded broker: counts, consent, erasure, rebalancing,
a SIGKILL takeover, and a leak scan of every output topic (the fault drills, a SIGKILL and
restart among them, are in test_drills.py)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from processor.devtools import synth
from processor.ops.scan import LeakScanner
from processor.pipeline.outcome import Route
from tests.integration.conftest import (
    Stack,
    consent_first,
    consent_json,
    event_json,
    expected_outcomes,
    kill9,
    quarantine_sources,
    routes_by_event,
    wait_for,
)

pytestmark = pytest.mark.broker


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
    cpu = stats["cpu_us_per_event"]  # where the event loop's thread spent its CPU
    assert set(cpu) == {"pipeline", "produce", "settle", "other", "total"}
    assert cpu["pipeline"] > 0 and cpu["produce"] > 0
    assert cpu["total"] == pytest.approx(sum(v for k, v in cpu.items() if k != "total"), abs=0.5)
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
    lines = stack.output_lines()
    assert len(lines) > 500
    assert LeakScanner.from_raw_events(v for _, _, v in records).scan_lines(lines) == []


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


def erasure_notices(stack: Stack, timeout: float = 2.0) -> dict[Route, list[dict[str, Any]]]:
    return {
        route: [orjson.loads(r.value) for r in stack.output(route, timeout)]
        for route in (Route.ERASURE_RECOMMENDATION, Route.ERASURE_AD_ANALYTICS)
    }


def test_erasure_notices_carry_one_domain_each_and_later_events_are_suppressed(
    stack: Stack,
) -> None:
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
    notices = erasure_notices(stack)
    rec_notices, ad_notices = (
        notices[Route.ERASURE_RECOMMENDATION],
        notices[Route.ERASURE_AD_ANALYTICS],
    )
    assert len(rec_notices) == len(ad_notices) == 1
    recommendation = [orjson.loads(r.value) for r in stack.output(Route.RECOMMENDATION)]
    assert [r["payload"]["item_id"] for r in recommendation] == ["e-1"]
    assert recommendation[0]["user_id"] in rec_notices[0]["user"]
    ads = [orjson.loads(r.value) for r in stack.output(Route.AD_ANALYTICS)]
    assert [a["payload"]["item_id"] for a in ads] == ["e-1"]
    assert ads[0]["user_id"] in ad_notices[0]["user"]
    for notice in (*rec_notices, *ad_notices):
        prefix = "rec-" if notice["domain"] == "recommendation" else "ad-"
        assert all(p.startswith(prefix) for p in (*notice["user"], *notice["devices"]))
    assert user not in str(notices)


def test_consent_applies_in_topic_order_whatever_its_event_time(stack: Stack) -> None:
    stack.start_worker()
    user = "u424243"
    key = user.encode()
    stack.feed([(synth.CONSENT, key, consent_json(user, 5000, ads=True))])
    stack.feed([(synth.RAW_BEHAVIOUR, key, event_json("e-before", user))])
    stack.wait_processed(2)
    stack.feed([(synth.CONSENT, key, consent_json(user, 1000, ads=False))])  # clock behind
    stack.wait_processed(3)
    stack.feed([(synth.RAW_BEHAVIOUR, key, event_json("e-after", user))])
    stack.wait_processed(4)
    routes = routes_by_event(stack)
    assert routes["e-before"] == {"recommendation", "ad-analytics"}
    assert routes["e-after"] == {"recommendation"}


def test_deletion_is_final_and_reaches_devices_after_a_sigkill_and_restart(stack: Stack) -> None:
    """A deleted user's devices are named in the notices, and neither the user nor those
    devices show up again: not after `active`, not logged out, not under another account,
    and not after the worker was killed and a new one recovered the state."""
    user, other = "u880001", "u880002"
    imei = "490154203237518"
    first = stack.start_worker()
    stack.feed(
        [
            (synth.CONSENT, user.encode(), consent_json(user, 1000)),
            (synth.CONSENT, other.encode(), consent_json(other, 1000)),
            (synth.RAW_BEHAVIOUR, user.encode(), event_json("e-1", user, imei=imei)),
        ]
    )
    stack.wait_processed(3)
    stack.feed([(synth.CONSENT, user.encode(), consent_json(user, 2000, account="deleted"))])
    stack.wait_processed(4)
    wait_for(lambda: all(erasure_notices(stack, 0.5).values()), 20, lambda: "no notices")
    kill9(first)
    second = stack.start_worker()
    android_id = b"9774d56d682e549c"  # logged-out events are keyed by the Android ID
    stack.feed([(synth.CONSENT, user.encode(), consent_json(user, 3000))])  # ignored: deleted
    wait_for(lambda: int(second.stats().get("in", 0)) >= 1, 90, lambda: f"{second.stats()}")
    stack.feed(
        [
            (synth.RAW_BEHAVIOUR, user.encode(), event_json("e-2", user, imei=imei)),
            (synth.RAW_BEHAVIOUR, android_id, event_json("e-3", None, imei=imei)),
            (synth.RAW_BEHAVIOUR, other.encode(), event_json("e-4", other, imei=imei)),
        ]
    )
    wait_for(lambda: int(second.stats().get("in", 0)) >= 4, 90, lambda: f"{second.stats()}")
    notices = erasure_notices(stack)
    named = {
        p
        for route_notices in notices.values()
        for n in route_notices
        for p in (*n["user"], *n["devices"])
    }
    first_records = {
        r["topic"]: r
        for r in map(orjson.loads, stack.output_lines())
        if r["value"].get("payload", {}).get("item_id") == "e-1"
    }
    for topic, record in first_records.items():
        device = record["value"]["device"]
        assert {device["imei"], device["oaid"]} <= named, topic  # its Android ID is a placeholder
    routes = routes_by_event(stack)
    assert "e-2" not in routes
    assert routes["e-3"] == {"recommendation"} and routes["e-4"] == {
        "recommendation",
        "ad-analytics",
    }
    later = [
        line
        for line in stack.output_lines()
        if orjson.loads(line)["value"].get("payload", {}).get("item_id") in ("e-3", "e-4")
    ]
    assert later and not any(p.encode() in line for line in later for p in named)
    assert second.stats()["erased_identifiers"] >= 3  # the user, the IMEI, the OAID


def test_an_erasure_on_one_worker_reaches_the_events_the_other_worker_processes(
    stack: Stack,
) -> None:
    """The erased identifiers are global: after a deletion on one worker, a device of the
    deleted user sending under other accounts, on partitions the other worker holds, never
    shows its old pseudonyms (every worker follows the erased-identifier topic)."""
    from aiokafka.partitioner import murmur2

    partitions = stack.settings.partitions
    imei = "352099001761481"
    user = "u990001"
    others: dict[int, str] = {}  # one consented account on every input partition
    for n in range(990_002, 990_100):
        others.setdefault((murmur2(f"u{n}".encode()) & 0x7FFFFFFF) % partitions, f"u{n}")
    assert len(others) == partitions
    first = stack.start_ready_worker()
    second = stack.start_ready_worker()  # ready: the group rebalanced onto both
    consents = [
        (synth.CONSENT, u.encode(), consent_json(u, 1000)) for u in (user, *others.values())
    ]
    fed = stack.feed(
        [*consents, (synth.RAW_BEHAVIOUR, user.encode(), event_json("e-1", user, imei=imei))]
    )
    stack.wait_processed(fed)
    fed += stack.feed([(synth.CONSENT, user.encode(), consent_json(user, 2000, account="deleted"))])
    stack.wait_processed(fed)
    wait_for(lambda: all(erasure_notices(stack, 0.5).values()), 30, lambda: "no notices")
    time.sleep(2.0)  # the other worker follows the erased identifiers every second
    before = [int(w.stats().get("in", 0)) for w in (first, second)]
    fed += stack.feed(
        [
            (synth.RAW_BEHAVIOUR, u.encode(), event_json(f"e-other-{p}", u, imei=imei))
            for p, u in others.items()
        ]
    )
    stack.wait_processed(fed)
    after = [int(w.stats().get("in", 0)) for w in (first, second)]
    assert all(a > b for a, b in zip(after, before, strict=True)), "one worker got every event"
    named = {
        p for notices in erasure_notices(stack).values() for n in notices for p in n["devices"]
    }
    assert named
    later = [
        line
        for line in stack.output_lines()
        if str(orjson.loads(line)["value"].get("payload", {}).get("item_id", "")).startswith(
            "e-other-"
        )
    ]
    assert len(later) == 2 * partitions  # recommendation and ads for each account
    assert not any(p.encode() in line for line in later for p in named)


def test_two_workers_split_partitions_and_one_takes_over_after_sigkill(stack: Stack) -> None:
    first = stack.start_worker()
    records = consent_first(list(synth.generate(6000, seed=3, users=400)))
    fed = stack.feed_placed(records[:500])
    stack.wait_processed(500)
    second = stack.start_ready_worker()  # ready: the group rebalanced onto both
    fed += stack.feed_placed(records[500:3500])
    wait_for(lambda: int(second.stats().get("in", 0)) > 0, 40, lambda: "second worker got nothing")
    stack.wait_processed(3500)
    assert int(first.stats().get("in", 0)) > 0
    kill9(first)
    fed += stack.feed_placed(records[3500:])
    stack.wait_accounted(expected_outcomes(stack.keyring, fed)).assert_exact()
