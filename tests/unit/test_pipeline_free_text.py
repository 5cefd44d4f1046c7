"""Free text in the pipeline: cut to max_text_chars before scrubbing, counted per field."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from keys import Keyring, MasterKey, generate_master_key, save_keyring
from processor.cli import main
from processor.errors import ConfigError
from processor.ops.settings import Settings
from processor.pipeline.outcome import Route, SourceRef
from processor.pipeline.process import Pipeline

SRC = SourceRef("raw.behaviour", 0, 0)
CONSENT = {
    "schema": "consent/1",
    "user_id": "u1",
    "event_time": 1,
    "personalized_recommendation": True,
    "personalized_ads": True,
    "precise_location": True,
    "age_band": "adult",
    "account": "active",
}


def _comment(text: str, field: str = "text") -> bytes:
    return orjson.dumps(
        {
            "schema": "behaviour/1",
            "event_id": "e-1",
            "event_time": 2,
            "event_type": "comment",
            "user_id": "u1",
            "payload": {field: text},
        }
    )


def _pipeline(**kwargs: int) -> Pipeline:
    pipeline = Pipeline(Keyring.generate(), **kwargs)
    pipeline.process(orjson.dumps(CONSENT), SourceRef("consent"))
    return pipeline


def _recommended(pipeline: Pipeline, raw: bytes) -> dict[str, object]:
    records = {r.route: r.json() for r in pipeline.process(raw, SRC).records}
    payload = records[Route.RECOMMENDATION]["payload"]
    assert isinstance(payload, dict)
    return payload


def test_when_comment_is_over_the_limit_then_cut_scrubbed_and_counted() -> None:
    pipeline = _pipeline(max_text_chars=20)
    payload = _recommended(pipeline, _comment("加我微信 lily_2024 " + "好" * 100))
    assert payload["text"] == "加我微信 [wechat] " + "好" * 5
    assert pipeline.stats["text_truncated:payload.text"] == 1


def test_when_query_is_at_the_limit_then_kept_whole_and_not_counted() -> None:
    pipeline = _pipeline(max_text_chars=20)
    payload = _recommended(pipeline, _comment("火" * 20, field="query"))
    assert payload["query"] == "火" * 20
    assert not any(key.startswith("text_truncated") for key in pipeline.stats)


def test_when_cut_would_split_a_phone_number_then_no_digit_of_it_is_kept() -> None:
    pipeline = _pipeline(max_text_chars=12)
    payload = _recommended(pipeline, _comment("电话是 139 3233 2113 谢谢"))
    assert payload["text"] == "电话是 "


def test_when_query_is_900_kb_then_the_event_is_routed_in_well_under_a_second() -> None:
    pipeline = _pipeline()
    started = time.perf_counter()
    payload = _recommended(pipeline, _comment("a@" * 450_000, field="query"))
    assert time.perf_counter() - started < 1.0
    assert len(str(payload["query"])) <= 2_000
    assert pipeline.stats["text_truncated:payload.query"] == 1


def test_when_max_text_chars_is_below_one_then_settings_refuse() -> None:
    with pytest.raises(ConfigError, match="max_text_chars"):
        Settings.load(environ={"PSEUDOSTREAM_MAX_TEXT_CHARS": "0"})


def test_when_transform_cuts_free_text_then_its_summary_counts_it(tmp_path: Path) -> None:
    master = generate_master_key()
    keyring = tmp_path / "test.keyring"
    save_keyring(keyring, Keyring.generate(), MasterKey.from_base64(master, "test"))
    lines = orjson.dumps(CONSENT) + b"\n" + _comment("好" * 50) + b"\n"
    result = CliRunner().invoke(
        main,
        ["transform", "--keyring", str(keyring), "--max-text-chars", "10"],
        input=lines,
        env={"PSEUDOSTREAM_MASTER_KEY": master},
    )
    assert result.exit_code == 0, result.output
    assert "free text cut: payload.text 1" in result.stderr
    routed = [orjson.loads(line) for line in result.stdout.splitlines()]
    texts = [r["value"]["payload"].get("text") for r in routed if "payload" in r["value"]]
    assert texts == ["好" * 10]
