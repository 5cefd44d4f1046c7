"""Ad statistics on the real broker: stats.ad matches a recount of the input, no cell below
k, excluded users and limit-ad-tracking devices absent, state recovered after a restart."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import jsonschema
import orjson
import pytest
from aiokafka.partitioner import murmur2
from click.testing import CliRunner

from processor.cli import main
from processor.devtools import synth
from processor.kafka.read import read_topic
from processor.kafka.startup import load_locator
from processor.ops.scan import LeakScanner
from processor.pipeline.consent import MemoryConsentState
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline
from processor.pipeline.stats import StatsAggregator, StatsConfig
from schemas import load_contract, to_json_schema
from tests.integration.conftest import Stack, consent_json, event_json, wait_for

pytestmark = pytest.mark.broker

K = 3
WINDOW_S = 5
START = 1_764_316_800_000  # synth's event times start here, 7 ms apart
CLOSER_TIME = START + 3_600_000  # an hour later: moves every shard's watermark past the rest
Records = list[tuple[str, bytes | None, bytes]]


def partition_of(key: bytes, partitions: int) -> int:
    """The producer's default partitioner (murmur2), to know each record's shard."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def few_items(records: Records) -> Records:
    """synth draws items from 100k, which k-suppresses nearly every cell; three items make
    cells at every level (city, province, country and suppressed)."""
    out: Records = []
    for source, key, value in records:
        event = orjson.loads(value)
        payload = event.get("payload")
        if source != synth.CONSENT and payload:
            payload["item_id"] = f"v-{int(event['event_id'][2:]) % 3}"
            out.append((source, key, orjson.dumps(event)))
        else:
            out.append((source, key, value))
    return out


def excluded_users() -> Iterator[tuple[str, bytes | None, bytes]]:
    """Users the statistics must not count, each with its own device, all viewing one item
    that nobody else views: minors, children, no ad consent, limit ad tracking."""
    variants = [("minor", True, "1"), ("child", True, "2"), ("adult", False, "3")]
    variants += [("adult", True, "0")]  # all-zero OAID below: limit ad tracking
    for n, (age_band, ads, digit) in enumerate(variants * 3):
        user = f"u-excluded-{n}"
        yield synth.CONSENT, user.encode(), consent_json(user, START, ads=ads, age_band=age_band)
        oaid = (
            "00000000-0000-0000-0000-000000000000"
            if digit == "0"
            else f"{n:08d}-1111-4111-8111-{n:012d}"
        )
        event = orjson.loads(event_json(f"e-x{n}", user, event_time=START + 5, oaid=oaid))
        event["device"]["imei"] = None
        event["device"]["android_id"] = None
        event["payload"]["item_id"] = "v-excluded"
        yield synth.RAW_BEHAVIOUR, user.encode(), orjson.dumps(event)


def closers(partitions: int) -> Records:
    """One consented adult per partition with an event an hour later than the rest."""
    out: Records = []
    found: set[int] = set()
    for n in itertools.count():
        user = f"u-closer-{n}"
        p = partition_of(user.encode(), partitions)
        if p in found:
            continue
        found.add(p)
        out.append((synth.CONSENT, user.encode(), consent_json(user, START)))
        out.append(
            (
                synth.RAW_BEHAVIOUR,
                user.encode(),
                event_json(f"e-c{n}", user, event_time=CLOSER_TIME),
            )
        )
        if len(found) == partitions:
            return out
    raise AssertionError("unreachable")


def expected_cells(stack: Stack, records: Records) -> tuple[list[dict[str, Any]], int]:
    """The pure pipeline and aggregation over the same records, shard by shard; returns the
    cell records of windows before the closers' and the number of ad records."""
    locator = load_locator(stack.settings)  # the worker's: cells depend on the location
    pipeline = Pipeline(stack.keyring, consent=MemoryConsentState(), locator=locator)
    config = StatsConfig(window_ms=WINDOW_S * 1000, grace_ms=60_000, k=K)  # as in stack.env
    agg = StatsAggregator(config)
    ads = 0
    for source, key, value in records:
        assert key is not None
        for record in pipeline.process(value, SourceRef(source), key).records:
            if record.route is Route.AD_ANALYTICS:
                ads += 1
                agg.add(partition_of(key, stack.settings.partitions), record.json(), CLOSER_TIME)
    out = []
    for shard, window in agg.due(CLOSER_TIME + 10**9, idle_shards=range(64)):
        if window < config.window_of(CLOSER_TIME):
            out += [v for _, v in agg.close(shard, window).records if v["record"] == "cell"]
    return out, ads


