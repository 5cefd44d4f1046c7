"""Sub-commands: ``worker`` (the faust stream processor) and ``demo`` (embedded broker,
synthetic events, the worker, a report)."""

from __future__ import annotations

from pathlib import Path

import click

from processor.cli import main
from processor.cli.options import config_file_option


@main.command()
@config_file_option
@click.option(
    "--processes",
    metavar="N|auto",
    help="Worker processes in this group on this machine, under one supervisor (setting"
    " 'processes'; auto = the usable CPUs, at most 'partitions') [default: 1].",
)
@click.option("--show-settings", is_flag=True, help="Print the effective settings and exit.")
def worker(config_file: Path | None, processes: str | None, show_settings: bool) -> None:
    """Run the stream worker against a Kafka cluster (settings: PSEUDOSTREAM_* or --config).

    Consumes raw.behaviour, raw.device and consent; produces clean.recommendation,
    clean.ad-analytics, erasure.recommendation, erasure.ad-analytics and quarantine. See docs/worker.md for every setting.
    """
    from processor.kafka import startup, supervisor
    from processor.ops import supervision
    from processor.ops.logs import configure
    from processor.ops.settings import Settings

    settings = Settings.load(config_file=config_file, processes=processes)
    if show_settings:
        for name, value in settings.public().items():
            click.echo(f"{name} = {value}")
        return
    count = settings.process_count(supervision.usable_cpus())
    if count > 1:
        configure(settings.log_level, fields={"process": supervision.SUPERVISOR})
        raise SystemExit(supervisor.supervise(settings, count, config_file))
    configure(settings.log_level, fields=supervision.log_fields())
    raise SystemExit(startup.run(settings))


@main.command()
@click.option("-n", "--events", default=20_000, show_default=True, help="Synthetic events to feed.")
@click.option("--users", default=2_000, show_default=True, help="Distinct synthetic users.")
@click.option("--partitions", default=4, show_default=True, help="Partitions per topic.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic data.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 4),
    help="Worker processes in the consumer group.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's keyring and stats in this directory.",
)
def demo(
    events: int, users: int, partitions: int, seed: int, workers: int, keep: Path | None
) -> None:
    """Start an embedded broker, feed synthetic events through the worker, print a report.

    Everything started here (broker, workers) is stopped at the end, also on Ctrl-C.
    """
    from processor.devtools.demo import run_demo

    raise SystemExit(
        run_demo(
            events=events, users=users, partitions=partitions, seed=seed, workers=workers, keep=keep
        )
    )
