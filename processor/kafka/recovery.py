"""Table recovery, finished: re-read a table's changelog partitions to their real end after
faust's own recovery. Tansu's ListOffsets LATEST can be one batch short, so faust's
recovery stops early and loses the newest state of some keys (measured: the consent of 59
of 565 users after a restart). faust awaits the table's ``on_recover`` callbacks before it
resumes the source partitions, so the worker's callbacks run this first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from processor.kafka.devicelinks import start_reader

if TYPE_CHECKING:
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery
    from faust.types import AppT, TableT

    from processor.kafka.adstats import AdStatsTable
    from processor.kafka.clock import Clock
    from processor.kafka.devicelinks import DeviceLinkTable
    from processor.kafka.tables import TableConsentState
    from processor.ops.settings import Settings

log = logging.getLogger("pseudostream.worker")


def recovery_of(app: AppT) -> Recovery:
    """faust's table recovery service (``AppT.tables`` is typed without it)."""
    tables = cast("TableManager", app.tables)
    return tables.recovery


def in_recovery(app: AppT) -> bool:
    """faust is recovering tables (the sources wait for it)."""
    return recovery_of(app).in_recovery


async def reread_changelog(
    app: AppT,
    settings: Settings,
    table: TableT[Any, Any],
    apply: Callable[[Any, Any, int], None],
) -> tuple[int, int] | None:
    """Read ``table``'s active changelog partitions from the start until three empty
    fetches, handing each record to ``apply(key, value or None, partition)``; returns
    (partitions, records), or None when there was nothing to do."""
    from aiokafka import TopicPartition

    actives = recovery_of(app).actives_for_table.get(table) or set()
    if not actives or not settings.changelog_catch_up:
        return None
    consumer = await start_reader(settings)
    applied = 0
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition) for tp in actives])
        await consumer.seek_to_beginning()
        empty = 0
        while empty < 3:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            if not any(batch.values()):
                empty += 1
                continue
            empty = 0
            for tp, records in batch.items():
                for record in records:
                    if record.key is None:
                        continue
                    apply(
                        orjson.loads(record.key),
                        orjson.loads(record.value) if record.value else None,
                        tp.partition,
                    )
                    applied += 1
    finally:
        await consumer.stop()
    return len(actives), applied


def catch_up_after_recovery(
    app: AppT,
    settings: Settings,
    clock: Clock,
    consent: TableConsentState,
    devices: DeviceLinkTable,
    ad_stats: AdStatsTable | None,
) -> None:
    """Register, on each of the worker's tables, its catch-up after faust's recovery."""

    async def consent_table() -> None:
        started = clock.monotonic()
        actives = await reread_changelog(app, settings, consent.table, consent.apply_changelog)
        if actives is None:
            return
        log.info(
            "consent table: re-read %d changelog records of %d partitions in %.2fs; %d users",
            actives[1],
            actives[0],
            clock.monotonic() - started,
            len(consent),
        )

    async def device_links() -> None:
        """The same catch-up; then every identifier erased so far, by any worker, before
        the inputs resume."""
        await reread_changelog(app, settings, devices.table, devices.apply_changelog)
        erased = await devices.read_erased()
        log.info("device links: %d users; %d identifiers erased", len(devices), erased)

    consent.table.on_recover(consent_table)
    devices.table.on_recover(device_links)
    if ad_stats is not None:

        async def ad_statistics() -> None:
            """The same catch-up, then re-index its windows."""
            await reread_changelog(app, settings, ad_stats.table, ad_stats.apply_changelog)
            ad_stats.recovered()

        ad_stats.table.on_recover(ad_statistics)
