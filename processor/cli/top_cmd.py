"""``pseudostream top``: a live terminal view of a running worker, read from its ``/metrics``,
or of the whole consumer group, read from Prometheus (``--prometheus URL``)."""

from __future__ import annotations

import functools
import json
import time
import urllib.error
import urllib.parse
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
    leak_findings: float = 0.0
    workers: dict[str, WorkerRow] = field(default_factory=dict)  # from Prometheus only


@dataclass
class WorkerRow:
    """One worker of the group, as Prometheus last scraped it."""

    up: bool = False
    ready: bool | None = None
    events_in: float = 0.0
    cpu: float | None = None  # cores used (rate of process CPU seconds)
    rss: float | None = None  # bytes


def parse_metrics(text: str, at: float = 0.0) -> Snapshot:
    """Prometheus text -> the figures ``top`` needs. The ``/metrics`` of a supervisor
    (``worker --processes N``) labels each process's samples with ``process``: counters
    and histograms are summed over them, a partition's lag is the highest any reports,
    ready means every process is, and each process gets a row."""
    from prometheus_client.parser import text_string_to_metric_families

    snap = Snapshot(at)
    misses: dict[str, float] = {}
    written: dict[str, float] = {}
    ready: list[float] = []
    latency: dict[str, dict[float, float]] = {}

    def add(into: dict[str, float], key: str, value: float) -> None:
        into[key] = into.get(key, 0.0) + value

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            name = sample.name
            process = labels.get("process")
            if name == P + "events_in_total":
                add(snap.events_in, labels["topic"], sample.value)
                if process is not None:
                    snap.workers.setdefault(f"process {process}", WorkerRow(up=True))
                    snap.workers[f"process {process}"].events_in += sample.value
            elif name == P + "events_out_total":
                add(snap.events_out, labels["topic"], sample.value)
            elif name == P + "quarantined_total":
                add(snap.quarantined, labels["reason"], sample.value)
            elif name == P + "consumer_lag":
                part = f"{labels['topic']}/{labels['partition']}"
                snap.lag[part] = max(snap.lag.get(part, 0.0), sample.value)
            elif (
                name.endswith("_bucket")
                and name.startswith(P)
                and ("latency" in name or name == P + "batch_seconds_bucket")
            ):
                buckets = latency.setdefault(name[len(P) : -len("_bucket")], {})
                bound = float(labels["le"])  # "+Inf" parses as inf
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif name == P + "ready":
                ready.append(sample.value)
                if process is not None:
                    row = snap.workers.setdefault(f"process {process}", WorkerRow(up=True))
                    row.ready = bool(sample.value)
            elif name == P + "process_up":  # a supervisor's: also the processes not answering
                snap.workers.setdefault(f"process {process}", WorkerRow()).up = bool(sample.value)
            elif name == P + "consent_table_entries":
                snap.consent_entries = (snap.consent_entries or 0.0) + sample.value
            elif name == P + "pseudonym_cache_misses_total":
                add(misses, labels["domain"], sample.value)
            elif name == P + "pseudonyms_written_total":
                add(written, labels["domain"], sample.value)
            elif name == P + "leak_findings_total":
                snap.leak_findings += sample.value
    snap.ready = min(ready) if ready else None
    snap.latency = {name: sorted(buckets.items()) for name, buckets in latency.items()}
    # as the worker's own pseudonym_cache_hit_ratio, over every process
    snap.hit_ratio = {
        domain: min(1.0, max(0.0, 1.0 - misses.get(domain, 0.0) / n))
        for domain, n in written.items()
        if n
    }
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
    if now.workers:
        n_ready = sum(1 for w in now.workers.values() if w.ready)
        ready = f"{n_ready} of {len(now.workers)} workers"
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
    table.add_row("leak canary findings", f"{now.leak_findings:,.0f}")
    for instance, worker in sorted(now.workers.items()):
        state = "ready" if worker.ready else ("not ready" if worker.up else "DOWN")
        cpu = "-" if worker.cpu is None else f"{worker.cpu:.0%} CPU"
        rss = "-" if worker.rss is None else f"{worker.rss / 2**20:,.0f} MiB"
        table.add_row(f"worker {instance}", f"{state}, {worker.events_in:,.0f} in, {cpu}, {rss}")
    return table


