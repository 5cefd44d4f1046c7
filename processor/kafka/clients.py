"""Client options from the settings: SASL/TLS keyword arguments for kafka-python (admin,
tools), aiokafka (the worker's own consumers) and faust (``broker_credentials``)."""

from __future__ import annotations

import ssl
from typing import Any

from faust.auth import SASLCredentials, SSLCredentials

from processor.errors import ConfigError
from processor.ops.settings import SSL_FILES, Settings


def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """The TLS context for aiokafka/faust (None without TLS); errors name the setting."""
    if not s.uses_ssl:
        return None
    try:
        context = ssl.create_default_context(cafile=str(s.ssl_cafile) if s.ssl_cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ssl_cafile: cannot be read as PEM ({type(exc).__name__})") from exc
    context.check_hostname = s.ssl_check_hostname
    if s.ssl_certfile is not None:
        try:
            context.load_cert_chain(
                str(s.ssl_certfile), str(s.ssl_keyfile) if s.ssl_keyfile else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ssl_certfile: certificate/key cannot be loaded ({type(exc).__name__})"
            ) from exc
    return context


def _sasl_options(s: Settings) -> dict[str, Any]:
    """Protocol and SASL keyword arguments: the same names in kafka-python and aiokafka."""
    options: dict[str, Any] = {"security_protocol": s.security_protocol}
    if s.uses_sasl:
        assert s.sasl_password is not None  # noqa: S101 - validate() guarantees it
        options["sasl_mechanism"] = s.sasl_mechanism
        options["sasl_plain_username"] = s.sasl_username
        options["sasl_plain_password"] = s.sasl_password.reveal()
    return options


def kafka_python_options(s: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python clients (admin, consumer, producer)."""
    options = _sasl_options(s)
    if s.uses_ssl:
        options["ssl_check_hostname"] = s.ssl_check_hostname
        for name in SSL_FILES:
            path = getattr(s, name)
            if path is not None:
                options[name] = str(path)
    return options


def aiokafka_options(s: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (the worker's own consumers)."""
    options = _sasl_options(s)
    if s.uses_ssl:
        options["ssl_context"] = ssl_context(s)
    return options


def faust_options(s: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App``: ``broker_credentials`` for SASL/TLS."""
    if s.security_protocol == "PLAINTEXT":
        return {}
    context = ssl_context(s)
    if not s.uses_sasl:
        return {"broker_credentials": SSLCredentials(context)}
    assert s.sasl_password is not None  # noqa: S101 - validate() guarantees it
    return {
        "broker_credentials": SASLCredentials(
            username=s.sasl_username,
            password=s.sasl_password.reveal(),
            ssl_context=context,
            mechanism=s.sasl_mechanism,
        )
    }
