"""`pseudostream keys ...`: exit codes, messages, file modes, and never any key material."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from keys import MasterKey, generate_master_key, load_keyring
from processor.cli import main
from tests.unit.test_keys import MASTER_B64, assert_no_material


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    return tmp_path / "keyring.json"


@pytest.fixture
def with_master_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER_B64)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["keys", *map(str, args)])


def open_keyring(path: Path) -> list[str]:
    """Key ids of the keyring at ``path``, read back through the library."""
    return [k.key_id for k in load_keyring(path, MasterKey.from_base64(MASTER_B64, "test"))]


@pytest.mark.usefixtures("with_master_env")
def test_init_creates_a_0600_keyring_with_one_key_per_domain(keyring_path: Path) -> None:
    result = run("init", "--keyring", keyring_path)
    assert result.exit_code == 0, result.output
    assert "rec-1, ad-1, quar-1" in result.stdout
    assert stat.S_IMODE(keyring_path.stat().st_mode) == 0o600
    assert open_keyring(keyring_path) == ["rec-1", "ad-1", "quar-1"]


@pytest.mark.usefixtures("with_master_env")
def test_when_keyring_exists_then_init_refuses_unless_forced(keyring_path: Path) -> None:
    run("init", "--keyring", keyring_path)
    before = keyring_path.read_bytes()

    refused = run("init", "--keyring", keyring_path)
    assert refused.exit_code == 2
    assert "already exists" in refused.stderr
    assert "--force" in refused.stderr
    assert keyring_path.read_bytes() == before

    forced = run("init", "--keyring", keyring_path, "--force")
    assert forced.exit_code == 0
    assert keyring_path.read_bytes() != before


@pytest.mark.usefixtures("with_master_env")
def test_rotate_prints_the_new_key_id_and_list_shows_the_old_one_retired(
    keyring_path: Path,
) -> None:
    run("init", "--keyring", keyring_path)
    rotated = run("rotate", "--keyring", keyring_path, "--domain", "ad-analytics")
    assert rotated.exit_code == 0
    assert rotated.stdout == "ad-2\n"

    table = run("list", "--keyring", keyring_path).stdout.splitlines()
    assert table[0].split() == ["KEY", "ID", "DOMAIN", "STATUS", "CREATED", "RETIRED"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["ad-2"][1:3] == ["ad-analytics", "active"]
    assert rows["ad-2"][4] == "-"
    assert rows["ad-1"][1:3] == ["ad-analytics", "retired"]
    assert rows["ad-1"][4].endswith("Z")


def test_when_domain_is_unknown_then_rotate_is_a_usage_error(keyring_path: Path) -> None:
    result = run("rotate", "--keyring", keyring_path, "--domain", "marketing")
    assert result.exit_code == 2
    assert "marketing" in result.stderr


@pytest.mark.usefixtures("with_master_env")
def test_list_json_has_ids_status_and_utc_times_but_no_material(keyring_path: Path) -> None:
    run("init", "--keyring", keyring_path)
    result = run("list", "--keyring", keyring_path, "--json")
    rows = json.loads(result.stdout)
    assert [r["key_id"] for r in rows] == ["rec-1", "ad-1", "quar-1"]
    assert {tuple(sorted(r)) for r in rows} == {
        ("created", "domain", "key_id", "retired", "status")
    }
    assert all(r["status"] == "active" and r["retired"] is None for r in rows)
    assert all(r["created"].endswith("Z") for r in rows)


@pytest.mark.usefixtures("with_master_env")
def test_no_command_output_holds_key_material(keyring_path: Path) -> None:
    outputs = [
        run("init", "--keyring", keyring_path),
        run("rotate", "--keyring", keyring_path, "--domain", "recommendation"),
        run("list", "--keyring", keyring_path),
        run("list", "--keyring", keyring_path, "--json"),
    ]
    keyring = load_keyring(keyring_path, MasterKey.from_base64(MASTER_B64, "test"))
    for result in outputs:
        assert result.exit_code == 0
        assert_no_material(result.output, keyring)


def test_master_key_file_is_used_instead_of_the_environment(
    tmp_path: Path, keyring_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", generate_master_key())
    key_file = tmp_path / "master.key"
    key_file.write_text(MASTER_B64 + "\n")
    result = run("init", "--keyring", keyring_path, "--master-key-file", key_file)
    assert result.exit_code == 0
    assert open_keyring(keyring_path) == ["rec-1", "ad-1", "quar-1"]


def test_when_master_key_is_wrong_then_list_fails_with_one_line(
    keyring_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", MASTER_B64)
    run("init", "--keyring", keyring_path)
    monkeypatch.setenv("PSEUDOSTREAM_MASTER_KEY", generate_master_key())
    result = run("list", "--keyring", keyring_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("pseudostream: error: keyring ")
    assert "master key does not open it" in result.stderr
    assert result.stderr.count("\n") == 1


def test_when_no_master_key_is_given_then_commands_fail_with_a_hint(keyring_path: Path) -> None:
    result = run("init", "--keyring", keyring_path)
    assert result.exit_code == 2
    assert "no master key" in result.stderr
    assert "new-master-key" in result.stderr
    assert not keyring_path.exists()


@pytest.mark.usefixtures("with_master_env")
def test_when_keyring_is_missing_then_list_suggests_init(keyring_path: Path) -> None:
    result = run("list", "--keyring", keyring_path)
    assert result.exit_code == 2
    assert f"pseudostream keys init --keyring {keyring_path}" in result.stderr


def test_new_master_key_prints_base64_of_32_bytes() -> None:
    result = run("new-master-key")
    assert result.exit_code == 0
    assert len(base64.b64decode(result.stdout.strip(), validate=True)) == 32


def test_new_master_key_out_writes_a_0600_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "master.key"
    written = run("new-master-key", "--out", out)
    assert written.exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = out.read_text().strip()
    assert key not in written.output
    assert len(base64.b64decode(key, validate=True)) == 32

    again = run("new-master-key", "--out", out)
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert out.read_text().strip() == key


@pytest.mark.usefixtures("with_master_env")
@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_when_keyring_is_writable_by_others_then_every_command_refuses_it_in_one_line(
    keyring_path: Path, mode: int
) -> None:
    run("init", "--keyring", keyring_path)
    keyring_path.chmod(mode)
    for result in (
        run("list", "--keyring", keyring_path),
        CliRunner().invoke(main, ["transform", "--keyring", str(keyring_path)], input=b""),
    ):
        assert result.exit_code == 2
        assert result.stderr == (
            f"pseudostream: error: keyring {keyring_path} is writable by group or others"
            f" (mode {mode:04o}); run: chmod 600 {keyring_path}\n"
        )


def test_when_master_key_file_is_writable_by_others_then_refused_with_the_chmod(
    keyring_path: Path, tmp_path: Path
) -> None:
    master_file = tmp_path / "master.key"
    master_file.write_text(MASTER_B64)
    master_file.chmod(0o600)
    assert run("init", "--keyring", keyring_path, "--master-key-file", master_file).exit_code == 0
    master_file.chmod(0o646)
    result = run("list", "--keyring", keyring_path, "--master-key-file", master_file)
    assert result.exit_code == 2
    assert f"run: chmod 600 {master_file}" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.usefixtures("with_master_env")
def test_when_keyring_is_readable_by_others_then_a_warning_names_the_chmod(
    keyring_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run("init", "--keyring", keyring_path)
    keyring_path.chmod(0o644)  # what a Kubernetes secret volume gives without defaultMode
    result = run("list", "--keyring", keyring_path)
    assert result.exit_code == 0
    assert f"readable by group or others (mode 0644); run: chmod 600 {keyring_path}" in caplog.text
