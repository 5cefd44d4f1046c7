"""`pseudostream policy show`: the effective policy, checked, and the code compiled from it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.errors import PolicyError
from processor.pipeline.policy import compile_policy
from tests.unit.test_stages import DEFAULT_POLICY, policy_file


def test_show_prints_each_route_with_its_fields_by_variant() -> None:
    result = CliRunner().invoke(main, ["policy", "show"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("policy default/1\n")
    assert "route ad-analytics -> clean.ad-analytics/1 (domain ad-analytics)" in out
    assert "requires: consent personalized_ads; age band not child, minor" in out
    assert "variant reduced: personalized_recommendation is off" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:3] == "  d"}
    assert rows["device.imei"] == ["pseudonym", "-"]  # full, then without the consent
    assert "payload.amount_cents  band as amount_band  band as amount_band" in out
    assert "device.mac" not in out and "network.ip" not in out
    assert "def project(" not in out


def test_show_json_is_the_policy_summary_of_the_audit_log() -> None:
    result = CliRunner().invoke(main, ["policy", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.output)
    assert shown == compile_policy().summary()
    assert shown["routes"]["recommendation"]["key_from"][0] == "user_id"
    assert shown["routes"]["recommendation"]["reduced_when_off"] == "personalized_recommendation"


def test_show_generated_prints_every_generated_function_under_a_header() -> None:
    result = CliRunner().invoke(main, ["policy", "show", "--generated"])
    assert result.exit_code == 0, result.output
    headers = [line for line in result.output.splitlines() if line.startswith("# -- ")]
    assert headers == [
        "# -- validate behaviour/1 --",
        "# -- validate device/1 --",
        "# -- validate consent/1 --",
        "# -- project route recommendation variant full (clean.recommendation/1) --",
        "# -- project route recommendation variant reduced (clean.recommendation/1) --",
        "# -- project route ad-analytics variant full (clean.ad-analytics/1) --",
        "# -- project route ad-analytics variant limit_ad_tracking (clean.ad-analytics/1) --",
    ]
    assert "\n# -- validate behaviour/1 --\ndef validate(event):\n" in result.output
    assert "d['text'] = scrub(v)" in result.output


def test_show_generated_follows_thepolicy_file(tmp_path: Path) -> None:
    path = policy_file(tmp_path, lambda p: p["routes"].pop("ad-analytics"))
    result = CliRunner().invoke(main, ["policy", "show", "--policy", str(path), "--generated"])
    assert result.exit_code == 0, result.output
    assert "route ad-analytics" not in result.output
    assert "project route ad-analytics" not in result.output
    as_json = CliRunner().invoke(
        main, ["policy", "show", "--policy", str(path), "--json", "--generated"]
    )
    generated = orjson.loads(as_json.output)["generated"]
    assert "project route recommendation variant full (clean.recommendation/1)" in generated


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(routes=[]), "policy: routes must be a JSON object"),
        (
            lambda p: p["routes"].update(recommendation="all"),
            "policy default/1, route recommendation must be a JSON object",
        ),
        (
            lambda p: p["routes"]["recommendation"]["fields"].update({"device.imei": "keep"}),
            "device.imei has role identifier and cannot be 'keep'",
        ),
        (
            lambda p: p["without_consent_record"].update(personalized_ads="false"),
            "must be true or false",
        ),
        (
            lambda p: p["routes"]["ad-analytics"]["requires"].update(age_band_not="child"),
            "requires.age_band_not: must be a list of age bands",
        ),
    ],
)
def test_when_policy_file_is_bad_then_one_line_names_the_problem_and_exit_2(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    path = policy_file(tmp_path, change)
    result = CliRunner().invoke(main, ["policy", "show", "--policy", str(path)])
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith("pseudostream: error: ") and message in line


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", None])
def test_when_policy_file_is_unreadable_then_one_line_and_exit_2(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "policy.json"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(main, ["policy", "show", "--policy", str(path)])
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"pseudostream: error: policy file {path} ")


def _every_node(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    return [path] + [p for key, child in children for p in _every_node(child, (*path, key))]


def test_when_any_part_of_the_policy_has_the_wrong_type_then_it_is_refused_clearly(
    tmp_path: Path,
) -> None:
    """Every node of the default policy replaced by a value of each JSON type: the policy
    compiles or is refused with a PolicyError, never another exception."""
    default = json.loads(DEFAULT_POLICY.read_text())
    path = tmp_path / "policy.json"
    refused = 0
    for where in _every_node(default)[1:]:
        for wrong in (None, 7, "x", [], {}, True):
            policy = json.loads(DEFAULT_POLICY.read_text())
            holder = policy
            for key in where[:-1]:
                holder = holder[key]
            holder[where[-1]] = wrong
            path.write_text(json.dumps(policy))
            try:
                compile_policy(path)
            except PolicyError:
                refused += 1
    assert refused > 0
