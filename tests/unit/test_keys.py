"""The keyring: generation, rotation, derivation, sealing at rest and its failures."""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys import (
    Domain,
    Keyring,
    MasterKey,
    generate_master_key,
    load_keyring,
    load_keyring_from,
    resolve_master_key,
    save_keyring,
)
from keys.errors import (
    KeyringError,
    KeyringFormatError,
    KeyringNotFoundError,
    KeyringTamperedError,
    KeyringUnsealError,
    MasterKeyError,
)
from keys.store import _aad

T0 = datetime(2025, 1, 1, tzinfo=UTC)
MASTER_B64 = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.from_base64(MASTER_B64, "test")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate(now=T0)


@pytest.fixture
def saved(tmp_path: Path, keyring: Keyring, master: MasterKey) -> Path:
    path = tmp_path / "keyring.json"
    save_keyring(path, keyring, master)
    return path


def secret_spellings(keyring: Keyring, master_b64: str = MASTER_B64) -> list[str]:
    """Every way key material could leak into text: raw-ish, hex and base64."""
    blobs = [base64.b64decode(master_b64)]
    for key in keyring:
        blobs += [key.material.reveal(), key.pseudonym_key(), key.sealing_key()]
    spellings = [master_b64]
    for blob in blobs:
        spellings += [blob.hex(), base64.b64encode(blob).decode(), repr(blob)[2:-1]]
    return spellings


def assert_no_material(text: str, keyring: Keyring) -> None:
    leaked = [s for s in secret_spellings(keyring) if s in text]
    assert not leaked


def envelope(path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(path.read_text())
    return data


def reseal(path: Path, master: MasterKey, plaintext: Mapping[str, object]) -> None:
    """Writes a correctly sealed file holding any key list, even an invalid one."""
    env = envelope(path)
    nonce = base64.b64decode(env["nonce"])
    sealed = master.keyring_cipher().encrypt(
        nonce, json.dumps(plaintext).encode(), _aad(env["check"])
    )
    env["ciphertext"] = base64.b64encode(sealed).decode()
    path.write_text(json.dumps(env))


def unseal(path: Path, master: MasterKey) -> dict[str, list[dict[str, object]]]:
    env = envelope(path)
    plaintext = master.keyring_cipher().decrypt(
        base64.b64decode(env["nonce"]), base64.b64decode(env["ciphertext"]), _aad(env["check"])
    )
    data: dict[str, list[dict[str, object]]] = json.loads(plaintext)
    return data


# --- generation, rotation, derivation ---------------------------------------------------


def test_when_generated_then_one_active_key_per_domain_numbered_one(keyring: Keyring) -> None:
    assert [k.key_id for k in keyring] == ["rec-1", "ad-1", "quar-1"]
    for domain in Domain:
        key = keyring.active(domain)
        assert key.active
        assert key.domain is domain
        assert key.created_at == T0
        assert keyring.get(key.key_id) is key


def test_when_generated_twice_then_material_differs() -> None:
    first, second = Keyring.generate(), Keyring.generate()
    assert first.active(Domain.RECOMMENDATION) != second.active(Domain.RECOMMENDATION)


def test_when_rotated_then_new_key_is_active_and_old_one_retired(keyring: Keyring) -> None:
    later = T0 + timedelta(days=30)
    rotated = keyring.rotate(Domain.AD_ANALYTICS, now=later)

    new, old = rotated.keys_for(Domain.AD_ANALYTICS)
    assert (new.key_id, new.active, new.created_at) == ("ad-2", True, later)
    assert (old.key_id, old.active, old.retired_at) == ("ad-1", False, later)
    assert rotated.active(Domain.AD_ANALYTICS) is new
    assert old.pseudonym_key() == keyring.get("ad-1").pseudonym_key()
    assert new.pseudonym_key() != old.pseudonym_key()


def test_when_rotated_then_other_domains_and_original_keyring_are_unchanged(
    keyring: Keyring,
) -> None:
    rotated = keyring.rotate(Domain.AD_ANALYTICS, now=T0)
    assert rotated.active(Domain.RECOMMENDATION) == keyring.active(Domain.RECOMMENDATION)
    assert rotated.active(Domain.QUARANTINE) == keyring.active(Domain.QUARANTINE)
    assert [k.key_id for k in keyring.keys_for(Domain.AD_ANALYTICS)] == ["ad-1"]


def test_when_rotated_twice_then_retired_keys_are_listed_newest_first(keyring: Keyring) -> None:
    rotated = keyring.rotate(Domain.QUARANTINE, now=T0 + timedelta(days=1)).rotate(
        Domain.QUARANTINE, now=T0 + timedelta(days=2)
    )
    assert [k.key_id for k in rotated.keys_for(Domain.QUARANTINE)] == [
        "quar-3",
        "quar-2",
        "quar-1",
    ]


def test_derived_keys_are_32_bytes_and_differ_per_domain_key_id_and_purpose(
    keyring: Keyring,
) -> None:
    rotated = keyring.rotate(Domain.RECOMMENDATION, now=T0)
    derived = [k.pseudonym_key() for k in rotated] + [k.sealing_key() for k in rotated]
    assert all(len(d) == 32 for d in derived)
    assert len(set(derived)) == len(derived)


def test_when_material_is_shared_then_domain_and_key_id_still_separate_keys(
    keyring: Keyring,
) -> None:
    rec = keyring.active(Domain.RECOMMENDATION)
    same_material_other_id = replace(rec, key_id="rec-2")
    same_material_other_domain = replace(rec, domain=Domain.AD_ANALYTICS, key_id="ad-1")
    assert (
        len(
            {
                rec.pseudonym_key(),
                same_material_other_id.pseudonym_key(),
                same_material_other_domain.pseudonym_key(),
            }
        )
        == 3
    )


def test_pseudonym_key_is_hkdf_sha256_with_the_documented_info(keyring: Keyring) -> None:
    key = keyring.active(Domain.AD_ANALYTICS)
    expected = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"pseudostream/v1/pseudonym/ad-analytics/ad-1",
    ).derive(key.material.reveal())
    assert key.pseudonym_key() == expected


