"""Device links (deletion reaches devices) without a broker: bounded, expiring, keyed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from keys import Domain, Keyring
from processor.pipeline.canonical import _CANONICALIZERS
from processor.pipeline.devices import DeviceLink, LinkHasher, MemoryDeviceState, merge_links
from processor.pipeline.kinds import IdKind
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


def imei_of(pipeline: Pipeline, user: str) -> Any:
    [rec, _ad] = pipeline.process(event(user, IMEIS[0]), SRC).records
    return rec.json().get("device", {}).get("imei")


def test_a_device_erased_by_another_worker_loses_its_pseudonym_at_its_next_event() -> None:
    # a device found not erased is not looked up again until the erased identifiers change
    keyring = Keyring.generate()
    state = MemoryDeviceState()
    pipeline = Pipeline(keyring, devices=state)
    pipeline.process(consent("u2"), SourceRef("consent"))
    state.erase(["link:someone-else"], 1)  # the checks run once anything is erased
    assert imei_of(pipeline, "u2") is not None
    state.erase([str(LinkHasher(keyring, 0)(IdKind.IMEI, IMEIS[0]))], 2)
    assert imei_of(pipeline, "u2") is None
    assert pipeline.stats["erased_identifier_dropped:imei"] == 1


def test_after_a_keyring_reload_the_erased_are_looked_up_under_the_new_link_key() -> None:
    old, new = Keyring.generate(), Keyring.generate()
    state = MemoryDeviceState()
    state.erase([str(LinkHasher(new, 0)(IdKind.IMEI, IMEIS[0]))], 1)
    pipeline = Pipeline(old, devices=state)
    pipeline.process(consent("u2"), SourceRef("consent"))
    assert imei_of(pipeline, "u2") is not None  # under the old link key it is no erased one
    pipeline.use_keyring(new)
    pipeline.follow_schedule(Clock()())
    pipeline.process(consent("u2"), SourceRef("consent"))
    assert imei_of(pipeline, "u2") is None


def test_devices_found_not_erased_are_remembered_up_to_the_cache_size() -> None:
    state = MemoryDeviceState()
    state.erase(["link:someone-else"], 1)
    pipeline = Pipeline(Keyring.generate(), devices=state, cache_size=2)
    for imei in IMEIS:
        pipeline.process(event("u1", imei), SRC)
    assert 0 < len(pipeline._clean) <= 2


def test_a_new_devices_identifier_is_canonicalized_once_for_its_link_and_pseudonyms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[IdKind] = []
    imei = _CANONICALIZERS[IdKind.IMEI]

    def counted(value: str) -> str | None:
        calls.append(IdKind.IMEI)
        return imei(value)

    # the table canonicalize looks up: counted whether the pipeline runs compiled or not
    monkeypatch.setitem(_CANONICALIZERS, IdKind.IMEI, counted)
    pipeline = Pipeline(Keyring.generate())
    pipeline.process(consent("u1"), SourceRef("consent"))
    records = pipeline.process(event("u1", IMEIS[0]), SRC).records
    # the link id and both domains' pseudonyms, which the records then reuse
    assert calls.count(IdKind.IMEI) == 1
    assert records[0].json()["device"]["imei"] in erasure_devices(pipeline, "u1")


def test_a_new_devices_link_and_records_share_one_hmac_per_domain() -> None:
    pipeline = Pipeline(Keyring.generate())
    pipeline.process(consent("u1"), SourceRef("consent"))
    records = pipeline.process(event("u1", IMEIS[0]), SRC).records
    named = erasure_devices(pipeline, "u1")
    assert records[0].json()["device"]["imei"] in named
    for domain in (Domain.RECOMMENDATION, Domain.AD_ANALYTICS):
        pseudonymizer = pipeline.pseudonymizers[domain]
        # user id and IMEI computed once each; only the user id missed in a projection (the
        # link computed the IMEI's first): the hit-ratio metric counts the projections only
        assert (pseudonymizer.computed, pseudonymizer.misses) == (2, 1)
