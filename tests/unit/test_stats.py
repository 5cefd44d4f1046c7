"""The pure ad-statistics aggregation (processor.pipeline.stats): windows, k-folding, state, records."""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import Keyring
from processor.devtools import synth
from processor.ops.scan import LeakScanner
from processor.pipeline.consent import MemoryConsentState
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline
from processor.pipeline.stats import StatsAggregator, StatsConfig, cell_of
from schemas import load_contract, to_json_schema

WINDOW = 60_000
T0 = 1_764_316_800_000  # a window boundary
STATS_SCHEMA = to_json_schema(load_contract("stats.ad/1"))


def ad(
    device: str | None,
    *,
    t: int = T0 + 1,
    event_type: str = "view",
    item: str | None = "v-1",
    city: str | None = "510100",
    province: str | None = "510000",
    country: str | None = "CN",
) -> dict[str, Any]:
    record: dict[str, Any] = {"schema": "clean.ad-analytics/1", "event_time": t}
    record["event_type"] = event_type
    if device is not None:
        record["device"] = {"oaid": device, "brand": "Xiaomi"}
    if item is not None:
        record["payload"] = {"item_id": item}
    location = {"country": country, "province_code": province, "city_code": city}
    record["location"] = {k: v for k, v in location.items() if v is not None}
    return record


def dev(n: int) -> str:
    """An ad-domain pseudonym as the pipeline writes them (key id, colon, 26 base32)."""
    return "ad-1:" + base64.b32encode(n.to_bytes(20, "big")).decode().lower()[-26:]


def close_all(agg: StatsAggregator, now: int = T0 + 10 * WINDOW) -> list[dict[str, Any]]:
    shards = {shard for shard, _ in agg.due(now, idle_shards=range(64))}
    out = []
    for shard, window in agg.due(now, idle_shards=shards):
        out += [value for _, value in agg.close(shard, window).records]
    return out


def cells(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["record"] == "cell"]


def summaries(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["record"] == "summary"]


def test_when_a_city_cell_has_k_devices_then_it_is_published_at_city_level() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=3))
    for n in range(3):
        agg.add(0, ad(dev(n)), T0)
    agg.add(0, ad(dev(0)), T0)  # a second event of the same device
    [cell] = cells(close_all(agg))
    assert (cell["level"], cell["city"], cell["events"], cell["devices"]) == (
        "city",
        "510100",
        4,
        3,
    )
    assert cell["item_field"] == "item_id" and cell["item"] == "v-1"
    assert cell["window_start"] == T0 and cell["window_end"] == T0 + WINDOW
    assert cell["key_ids"] == ["ad-1"]


def test_when_cities_are_below_k_then_they_fold_into_their_province_then_country() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=3))
    agg.add(0, ad(dev(1), city="510100"), T0)
    agg.add(0, ad(dev(2), city="510300"), T0)
    agg.add(0, ad(dev(3), city="510400"), T0)  # province 510000 pools 3 devices
    agg.add(0, ad(dev(4), city="500000", province="500000"), T0)
    agg.add(0, ad(dev(5), city="110000", province="110000"), T0)  # 2 left -> country: too few
    records = close_all(agg)
    [cell] = cells(records)
    assert cell["level"] == "province" and cell["province_code"] == "510000"
    assert "city" not in cell and (cell["devices"], cell["folded_cells"]) == (3, 3)
    [summary] = summaries(records)
    assert (summary["suppressed_cells"], summary["suppressed_events"]) == (2, 2)
    assert summary["cells_published"] == 1


def test_when_the_country_pool_reaches_k_then_it_is_published_at_country_level() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    agg.add(0, ad(dev(1), city="510100", province="510000"), T0)
    agg.add(0, ad(dev(2), city="500000", province="500000"), T0)
    [cell] = cells(close_all(agg))
    assert cell["level"] == "country" and cell["country"] == "CN"
    assert "province_code" not in cell and cell["folded_cells"] == 2


def test_when_the_oaid_is_gone_then_the_event_is_not_counted() -> None:
    """Limit-ad-tracking: the policy drops the device ids of the ad record."""
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    assert agg.add(0, ad(None), T0) == "no_device"
    for n in range(2):
        agg.add(0, ad(dev(n)), T0)
    records = close_all(agg)
    assert cells(records)[0]["events"] == 2
    assert summaries(records)[0]["events_without_device"] == 1