def test_when_key_id_is_unknown_then_format_error_names_it(keyring: Keyring) -> None:
    with pytest.raises(KeyringFormatError, match="ad-9"):
        keyring.get("ad-9")


def test_when_a_domain_has_two_active_keys_then_keyring_is_refused(keyring: Keyring) -> None:
    rotated = keyring.rotate(Domain.AD_ANALYTICS, now=T0)
    reactivated = [replace(k, retired_at=None) for k in rotated]
    with pytest.raises(KeyringFormatError, match="2 active keys for domain ad-analytics"):
        Keyring(tuple(reactivated))


def test_when_now_is_naive_then_value_error(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        keyring.rotate(Domain.AD_ANALYTICS, now=datetime(2025, 1, 1))


# --- sealing at rest --------------------------------------------------------------------


def test_when_saved_and_loaded_then_keyring_and_derived_keys_are_the_same(
    saved: Path, keyring: Keyring, master: MasterKey
) -> None:
    loaded = load_keyring(saved, master)
    assert loaded == keyring
    for before, after in zip(keyring, loaded, strict=True):
        assert after.pseudonym_key() == before.pseudonym_key()
        assert after.sealing_key() == before.sealing_key()


def test_when_rotated_keyring_is_saved_then_retired_keys_survive_loading(
    saved: Path, keyring: Keyring, master: MasterKey
) -> None:
    rotated = keyring.rotate(Domain.AD_ANALYTICS, now=T0 + timedelta(hours=1))
    save_keyring(saved, rotated, master)
    loaded = load_keyring(saved, master)
    assert loaded == rotated
    assert loaded.get("ad-1").retired_at == T0 + timedelta(hours=1)


def test_saved_file_is_mode_0600_even_when_replacing_a_readable_file(
    tmp_path: Path, keyring: Keyring, master: MasterKey
) -> None:
    path = tmp_path / "keyring.json"
    path.write_text("old")
    path.chmod(0o644)
    save_keyring(path, keyring, master)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]


