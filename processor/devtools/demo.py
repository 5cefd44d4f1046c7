"""``pseudostream demo``: the whole system on one machine in under a minute.

Starts the embedded Tansu broker (memory storage, a free port on 127.0.0.1), creates a
keyring, starts the worker(s) as child processes (``python -m processor worker``), feeds
synthetic platform events, waits until every event is accounted for, and prints a report:
events in, out per topic, quarantined by reason, suppressed by reason, where locations came
from (GPS with precise-location consent, else the shipped IP data) and the cities they gave,
events/s, and a clean record next to its raw input. Everything it started is stopped by PID, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from processor.devtools import synth
from processor.devtools.broker import EmbeddedBroker
from processor.devtools.keyring import make_keyring
from processor.kafka.read import read_topic
from processor.kafka.write import produce
from processor.ops.settings import Settings
from processor.pipeline.outcome import Route

_WAIT_SECONDS = 90.0


@dataclass
class WorkerProcess:
    """One ``python -m processor worker`` child, stopped by its PID."""

    index: int
    proc: subprocess.Popen[bytes]
    stats_file: Path
    log_file: Path

    def stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = orjson.loads(self.stats_file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return data

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def worker_environment(settings: dict[str, str]) -> dict[str, str]:
    """The current environment without PSEUDOSTREAM_*, plus ``settings`` as PSEUDOSTREAM_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSEUDOSTREAM_")}
    env.update({f"PSEUDOSTREAM_{k.upper()}": v for k, v in settings.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


WORKER_COMMAND = ("-m", "processor", "worker")


def start_worker(
    index: int,
    workdir: Path,
    settings: dict[str, str],
    command: Sequence[str] = WORKER_COMMAND,
) -> WorkerProcess:
    """``python <command>`` (the worker; tests start their own seams) with ``settings``."""
    stats_file = workdir / f"worker-{index}.stats.json"
    log_file = workdir / f"worker-{index}.log"
    stats_file.unlink(missing_ok=True)
    env = worker_environment(
        {
            **settings,
            "stats_file": str(stats_file),
            "data_dir": str(workdir / f"worker-{index}.data"),
        }
    )
    with log_file.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our interpreter, a fixed or test module
            [sys.executable, *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the child itself
        )
    return WorkerProcess(index, proc, stats_file, log_file)


@dataclass
class Report:
    fed: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    pipeline: Counter[str] = field(default_factory=Counter)
    rate: float | None = None
    wall: float = 0.0
    sample: tuple[bytes, bytes] | None = None
    # (location source, city) of the clean recommendation records read for the sample
    cities: Counter[tuple[str, str]] = field(default_factory=Counter)
    workers: int = 1
    ad_stats: Counter[str] = field(default_factory=Counter)


def _tagged(
    records: Iterable[tuple[str, bytes | None, bytes]],
    settings: Settings,
    fed: Counter[str],
    raw_by_event: dict[str, bytes],
    keep: int,
    event_name: Callable[[str], str | None],
) -> Iterator[tuple[str, bytes | None, bytes]]:
    topics = settings.input_topics
    for source, key, value in records:
        fed[source] += 1
        if len(raw_by_event) < keep and source == synth.RAW_BEHAVIOUR:
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(value)
                if (
                    isinstance(event, dict)
                    and event.get("user_id")
                    and event.get("event_type")
                    in ("search", "comment", "follow", "gift", "like", "view")
                ):
                    # the recommendation record carries the event id's pseudonym
                    raw_by_event[str(event_name(str(event["event_id"])))] = value
        yield topics[source], key, value


def run_demo(
    *,
    events: int = 20_000,
    users: int = 2_000,
    partitions: int = 4,
    seed: int = 0,
    workers: int = 1,
    keep: Path | None = None,
    out: Any = None,
) -> int:
    """Run the demo; returns the exit code (0 when every event was accounted for)."""
    from rich.console import Console

    console = out or Console()
    with contextlib.ExitStack() as stack:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            workdir = keep
        else:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="pseudostream-demo-"))
            )
        try:
            report = _run(
                console,
                workdir,
                stack,
                events=events,
                users=users,
                partitions=partitions,
                seed=seed,
                workers=workers,
            )
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping the workers and the broker[/yellow]")
            stack.close()
            return 130
    print_report(console, report)
    accounted = report.counts["routed"] + report.counts["quarantined"] + report.counts["suppressed"]
    return 0 if accounted >= report.fed else 1