def _read(url: str, option: str, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise PseudostreamError(f"{option} must be an http(s) URL, got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked above
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PseudostreamError(f"cannot read {url}: {reason}") from exc


def scrape(url: str, timeout: float = 5.0) -> Snapshot:
    return parse_metrics(_read(url, "--url", timeout).decode("utf-8"), time.monotonic())


class PrometheusGroup:
    """The group's figures from a Prometheus that scrapes its workers (job ``job``): the
    same sums a single worker's ``/metrics`` gives, over every worker, plus one row per
    worker. Counters are summed as Prometheus last scraped them, so ``top``'s rates are
    over its own refresh interval, as with one worker."""

    def __init__(self, base: str, job: str, timeout: float = 5.0) -> None:
        self.base = base.rstrip("/")
        self.job = job
        self.selector = "{job=" + json.dumps(job) + "}"  # a PromQL string literal
        self.timeout = timeout

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of each series of an instant query; ``{S}`` is the job selector."""
        query = urllib.parse.urlencode({"query": expr.replace("{S}", self.selector)})
        url = f"{self.base}/api/v1/query?{query}"
        try:
            body = json.loads(_read(url, "--prometheus", self.timeout))
            if body.get("status") != "success":
                raise ValueError(body.get("error", "no result"))
            return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise PseudostreamError(
                f"Prometheus at {self.base} answered {expr!r} with {exc}"
            ) from exc

    def by(self, label: str, expr: str) -> dict[str, float]:
        return {labels.get(label, ""): value for labels, value in self.query(expr)}

    def snapshot(self) -> Snapshot:
        workers: dict[str, WorkerRow] = {}
        for labels, value in self.query("up{S}"):
            workers[labels["instance"]] = WorkerRow(up=value == 1)
        if not workers:
            raise PseudostreamError(
                f"Prometheus at {self.base} scrapes no target of job {self.job!r} (see --job)"
            )
        snap = Snapshot(time.monotonic())
        snap.events_in = self.by("topic", "sum by (topic) (pseudostream_events_in_total{S})")
        snap.events_out = self.by("topic", "sum by (topic) (pseudostream_events_out_total{S})")
        snap.quarantined = self.by("reason", "sum by (reason) (pseudostream_quarantined_total{S})")
        for labels, value in self.query("sum by (topic, partition) (pseudostream_consumer_lag{S})"):
            snap.lag[f"{labels.get('topic')}/{labels.get('partition')}"] = value
        for name in ("record_latency_seconds", "event_latency_seconds", "batch_seconds"):
            buckets = self.by("le", f"sum by (le) ({P}{name}_bucket{{S}})")
            if buckets:
                snap.latency[name] = [(float(le), n) for le, n in buckets.items()]
        entries = self.query("sum(pseudostream_consent_table_entries{S})")
        snap.consent_entries = entries[0][1] if entries else None
        snap.hit_ratio = self.by(
            "domain",
            "1 - sum by (domain) (pseudostream_pseudonym_cache_misses_total{S})"
            " / sum by (domain) (pseudostream_pseudonyms_written_total{S} > 0)",
        )
        snap.leak_findings = sum(self.by("", "sum(pseudostream_leak_findings_total{S})").values())
        for field_name, expr in (
            # by instance: a supervisor's target holds several processes (label ``process``)
            ("ready", "min by (instance) (pseudostream_ready{S})"),
            ("events_in", "sum by (instance) (pseudostream_events_in_total{S})"),
            ("cpu", "sum by (instance) (rate(process_cpu_seconds_total{S}[1m]))"),
            ("rss", "sum by (instance) (process_resident_memory_bytes{S})"),
        ):
            for instance, value in self.by("instance", expr).items():
                row = workers.setdefault(instance, WorkerRow())
                setattr(row, field_name, bool(value) if field_name == "ready" else value)
        snap.workers = workers
        return snap


@main.command()
@click.option(
    "--url",
    help="A worker's metrics endpoint (web_port) [default: http://127.0.0.1:6066/metrics].",
)
@click.option(
    "--prometheus",
    "prometheus",
    metavar="URL",
    help="A Prometheus that scrapes the workers (e.g. http://127.0.0.1:9090): the whole group.",
)
@click.option(
    "--job",
    default="pseudostream",
    show_default=True,
    help="With --prometheus: the scrape job of the workers.",
)
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
def top(url: str | None, prometheus: str | None, job: str, interval: float, once: bool) -> None:
    """Live view of a running worker, or of the whole group through Prometheus: throughput,
    lag, quarantine rate, latency percentiles, and with Prometheus one row per worker."""
    from rich.console import Console
    from rich.live import Live

    if url and prometheus:
        raise PseudostreamError("give --url (one worker) or --prometheus (the group), not both")
    if prometheus:
        group = PrometheusGroup(prometheus, job)
        source, take = f"{prometheus} (job {job})", group.snapshot
    else:
        source = url or "http://127.0.0.1:6066/metrics"
        take = functools.partial(scrape, source)
    console = Console()
    first = take()
    if once:
        console.print(render(first, None, source))
        return
    before = first
    with Live(render(first, None, source), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(max(0.1, interval))
                now = take()
                live.update(render(now, before, source), refresh=True)
                before = now
        except KeyboardInterrupt:
            return