def test_each_save_uses_a_fresh_nonce(saved: Path, keyring: Keyring, master: MasterKey) -> None:
    first = envelope(saved)["nonce"]
    save_keyring(saved, keyring, master)
    assert envelope(saved)["nonce"] != first


def test_saved_file_holds_no_material_in_the_clear(saved: Path, keyring: Keyring) -> None:
    assert_no_material(saved.read_text(), keyring)


def test_when_directory_is_missing_then_save_gives_keyring_error(
    tmp_path: Path, keyring: Keyring, master: MasterKey
) -> None:
    with pytest.raises(KeyringError, match="cannot write keyring"):
        save_keyring(tmp_path / "absent" / "keyring.json", keyring, master)


def test_when_master_key_is_wrong_then_unseal_error(saved: Path) -> None:
    other = MasterKey.from_base64(generate_master_key(), "other")
    with pytest.raises(KeyringUnsealError, match="the master key does not open it"):
        load_keyring(saved, other)


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_when_a_sealed_byte_is_flipped_then_tampered_error(
    saved: Path, master: MasterKey, field: str
) -> None:
    env = envelope(saved)
    raw = bytearray(base64.b64decode(env[field]))
    raw[5] ^= 0x01
    env[field] = base64.b64encode(bytes(raw)).decode()
    saved.write_text(json.dumps(env))
    with pytest.raises(KeyringTamperedError, match="integrity check failed"):
        load_keyring(saved, master)


def test_when_ciphertext_text_is_not_base64_then_tampered_error(
    saved: Path, master: MasterKey
) -> None:
    env = envelope(saved)
    env["ciphertext"] = "!" + env["ciphertext"][1:]
    saved.write_text(json.dumps(env))
    with pytest.raises(KeyringTamperedError):
        load_keyring(saved, master)


def test_when_file_is_truncated_then_format_error(saved: Path, master: MasterKey) -> None:
    saved.write_bytes(saved.read_bytes()[:100])
    with pytest.raises(KeyringFormatError, match="not JSON"):
        load_keyring(saved, master)


def test_when_file_is_missing_then_not_found_error_suggests_init(
    tmp_path: Path, master: MasterKey
) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(KeyringNotFoundError, match=re.escape(f"keys init --keyring {path}")):
        load_keyring(path, master)


def test_when_format_version_is_unknown_then_format_error(saved: Path, master: MasterKey) -> None:
    env = envelope(saved)
    env["format"] = "pseudostream-keyring/2"
    saved.write_text(json.dumps(env))
    with pytest.raises(KeyringFormatError, match="unknown format or version"):
        load_keyring(saved, master)


def test_when_sealed_keys_lack_a_domain_then_format_error_names_it(
    saved: Path, master: MasterKey
) -> None:
    plaintext = unseal(saved, master)
    plaintext["keys"] = [k for k in plaintext["keys"] if k["domain"] != "ad-analytics"]
    reseal(saved, master, plaintext)
    with pytest.raises(
        KeyringFormatError,
        match=re.escape(f"keyring {saved} has no active key for domain ad-analytics"),
    ):
        load_keyring(saved, master)


def test_when_sealed_material_is_short_then_format_error(saved: Path, master: MasterKey) -> None:
    plaintext = unseal(saved, master)
    plaintext["keys"][0]["material"] = base64.b64encode(b"short").decode()
    reseal(saved, master, plaintext)
    with pytest.raises(KeyringFormatError, match="rec-1 has no 32-byte base64 material"):
        load_keyring(saved, master)


# --- master key -------------------------------------------------------------------------