def test_device_preference_is_oaid_then_android_id_imei_meid() -> None:
    record = ad(None)
    record["device"] = {"meid": "m", "imei": "i", "android_id": "a"}
    assert cell_of(record)[1] == "a"
    record["device"]["oaid"] = "o"
    assert cell_of(record)[1] == "o"


def test_room_id_is_the_item_when_there_is_no_item_id() -> None:
    record = ad(dev(1), item=None)
    record["payload"] = {"room_id": "r-7"}
    cell, _ = cell_of(record)
    assert cell[1:3] == ("room_id", "r-7")


def test_when_an_event_is_within_grace_then_it_updates_its_window() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=5_000, k=2))
    agg.add(0, ad(dev(1)), T0)
    agg.add(0, ad(dev(2), t=T0 + WINDOW + 1_000), T0 + WINDOW + 1_000)  # next window
    assert agg.due(T0 + WINDOW + 1_000) == []  # watermark inside the grace period
    assert agg.add(0, ad(dev(3), t=T0 + 2), T0 + WINDOW + 2_000) == "counted"  # late, in grace
    agg.add(0, ad(dev(4), t=T0 + WINDOW + 5_000), T0 + WINDOW + 5_000)  # watermark passes grace
    [(shard, window)] = agg.due(T0 + WINDOW + 5_000)
    [cell] = cells([v for _, v in agg.close(shard, window).records])
    assert cell["devices"] == 2 and cell["events"] == 2


def test_when_an_event_comes_after_its_window_was_published_then_it_is_counted_as_late() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    agg.add(0, ad(dev(1)), T0)
    close_all(agg)
    assert agg.add(0, ad(dev(2)), T0 + 3 * WINDOW) == "late"
    agg.add(0, ad(dev(3), t=T0 + 3 * WINDOW), T0 + 3 * WINDOW)
    [summary] = summaries(close_all(agg, T0 + 9 * WINDOW))
    assert summary["late_events"] == 1 and summary["window_start"] == T0 + 3 * WINDOW


def test_the_watermark_does_not_run_ahead_of_the_wall_clock() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    agg.add(0, ad(dev(1)), T0)
    agg.add(0, ad(dev(2), t=T0 + 1000 * WINDOW), T0 + 2)  # a client clock far ahead
    assert agg.due(T0 + 2) == []


def test_the_watermark_of_a_shard_is_its_slowest_input_topic() -> None:
    """raw.behaviour and raw.device of one partition are one shard: a fetch running ahead
    on one topic must not close the windows the other topic is still filling."""
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    agg.add(0, ad(dev(1)), T0, stream="raw.device")
    agg.add(0, ad(dev(2), t=T0 + 5 * WINDOW), T0 + 5 * WINDOW, stream="raw.behaviour")
    assert agg.due(T0 + 5 * WINDOW) == []
    assert agg.add(0, ad(dev(3), t=T0 + 2), T0 + 5 * WINDOW, stream="raw.device") == "counted"
    # once raw.device is read to its end it no longer holds the shard back
    assert agg.due(T0 + 5 * WINDOW, caught_up={(0, "raw.device")}) == [(0, T0)]


def test_when_a_shard_is_idle_then_the_wall_clock_closes_its_windows() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=1_000, k=2))
    agg.add(2, ad(dev(1)), T0)
    assert agg.due(T0 + WINDOW + 1_000) == []
    assert agg.due(T0 + WINDOW + 1_000, idle_shards=[2]) == [(2, T0)]


def test_shards_are_counted_and_published_separately() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    for shard in (0, 1):
        for n in range(2):
            agg.add(shard, ad(dev(10 * shard + n)), T0)
    published = cells(close_all(agg))
    assert sorted(c["shard"] for c in published) == [0, 1]
    assert len({orjson.dumps(c) for c in published}) == 2


def test_closing_removes_the_window_state_and_says_so_in_the_changes() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    agg.add(0, ad(dev(1)), T0)
    agg.drain_changes()
    closed = agg.close(0, T0)
    assert [k for k in agg.store if k[0] not in ("w", "m")] == []
    assert all(v is None for k, v in closed.changes if k[0] != "w")
    assert {k[0] for k, _ in closed.changes} == {"c", "d", "w"}


