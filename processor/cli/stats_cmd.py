"""`pseudostream stats`: the latest published ad-statistics windows as a table (docs/stats.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from processor.cli import main
from processor.cli.options import config_file_option
from processor.kafka.clients import kafka_python_options
from processor.kafka.read import TopicNotFoundError, read_topic
from processor.ops.settings import Settings


def latest_windows(
    records: Iterable[tuple[bytes | None, bytes | None]], count: int
) -> list[tuple[int, list[dict[str, Any]]]]:
    """(key, value) records of stats.ad -> the ``count`` newest windows with their records,
    newest first. Latest value per key wins: a window re-published after a crash has the
    same keys, so it is shown once."""
    by_key: dict[bytes, dict[str, Any]] = {}
    for key, value in records:
        if key is None or not value:
            continue
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue  # not ours; the topic is written by the worker only
        if isinstance(decoded, dict) and decoded.get("schema") == "stats.ad/1":
            by_key[key] = decoded
    windows: dict[int, list[dict[str, Any]]] = {}
    for record in by_key.values():
        windows.setdefault(int(record["window_start"]), []).append(record)
    newest = sorted(windows, reverse=True)[:count]
    return [(start, windows[start]) for start in newest]


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _place(value: dict[str, Any]) -> str:
    level = value["level"]
    if level == "city":
        return str(value.get("city", "?"))
    if level == "province":
        return str(value.get("province_code", "?"))
    return str(value.get("country", "unknown"))


def render(windows: Sequence[tuple[int, list[dict[str, Any]]]], limit: int) -> Any:
    """A rich renderable: per window, its biggest cells and the suppression summary."""
    from rich.console import Group
    from rich.table import Table

    parts: list[Any] = []
    for start, values in windows:
        cells = sorted(
            (v for v in values if v["record"] == "cell"),
            key=lambda v: (-v["events"], v.get("event_type", "")),
        )
        summaries = [v for v in values if v["record"] == "summary"]
        end = max(v["window_end"] for v in values)
        k = values[0]["k"]
        table = Table(
            title=f"{_utc(start)} - {_utc(end)} UTC  (k = {k}, {len(summaries)} shards reported)",
            title_justify="left",
        )
        for name in ("event", "item", "level", "place", "events", "devices", "folded", "shard"):
            numeric = name in ("events", "devices", "folded", "shard")
            table.add_column(name, justify="right" if numeric else "left")
        for v in cells[:limit]:
            table.add_row(
                v["event_type"],
                v.get("item", "-"),
                v["level"],
                _place(v),
                str(v["events"]),
                str(v["devices"]),
                str(v["folded_cells"]),
                str(v["shard"]),
            )
        table.caption = (
            f"{len(cells)} cells published"
            + (f" ({len(cells) - limit} not shown)" if len(cells) > limit else "")
            + f"; suppressed: {sum(s['suppressed_cells'] for s in summaries)} cells,"
            f" {sum(s['suppressed_events'] for s in summaries)} events;"
            f" without device: {sum(s['events_without_device'] for s in summaries)};"
            f" late: {sum(s['late_events'] for s in summaries)}"
        )
        table.caption_justify = "left"
        parts.append(table)
    return Group(*parts)


def read_stats(settings: Settings, topic: str, timeout: float) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) record of ``topic``; BrokerError saying what to do."""
    try:
        return [
            (record.key, record.value)
            for record in read_topic(
                settings.broker,
                topic,
                client_options=kafka_python_options(settings),
                idle=0.9,
                wait=timeout,
            )
            if record.value
        ]
    except TopicNotFoundError as exc:
        raise TopicNotFoundError(
            f"{exc}: start a worker with ad_stats_enabled = true "
            "(it creates the topic), or name the topic with --topic"
        ) from exc


@main.command("stats")
@config_file_option
@click.option("--topic", help="Topic to read; default: the configured stats topic (stats.ad).")
@click.option(
    "--windows", "count", type=click.IntRange(min=1), default=3, help="Newest windows shown (3)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    help="Most cells per window, largest first (20).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.5),
    default=10.0,
    help="Seconds to wait for the broker (10).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="JSON lines (the records) instead of a table."
)
def stats(
    config_file: Path | None,
    topic: str | None,
    count: int,
    limit: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Print the latest ad-statistics windows published to stats.ad.

    Exit code 0 with the table; 1 when the topic holds no window yet; 2 when the broker or
    the topic cannot be reached (with what to do).
    """
    from rich.console import Console

    settings = Settings.load(config_file=config_file)
    name = topic or settings.ad_stats_topic
    windows = latest_windows(read_stats(settings, name, timeout), count)
    if not windows:
        click.echo(
            f"pseudostream: no statistics in {name!r} yet: a window is published "
            "ad_stats_window + ad_stats_grace seconds after it starts (see docs/stats.md)",
            err=True,
        )
        sys.exit(1)
    if as_json:
        for _, values in windows:
            for value in values:
                click.echo(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        return
    Console(width=max(100, Console().width)).print(render(windows, limit))


__all__ = ["latest_windows", "read_stats", "render"]