def published(stack: Stack) -> list[dict[str, Any]]:
    return [
        orjson.loads(r.value)
        for r in read_topic(stack.broker.address, stack.settings.ad_stats_topic, idle=2.0)
    ]


def by_identity(values: list[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    return {orjson.dumps(v, option=orjson.OPT_SORT_KEYS): v for v in values}


def test_stats_match_a_recount_exclude_who_they_must_and_survive_a_restart(stack: Stack) -> None:
    stack.env.update(
        {"ad_stats_window": str(WINDOW_S), "ad_stats_grace": "60", "ad_stats_k": str(K)}
    )
    generated = few_items(
        list(synth.generate(3000, seed=21, users=40, malformed=0.0, consent_share=1.0))
    )
    # consent first (no cross-topic race), then the events; the restart splits the events
    records = [r for r in generated if r[0] == synth.CONSENT] + list(excluded_users())
    records += [r for r in generated if r[0] != synth.CONSENT]
    half = len(records) // 2
    first, second = records[:half], records[half:] + closers(stack.settings.partitions)

    stack.start_worker()
    fed = stack.feed(first)
    stack.wait_processed(fed)
    stack.workers[0].stop()  # each shard's newest window is still open: only in the changelog

    stack.start_worker()
    fed += stack.feed(second)
    wait_for(lambda: stack.workers[1].stats().get("in", 0) >= len(second), 90)

    expected, ads = expected_cells(stack, records)
    assert ads > 500 and len(expected) > 10
    wait_for(
        lambda: len([v for v in published(stack) if v["record"] == "cell"]) >= len(expected),
        30,
        lambda: f"{len(published(stack))} stats records; logs in {stack.workdir}",
    )
    values = published(stack)
    cells = [v for v in values if v["record"] == "cell"]
    assert by_identity(cells) == by_identity(expected)  # the recount, restart included
    schema = to_json_schema(load_contract("stats.ad/1"))
    for value in values:
        jsonschema.validate(value, schema)
    assert all(c["devices"] >= K for c in cells)
    assert not [c for c in cells if c.get("item") == "v-excluded"]
    lat_events = sum(v.get("events_without_device", 0) for v in values)
    assert lat_events >= 3  # the limit-ad-tracking users' events reached the ad route only
    changelog = list(read_topic(stack.broker.address, stack.settings.ad_stats_changelog_topic))
    lines = [r.value for r in read_topic(stack.broker.address, stack.settings.ad_stats_topic)]
    lines += [r.key for r in changelog] + [r.value for r in changelog if r.value]
    raw = [v for _, _, v in records]
    assert LeakScanner.from_raw_events(raw).scan_lines(lines) == []

    # the quick look: newest windows as a table (the closers' window is not published yet)
    result = CliRunner().invoke(main, ["stats", "--windows", "2"], env=cli_env(stack))
    assert result.exit_code == 0, result.output
    assert "UTC  (k = 3, 4 shards reported)" in result.output and "cells published" in result.output


def cli_env(stack: Stack) -> dict[str, str]:
    return {f"PSEUDOSTREAM_{k.upper()}": v for k, v in stack.env.items()}


def test_stats_command_on_an_empty_or_missing_topic_says_so(stack: Stack) -> None:
    env = cli_env(stack)
    empty = CliRunner().invoke(main, ["stats", "--timeout", "2"], env=env)
    assert empty.exit_code == 1 and "no statistics in" in empty.output
    missing = CliRunner().invoke(main, ["stats", "--timeout", "1", "--topic", "nope"], env=env)
    assert missing.exit_code == 2 and "topic 'nope' not found" in missing.output