def test_state_holds_pseudonyms_codes_and_counts_only() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    agg.add(0, ad(dev(1)), T0)
    changes = agg.drain_changes()
    assert {k[0] for k, _ in changes} == {"c", "d", "m"}
    [device_key] = [k for k, _ in changes if k[0] == "d"]
    assert device_key[-1] == dev(1)


def test_state_rebuilt_from_its_changelog_gives_the_same_records() -> None:
    """What a restarted worker does: faust recovery writes the changelog (JSON lists as
    tuples) into a fresh store; closing then publishes what the old worker would have."""
    config = StatsConfig(window_ms=WINDOW, grace_ms=0, k=2)
    old = StatsAggregator(config)
    log: dict[bytes, bytes | None] = {}
    for n in range(5):
        old.add(n % 2, ad(dev(n), city="510100" if n < 4 else "510300"), T0)
        for key, value in old.drain_changes():
            log[orjson.dumps(key)] = None if value is None else orjson.dumps(value)
    store = {tuple(orjson.loads(k)): orjson.loads(v) for k, v in log.items() if v is not None}
    new = StatsAggregator(config, store)
    assert close_all(new) == close_all(old)


def test_records_validate_against_the_exported_json_schema_and_keys_are_stable() -> None:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    for n in range(4):
        agg.add(0, ad(dev(n), item=None if n % 2 else "v-1"), T0)
    closed = agg.close(0, T0)
    for key, value in closed.records:
        jsonschema.validate(value, STATS_SCHEMA)
        assert len(key) == 32 and key.isalnum()
    assert len({key for key, _ in closed.records}) == len(closed.records)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_ms": 10}, "ad_stats_window"),
        ({"grace_ms": -1}, "ad_stats_grace"),
        ({"k": 1}, "ad_stats_k"),
    ],
)
def test_bad_configuration_is_refused_with_the_setting_named(
    kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        StatsConfig(**kwargs)


# -- properties ---------------------------------------------------------------------------

PLACES = [
    ("CN", "510000", "510100"),
    ("CN", "510000", "510300"),
    ("CN", "500000", "500000"),
    ("CN", None, None),
    ("JP", None, "Tokyo"),
    (None, None, None),
]
records_strategy = st.lists(
    st.tuples(
        st.integers(0, 1),  # shard
        st.integers(0, 25),  # device
        st.sampled_from(PLACES),
        st.sampled_from(["view", "gift"]),
        st.sampled_from([None, "v-1", "v-2"]),
        st.integers(0, 2 * WINDOW - 1),  # time in one of two windows
    ),
    max_size=150,
)


def _feed(k: int, rows: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=k))
    inputs = []
    for shard, device, (country, province, city), event_type, item, t in rows:
        record = ad(
            dev(device),
            t=T0 + t,
            event_type=event_type,
            item=item,
            city=city,
            province=province,
            country=country,
        )
        inputs.append({**record, "_shard": shard})
        assert agg.add(shard, record, T0) == "counted"
    return inputs, close_all(agg)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(2, 6), rows=records_strategy)
def test_no_published_cell_can_be_traced_to_fewer_than_k_devices(k: int, rows: list[Any]) -> None:
    """Recount from the input: every device set behind a published cell (the input records
    of its shard, window, event type and item inside its area) holds at least k devices."""
    inputs, records = _feed(k, rows)
    for cell in cells(records):
        jsonschema.validate(cell, STATS_SCHEMA)
        area = {"country": cell.get("country")}
        if cell["level"] in ("city", "province"):
            area["province_code"] = cell.get("province_code")
        if cell["level"] == "city":
            area["city_code"] = cell.get("city")
        behind = {
            r["device"]["oaid"]
            for r in inputs
            if r["_shard"] == cell["shard"]
            and cell["window_start"] <= r["event_time"] < cell["window_end"]
            and r["event_type"] == cell["event_type"]
            and (r.get("payload") or {}).get("item_id") == cell.get("item")
            and all(r["location"].get(name) == value for name, value in area.items())
        }
        assert cell["devices"] >= k
        assert len(behind) >= cell["devices"]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(2, 6), rows=records_strategy)