def test_when_master_key_is_not_base64_then_error_names_source_not_value() -> None:
    with pytest.raises(MasterKeyError, match="PSEUDOSTREAM_MASTER_KEY is not valid base64") as e:
        MasterKey.from_base64("not base64 SECRETVALUE!", "PSEUDOSTREAM_MASTER_KEY")
    assert "SECRETVALUE" not in str(e.value)


def test_when_master_key_has_wrong_length_then_error_names_source_not_value() -> None:
    short = base64.b64encode(b"0123456789abcdef").decode()
    with pytest.raises(MasterKeyError, match="from somewhere is 16 bytes, expected 32") as e:
        MasterKey.from_base64(short, "somewhere")
    assert short not in str(e.value)
    assert "0123456789abcdef" not in str(e.value)


def test_when_master_key_is_empty_then_error_says_empty() -> None:
    with pytest.raises(MasterKeyError, match="is empty"):
        MasterKey.from_base64("  \n", "PSEUDOSTREAM_MASTER_KEY")


def test_generated_master_key_is_base64_of_32_fresh_bytes() -> None:
    first, second = generate_master_key(), generate_master_key()
    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != second


def test_when_file_and_env_are_both_given_then_file_wins(tmp_path: Path) -> None:
    file = tmp_path / "master.key"
    file.write_text(f"  {MASTER_B64}\n")
    master = resolve_master_key(file, {"PSEUDOSTREAM_MASTER_KEY": "garbage"})
    assert master.source == f"master key file {file}"


def test_when_only_env_is_set_then_it_is_used() -> None:
    master = resolve_master_key(None, {"PSEUDOSTREAM_MASTER_KEY": MASTER_B64})
    assert master.source == "PSEUDOSTREAM_MASTER_KEY"


def test_when_no_master_key_is_given_then_error_says_how_to_make_one() -> None:
    with pytest.raises(MasterKeyError, match="no master key: set PSEUDOSTREAM_MASTER_KEY") as e:
        resolve_master_key(None, {})
    assert "new-master-key" in str(e.value)


def test_when_master_key_file_is_missing_then_master_key_error(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="cannot read master key file"):
        resolve_master_key(tmp_path / "absent.key", {})


def test_load_keyring_from_reads_the_master_key_from_the_environment(
    saved: Path, keyring: Keyring
) -> None:
    assert load_keyring_from(saved, None, {"PSEUDOSTREAM_MASTER_KEY": MASTER_B64}) == keyring


# --- no material anywhere ---------------------------------------------------------------


def test_repr_and_str_of_keys_keyring_and_master_key_hold_no_material(
    keyring: Keyring, master: MasterKey
) -> None:
    objects: list[object] = [keyring, master, *keyring, *(k.material for k in keyring)]
    for obj in objects:
        assert_no_material(repr(obj) + str(obj), keyring)
    assert repr(keyring.active(Domain.AD_ANALYTICS)) == "Key('ad-1', ad-analytics, active)"


def test_every_error_message_holds_no_material(
    tmp_path: Path, keyring: Keyring, master: MasterKey
) -> None:
    path = tmp_path / "keyring.json"
    save_keyring(path, keyring, master)
    messages = []
    for attempt in (
        lambda: load_keyring(path, MasterKey.from_base64(generate_master_key(), "x")),
        lambda: MasterKey.from_base64(MASTER_B64[:-4], "x"),
        lambda: MasterKey.from_base64(MASTER_B64 + "*", "x"),
        lambda: resolve_master_key(None, {}),
    ):
        with pytest.raises(KeyringError) as exc:
            attempt()
        messages.append(str(exc.value))
    env = envelope(path)
    env["ciphertext"] = env["ciphertext"][:-8] + "AAAAAAA="
    path.write_text(json.dumps(env))
    with pytest.raises(KeyringTamperedError) as tampered:
        load_keyring(path, master)
    messages.append(str(tampered.value))
    for message in messages:
        assert_no_material(message, keyring)
