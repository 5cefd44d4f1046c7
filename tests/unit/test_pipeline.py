"""The pure pipeline, stage by stage, without a broker."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from keys import Domain, Keyring
from processor.errors import PolicyError
from processor.ops.replay import replay_one
from processor.pipeline.consent import MemoryConsentState
from processor.pipeline.location import IPAddress, Place
from processor.pipeline.outcome import Outcome, Route, SourceRef
from processor.pipeline.policy import compile_policy
from processor.pipeline.process import Pipeline
from processor.pipeline.quarantine import Sealer, request_bytes, sealable_bytes
from schemas import load_contract, to_json_schema

SRC = SourceRef("raw.behaviour", 0, 42)

EVENT: dict[str, Any] = {
    "schema": "behaviour/1",
    "event_id": "e-01HF000000",
    "event_time": 1764316800123,
    "event_type": "comment",
    "user_id": "u10293847",
    "phone": "+8613812345678",
    "device": {
        "imei": "356938035643809",
        "meid": "A0000012345678",
        "imsi": "460001234567890",
        "iccid": "89860012345678901234",
        "oaid": "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b",
        "android_id": "1f2e3d4c5b6a7988",
        "mac": "3C:5A:B4:12:34:56",
        "brand": "Xiaomi",
        "model": "2211133C",
        "os": "Android",
        "os_version": "14",
        "app_version": "5.2.1",
    },
    "network": {
        "ip": "61.128.128.68",
        "type": "wifi",
        "carrier": "China Mobile",
        "ssid": "Home-5G",
        "bssid": "a4:5e:60:11:22:33",
        "cell": {"mcc": 460, "mnc": 0, "lac": 4301, "cid": 20571},
    },
    "location": {"lat": 29.557, "lon": 106.577, "accuracy_m": 12, "source": "gps"},
    "payload": {
        "item_id": "v-88812",
        "room_id": "r-77",
        "target_user_id": "u55",
        "text": "call me 13812345678",
        "amount_cents": 600,
        "position": 3,
        "duration_ms": 5123,
    },
}
RAW_VALUES = (
    "u10293847",
    "+8613812345678",
    "356938035643809",
    "A0000012345678",
    "460001234567890",
    "89860012345678901234",
    "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b",
    "1f2e3d4c5b6a7988",
    "3C:5A:B4:12:34:56",
    "61.128.128.68",
    "Home-5G",
    "a4:5e:60:11:22:33",
    "13812345678",
    "29.557",
    "106.577",
    "20571",
)


def consent_record(user: str = "u10293847", **overrides: Any) -> bytes:
    record = {
        "schema": "consent/1",
        "user_id": user,
        "event_time": 1764316800000,
        "personalized_recommendation": True,
        "personalized_ads": True,
        "precise_location": True,
        "age_band": "adult",
        "account": "active",
    }
    record.update(overrides)
    return orjson.dumps(record)


def raw(event: dict[str, Any] | None = None, **changes: Any) -> bytes:
    data = copy.deepcopy(event or EVENT)
    data.update(changes)
    return orjson.dumps(data)


class FakeLocator:
    """Answers every GPS point with Chongqing and every address with Chengdu."""

    def __init__(self) -> None:
        self.ips: list[IPAddress] = []

    def from_gps(self, lat: float, lon: float) -> Place | None:
        return Place("CN", "500000", "500000", "Chongqing")

    def from_ip(self, network_address: IPAddress) -> Place | None:
        self.ips.append(network_address)
        return Place("CN", "510000", "510100", "Chengdu")


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def locator() -> FakeLocator:
    return FakeLocator()


@pytest.fixture
def pipeline(keyring: Keyring, locator: FakeLocator) -> Pipeline:
    return Pipeline(
        keyring, consent=MemoryConsentState(), locator=locator, clock=lambda: 1764316900000
    )


def by_route(outcome: Outcome) -> dict[Route, dict[str, Any]]:
    return {r.route: r.json() for r in outcome.records}


def consented(pipeline: Pipeline, **overrides: Any) -> Pipeline:
    assert (
        pipeline.process(consent_record(**overrides), SourceRef("consent")).suppressed
        == "consent_update"
    )
    return pipeline


def test_when_user_consents_then_both_routes_get_pseudonyms(pipeline: Pipeline) -> None:
    out = by_route(consented(pipeline).process(raw(), SRC))
    assert set(out) == {Route.RECOMMENDATION, Route.AD_ANALYTICS}
    rec, ad = out[Route.RECOMMENDATION], out[Route.AD_ANALYTICS]
    assert rec["user_id"].startswith("rec-1:") and ad["user_id"].startswith("ad-1:")
    assert set(rec["device"]) == {
        "imei",
        "meid",
        "oaid",
        "android_id",
        "brand",
        "model",
        "os",
        "os_version",
        "app_version",
    }
    assert set(ad["device"]) == {
        "imei",
        "meid",
        "oaid",
        "android_id",
        "brand",
        "model",
        "os",
        "os_version",
        "app_version",
    }
    assert rec["network"] == ad["network"] == {"type": "wifi", "carrier": "China Mobile"}
    assert "phone" not in rec and "phone" not in ad


def test_when_event_goes_to_recommendation_then_it_has_no_mac_or_ip(pipeline: Pipeline) -> None:
    rec = by_route(consented(pipeline).process(raw(), SRC))[Route.RECOMMENDATION]
    assert "mac" not in rec["device"] and "ip" not in rec["network"]


def test_when_event_goes_to_ads_then_no_target_user_and_the_amount_is_a_band(
    pipeline: Pipeline,
) -> None:
    ad = by_route(consented(pipeline).process(raw(), SRC))[Route.AD_ANALYTICS]
    assert ad["payload"] == {
        "item_id": "v-88812",
        "room_id": "r-77",
        "amount_band": "1-9.99 yuan",
        "position": 3,
        "duration_ms": 5123,
    }


@pytest.mark.parametrize(
    ("cents", "band"),
    [
        (0, "under 1 yuan"),
        (99, "under 1 yuan"),
        (100, "1-9.99 yuan"),
        (52000, "100-999.99 yuan"),
        (100000, "1000 yuan or more"),
        (100_000_000, "1000 yuan or more"),  # the declared maximum (a million yuan)
    ],
)
def test_amount_bands_have_inclusive_lower_edges(pipeline: Pipeline, cents: int, band: str) -> None:
    event = copy.deepcopy(EVENT)
    event["payload"]["amount_cents"] = cents
    ad = by_route(consented(pipeline).process(raw(event), SRC))[Route.AD_ANALYTICS]
    assert ad["payload"]["amount_band"] == band


def test_when_output_is_made_then_no_raw_identifier_appears(pipeline: Pipeline) -> None:
    outcome = consented(pipeline).process(raw(), SRC)
    for record in outcome.records:
        text = record.value.decode() + str(record.key) + repr(record.headers)
        for value in RAW_VALUES:
            assert value not in text


def test_when_comment_has_phone_then_recommendation_scrubs_and_ads_drop_it(
    pipeline: Pipeline,
) -> None:
    out = by_route(consented(pipeline).process(raw(), SRC))
    assert out[Route.RECOMMENDATION]["payload"]["text"] == "call me [phone]"
    assert "text" not in out[Route.AD_ANALYTICS]["payload"]


def test_when_no_consent_record_then_no_pseudonyms_no_ads_and_location_from_ip(
    pipeline: Pipeline, locator: FakeLocator
) -> None:
    out = by_route(pipeline.process(raw(), SRC))
    assert set(out) == {Route.RECOMMENDATION}
    assert "user_id" not in out[Route.RECOMMENDATION]
    assert set(out[Route.RECOMMENDATION]["device"]) == {
        "brand",
        "model",
        "os",
        "os_version",
        "app_version",
    }
    assert out[Route.RECOMMENDATION]["location"] == {
        "country": "CN",
        "province_code": "510000",
        "city_code": "510100",
        "city": "Chengdu",
        "source": "ip",
    }
    assert [str(a) for a in locator.ips] == ["61.128.128.0"]


def test_when_precise_location_consented_then_gps_gives_the_city(pipeline: Pipeline) -> None:
    out = by_route(consented(pipeline).process(raw(), SRC))
    for record in out.values():
        assert record["location"]["source"] == "gps"
        assert record["location"]["city_code"] == "500000"
        assert "lat" not in record["location"]


def test_when_precise_location_withdrawn_then_gps_is_ignored(pipeline: Pipeline) -> None:
    out = by_route(consented(pipeline, precise_location=False).process(raw(), SRC))
    assert out[Route.RECOMMENDATION]["location"]["source"] == "ip"


@pytest.mark.parametrize(
    ("lat", "lon", "counted"),
    [
        (0, 0, "location_invalid:null_island"),
        ("29.5", 106.5, "dropped_field:location.lat:bad_type"),
        (91.0, 106.5, "dropped_field:location.lat:bad_value"),
        (29.5, -181, "dropped_field:location.lon:bad_value"),
        (True, 106.5, "dropped_field:location.lat:bad_type"),
    ],
)
def test_when_coordinates_are_bad_then_location_falls_back_and_is_counted(
    pipeline: Pipeline, lat: Any, lon: Any, counted: str
) -> None:
    event = copy.deepcopy(EVENT)
    event["location"] = {"lat": lat, "lon": lon}
    out = by_route(consented(pipeline).process(raw(event), SRC))
    assert out[Route.RECOMMENDATION]["location"]["source"] == "ip"
    assert pipeline.stats[counted] == 1


def test_when_personalization_is_off_then_recommendation_keeps_behaviour_without_pseudonyms(
    pipeline: Pipeline,
) -> None:
    rec = by_route(consented(pipeline, personalized_recommendation=False).process(raw(), SRC))[
        Route.RECOMMENDATION
    ]
    assert "user_id" not in rec
    assert set(rec["device"]) == {"brand", "model", "os", "os_version", "app_version"}
    assert "ip" not in rec["network"]
    assert rec["event_type"] == "comment" and rec["payload"]["item_id"] == "v-88812"
    assert rec["payload"]["target_user_id"].startswith("rec-1:")  # the target, not the actor


def test_when_user_is_a_minor_then_no_ad_record(pipeline: Pipeline) -> None:
    assert set(by_route(consented(pipeline, age_band="minor").process(raw(), SRC))) == {
        Route.RECOMMENDATION
    }


@pytest.mark.parametrize("guardian", [None, False])
def test_when_child_has_no_guardian_consent_then_nothing_flows(
    pipeline: Pipeline, guardian: bool | None
) -> None:
    outcome = consented(pipeline, age_band="child", guardian_consent=guardian).process(raw(), SRC)
    assert outcome.records == []
    assert outcome.suppressed == "child_without_guardian_consent"
    assert pipeline.stats["suppressed:child_without_guardian_consent"] == 1


def test_when_child_has_guardian_consent_then_no_ads_and_no_gps(pipeline: Pipeline) -> None:
    out = by_route(consented(pipeline, age_band="child", guardian_consent=True).process(raw(), SRC))
    assert set(out) == {Route.RECOMMENDATION}  # no ad record, so no statistics either
    assert out[Route.RECOMMENDATION]["location"]["source"] == "ip"
    assert out[Route.RECOMMENDATION]["user_id"].startswith("rec-1:")


def test_when_ads_consent_is_withdrawn_then_no_ad_record(pipeline: Pipeline) -> None:
    consented(pipeline)
    consented(pipeline, personalized_ads=False, event_time=1764316800001)
    assert set(by_route(pipeline.process(raw(), SRC))) == {Route.RECOMMENDATION}


def test_when_oaid_is_all_zero_then_no_ad_device_pseudonym(pipeline: Pipeline) -> None:
    event = copy.deepcopy(EVENT)
    event["device"]["oaid"] = "00000000-0000-0000-0000-000000000000"
    out = by_route(consented(pipeline).process(raw(event), SRC))
    assert "user_id" not in out[Route.AD_ANALYTICS]  # limit ad tracking: no user pseudonym
    assert set(out[Route.AD_ANALYTICS]["device"]) == {
        "brand",
        "model",
        "os",
        "os_version",
        "app_version",
    }
    assert (
        "oaid" not in out[Route.RECOMMENDATION]["device"]
    )  # a placeholder, never a shared pseudonym
    assert "imei" in out[Route.RECOMMENDATION]["device"]


def test_when_identifier_is_spelled_differently_then_pseudonym_is_the_same(
    pipeline: Pipeline,
) -> None:
    a = copy.deepcopy(EVENT)
    b = copy.deepcopy(EVENT)
    b["device"].update(imei="35-693803-564380-9", oaid=a["device"]["oaid"].upper())
    consented(pipeline)
    ra, rb = (by_route(pipeline.process(raw(e), SRC))[Route.RECOMMENDATION] for e in (a, b))
    assert ra["device"]["imei"] == rb["device"]["imei"]
    assert ra["device"]["oaid"] == rb["device"]["oaid"]


def test_when_same_digits_are_different_kinds_then_pseudonyms_differ(pipeline: Pipeline) -> None:
    event = copy.deepcopy(EVENT)
    event["user_id"] = "356938035643809"
    consented(pipeline, user="356938035643809")
    rec = by_route(pipeline.process(raw(event), SRC))[Route.RECOMMENDATION]
    assert rec["user_id"] != rec["device"]["imei"]


def test_when_record_is_routed_then_key_is_the_user_pseudonym_and_headers_name_versions(
    pipeline: Pipeline,
) -> None:
    outcome = consented(pipeline).process(raw(), SRC)
    for record in outcome.records:
        assert record.key == record.json()["user_id"]
        headers = dict(record.headers)
        assert headers["policy"] == b"default/1"
        assert headers["schema"] == record.json()["schema"].encode()
        assert headers["key-ids"].decode() == record.json()["key_ids"][0]


def test_when_field_is_unknown_then_it_is_dropped(pipeline: Pipeline) -> None:
    event = copy.deepcopy(EVENT)
    event["serial"] = "R58M1234ABC"
    event["device"]["serial"] = "R58M1234ABC"
    event["payload"]["contacts"] = ["13812345678"]
    outcome = pipeline.process(raw(event), SRC)
    assert all(b"R58M1234ABC" not in r.value for r in outcome.records)
    assert "contacts" not in by_route(outcome)[Route.RECOMMENDATION]["payload"]


@pytest.mark.parametrize(
    ("data", "code", "stage"),
    [
        (b'{"schema": "behaviour/1", "event_id": "e-1"', "bad_json", "decode"),
        (b"\xff\xfe{}", "bad_encoding", "decode"),
        ('{"schema": "behaviour/1"}'.encode("utf-16-le"), "bad_encoding", "decode"),
        ('{"schema": "behaviour/1"}'.encode("utf-32"), "bad_encoding", "decode"),
        (b"", "empty", "decode"),
        (b"[1, 2]", "not_object", "decode"),
        (
            b'{"schema": "behaviour/7", "event_id": "e", "event_time": 1, "event_type": "view"}',
            "unknown_schema",
            "validate",
        ),
        (
            b'{"schema": "behaviour/1", "event_time": 1, "event_type": "view"}',
            "missing_field",
            "validate",
        ),
        (
            b'{"schema": "behaviour/1", "event_id": "e", "event_time": "1", "event_type": "view"}',
            "bad_type",
            "validate",
        ),
        (
            b'{"schema": "behaviour/1", "event_id": "e", "event_time": 1, "event_type": "teleport"}',
            "bad_value",
            "validate",
        ),
        (
            b'{"schema": "behaviour/1", "event_id": "e", "event_time": 1, "event_type": "view", "device": {"imei": [1]}}',
            "bad_type",
            "validate",
        ),
        (
            b'{"schema": "behaviour/1", "event_id": "e", "event_time": 1, "event_type": "view", "device": "x"}',
            "bad_type",
            "validate",
        ),
        (b'{"schema": "consent/1", "user_id": "unknown", "event_time": 1}', "bad_value", "consent"),
    ],
)
def test_when_record_is_bad_then_it_is_quarantined_with_a_reason(
    pipeline: Pipeline, keyring: Keyring, data: bytes, code: str, stage: str
) -> None:
    topic = "consent" if b'"consent/1"' in data else SRC.topic
    outcome = pipeline.process(data, SRC._replace(topic=topic), key=b"u10293847")
    assert outcome.quarantined == code
    [record] = outcome.records
    body = record.json()
    assert (record.route, body["error"], body["stage"]) == (Route.QUARANTINE, code, stage)
    assert body["source"] == {"topic": topic, "partition": 0, "offset": 42}
    assert record.key == f"{topic}/0/42"
    assert b"u10293847" not in record.value
    assert Sealer(keyring, "default/1").unseal(body) == (b"u10293847", data)


def test_when_record_is_too_large_then_quarantined_without_parsing(keyring: Keyring) -> None:
    pipeline = Pipeline(keyring, max_record_bytes=100)
    assert pipeline.process(raw(), SRC).quarantined == "too_large"


def test_when_record_is_too_large_then_what_fits_is_sealed_and_its_length_kept(
    keyring: Keyring,
) -> None:
    pipeline = Pipeline(keyring, max_record_bytes=100)
    sealable = sealable_bytes(100)
    small, large = b"x" * sealable, b"x" * (sealable + 1)
    body = pipeline.process(small, SRC, b"k").records[0].json()
    assert "original_bytes" not in body  # replayable whole once the limit is raised
    assert Sealer(keyring, "default/1").unseal(body) == (b"k", small)
    body = pipeline.process(large, SRC, b"k").records[0].json()
    assert body["error"] == "too_large"
    assert body["original_bytes"] == len(large)
    assert Sealer(keyring, "default/1").unseal(body) == (b"k", large[:sealable])
    assert len(orjson.dumps(body)) < request_bytes(100)


def test_when_record_at_the_limit_is_quarantined_then_the_producer_can_send_it(
    keyring: Keyring,
) -> None:
    limit = 300_000
    data = b"{" + b"7" * (limit - 1)  # bad JSON of exactly the limit: sealed whole
    record = Pipeline(keyring, max_record_bytes=limit).process(data, SRC, b"k" * 200).records[0]
    assert "original_bytes" not in record.json()
    assert len(record.value) + len(record.key or "") + 1024 < request_bytes(limit)


@pytest.mark.parametrize("limit", [1_048_576, 300_000])
def test_when_key_is_huge_then_only_its_hash_is_sealed_and_the_record_fits(
    keyring: Keyring, limit: int
) -> None:
    key = b"k" * 1_300_000
    record = Pipeline(keyring, max_record_bytes=limit).process(b"not json", SRC, key).records[0]
    body = record.json()
    assert body["error"] == "bad_json"
    assert len(record.value) + len(record.key or "") + 1024 < request_bytes(limit)
    assert Sealer(keyring, "default/1").unseal(body) == (None, b"not json")
    sealed = Sealer(keyring, "default/1").envelope(body)
    assert sealed["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert sealed["key_bytes"] == len(key)


def test_when_key_is_within_the_limit_then_it_is_sealed_whole(keyring: Keyring) -> None:
    key = b"u" * 1024
    body = Pipeline(keyring).process(b"not json", SRC, key).records[0].json()
    assert Sealer(keyring, "default/1").unseal(body) == (key, b"not json")


def test_when_device_report_carries_a_payload_then_it_is_dropped(pipeline: Pipeline) -> None:
    """Found by the fuzzer: device/1 has no payload block, so the validator never checked
    it, and a non-object payload crashed the projector (internal_error)."""
    for payload in (1, "x", {"item_id": "v-1", "query": "q"}):
        event = orjson.loads(raw())
        event.update(schema="device/1", event_type="device_report", payload=payload)
        outcome = pipeline.process(orjson.dumps(event), SourceRef("raw.device", 0, 1))
        assert outcome.quarantined is None
        assert all("payload" not in r.json() for r in outcome.records)
    assert pipeline.stats["dropped_field:payload:not_in_contract"] == 3


def test_when_quarantined_record_holds_identifiers_then_they_are_sealed(pipeline: Pipeline) -> None:
    data = raw()[:-1]  # truncated: bad JSON full of identifiers
    record = pipeline.process(data, SRC).records[0]
    for value in RAW_VALUES:
        assert value.encode() not in record.value


def test_when_quarantine_record_is_altered_then_it_cannot_be_opened(
    pipeline: Pipeline, keyring: Keyring
) -> None:
    body = pipeline.process(b"nope", SRC).records[0].json()
    body["source"]["offset"] = 43  # moving a record to another offset breaks its seal
    with pytest.raises(Exception, match="cannot be opened"):
        Sealer(keyring, "default/1").unseal(body)


def erasures(outcome: Outcome) -> dict[Route, dict[str, Any]]:
    assert {r.route for r in outcome.records} == {
        Route.ERASURE_RECOMMENDATION,
        Route.ERASURE_AD_ANALYTICS,
    }
    return by_route(outcome)


def test_when_account_is_deleted_then_one_erasure_per_audience_and_no_more_events(
    pipeline: Pipeline,
) -> None:
    first = by_route(consented(pipeline).process(raw(), SRC))
    outcome = pipeline.process(
        consent_record(account="deleted", event_time=1764316800500), SourceRef("consent")
    )
    notices = erasures(outcome)
    rec, ad = notices[Route.ERASURE_RECOMMENDATION], notices[Route.ERASURE_AD_ANALYTICS]
    assert rec["domain"] == "recommendation" and ad["domain"] == "ad-analytics"
    assert rec["user"] == [first[Route.RECOMMENDATION]["user_id"]]
    assert ad["user"] == [first[Route.AD_ANALYTICS]["user_id"]]
    for route, notice in notices.items():
        assert {r.route: r.key for r in outcome.records}[route] == notice["user"][0]
    assert pipeline.process(raw(), SRC).suppressed == "account_deleted"


def test_no_erasure_record_holds_pseudonyms_of_two_domains(pipeline: Pipeline) -> None:
    consented(pipeline).process(raw(), SRC)
    outcome = pipeline.process(consent_record(account="deleted"), SourceRef("consent"))
    for notice in erasures(outcome).values():
        prefix = "rec-" if notice["domain"] == "recommendation" else "ad-"
        names = [*notice["user"], *notice["devices"], *notice["key_ids"]]
        assert names and all(n.startswith(prefix) for n in names)


def test_when_account_is_deleted_then_its_devices_are_named_and_never_appear_again(
    pipeline: Pipeline,
) -> None:
    first = by_route(consented(pipeline).process(raw(), SRC))
    notices = erasures(pipeline.process(consent_record(account="deleted"), SourceRef("consent")))
    for route, notice in (
        (Route.RECOMMENDATION, Route.ERASURE_RECOMMENDATION),
        (Route.AD_ANALYTICS, Route.ERASURE_AD_ANALYTICS),
    ):
        device = first[route]["device"]
        assert sorted(notices[notice]["devices"]) == sorted(
            device[k] for k in ("imei", "meid", "oaid", "android_id")
        )
    named = {p for n in notices.values() for p in (*n["user"], *n["devices"])}
    logged_out = copy.deepcopy(EVENT)
    del logged_out["user_id"]
    other_user = copy.deepcopy(EVENT)
    other_user["user_id"] = "u777"
    pipeline.process(consent_record(user="u777"), SourceRef("consent"))
    follower = copy.deepcopy(EVENT)
    follower.update(user_id="u777", device={"imei": "490154203237518"})
    follower["payload"]["target_user_id"] = "u10293847"  # the deleted user, as a target
    for event in (logged_out, other_user, follower):
        outcome = pipeline.process(raw(event), SRC)
        assert outcome.records
        for record in outcome.records:
            assert not any(p in record.value.decode() for p in named)
    assert pipeline.stats["erased_identifier_dropped:imei"] == 2
    assert pipeline.stats["erased_identifier_dropped:target_user_id"] == 1


def test_when_deleted_is_followed_by_active_then_the_account_stays_deleted(
    pipeline: Pipeline,
) -> None:
    pipeline.process(consent_record(account="deleted"), SourceRef("consent"))
    later = pipeline.process(consent_record(event_time=1764316900000), SourceRef("consent"))
    assert later.records == [] and later.suppressed == "consent_after_deletion"
    assert pipeline.process(raw(), SRC).suppressed == "account_deleted"


def test_when_deletion_is_requested_then_nothing_flows_until_it_is_withdrawn(
    pipeline: Pipeline,
) -> None:
    consented(pipeline, account="deletion_requested")
    assert pipeline.process(raw(), SRC).suppressed == "account_deleted"
    consented(pipeline)  # the account service cancelled the request
    assert set(by_route(pipeline.process(raw(), SRC))) == {
        Route.RECOMMENDATION,
        Route.AD_ANALYTICS,
    }


def test_when_keys_were_rotated_then_erasure_lists_pseudonyms_under_every_key(
    keyring: Keyring,
) -> None:
    rotated = keyring.rotate(Domain.AD_ANALYTICS)
    pipeline = Pipeline(rotated)
    outcome = pipeline.process(consent_record(account="deleted"), SourceRef("consent"))
    ad = erasures(outcome)[Route.ERASURE_AD_ANALYTICS]["user"]
    assert [p.split(":")[0] for p in ad] == ["ad-2", "ad-1"]


@pytest.mark.parametrize(
    "change",
    [
        {"personalized_ads": False},
        {"account": "deletion_requested"},
        {"account": "deleted"},
    ],
)
def test_when_a_restricting_change_has_an_older_event_time_then_it_still_applies(
    pipeline: Pipeline, change: dict[str, Any]
) -> None:
    consented(pipeline, event_time=2000)
    pipeline.process(consent_record(event_time=1000, **change), SourceRef("consent"))
    assert Route.AD_ANALYTICS not in by_route(pipeline.process(raw(), SRC))


def test_when_a_widening_change_has_an_older_event_time_then_topic_order_still_decides(
    pipeline: Pipeline,
) -> None:
    consented(pipeline, personalized_ads=False, event_time=2000)
    consented(pipeline, event_time=1000)
    assert Route.AD_ANALYTICS in by_route(pipeline.process(raw(), SRC))


def test_when_device_report_arrives_then_it_is_routed_like_behaviour(pipeline: Pipeline) -> None:
    event = {k: v for k, v in EVENT.items() if k != "payload"}
    event.update(schema="device/1", event_type="device_report")
    out = by_route(consented(pipeline).process(raw(event), SourceRef("raw.device", 1, 7)))
    assert out[Route.RECOMMENDATION]["source_schema"] == "device/1"
    assert out[Route.RECOMMENDATION]["event_type"] == "device_report"


def test_every_output_validates_against_its_exported_json_schema(pipeline: Pipeline) -> None:
    consented(pipeline)
    outcomes = [
        pipeline.process(raw(), SRC),
        pipeline.process(b"{", SRC),
        pipeline.process(
            consent_record(account="deleted", event_time=1764316800999), SourceRef("consent")
        ),
    ]
    schemas = {
        s: to_json_schema(load_contract(s))
        for s in ("clean.recommendation/1", "clean.ad-analytics/1", "quarantine/1", "erasure/2")
    }
    seen = set()
    for outcome in outcomes:
        for record in outcome.records:
            body = record.json()
            jsonschema.validate(body, schemas[body["schema"]])
            seen.add(body["schema"])
    assert seen == set(schemas)


def test_every_raw_example_validates_against_its_exported_json_schema() -> None:
    jsonschema.validate(EVENT, to_json_schema(load_contract("behaviour/1")))
    jsonschema.validate(orjson.loads(consent_record()), to_json_schema(load_contract("consent/1")))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**EVENT, "event_type": "teleport"}, to_json_schema(load_contract("behaviour/1"))
        )


def test_when_policy_keeps_a_raw_identifier_then_it_is_refused_at_start(tmp_path: Path) -> None:
    policy = json.loads(
        (Path(__file__).parents[2] / "schemas" / "policy.default.1.json").read_text()
    )
    policy["routes"]["recommendation"]["fields"]["device.imei"] = "keep"
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    with pytest.raises(PolicyError, match=r"device\.imei has role identifier and cannot be 'keep'"):
        compile_policy(path)


def test_when_transform_fails_unexpectedly_then_record_is_quarantined(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: Any) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr("processor.pipeline.project.scrub_text", boom)
    outcome = Pipeline(keyring).process(raw(), SRC)
    assert outcome.quarantined == "internal_error"
    # the generated projection called boom, no stage's helper (tests/unit/test_internal_errors.py)
    assert outcome.records[0].json()["stage"] == "project"


def test_when_original_was_sealed_cut_short_then_replay_reports_it_and_does_not_process_it(
    keyring: Keyring,
) -> None:
    pipeline = Pipeline(keyring, max_record_bytes=100)
    body = pipeline.process(b"x" * (sealable_bytes(100) + 1), SRC, b"k").records[0].value
    status, source, _, raw_value, outcome = replay_one(
        Pipeline(keyring), Sealer(keyring, "default/1"), body
    )
    assert (status, source, raw_value, outcome) == ("truncated", SRC, None, None)