def _run(
    console: Any,
    workdir: Path,
    stack: contextlib.ExitStack,
    *,
    events: int,
    users: int,
    partitions: int,
    seed: int,
    workers: int,
) -> Report:
    from processor.kafka.topics import prepare_topics

    started = time.monotonic()
    keyring_file, master_file = make_keyring(workdir)
    console.print(
        f"[bold]pseudostream demo[/bold]: {events:,} synthetic events, {users:,} users, "
        f"{partitions} partitions, {workers} worker(s)"
    )
    broker = EmbeddedBroker(log_file=workdir / "tansu.log")
    broker.start()
    stack.callback(broker.stop)
    console.print(f"  broker   tansu (memory) pid {broker.pid} at {broker.url}")
    env = {
        "broker": broker.url,
        "keyring": str(keyring_file),
        "master_key_file": str(master_file),
        "partitions": str(partitions),
        "output_partitions": str(partitions),
        "session_timeout": "6",
        "log_level": "warning",
        "app_id": "pseudostream-demo",
        # short windows, so the demo's minutes of synthetic event time close some
        "ad_stats_window": "10",
        "ad_stats_grace": "2",
    }
    settings = Settings.load({f"PSEUDOSTREAM_{k.upper()}": v for k, v in env.items()})
    prepare_topics(settings)
    procs = [start_worker(i, workdir, env) for i in range(workers)]
    for proc in procs:
        stack.callback(proc.stop)
    console.print(
        f"  workers  pid {', '.join(str(p.proc.pid) for p in procs)} (python -m processor worker)"
    )

    report = Report(workers=workers)
    raw_by_event: dict[str, bytes] = {}
    fed_by_source: Counter[str] = Counter()
    records = _tagged(
        synth.generate(events, seed=seed, users=users),
        settings,
        fed_by_source,
        raw_by_event,
        keep=500,
        event_name=_event_names(settings),
    )
    from rich.progress import track

    t0 = time.monotonic()
    feeding = track(records, total=events, description="feeding", console=console, transient=True)
    report.fed = produce(broker.address, feeding)
    report.by_source = fed_by_source
    console.print(f"  fed      {report.fed:,} events in {time.monotonic() - t0:.1f}s")

    deadline = time.monotonic() + _WAIT_SECONDS
    total = 0
    with console.status("processing...") as status:
        while time.monotonic() < deadline:
            stats = [p.stats() for p in procs]
            total = sum(int(s.get("in", 0)) for s in stats)
            status.update(f"processing... {total:,}/{report.fed:,}")
            if total >= report.fed:
                break
            dead = [p for p in procs if p.proc.poll() is not None]
            if dead:
                raise RuntimeError(
                    f"worker {dead[0].index} exited with {dead[0].proc.returncode}; "
                    f"see {dead[0].log_file}"
                )
            time.sleep(0.2)
    for proc in procs:
        proc.stop()
    for proc in procs:
        final = proc.stats()
        report.counts.update(final.get("counts", {}))
        report.pipeline.update(final.get("pipeline", {}))
        report.ad_stats.update(final.get("ad_stats", {}))
        rate = final.get("events_per_second")
        if rate:
            report.rate = (report.rate or 0.0) + float(rate)
    report.sample = _sample(broker.address, settings, raw_by_event, report.cities)
    report.wall = time.monotonic() - started
    return report


def _event_names(settings: Settings) -> Callable[[str], str | None]:
    """event_id -> its pseudonym in the recommendation records (what the sample matches)."""
    from keys import Domain
    from processor.kafka.keywatch import load_keyring
    from processor.pipeline.kinds import IdKind
    from processor.pipeline.pseudonym import Pseudonymizer

    pseudonymizer = Pseudonymizer(load_keyring(settings).active(Domain.RECOMMENDATION))
    return lambda event_id: pseudonymizer.pseudonym(IdKind.EVENT_ID, event_id)


