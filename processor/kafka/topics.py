"""Topic creation and broker addresses (every deployment).

Topic creation uses the kafka-python 3.x admin client: Tansu auto-creates an unknown topic
with 4 partitions, so every topic the worker touches (inputs, outputs and the consent
table's changelog) is created up front with the configured partition count, the consent
topic and the changelog compacted.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from processor.errors import ConfigError, PseudostreamError
from processor.kafka.clients import kafka_python_options
from processor.ops.settings import bootstrap_servers
from processor.pipeline.outcome import Route
from processor.pipeline.quarantine import request_bytes

if TYPE_CHECKING:
    from processor.ops.settings import Settings

CONSENT_SOURCE = "consent"  # the logical name of the consent input


class BrokerError(PseudostreamError):
    """The embedded broker could not be started, or a broker did not answer."""


def wait_until_answering(servers: list[str], timeout: float = 20.0) -> None:
    """Block until a Kafka request (metadata) succeeds, or raise :class:`BrokerError`."""
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        host, _, port = servers[0].rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                pass
            admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000)
            try:
                admin.list_topics()
            finally:
                admin.close()
            return
        except Exception as exc:  # any failure means "not yet"; we retry until the deadline
            last = exc
            time.sleep(0.05)
    raise BrokerError(
        f"broker at {','.join(servers)} did not answer within {timeout:.0f}s "
        f"({type(last).__name__ if last else 'timeout'})"
    )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    configs: tuple[tuple[str, str], ...] = ()  # topic configs at creation (retention.ms ...)


def create_topics(
    servers: list[str],
    topics: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    timeout: float = 15.0,
    client_options: Mapping[str, Any] | None = None,
    max_message_bytes: int | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``max_message_bytes`` becomes each created topic's ``max.message.bytes``: the largest
    record the worker produces must fit it (a broker's default is about 1 MB).

    An existing topic with another partition count is an error (faust and the consent
    table's co-partitioning need the configured count, and Tansu cannot add partitions).
    ``client_options`` go to the admin client (``kafka_python_options(Settings)``: SASL/TLS).
    """
    from kafka.admin import KafkaAdminClient

    wanted = {spec.name: spec for spec in topics}
    admin = KafkaAdminClient(
        bootstrap_servers=servers,
        request_timeout_ms=int(timeout * 1000),
        **(client_options or {}),  # SASL/TLS: kafka_python_options(Settings)
    )
    try:
        existing = _partition_counts(admin, list(wanted))
        for name, count in existing.items():
            if count != wanted[name].partitions:
                raise ConfigError(
                    f"topic {name!r} exists with {count} partitions, but the configuration says "
                    f"{wanted[name].partitions}: fix the partitions setting or recreate the topic"
                )
        missing = {
            name: {
                "num_partitions": spec.partitions,
                "replication_factor": replication_factor,
                "configs": {
                    **({"cleanup.policy": "compact"} if spec.compacted else {}),
                    **dict(spec.configs),
                },
            }
            for name, spec in wanted.items()
            if name not in existing
        }
        if max_message_bytes is not None:
            for options in missing.values():
                cast("dict[str, str]", options["configs"])["max.message.bytes"] = str(
                    max_message_bytes
                )
        if missing:
            admin.create_topics(missing, timeout_ms=int(timeout * 1000), raise_errors=False)
            deadline = time.monotonic() + timeout
            while True:
                counts = _partition_counts(admin, list(missing))
                if all(counts.get(name) == wanted[name].partitions for name in missing):
                    break
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"topics not ready after {timeout:.0f}s: "
                        f"{sorted(set(missing) - set(counts))}"
                    )
                time.sleep(0.05)
        return sorted(missing)
    finally:
        admin.close()


def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    present = set(admin.list_topics())
    asked = [name for name in names if name in present]
    if not asked:
        return {}
    counts: dict[str, int] = {}
    for topic in admin.describe_topics(asked):
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["name"]] = len(topic["partitions"])
    return counts


def topic_specs(names: Mapping[str, tuple[int, bool]]) -> list[TopicSpec]:
    """``{name: (partitions, compacted)}`` -> specs (a small convenience for callers)."""
    return [
        TopicSpec(name, partitions, compacted) for name, (partitions, compacted) in names.items()
    ]


def prepare_topics(settings: Settings) -> list[str]:
    """Create the missing topics with the configured partition counts, cleanup policy and
    retention (docs/privacy.md, "Retention"); returns those created. Existing topics keep
    their configuration (change it with the cluster's tools)."""
    s = settings

    def deleted_after(days: float) -> tuple[tuple[str, str], ...]:
        return (("cleanup.policy", "delete"), ("retention.ms", s.retention_ms(days)))

    # state: the latest record per key is kept for good (a consent, a deletion, a link)
    state = (("cleanup.policy", "compact"), ("retention.ms", "-1"))
    out = s.output_topics
    specs = [
        TopicSpec(
            s.input_topics["raw.behaviour"],
            s.partitions,
            configs=deleted_after(s.raw_retention_days),
        ),
        TopicSpec(
            s.input_topics["raw.device"], s.partitions, configs=deleted_after(s.raw_retention_days)
        ),
        TopicSpec(s.input_topics[CONSENT_SOURCE], s.partitions, configs=state),
        TopicSpec(s.changelog_topic, s.partitions, configs=state),
        # a user's links are rewritten at least every half retention while seen: older
        # segments hold only expired links
        TopicSpec(
            s.devices_changelog_topic,
            s.partitions,
            configs=(
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", s.retention_ms(s.device_link_retention_days)),
            ),
        ),
        TopicSpec(s.erased_topic, s.partitions, configs=state),
        *(
            TopicSpec(
                out[route], s.output_partitions, configs=deleted_after(s.clean_retention_days)
            )
            for route in (Route.RECOMMENDATION, Route.AD_ANALYTICS)
        ),
        *(
            TopicSpec(
                out[route], s.output_partitions, configs=deleted_after(s.erasure_retention_days)
            )
            for route in (Route.ERASURE_RECOMMENDATION, Route.ERASURE_AD_ANALYTICS)
        ),
        TopicSpec(
            out[Route.QUARANTINE],
            s.output_partitions,
            configs=deleted_after(s.quarantine_retention_days),
        ),
    ]
    if s.ad_stats_enabled:
        specs += [
            TopicSpec(
                s.ad_stats_topic,
                s.output_partitions,
                configs=deleted_after(s.ad_stats_retention_days),
            ),
            TopicSpec(s.ad_stats_changelog_topic, s.partitions, configs=state),
        ]
    return create_topics(
        bootstrap_servers(s.broker),
        specs,
        replication_factor=s.replication_factor,
        client_options=kafka_python_options(s),
        max_message_bytes=request_bytes(s.max_record_bytes),  # quarantine records fit
    )
