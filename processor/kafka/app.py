"""The faust app the worker runs on: its settings (from ours), and on the fast path the
app class whose consumer hands whole fetches to the worker (:mod:`processor.kafka.consumer`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from processor.kafka.clients import faust_options
from processor.kafka.consumer import BatchHandler, make_app_class
from processor.kafka.topics import CONSENT_SOURCE
from processor.ops.settings import Settings
from processor.pipeline.quarantine import request_bytes

if TYPE_CHECKING:
    from faust.types import AppT


def make_app(settings: Settings, fast_path: BatchHandler | None) -> AppT:
    """The faust app; ``fast_path`` is the batch handler of the fast path, None for faust's
    plain path (the worker then registers an agent)."""
    import faust

    s = settings
    app_class: type[AppT] = (
        make_app_class(
            s.batch_size,
            frozenset(s.input_topics.values()),
            fast_path,
            s.fetch_max_wait_ms,
            frozenset({s.input_topics[CONSENT_SOURCE]}),
        )
        if fast_path is not None
        else faust.App
    )
    return app_class(
        s.app_id,
        broker=s.broker,
        autodiscover=False,
        store="memory://",
        datadir=str(s.data_dir),
        broker_session_timeout=s.session_timeout,
        broker_heartbeat_interval=min(3.0, s.session_timeout / 4),
        broker_rebalance_timeout=max(s.session_timeout, 10.0),
        broker_commit_interval=s.commit_interval,
        # faust's own fetch loop (the plain path) reads it; the fast path commits through
        # the Checkpoint (processor.kafka.checkpoint)
        broker_commit_every=s.broker_commit_every,
        producer_linger=s.producer_linger_ms / 1000.0,
        producer_max_batch_size=s.producer_max_batch_bytes,
        producer_max_request_size=request_bytes(s.max_record_bytes),
        producer_acks=-1 if s.producer_acks in ("all", "-1") else int(s.producer_acks),
        consumer_auto_offset_reset="earliest",
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_allow_declare=False,  # we create topics ourselves (processor.kafka.topics)
        topic_disable_leader=True,
        table_standby_replicas=0,
        # The check guards a local RocksDB file that outlived its changelog topic; our
        # tables live in memory, so the only "persisted" offsets are the ones this process
        # read. Tansu reports a partition's end one batch short until it is written again,
        # so a rebalance after recovery read that last batch failed the check and crashed
        # the worker (ConsistencyError, "persisted offset ... higher than highwater").
        recovery_consistency_check=False,
        web_enabled=s.web_port != 0,
        web_port=s.web_port or 6066,
        web_bind=s.web_host,
        # faust's own pages are off: without authentication, /table/consent/<key>/ served
        # a user's consent state and /router/ the cluster's hosts. The worker serves
        # /metrics, /health, /ready (install_pages); faust keeps "/" ({"status": "OK"}).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        stream_wait_empty=True,
        **faust_options(s),  # SASL/TLS credentials (docs/operations-config.md)
    )
