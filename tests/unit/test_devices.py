"""Device links (deletion reaches devices) without a broker: bounded, expiring, keyed."""

from __future__ import annotations

from typing import Any

import orjson

from keys import Domain, Keyring
from processor.pipeline.devices import DeviceLink, MemoryDeviceState, merge_links
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline

DAY = 86_400_000
SRC = SourceRef("raw.behaviour", 0, 1)


def link(device: str, seen: int, *names: str) -> DeviceLink:
    return DeviceLink(device, seen, {"recommendation": list(names)})


def test_links_keep_the_most_recently_seen_up_to_the_limit() -> None:
    links = [link("a", 1), link("b", 2), link("c", 3)]
    merged = merge_links(links, [link("d", 4)], now_ms=5, retention_ms=DAY, limit=3)
    assert [x.device for x in merged] == ["d", "c", "b"]


def test_links_older_than_the_retention_are_dropped() -> None:
    merged = merge_links([link("old", 0)], [link("new", 2 * DAY)], 2 * DAY, DAY, limit=16)
    assert [x.device for x in merged] == ["new"]


def test_a_device_seen_again_keeps_its_pseudonyms_under_every_key() -> None:
    merged = merge_links([link("a", 1, "rec-1:x")], [link("a", 9, "rec-2:y")], 10, DAY, 16)
    assert merged == [link("a", 9, "rec-2:y", "rec-1:x")]


def event(user: str, imei: str) -> bytes:
    return orjson.dumps(
        {
            "schema": "behaviour/1",
            "event_id": "e-1",
            "event_time": 1,
            "event_type": "view",
            "user_id": user,
            "device": {"imei": imei},
        }
    )


def consent(user: str, **changes: Any) -> bytes:
    record = {
        "schema": "consent/1",
        "user_id": user,
        "event_time": 1,
        "personalized_recommendation": True,
        "personalized_ads": True,
        "age_band": "adult",
    }
    return orjson.dumps({**record, **changes})


class Clock:
    def __init__(self) -> None:
        self.now = 1764316800000

    def __call__(self) -> int:
        return self.now


IMEIS = ("356938035643809", "490154203237518", "352099001761481")


def erasure_devices(pipeline: Pipeline, user: str) -> list[str]:
    outcome = pipeline.process(consent(user, account="deleted"), SourceRef("consent"))
    [notice] = [r.json() for r in outcome.records if r.route is Route.ERASURE_RECOMMENDATION]
    devices: list[str] = notice["devices"]
    return devices


def test_the_stored_links_hold_no_raw_identifier_and_are_bounded() -> None:
    state = MemoryDeviceState()
    pipeline = Pipeline(Keyring.generate(), devices=state, max_devices_per_user=2)
    pipeline.process(consent("u1"), SourceRef("consent"))
    for imei in IMEIS:
        pipeline.process(event("u1", imei), SRC)
    stored = state.links("u1")
    assert len(stored) == 2
    assert not any(imei in repr(stored) for imei in IMEIS)


def test_a_device_not_seen_within_the_retention_is_not_named() -> None:
    clock = Clock()
    pipeline = Pipeline(Keyring.generate(), clock=clock, device_link_retention_ms=DAY)
    pipeline.process(consent("u1"), SourceRef("consent"))
    pipeline.process(event("u1", IMEIS[0]), SRC)
    clock.now += 2 * DAY
    pipeline.process(event("u1", IMEIS[1]), SRC)
    [named] = erasure_devices(pipeline, "u1")
    rec = pipeline.process(event("u2", IMEIS[1]), SRC).records  # no consent: no pseudonym
    assert named not in rec[0].value.decode()


def test_after_a_rotation_a_device_seen_again_is_named_under_both_keys() -> None:
    keyring = Keyring.generate()
    pipeline = Pipeline(keyring)
    pipeline.process(consent("u1"), SourceRef("consent"))
    first = pipeline.process(event("u1", IMEIS[0]), SRC).records[0].json()["device"]["imei"]
    pipeline.use_keyring(keyring.rotate(Domain.RECOMMENDATION))
    pipeline.follow_schedule(Clock()())
    second = pipeline.process(event("u1", IMEIS[0]), SRC).records[0].json()["device"]["imei"]
    assert first != second
    assert set(erasure_devices(pipeline, "u1")) == {first, second}


def test_a_later_user_of_an_erased_device_gets_no_device_pseudonym() -> None:
    pipeline = Pipeline(Keyring.generate())
    for user in ("u1", "u2"):
        pipeline.process(consent(user), SourceRef("consent"))
    pipeline.process(event("u1", IMEIS[0]), SRC)
    erasure_devices(pipeline, "u1")
    data = orjson.loads(event("u2", IMEIS[0]))
    data["device"]["brand"] = "Xiaomi"
    [rec, _ad] = pipeline.process(orjson.dumps(data), SRC).records
    assert rec.json()["device"] == {"brand": "Xiaomi"}
    assert pipeline.stats["erased_identifier_dropped:imei"] == 1
