"""Worker settings: one frozen object, read once at start-up, validated with errors that name
the setting.

Sources, later wins: the defaults below, an optional TOML file (``PSEUDOSTREAM_CONFIG`` or
``--config``; flat keys named like the fields, or a ``[pseudostream]`` table), then the
environment (``PSEUDOSTREAM_<FIELD>`` in upper case). Every field is documented in
``docs/worker.md``; :data:`FIELDS` is the source of that table.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from processor.errors import ConfigError
from processor.pipeline.binding import (
    DEFAULT_TOPIC_SCHEMAS,
    format_topic_schemas,
    parse_topic_schemas,
)
from processor.pipeline.outcome import DEFAULT_TOPICS, Route
from processor.pipeline.quarantine import DEFAULT_MAX_KEY_BYTES, MAX_KEY_BYTES_LIMIT
from processor.pipeline.stats import StatsConfig

ENV_PREFIX = "PSEUDOSTREAM_"
CONFIG_ENV = "PSEUDOSTREAM_CONFIG"
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_UPPER_CASE = ("security_protocol", "sasl_mechanism")
SSL_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")


class Secret:
    """A string that never shows in ``repr``/``str`` (logs, tracebacks, ``--show-settings``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the worker and the demo can be told. Field docs are the reference."""

    broker: str = "kafka://127.0.0.1:9092"
    """Kafka bootstrap servers: ``kafka://host:port`` (or ``aiokafka://``, or a bare
    ``host:port``), several separated by ``,`` or ``;``; checked at start-up."""
    app_id: str = "pseudostream"
    """faust app id = the consumer group; workers with the same id share the partitions."""
    topic_prefix: str = ""
    """Prepended to every topic name below (e.g. ``staging.``)."""
    topic_raw_behaviour: str = "raw.behaviour"
    """Input: behaviour events, keyed by user_id."""
    topic_raw_device: str = "raw.device"
    """Input: device-ID reports, keyed by user_id."""
    topic_consent: str = "consent"
    """Input: consent/1 records, compacted, keyed by user_id, partitioned like the raw topics."""
    topic_schemas: str = DEFAULT_TOPIC_SCHEMAS
    """Which schemas each input may carry (logical topic names, ``fnmatch`` patterns; ``;``
    between topics, ``,`` between patterns; in TOML also a table). A record whose schema its
    topic does not admit is quarantined as ``schema_not_allowed_on_topic``."""
    topic_recommendation: str = DEFAULT_TOPICS[Route.RECOMMENDATION]
    """Output: clean events for the recommendation pipeline."""
    topic_ad_analytics: str = DEFAULT_TOPICS[Route.AD_ANALYTICS]
    """Output: clean events for ad statistics."""
    topic_erasure_recommendation: str = DEFAULT_TOPICS[Route.ERASURE_RECOMMENDATION]
    """Output: one erasure notice per deleted account for the recommendation pipeline, with
    the user's and their devices' recommendation-domain pseudonyms only."""
    topic_erasure_ad_analytics: str = DEFAULT_TOPICS[Route.ERASURE_AD_ANALYTICS]
    """Output: the same notices for ad partners, with ad-domain pseudonyms only."""
    topic_quarantine: str = DEFAULT_TOPICS[Route.QUARANTINE]
    """Output: sealed records that could not be processed."""
    topic_consent_changelog: str = ""
    """The consent table's changelog (compacted; keys are keyed hashes, values hold no
    identifier). Empty means ``<app_id>-consent-changelog``."""
    topic_ad_stats: str = "stats.ad"
    """Output: closed windows of the ad statistics (stats.ad/1, see docs/stats.md)."""
    topic_ad_stats_changelog: str = ""
    """The ad-statistics table's changelog (keys hold ad pseudonyms and codes, never a raw
    identifier). Empty means ``<app_id>-ad-stats-changelog``."""
    ad_stats_enabled: bool = True
    """Count the ad-analytics records in tumbling windows and publish closed windows."""
    ad_stats_window: float = 3600.0
    """Window size in seconds (tumbling, aligned to the epoch)."""
    ad_stats_grace: float = 60.0
    """Seconds after a window's end during which late events still update it; later ones
    are counted as late."""
    ad_stats_k: int = 10
    """Least distinct devices of a published cell; smaller cells fold into province, then
    country, or are suppressed."""
    topic_devices_changelog: str = ""
    """The device-link table's changelog (compacted; keys and values are keyed hashes and
    pseudonyms, never a raw identifier). Empty means ``<app_id>-devices-changelog``."""
    topic_erased_identifiers: str = ""
    """Identifiers erased for good (keyed hashes of deleted users and their devices),
    compacted, read by every worker. Empty means ``<app_id>-erased-identifiers``."""
    device_link_retention_days: float = 400.0
    """How long a link from a user to a device identifier seen with them is kept after the
    device was last seen with them: a deletion names the devices seen within this time.
    Default: a year of use plus a month, so a yearly-active device is not forgotten."""
    max_devices_per_user: int = 16
    """Most device identifiers linked to one user (the most recently seen are kept): bounds
    the table against an account shared by a device farm."""
    raw_retention_days: float = 3.0
    """``retention.ms`` of the raw input topics when the worker creates them: they hold raw
    identifiers, so only as long as recovering from an outage needs (a long weekend)."""
    clean_retention_days: float = 30.0
    """``retention.ms`` of clean.recommendation and clean.ad-analytics: consumers read them
    continuously; a month covers a re-read or backfill, longer is not needed for the purpose."""
    ad_stats_retention_days: float = 180.0
    """``retention.ms`` of the ad statistics topic: partners reconcile by half-year."""
    erasure_retention_days: float = 400.0
    """``retention.ms`` of the two erasure topics: a downstream store restored from a backup
    up to a year old must still find the notices issued since."""
    quarantine_retention_days: float = 14.0
    """``retention.ms`` of the quarantine topic: two weeks to inspect and replay. It bounds
    how long a deleted user's sealed raw record can live."""
    changelog_catch_up: bool = True
    """After faust's table recovery, re-read the consent changelog to its real end (needed on
    Tansu, whose end offsets can be one batch short; harmless on Kafka)."""
    partitions: int = 4
    """Partitions of the input topics and of the consent changelog (must be equal: the
    consent of a user lives in the worker that gets the user's events)."""
    output_partitions: int = 4
    """Partitions of the output topics when the worker creates them."""
    replication_factor: int = 1
    """Replication factor of topics the worker creates."""
    create_topics: bool = True
    """Create missing topics at start (kafka-python admin); existing ones are checked."""
    keyring: Path | None = None
    """Path of the sealed keyring file (required)."""
    keyring_reload_interval: float = 10.0
    """Seconds between checks of the keyring file's modification time; a changed file is
    reloaded and its keys used from the next batch (`keys rotate` from cron). 0 = never."""
    master_key_file: Path | None = None
    """File holding the keyring's master key (else ``PSEUDOSTREAM_MASTER_KEY``)."""
    master_key: Secret | None = None
    """The master key itself (base64); prefer ``master_key_file``. Never printed."""
    geo_city_db: Path | None = None
    """MaxMind-format city database for IP and coordinate lookups (optional)."""
    geo_ip2region_db: Path | None = None
    """ip2region xdb database for Chinese IP addresses (optional; replaces the shipped file
    of its IP version)."""
    geo_shipped_ip: bool = True
    """Locate Chinese IP addresses with the shipped ip2region data (docs/location.md) where no
    ``geo_ip2region_db`` of that IP version is configured; ``false``: only the operator's files."""
    fast_path: bool = True
    """Hand whole fetches to the batch handler, bypassing faust's per-message stream path
    (see docs/worker.md); ``false`` uses a faust agent with ``stream.take_events``. The fast
    path runs only on the faust-streaming and aiokafka versions it was tested with; on
    others the worker logs a warning and takes the plain path (same outputs, slower)."""
    policy: Path | None = None
    """Policy file (JSON, as ``transform --policy``); default: the shipped default policy.
    Checked and compiled at start-up; the worker logs and audits its version."""
    leak_canary_fraction: float = 0.001
    """Fraction of the input records whose outputs the worker scans with the leak scanner's
    detectors (the live leak canary, ``pseudostream_leak_findings_total``); 0 turns it off."""
    batch_size: int = 2000
    """Most input records processed, produced and committed as one batch."""
    batch_within: float = 0.05
    """Seconds to wait for a batch to fill before processing what is there."""
    max_record_bytes: int = 1_048_576
    """Input records larger than this are quarantined as ``too_large`` without parsing."""
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    """Message keys longer than this never go into a quarantine record: only their SHA-256
    is sealed (at most 16384)."""
    max_text_chars: int = 2_000
    """Free text (query, comment) longer than this is cut before scrubbing, counted as
    ``text_truncated:<field>``; an identifier the cut would split is cut off whole."""
    fetch_max_wait_ms: int = 50
    """Longest the broker may hold a fetch waiting for data. faust hard-codes 1500 ms; Tansu
    holds a fetch that long when one of its partitions was never written to (an empty
    ``raw.device`` or ``consent`` topic), even when data arrives meanwhile: measured, every
    event then waited ~1.5 s (docs/benchmarks.md). On Kafka a fetch returns as soon as data
    arrives, so a short wait only adds a few empty fetches per second when idle."""
    producer_linger_ms: int = 5
    """Producer linger: how long a produce request waits to fill up."""
    producer_max_batch_bytes: int = 1_048_576
    """Producer batch size in bytes per partition."""
    producer_acks: str = "all"
    """Producer acks: ``all``, ``1`` or ``0`` (``0`` breaks at-least-once)."""
    session_timeout: float = 8.0
    """Consumer group session timeout in seconds (Tansu: 6-10 s; a join waits half of it)."""
    commit_interval: float = 1.0
    """Seconds between offset commits of acknowledged (fully produced) input."""
    broker_commit_every: int = 10_000
    """Also commit as soon as this many input records were acknowledged since the last
    commit (faust's ``broker_commit_every``)."""
    stall_ready_seconds: float = 30.0
    """An assigned input partition (or a table recovery) that has records to read but has
    not moved for this long is stalled: ``/ready`` fails and ``pseudostream_stalled_partitions``
    counts it."""
    stall_exit_seconds: float = 120.0
    """A stall this long ends the worker (exit code 70) so that its supervisor restarts it
    and the group gives the partitions to a live member; 0 = never exit."""
    processes: str = "1"
    """Worker processes on this machine: a number, or ``auto`` (the CPUs this process may
    run on, within its cgroup CPU quota, at most ``partitions``). More than 1 starts a supervisor that runs them as
    members of one consumer group and serves their health and metrics together
    (docs/worker.md, "Several processes")."""
    shutdown_timeout: float = 30.0
    """With several processes: seconds the supervisor waits, after SIGTERM or SIGINT, for
    its worker processes to stop gracefully before it kills them."""
    web_port: int = 0
    """faust's web server port (health, metrics); 0 disables it."""
    web_host: str = "127.0.0.1"
    """Address the web server binds; a container sets ``0.0.0.0`` so Prometheus can scrape."""
    data_dir: Path = Path("pseudostream-data")
    """faust's local data directory."""
    log_level: str = "info"
    """debug, info, warning, error or critical."""
    stats_interval: float = 0.0
    """Seconds between one-line counter logs; 0 logs only at stop."""
    stats_file: Path | None = None
    """Where the worker writes its counters as JSON (on every stats log and at stop)."""
    security_protocol: str = "PLAINTEXT"
    """How clients talk to the brokers: ``PLAINTEXT``, ``SSL`` (TLS), ``SASL_PLAINTEXT`` or
    ``SASL_SSL`` (SASL over TLS, the usual choice for a managed cluster)."""
    sasl_mechanism: str = "PLAIN"
    """SASL mechanism (``SASL_*`` only): ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``."""
    sasl_username: str = ""
    """SASL user name (required with ``SASL_*``)."""
    sasl_password: Secret | None = None
    """SASL password (required with ``SASL_*``); prefer the environment. Never printed."""
    ssl_cafile: Path | None = None
    """PEM file of the CA(s) that signed the brokers' certificates (``SSL``/``SASL_SSL``);
    empty means the system's trust store."""
    ssl_certfile: Path | None = None
    """PEM client certificate for mutual TLS (``SSL``/``SASL_SSL``, optional)."""
    ssl_keyfile: Path | None = None
    """PEM private key of ``ssl_certfile`` (if not in the certificate file itself)."""
    ssl_check_hostname: bool = True
    """Check that a broker's certificate names the host we connected to."""

    # -- derived --------------------------------------------------------------------

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def input_topics(self) -> dict[str, str]:
        """Logical source name -> physical topic."""
        return {
            "raw.behaviour": self.topic(self.topic_raw_behaviour),
            "raw.device": self.topic(self.topic_raw_device),
            "consent": self.topic(self.topic_consent),
        }

    @property
    def topic_binding(self) -> dict[str, tuple[str, ...]]:
        """The parsed ``topic_schemas`` (checked in :meth:`validate`)."""
        return parse_topic_schemas(self.topic_schemas)

    @property
    def output_topics(self) -> dict[Route, str]:
        return {
            Route.RECOMMENDATION: self.topic(self.topic_recommendation),
            Route.AD_ANALYTICS: self.topic(self.topic_ad_analytics),
            Route.ERASURE_RECOMMENDATION: self.topic(self.topic_erasure_recommendation),
            Route.ERASURE_AD_ANALYTICS: self.topic(self.topic_erasure_ad_analytics),
            Route.QUARANTINE: self.topic(self.topic_quarantine),
        }

    @property
    def changelog_topic(self) -> str:
        return self.topic(self.topic_consent_changelog or f"{self.app_id}-consent-changelog")

    @property
    def devices_changelog_topic(self) -> str:
        return self.topic(self.topic_devices_changelog or f"{self.app_id}-devices-changelog")

    @property
    def erased_topic(self) -> str:
        return self.topic(self.topic_erased_identifiers or f"{self.app_id}-erased-identifiers")

    @property
    def device_link_retention_ms(self) -> int:
        days = self.device_link_retention_days
        return round(days * 86_400_000) if days > 0 else 2**62  # 0: forever

    def retention_ms(self, days: float) -> str:
        """``retention.ms`` for a number of days (0: keep forever, ``-1``)."""
        return str(round(days * 86_400_000)) if days > 0 else "-1"

    @property
    def ad_stats_topic(self) -> str:
        return self.topic(self.topic_ad_stats)

    @property
    def ad_stats_changelog_topic(self) -> str:
        return self.topic(self.topic_ad_stats_changelog or f"{self.app_id}-ad-stats-changelog")

    def ad_stats_config(self) -> StatsConfig:
        """The pure aggregation's configuration (validated in :meth:`validate`)."""
        return StatsConfig(
            window_ms=round(self.ad_stats_window * 1000),
            grace_ms=round(self.ad_stats_grace * 1000),
            k=self.ad_stats_k,
        )

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults < TOML file < environment < ``overrides`` (from the command line)."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        path = config_file or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
        if path is not None:
            raw.update(_read_toml(path))
        known = {f.name for f in fields(cls)}
        for name, value in env.items():
            if name.startswith(ENV_PREFIX) and name != CONFIG_ENV:
                key = name[len(ENV_PREFIX) :].lower()
                if key in known:
                    raw[key] = value
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Settings:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r} (see docs/worker.md)")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            values[name] = _coerce(name, known[name].type, value)
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in (
            "partitions",
            "output_partitions",
            "replication_factor",
            "batch_size",
            "broker_commit_every",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("batch_within", "session_timeout", "commit_interval", "shutdown_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.keyring_reload_interval < 0:
            raise ConfigError(
                "keyring_reload_interval: must be 0 (never) or positive,"
                f" got {self.keyring_reload_interval}"
            )
        for name in (
            "device_link_retention_days",
            "raw_retention_days",
            "clean_retention_days",
            "ad_stats_retention_days",
            "erasure_retention_days",
            "quarantine_retention_days",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{name}: must be 0 (forever) or positive, got {getattr(self, name)}"
                )
        if self.max_devices_per_user < 1:
            raise ConfigError(
                f"max_devices_per_user: must be at least 1, got {self.max_devices_per_user}"
            )
        if not 0 <= self.leak_canary_fraction <= 1:
            raise ConfigError(
                f"leak_canary_fraction: must be 0..1, got {self.leak_canary_fraction}"
            )
        self._validate_supervision()
        if self.stats_interval < 0:
            raise ConfigError(f"stats_interval: must be 0 or positive, got {self.stats_interval}")
        try:
            self.ad_stats_config()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if not 0 <= self.fetch_max_wait_ms <= 10_000:
            raise ConfigError(f"fetch_max_wait_ms: must be 0..10000, got {self.fetch_max_wait_ms}")
        if not 0 <= self.producer_linger_ms <= 10_000:
            raise ConfigError(
                f"producer_linger_ms: must be 0..10000, got {self.producer_linger_ms}"
            )
        if self.max_record_bytes < 64:
            raise ConfigError(f"max_record_bytes: must be at least 64, got {self.max_record_bytes}")
        if not 1 <= self.max_key_bytes <= MAX_KEY_BYTES_LIMIT:
            raise ConfigError(
                f"max_key_bytes: must be 1..{MAX_KEY_BYTES_LIMIT}, got {self.max_key_bytes}"
            )
        if self.max_text_chars < 1:
            raise ConfigError(f"max_text_chars: must be at least 1, got {self.max_text_chars}")
        if self.producer_max_batch_bytes < 1024:
            raise ConfigError("producer_max_batch_bytes: must be at least 1024")
        if self.producer_acks not in ("all", "1", "0", "-1"):
            raise ConfigError(f"producer_acks: must be all, 1 or 0, got {self.producer_acks!r}")
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"web_port: must be 0..65535, got {self.web_port}")
        if not self.web_host.strip() or any(c.isspace() for c in self.web_host):
            raise ConfigError("web_host: must be an address or host name without spaces")
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError(
                f"log_level: must be one of {', '.join(_LOG_LEVELS)}, got {self.log_level!r}"
            )
        if (
            not self.app_id
            or not self.app_id.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise ConfigError(f"app_id: letters, digits, '-', '_', '.' only, got {self.app_id!r}")
        bootstrap_servers(self.broker)  # its errors name the setting
        self._validate_security()
        parse_topic_schemas(self.topic_schemas)
        names = [
            *self.input_topics.values(),
            *self.output_topics.values(),
            self.changelog_topic,
            self.devices_changelog_topic,
            self.erased_topic,
            self.ad_stats_topic,
            self.ad_stats_changelog_topic,
        ]
        for topic in names:
            if not topic or len(topic) > 249 or not all(c.isalnum() or c in "._-" for c in topic):
                raise ConfigError(f"topic name {topic!r}: use letters, digits, '.', '_', '-'")
        if len(set(names)) != len(names):
            raise ConfigError("topic_*: two settings name the same topic")

    def _validate_supervision(self) -> None:
        """What a supervisor relies on: the stall exit and the process count."""
        self._validate_stall()
        self._validate_processes()

    def _validate_stall(self) -> None:
        if self.stall_ready_seconds <= 0:
            raise ConfigError(
                f"stall_ready_seconds: must be positive, got {self.stall_ready_seconds}"
            )
        if self.stall_exit_seconds and self.stall_exit_seconds < self.stall_ready_seconds:
            raise ConfigError(
                "stall_exit_seconds: must be 0 (never) or at least stall_ready_seconds"
                f" ({self.stall_ready_seconds}), got {self.stall_exit_seconds}"
            )

    def _validate_processes(self) -> None:
        value = self.processes.strip().lower()
        if value == "auto":
            return
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"processes: a number of at least 1 or 'auto', got {self.processes!r}"
            )
        if int(value) > self.partitions:
            raise ConfigError(
                f"processes: {value} is more than the {self.partitions} input partitions; the"
                " processes beyond those would hold no partition and never be ready"
            )

    def _validate_security(self) -> None:
        protocol = self.security_protocol
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"security_protocol: must be one of {', '.join(SECURITY_PROTOCOLS)}, got {protocol!r}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"sasl_mechanism: must be one of {', '.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.uses_sasl:
            if not self.sasl_username:
                raise ConfigError(f"sasl_username: required with security_protocol {protocol}")
            if self.sasl_password is None or not self.sasl_password.reveal():
                raise ConfigError(f"sasl_password: required with security_protocol {protocol}")
        else:
            for name in ("sasl_username", "sasl_password"):
                if getattr(self, name):
                    raise ConfigError(
                        f"{name}: set, but security_protocol {protocol} does not use SASL"
                    )
        for name in SSL_FILES:
            path: Path | None = getattr(self, name)
            if path is None:
                continue
            if not self.uses_ssl:
                raise ConfigError(f"{name}: set, but security_protocol {protocol} does not use TLS")
            if not path.is_file():
                raise ConfigError(f"{name}: no such file {str(path)!r}")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ConfigError("ssl_keyfile: set without ssl_certfile")

    # -- security ------------------------------------------------------

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def process_count(self, usable_cpus: int) -> int:
        """How many worker processes to run: ``processes``, ``auto`` being ``usable_cpus``
        capped at ``partitions`` (a member beyond the partitions would hold none)."""
        value = self.processes.strip().lower()
        if value == "auto":
            return max(1, min(usable_cpus, self.partitions))
        return int(value)

    def require_keyring(self) -> Path:
        if self.keyring is None:
            raise ConfigError("keyring: not set (PSEUDOSTREAM_KEYRING or keyring in the TOML file)")
        return self.keyring

    def public(self) -> dict[str, str]:
        """Printable view (secrets masked) for ``--show-settings`` and the start-up log."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Settings))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r}: not found") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r}: {exc}") from exc
    section = data.get("pseudostream", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {str(path)!r}: [pseudostream] must be a table")
    return dict(section)


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    kind = str(annotation)
    optional = "None" in kind
    try:
        if optional and (value is None or value == ""):
            return None
        if kind.startswith("Secret"):
            return value if isinstance(value, Secret) else Secret(str(value))
        if kind.startswith("Path"):
            return Path(value).expanduser()
        if kind == "bool":
            return _bool(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind == "str":
            if name == "topic_schemas" and isinstance(value, dict):
                return format_topic_schemas(value)
            if not isinstance(value, (str, int)):
                raise ValueError(value)
            if name in _UPPER_CASE:
                text = str(value).strip().upper()
                return text.replace("_", "-") if name == "sasl_mechanism" else text
            return str(value).lower() if name == "log_level" else str(value)
    except (TypeError, ValueError) as exc:
        shown = "****" if kind.startswith("Secret") else repr(value)
        raise ConfigError(f"{name}: expected {kind.replace(' | None', '')}, got {shown}") from exc
    raise ConfigError(f"{name}: cannot read a {kind}")  # pragma: no cover - all kinds covered


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


BROKER_SCHEMES = ("kafka", "aiokafka")  # faust's drivers for aiokafka; a bare host:port too


def bootstrap_servers(url: str) -> list[str]:
    """``kafka://h1:9092;h2:9092`` or ``h1:9092,h2:9092`` -> ``["h1:9092", "h2:9092"]``.

    Every entry must be ``[scheme://]host:port`` with a scheme faust can drive, a host and
    a port 1..65535 (an IPv6 host in brackets): a setting that cannot work is refused here,
    at start-up, instead of as a connection error minutes later."""
    servers = []
    for raw in url.replace(";", ",").split(","):
        server = raw.strip()
        if not server:
            continue
        scheme, sep, rest = server.partition("://")
        if sep:
            if scheme.lower() not in BROKER_SCHEMES:
                raise ConfigError(
                    f"broker: scheme {scheme + '://'!r} in {url!r} is not one of"
                    f" {', '.join(s + '://' for s in BROKER_SCHEMES)}"
                )
            server = rest
        servers.append(_host_port(server, url))
    if not servers:
        raise ConfigError(f"broker: no host:port in {url!r}")
    return servers


def _host_port(server: str, url: str) -> str:
    """``host:port`` checked: a host without ``/``, ``@``, spaces, and a port 1..65535."""
    host, sep, port = server.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        bare_host = host[1:-1]  # IPv6 literal
        bad_host = not bare_host or any(c not in "0123456789abcdefABCDEF:." for c in bare_host)
    else:
        bad_host = not host or any(c in "/@[]:?#" or c.isspace() for c in host)
    if not sep or bad_host:
        raise ConfigError(f"broker: {server!r} in {url!r} is not host:port")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ConfigError(f"broker: port {port!r} in {url!r} is not a number 1..65535")
    return server


__all__ = ["BROKER_SCHEMES", "FIELDS", "SSL_FILES", "Secret", "Settings", "bootstrap_servers"]