def test_every_event_is_published_or_suppressed_exactly_once(k: int, rows: list[Any]) -> None:
    inputs, records = _feed(k, rows)
    per_window: Counter[tuple[int, int]] = Counter()
    for r in inputs:
        per_window[(r["_shard"], r["event_time"] - r["event_time"] % WINDOW)] += 1
    accounted: Counter[tuple[int, int]] = Counter()
    for r in records:
        events = r["events"] if r["record"] == "cell" else r["suppressed_events"]
        accounted[(r["shard"], r["window_start"])] += events
    assert accounted == per_window


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(rows=records_strategy)
def test_with_k_two_every_city_cell_of_two_devices_is_published_as_is(rows: list[Any]) -> None:
    """A straightforward recount: city cells with >= k devices equal the recount exactly."""
    inputs, records = _feed(2, rows)
    recount: dict[tuple[Any, ...], tuple[int, set[str]]] = defaultdict(lambda: (0, set()))
    for r in inputs:
        loc = r["location"]
        if "city_code" not in loc or "province_code" not in loc:
            continue
        key = (
            r["_shard"],
            r["event_time"] - r["event_time"] % WINDOW,
            r["event_type"],
            (r.get("payload") or {}).get("item_id"),
            loc["city_code"],
        )
        events, devices = recount[key]
        recount[key] = (events + 1, devices | {r["device"]["oaid"]})
    expected = {key: (e, len(d)) for key, (e, d) in recount.items() if len(d) >= 2}
    published = {
        (c["shard"], c["window_start"], c["event_type"], c.get("item"), c["city"]): (
            c["events"],
            c["devices"],
        )
        for c in cells(records)
        if c["level"] == "city" and "province_code" in c
    }
    assert published == expected


def test_stats_of_pipeline_output_hold_no_raw_identifier() -> None:
    """End to end without a broker: synthetic raw events -> pipeline -> stats records,
    scanned by the leak scanner against every raw identifier of the input."""
    keyring = Keyring.generate()
    pipeline = Pipeline(keyring, consent=MemoryConsentState())
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    raw_lines = []
    counted = 0
    for topic, key, value in synth.generate(3000, seed=5, users=60, consent_share=1.0):
        raw_lines.append(value)
        outcome = pipeline.process(value, SourceRef(topic, 0, 0), key)
        for record in outcome.records:
            if record.route is Route.AD_ANALYTICS:
                counted += agg.add(0, record.json(), T0) == "counted"
    assert counted > 100
    state = [orjson.dumps([list(k), v]).decode() for k, v in agg.store.items()]
    records = close_all(agg, T0 + 10**9)
    assert cells(records)
    lines = [orjson.dumps(r).decode() for r in records] + state
    assert LeakScanner.from_raw_events(raw_lines).scan_lines(lines) == []


# -- pseudostream stats ---------------------------------------------------------------------


def _published_pairs() -> list[tuple[bytes | None, bytes | None]]:
    agg = StatsAggregator(StatsConfig(window_ms=WINDOW, grace_ms=0, k=2))
    for w in range(3):
        for n in range(3):
            agg.add(0, ad(dev(n), t=T0 + w * WINDOW), T0 + w * WINDOW)
    pairs: list[tuple[bytes | None, bytes | None]] = []
    for shard, window in agg.due(T0 + 10 * WINDOW, idle_shards=[0]):
        pairs += [(k.encode(), orjson.dumps(v)) for k, v in agg.close(shard, window).records]
    return pairs


def test_stats_command_shows_the_newest_windows_once_each() -> None:
    from rich.console import Console

    from processor.cli.stats_cmd import latest_windows, render

    pairs = _published_pairs()
    pairs += pairs[:2]  # a window published again after a crash: same keys
    pairs += [(None, b"{}"), (b"x", b"not json"), (b"y", None)]
    windows = latest_windows(pairs, 2)
    assert [start for start, _ in windows] == [T0 + 2 * WINDOW, T0 + WINDOW]
    assert all(len(values) == 2 for _, values in windows)  # one cell, one summary
    console = Console(width=120, record=True)
    console.print(render(windows, limit=5))
    text = console.export_text()
    assert "k = 2" in text and "510100" in text and "1 cells published" in text


def test_stats_command_says_what_to_do_when_the_broker_is_unreachable() -> None:
    from click.testing import CliRunner

    from processor.cli import main

    result = CliRunner().invoke(
        main, ["stats", "--timeout", "1"], env={"PSEUDOSTREAM_BROKER": "kafka://127.0.0.1:1"}
    )
    assert result.exit_code == 2
    assert "did not answer" in result.output and "PSEUDOSTREAM_BROKER" in result.output
