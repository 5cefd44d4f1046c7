"""The compiled stages on their own: validation, policy compilation, projection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keys import Domain, Keyring
from processor.errors import PolicyError, RecordError
from processor.pipeline.consent import Account, AgeBand, Consent
from processor.pipeline.kinds import IdKind
from processor.pipeline.policy import compile_policy
from processor.pipeline.project import cell_string, compile_projector
from processor.pipeline.pseudonym import Pseudonymizer
from processor.pipeline.validate import Validator
from schemas import load_contract

DEFAULT_POLICY = Path(__file__).parents[2] / "schemas" / "policy.default.1.json"


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": "behaviour/1",
        "event_id": "e-1",
        "event_time": 1,
        "event_type": "view",
    }
    base.update(fields)
    return base


def consent(**overrides: Any) -> Consent:
    values: dict[str, Any] = {
        "personalized_recommendation": True,
        "personalized_ads": True,
        "precise_location": True,
        "age_band": AgeBand.ADULT,
        "account": Account.ACTIVE,
        "event_time": 0,
    }
    values.update(overrides)
    return Consent(**values)


def policy_file(tmp_path: Path, change: Any) -> Path:
    data = json.loads(DEFAULT_POLICY.read_text())
    change(data)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    return path


# -- validation ------------------------------------------------------------------------------


def test_when_event_is_valid_then_validator_drops_nothing() -> None:
    assert Validator(load_contract("behaviour/1"))(event(device={"imei": 356938035643809})) == ()


def test_when_coordinate_is_bad_then_only_that_field_is_dropped_and_named() -> None:
    record = event(location={"lat": 123.0, "lon": 106.5})
    assert Validator(load_contract("behaviour/1"))(record) == ("location.lat:bad_value",)
    assert record["location"] == {"lon": 106.5}


def test_when_identifier_is_a_bool_then_quarantine_without_quoting_it() -> None:
    with pytest.raises(RecordError) as info:
        Validator(load_contract("behaviour/1"))(event(user_id=True))
    assert (info.value.code, info.value.detail) == (
        "bad_type",
        "user_id: expected int or str, got bool",
    )


def test_when_validator_is_generated_then_its_source_is_readable() -> None:
    validator = Validator(load_contract("consent/1"))
    source = validator._validate.__source__  # type: ignore[attr-defined]
    assert source.startswith("def validate(event):")
    assert "'user_id'" in source


# -- policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: p["routes"]["recommendation"]["fields"].update({"payload.text": "keep"}),
            r"payload\.text has role free_text and cannot be 'keep'",
        ),
        (
            lambda p: p["routes"]["recommendation"]["fields"].update({"device.serial": "keep"}),
            r"device\.serial is not in the field-role table",
        ),
        (
            lambda p: p["routes"]["recommendation"].update({"key_from": ["device.brand"]}),
            "key_from may only name pseudonymized identifier fields",
        ),
        (
            lambda p: p["routes"]["ad-analytics"]["requires"].update({"consent": ["telepathy"]}),
            "requires.consent must name flags",
        ),
        (lambda p: p["routes"].update({"billing": p["routes"]["recommendation"]}), "unknown route"),
        (
            lambda p: p["routes"]["recommendation"]["fields"].update({"location": "keep"}),
            "location can only be 'coarsen'",
        ),
        (
            lambda p: p["routes"]["ad-analytics"]["fields"].update(
                {"payload.amount_cents": "band"}
            ),
            r"payload\.amount_cents has role passthrough and cannot be 'band'",
        ),
        (
            lambda p: p["routes"]["ad-analytics"]["fields"].update(
                {"device.imei": {"band": {"as": "x", "edges": [1], "labels": ["a", "b"]}}}
            ),
            r"device\.imei has role identifier and cannot be 'band'",
        ),
        (
            lambda p: p["routes"]["ad-analytics"]["fields"]["payload.amount_cents"]["band"].update(
                {"edges": [1000, 100]}
            ),
            "band edges must be increasing integers",
        ),
        (
            lambda p: p["routes"]["ad-analytics"]["fields"]["payload.amount_cents"]["band"].pop(
                "labels"
            ),
            "a band needs 'as', 'edges' and 'labels'",
        ),
    ],
)
def test_when_policy_is_unsafe_or_wrong_then_start_up_refuses_it(
    tmp_path: Path, change: Any, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        compile_policy(policy_file(tmp_path, change))


def test_when_policy_file_is_missing_then_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        compile_policy(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("overrides", "lat", "expected"),
    [
        ({}, False, ("full", "full")),
        ({}, True, ("full", "limit_ad_tracking")),
        ({"personalized_recommendation": False}, False, ("reduced", "full")),
        ({"personalized_ads": False}, False, ("full", None)),
        ({"age_band": AgeBand.CHILD}, False, ("full", None)),
        ({"age_band": AgeBand.UNKNOWN}, False, ("full", "full")),
    ],
)
def test_route_variant_follows_consent(
    overrides: dict[str, Any], lat: bool, expected: tuple[str | None, ...]
) -> None:
    rec, ad = compile_policy().routes
    assert (
        rec.variant_for(consent(**overrides), lat),
        ad.variant_for(consent(**overrides), lat),
    ) == expected


# -- projection ------------------------------------------------------------------------------


def test_when_identifier_is_a_placeholder_then_projection_writes_no_field() -> None:
    plan = compile_policy().routes[0]
    pseudonymizer = Pseudonymizer(Keyring.generate().active(Domain.RECOMMENDATION))
    project = compile_projector(
        plan, "full", plan.full, pseudonymizer=pseudonymizer, policy_version="default/1", headers=()
    )
    record = project(
        event(device={"oaid": "00000000-0000-0000-0000-000000000000", "brand": "vivo"}),
        "behaviour/1",
        None,
    ).json()
    assert record["device"] == {"brand": "vivo"}
    assert "location" not in record


def test_when_cell_is_pseudonymized_then_its_four_parts_make_one_value() -> None:
    assert cell_string({"mcc": 460, "mnc": 0, "lac": 4301, "cid": 20571}) == "460-0-4301-20571"
    pseudonymizer = Pseudonymizer(Keyring.generate().active(Domain.RECOMMENDATION))
    assert pseudonymizer.pseudonym(IdKind.CELL, "460-0-4301-20571") is not None


def test_when_cache_is_full_then_values_still_in_use_survive_a_generation() -> None:
    pseudonymizer = Pseudonymizer(Keyring.generate().active(Domain.RECOMMENDATION), cache_size=2)
    first = pseudonymizer.pseudonym(IdKind.USER_ID, "u1")
    for value in ("u2", "u3", "u4"):
        pseudonymizer.pseudonym(IdKind.USER_ID, value)
    computed = pseudonymizer.computed
    assert pseudonymizer.pseudonym(IdKind.USER_ID, "u3") is not None
    assert pseudonymizer.pseudonym(IdKind.USER_ID, "u1") == first
    assert len(pseudonymizer.caches[IdKind.USER_ID]) <= 2
    assert pseudonymizer.computed <= computed + 1
