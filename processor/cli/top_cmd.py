"""``pseudostream top``: a live terminal view of a running worker, read from its ``/metrics``."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from processor.cli import main
from processor.errors import PseudostreamError

P = "pseudostream_"


@dataclass
class Snapshot:
    """The figures ``top`` shows, taken from one scrape."""

    at: float
    events_in: dict[str, float] = field(default_factory=dict)
    events_out: dict[str, float] = field(default_factory=dict)
    quarantined: dict[str, float] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)
    latency: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    ready: float | None = None
    consent_entries: float | None = None
    hit_ratio: dict[str, float] = field(default_factory=dict)


def parse_metrics(text: str, at: float = 0.0) -> Snapshot:
    """Prometheus text -> the figures ``top`` needs."""
    from prometheus_client.parser import text_string_to_metric_families

    snap = Snapshot(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            name = sample.name
            if name == P + "events_in_total":
                snap.events_in[labels["topic"]] = sample.value
            elif name == P + "events_out_total":
                snap.events_out[labels["topic"]] = sample.value
            elif name == P + "quarantined_total":
                snap.quarantined[labels["reason"]] = sample.value
            elif name == P + "consumer_lag":
                snap.lag[f"{labels['topic']}/{labels['partition']}"] = sample.value
            elif name.endswith("_bucket") and name.startswith(P) and "latency" in name:
                bucket = float(labels["le"])  # "+Inf" parses as inf
                snap.latency.setdefault(name[len(P) : -len("_bucket")], []).append(
                    (bucket, sample.value)
                )
            elif name == P + "batch_seconds_bucket":
                snap.latency.setdefault("batch_seconds", []).append(
                    (float(labels["le"]), sample.value)
                )
            elif name == P + "ready":
                snap.ready = sample.value
            elif name == P + "consent_table_entries":
                snap.consent_entries = sample.value
            elif name == P + "pseudonym_cache_hit_ratio":
                snap.hit_ratio[labels["domain"]] = sample.value
    return snap


def quantile(buckets: Iterable[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of cumulative histogram buckets (upper bound of the bucket that
    holds it, as Prometheus' ``histogram_quantile`` without interpolation); None if empty,
    inf when it lies in +Inf."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    wanted = q * ordered[-1][1]
    for bound, count in ordered:
        if count >= wanted:
            return bound
    return ordered[-1][0]  # pragma: no cover - the +Inf bucket holds every observation


def _delta(
    now: Mapping[str, float], before: Mapping[str, float] | None, seconds: float
) -> float | None:
    if before is None or seconds <= 0:
        return None
    return max(0.0, sum(now.values()) - sum(before.values())) / seconds


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "> max"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def render(now: Snapshot, before: Snapshot | None, url: str) -> Any:
    """One frame: a rich table of throughput, lag, quarantine and latency."""
    from rich.table import Table

    elapsed = now.at - before.at if before is not None else 0.0
    table = Table(title=f"pseudostream top - {url}", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rate_in = _delta(now.events_in, before.events_in if before else None, elapsed)
    rate_out = _delta(now.events_out, before.events_out if before else None, elapsed)
    rate_q = _delta(now.quarantined, before.quarantined if before else None, elapsed)
    total_in = sum(now.events_in.values())
    total_q = sum(now.quarantined.values())
    ready = "-" if now.ready is None else ("yes" if now.ready else "NO")
    table.add_row("ready", ready)
    table.add_row("events in (total)", f"{total_in:,.0f}")
    table.add_row("events in /s", "-" if rate_in is None else f"{rate_in:,.0f}")
    table.add_row("records out /s", "-" if rate_out is None else f"{rate_out:,.0f}")
    table.add_row(
        "quarantined", f"{total_q:,.0f} ({(total_q / total_in if total_in else 0.0):.2%})"
    )
    table.add_row("quarantined /s", "-" if rate_q is None else f"{rate_q:,.1f}")
    table.add_row("consumer lag (sum)", f"{sum(now.lag.values()):,.0f}")
    for part, value in sorted(now.lag.items()):
        table.add_row(f"  lag {part}", f"{value:,.0f}")
    for name, buckets in sorted(now.latency.items()):
        p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
        table.add_row(f"{name} p50 / p99", f"{_seconds(p50)} / {_seconds(p99)}")
    for reason, value in sorted(now.quarantined.items()):
        table.add_row(f"  quarantined {reason}", f"{value:,.0f}")
    for domain, ratio in sorted(now.hit_ratio.items()):
        table.add_row(f"cache hit ratio {domain}", f"{ratio:.1%}")
    if now.consent_entries is not None:
        table.add_row("consent table entries", f"{now.consent_entries:,.0f}")
    return table


def scrape(url: str, timeout: float = 5.0) -> Snapshot:
    if not url.startswith(("http://", "https://")):
        raise PseudostreamError(f"--url must be an http(s) URL, got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked above
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PseudostreamError(f"cannot read {url}: {reason}") from exc
    return parse_metrics(text, time.monotonic())


@main.command()
@click.option(
    "--url",
    default="http://127.0.0.1:6066/metrics",
    show_default=True,
    help="The worker's metrics endpoint (web_port).",
)
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
def top(url: str, interval: float, once: bool) -> None:
    """Live view of a running worker: throughput, lag, quarantine rate, latency percentiles."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    first = scrape(url)
    if once:
        console.print(render(first, None, url))
        return
    before = first
    with Live(render(first, None, url), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(max(0.1, interval))
                now = scrape(url)
                live.update(render(now, before, url), refresh=True)
                before = now
        except KeyboardInterrupt:
            return