def _sample(
    broker: str,
    settings: Settings,
    raw_by_event: dict[str, bytes],
    cities: Counter[tuple[str, str]],
) -> tuple[bytes, bytes] | None:
    """A clean record next to its raw input, preferring one that shows both replaced
    identifiers and a coarsened location; counts the (source, city) of the records read."""
    topic = settings.output_topics[Route.RECOMMENDATION]
    located = fallback = None
    for record in read_topic(broker, topic, limit=2000):
        if record.value is None:
            continue
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(record.value)
            location = value.get("location")
            if isinstance(location, dict):
                name = location.get("city") or location.get("province_code") or "-"
                cities[str(location.get("source")), str(name)] += 1
            raw = raw_by_event.get(str(value.get("event_id")))
            if raw is not None and value.get("user_id"):
                if location and located is None:
                    located = (raw, record.value)
                fallback = fallback or (raw, record.value)
    return located or fallback


def _cities_table(cities: Counter[tuple[str, str]], top: int = 12) -> Any:
    from rich.table import Table

    totals: Counter[str] = Counter()
    for (_, city), n in cities.items():
        totals[city] += n
    table = Table(
        title=f"cities of the first clean.recommendation records ({sum(cities.values()):,} located)",
        header_style="bold",
    )
    table.add_column("city")
    table.add_column("from GPS", justify="right")
    table.add_column("from IP", justify="right")
    for city, _ in totals.most_common(top):
        table.add_row(city, f"{cities['gps', city]:,}", f"{cities['ip', city]:,}")
    return table


def print_report(console: Any, report: Report) -> None:
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.table import Table

    counts = report.counts
    table = Table(title="what happened", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("records", justify="right")
    table.add_row("events in (fed)", f"{report.fed:,}")
    for source, n in sorted(report.by_source.items()):
        table.add_row(f"  from {source}", f"{n:,}")
    table.add_row("events processed", f"{counts['in']:,}")
    table.add_row("  routed", f"{counts['routed']:,}")
    table.add_row("  quarantined", f"{counts['quarantined']:,}")
    table.add_row("  suppressed", f"{counts['suppressed']:,}")
    if counts["in"] > report.fed:
        table.add_row("  duplicates (redelivered)", f"{counts['in'] - report.fed:,}")
    for name, n in sorted(counts.items()):
        if name.startswith("out:"):
            table.add_row(f"out -> {name[4:]}", f"{n:,}")
    for prefix, label in (("quarantined:", "quarantined"), ("suppressed:", "suppressed")):
        for name, n in sorted(report.pipeline.items()):
            if name.startswith(prefix):
                table.add_row(f"{label}: {name[len(prefix) :]}", f"{n:,}")
    for source, label in (("gps", "GPS (precise-location consent)"), ("ip", "IP address")):
        table.add_row(f"located from {label}", f"{report.pipeline[f'location:{source}']:,}")
    table.add_row("no location", f"{report.pipeline['location:none']:,}")
    if report.ad_stats:
        table.add_row("ad statistics: events counted", f"{report.ad_stats['counted']:,}")
        table.add_row("  windows closed (10 s, k = 10)", f"{report.ad_stats['windows_closed']:,}")
    if report.rate:
        table.add_row("events/s (worker, busy time)", f"{report.rate:,.0f}")
    table.add_row("wall time (whole demo)", f"{report.wall:.1f}s")
    console.print(table)
    if report.cities:
        console.print(_cities_table(report.cities))
    if report.sample is not None:
        raw, clean = report.sample
        left = Syntax(
            orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode(),
            "json",
            word_wrap=True,
        )
        right = Syntax(
            orjson.dumps(orjson.loads(clean), option=orjson.OPT_INDENT_2).decode(),
            "json",
            word_wrap=True,
        )
        console.print(
            Columns(
                [
                    Panel(left, title="raw input (raw.behaviour)"),
                    Panel(right, title="clean output (clean.recommendation)"),
                ],
                equal=True,
                expand=True,
            )
        )
