"""Settings: SASL/TLS fields, their validation (errors name the setting) and how they map
onto the faust, aiokafka and kafka-python clients (no SASL broker here: the mapping is
checked against each client's own option names and faust's own credential translation)."""

from __future__ import annotations

import datetime
import inspect
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from processor.errors import ConfigError
from processor.kafka.clients import (
    aiokafka_options,
    faust_options,
    kafka_python_options,
    ssl_context,
)
from processor.ops.settings import Secret, Settings


def _env(**values: str) -> dict[str, str]:
    return {f"PSEUDOSTREAM_{k.upper()}": v for k, v in values.items()}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA certificate and key, as PEM files."""
    directory = tmp_path_factory.mktemp("pki")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pseudostream-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = {"cert": directory / "cert.pem", "key": directory / "key.pem"}
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_defaults_are_plaintext_without_client_options() -> None:
    settings = Settings.load({})
    assert settings.security_protocol == "PLAINTEXT"
    assert kafka_python_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert aiokafka_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_options(settings) == {}
    assert ssl_context(settings) is None


def test_spellings_are_normalised() -> None:
    settings = Settings.load(
        _env(
            security_protocol="sasl_plaintext",
            sasl_mechanism="scram_sha_256",
            sasl_username="svc",
            sasl_password="pw",
        )
    )
    assert (settings.security_protocol, settings.sasl_mechanism) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
    )
    assert isinstance(settings.sasl_password, Secret)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"security_protocol": "TLS"}, "security_protocol"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "GSSAPI",
                "sasl_username": "u",
                "sasl_password": "p",
            },
            "sasl_mechanism",
        ),
        ({"security_protocol": "SASL_SSL", "sasl_password": "p"}, "sasl_username"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"}, "sasl_password"),
        ({"sasl_password": "p"}, "sasl_password"),
        ({"sasl_username": "u"}, "sasl_username"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"}, "ssl_cafile"),
        ({"ssl_cafile": "/etc/hostname"}, "ssl_cafile"),
        ({"ssl_check_hostname": "maybe"}, "ssl_check_hostname"),
        ({"max_record_bytes": "10"}, "max_record_bytes"),
    ],
)
def test_bad_security_settings_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{setting}: "):
        Settings.load(_env(**env))


def test_keyfile_needs_certfile(pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"^ssl_keyfile: "):
        Settings.load(_env(security_protocol="SSL", ssl_keyfile=str(pki["key"])))


def test_password_is_never_printed() -> None:
    settings = Settings.load(
        _env(security_protocol="SASL_SSL", sasl_username="svc", sasl_password="hunter2-secret")
    )
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings.public())


def test_kafka_python_options_sasl_ssl(pki: dict[str, Path]) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    settings = Settings.load(
        _env(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="svc",
            sasl_password="pw",
            ssl_cafile=str(pki["cert"]),
            ssl_certfile=str(pki["cert"]),
            ssl_keyfile=str(pki["key"]),
        )
    )
    options = kafka_python_options(settings)
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
        "ssl_check_hostname": True,
        "ssl_cafile": str(pki["cert"]),
        "ssl_certfile": str(pki["cert"]),
        "ssl_keyfile": str(pki["key"]),
    }
    for client in (KafkaConsumer, KafkaProducer, KafkaAdminClient):
        assert set(options) <= set(client.DEFAULT_CONFIG), client


def test_kafka_python_options_sasl_plaintext_has_no_tls() -> None:
    settings = Settings.load(
        _env(security_protocol="SASL_PLAINTEXT", sasl_username="svc", sasl_password="pw")
    )
    options = kafka_python_options(settings)
    assert options["sasl_mechanism"] == "PLAIN"
    assert not any(name.startswith("ssl_") for name in options)


def test_faust_credentials_map_to_aiokafka_sasl_ssl(pki: dict[str, Path]) -> None:
    from faust.auth import SASLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = Settings.load(
        _env(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="svc",
            sasl_password="pw",
            ssl_cafile=str(pki["cert"]),
            ssl_check_hostname="false",
        )
    )
    credentials = faust_options(settings)["broker_credentials"]
    assert isinstance(credentials, SASLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("svc", "pw")
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert "pw" not in repr(credentials)


def test_faust_credentials_ssl_with_client_certificate(pki: dict[str, Path]) -> None:
    from faust.auth import SSLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = Settings.load(
        _env(
            security_protocol="SSL",
            ssl_cafile=str(pki["cert"]),
            ssl_certfile=str(pki["cert"]),
            ssl_keyfile=str(pki["key"]),
        )
    )
    credentials = faust_options(settings)["broker_credentials"]
    assert isinstance(credentials, SSLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert auth["ssl_context"].check_hostname is True


def test_sasl_plaintext_faust_credentials_have_no_tls() -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = Settings.load(
        _env(security_protocol="SASL_PLAINTEXT", sasl_username="svc", sasl_password="pw")
    )
    auth = credentials_to_aiokafka_auth(faust_options(settings)["broker_credentials"])
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "PLAIN"
    assert auth["ssl_context"] is None


def test_aiokafka_options_are_aiokafka_arguments(pki: dict[str, Path]) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    settings = Settings.load(
        _env(
            security_protocol="SASL_SSL",
            sasl_username="svc",
            sasl_password="pw",
            ssl_cafile=str(pki["cert"]),
        )
    )
    options = aiokafka_options(settings)
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    for client in (AIOKafkaConsumer, AIOKafkaProducer):
        assert set(options) <= set(inspect.signature(client).parameters), client


def test_unreadable_ca_file_names_the_setting(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    settings = Settings.load(_env(security_protocol="SSL", ssl_cafile=str(bogus)))
    with pytest.raises(ConfigError, match=r"^ssl_cafile: "):
        faust_options(settings)


def test_toml_file_holds_security_settings(tmp_path: Path, pki: dict[str, Path]) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(
        "[pseudostream]\n"
        'security_protocol = "SASL_SSL"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\n'
        'sasl_username = "svc"\n'
        f'ssl_cafile = "{pki["cert"]}"\n'
    )
    settings = Settings.load(_env(sasl_password="from-env"), config_file=config)
    assert settings.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.sasl_password == Secret("from-env")
    assert settings.ssl_cafile == pki["cert"]


@pytest.mark.parametrize("value", ["-1", "10001"])
def test_when_fetch_max_wait_is_out_of_range_then_the_error_names_it(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^fetch_max_wait_ms: must be 0..10000"):
        Settings.load({"PSEUDOSTREAM_FETCH_MAX_WAIT_MS": value})


def test_fetch_max_wait_defaults_to_a_short_wait() -> None:
    assert Settings.load({}).fetch_max_wait_ms == 50


def test_retention_settings_become_topic_configs() -> None:
    settings = Settings.from_mapping({"quarantine_retention_days": "0.5", "raw_retention_days": 0})
    assert settings.retention_ms(settings.quarantine_retention_days) == "43200000"
    assert settings.retention_ms(settings.raw_retention_days) == "-1"  # 0: kept for good
    assert settings.retention_ms(Settings().clean_retention_days) == str(30 * 86_400_000)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("erasure_retention_days", "-1"), ("max_devices_per_user", "0")],
)
def test_bad_retention_settings_name_the_setting(setting: str, value: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        Settings.from_mapping({setting: value})


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"PSEUDOSTREAM_STALL_READY_SECONDS": "0"}, "stall_ready_seconds"),
        ({"PSEUDOSTREAM_STALL_EXIT_SECONDS": "10"}, "stall_exit_seconds"),  # < ready (30)
        ({"PSEUDOSTREAM_STALL_EXIT_SECONDS": "-5"}, "stall_exit_seconds"),
    ],
)
def test_when_a_stall_timeout_makes_no_sense_then_the_error_names_it(
    env: dict[str, str], setting: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{setting}: must be"):
        Settings.load(env)


def test_a_stall_exit_of_zero_means_never() -> None:
    assert Settings.load({"PSEUDOSTREAM_STALL_EXIT_SECONDS": "0"}).stall_exit_seconds == 0
