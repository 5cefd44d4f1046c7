"""`pseudostream config show`: effective settings, secrets hidden; a bad setting exits 2
with a message naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main

SECRET_ENV = {
    "PSEUDOSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "PSEUDOSTREAM_SASL_USERNAME": "svc-pseudo",
    "PSEUDOSTREAM_SASL_PASSWORD": "hunter2-do-not-print",
    "PSEUDOSTREAM_MASTER_KEY": "bWFzdGVyLWtleS1kby1ub3QtcHJpbnQ=",
}


def test_show_prints_effective_settings_with_secrets_hidden() -> None:
    result = CliRunner().invoke(main, ["config", "show"], env=SECRET_ENV)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    shown = {k.strip(): v for k, v in lines.items()}
    assert shown["sasl_password"] == "**********"
    assert shown["security_protocol"] == "SASL_PLAINTEXT"
    assert "svc-pseudo" in result.stdout
    assert "hunter2" not in result.stdout
    assert "bWFzdGVyLWtleS1kby1ub3QtcHJpbnQ=" not in result.stdout


def test_show_json(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('partitions = 8\ntopic_prefix = "staging."\n')
    env = {**SECRET_ENV, "PSEUDOSTREAM_PARTITIONS": "6"}
    result = CliRunner().invoke(
        main, ["config", "show", "--config", str(config), "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.stdout)
    assert shown["partitions"] == 6  # the environment wins over the file
    assert shown["topic_prefix"] == "staging."
    assert shown["sasl_password"] == "**********"
    assert shown["master_key"] == "**********"
    assert shown["keyring"] is None
    assert shown["topic_consent_changelog"] == "pseudostream-consent-changelog"
    assert "hunter2" not in result.stdout


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"PSEUDOSTREAM_PARTITIONS": "0"}, "partitions"),
        ({"PSEUDOSTREAM_BATCH_SIZE": "many"}, "batch_size"),
        ({"PSEUDOSTREAM_SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"PSEUDOSTREAM_SECURITY_PROTOCOL": "SASL_SSL"}, "sasl_username"),
        ({"PSEUDOSTREAM_SASL_PASSWORD": "pw-do-not-print"}, "sasl_password"),
    ],
)
def test_config_error_exits_2_naming_the_setting(env: dict[str, str], setting: str) -> None:
    result = CliRunner().invoke(main, ["config", "show"], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"pseudostream: error: {setting}: ")
    assert "do-not-print" not in result.stderr
    assert result.stdout == ""


def test_unknown_key_in_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("[pseudostream]\nsasl_pasword = 'typo'\n")
    result = CliRunner().invoke(main, ["config", "show", "--config", str(config)])
    assert result.exit_code == 2
    assert "'sasl_pasword'" in result.stderr


def _run_cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``python -m processor ARGS`` with only ``settings`` as PSEUDOSTREAM_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSEUDOSTREAM_")}
    env.update({f"PSEUDOSTREAM_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "processor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_real_process_exit_code() -> None:
    proc = _run_cli("config", "show", sasl_mechanism="GSSAPI")
    assert proc.returncode == 2
    assert proc.stderr.startswith("pseudostream: error: sasl_mechanism: ")


@pytest.mark.parametrize(
    ("broker", "accepted"),
    [
        ("ftp://host:9092", False),
        ("kafka://host:99999", False),
        ("kafka://host:port", False),
        ("kafka://host:0", False),
        ("kafka://host", False),
        ("kafka://:9092", False),
        ("kafka://user@host:9092", False),
        ("kafka://a:9092,ftp://b:9092", False),
        (",;", False),
        ("kafka://k1:9092;k2:9093", True),
        ("k1:9092,k2:9092", True),
        ("aiokafka://10.0.0.1:9092", True),
        ("kafka://[::1]:9092", True),
    ],
)
def test_config_show_refuses_a_broker_that_cannot_work_in_one_line(
    broker: str, accepted: bool
) -> None:
    result = CliRunner().invoke(main, ["config", "show"], env={"PSEUDOSTREAM_BROKER": broker})
    if accepted:
        assert result.exit_code == 0, result.output
        assert f"= {broker}" in result.stdout
        return
    assert result.exit_code == 2
    assert result.stderr.startswith("pseudostream: error: broker: ")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_worker_refuses_a_bad_broker_before_starting() -> None:
    proc = _run_cli("worker", broker="kafka://host:port")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "pseudostream: error: broker: port 'port' in 'kafka://host:port' is not a number 1..65535"
    ]
