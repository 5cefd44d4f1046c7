"""``pseudostream worker``: load and check everything a worker needs (keys, policy, geo data,
topics) before it touches the broker's consumer group, then run it."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from processor.kafka.adstats import check_schedule_fits_windows
from processor.kafka.keywatch import load_keyring
from processor.kafka.topics import prepare_topics
from processor.ops.audit import append_audit
from processor.ops.settings import Settings
from processor.pipeline import build

if TYPE_CHECKING:
    from processor.pipeline.location import Locator

log = logging.getLogger("pseudostream.worker")


def load_locator(settings: Settings) -> Locator:
    """The offline geo lookup: shipped GPS boundaries and Chinese IP data, plus the configured
    IP databases."""
    from processor.pipeline.geo import build_locator

    return build_locator(
        settings.geo_city_db, settings.geo_ip2region_db, shipped_ip=settings.geo_shipped_ip
    )


def run(settings: Settings) -> int:
    """Check keys, policy and topics, then run the faust worker; returns the exit code."""
    from processor.kafka.worker import StreamWorker
    from processor.pipeline.policy import compile_policy

    keyring = load_keyring(settings)
    if settings.ad_stats_enabled:  # refuse before touching the broker
        check_schedule_fits_windows(keyring.schedule, settings.ad_stats_window)
    policy = compile_policy(settings.policy)  # refused here, before the broker, when broken
    locator = load_locator(settings)
    if settings.create_topics:
        created = prepare_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        stream_worker = StreamWorker(settings, keyring, locator, policy=policy)
        summary = stream_worker.pipeline.policy.summary()
        log.info(
            "policy %s%s; %s path; pipeline %s",
            policy.version,
            f" from {settings.policy}" if settings.policy is not None else " (shipped default)",
            "fast" if stream_worker.fast_path else "plain faust",
            build(),
        )
        append_audit(
            "worker_start",
            app_id=settings.app_id,
            key_ids=[k.key_id for k in keyring],
            policy=summary,
        )
        # with create_topics they were created or checked above; else /ready relies on the
        # consumer's metadata for the inputs and the changelog
        stream_worker.view.topics_present = True
        return stream_worker.run()
    return 0
