"""`pseudostream quarantine replay`: unseal quarantined records, run them through the current
pipeline and route them again (see processor/kafka/replay.py and docs/operations-config.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from processor.cli import main
from processor.cli.options import config_file_option


@main.group()
def quarantine() -> None:
    """Work with the quarantine topic (sealed records that could not be processed)."""


@quarantine.command("replay")
@click.option(
    "--keyring",
    "keyring_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sealed keyring (its quarantine keys open the records); else the keyring setting.",
)
@config_file_option
@click.option(
    "--from-topic",
    "from_topic",
    help="Topic to read quarantine records from; default: the configured quarantine topic.",
)
@click.option(
    "--group",
    help="Consumer group whose committed offsets say where to continue; "
    "default: <app_id>-quarantine-replay.",
)
@click.option(
    "--from-beginning", is_flag=True, help="Start at the first offset, not the committed one."
)
@click.option("--dry-run", is_flag=True, help="Process and report, but produce and commit nothing.")
@click.option("--max", "max_records", type=click.IntRange(min=1), help="Replay at most N records.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-record report.")
def replay(
    keyring_path: Path | None,
    config_file: Path | None,
    from_topic: str | None,
    group: str | None,
    from_beginning: bool,
    dry_run: bool,
    max_records: int | None,
    quiet: bool,
) -> None:
    """Unseal quarantine records, run them through the current pipeline, route them again.

    The consent topic is read first, so events are judged by today's consent. Records that
    fail again are quarantined again (once per run); seals this keyring cannot open are
    reported and left alone. Summary on stdout, per-record problems on stderr.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from keys import Domain
    from processor.kafka.keywatch import load_keyring
    from processor.kafka.replay import Replayer
    from processor.kafka.startup import load_locator
    from processor.ops.audit import append_audit
    from processor.ops.settings import Settings
    from processor.pipeline.process import Pipeline

    settings = Settings.load(config_file=config_file, keyring=keyring_path)
    keyring = load_keyring(settings)
    pipeline = Pipeline(
        keyring,
        locator=load_locator(settings),
        max_record_bytes=settings.max_record_bytes,
        max_text_chars=settings.max_text_chars,
        topic_schemas=settings.topic_binding,
        max_key_bytes=settings.max_key_bytes,
    )
    console = Console(stderr=True)
    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    ) as bar:
        task = bar.add_task("replay", total=None)
        replayer = Replayer(
            settings,
            keyring,
            pipeline,
            topic=from_topic,
            group=group,
            dry_run=dry_run,
            max_records=max_records,
            from_beginning=from_beginning,
            progress=lambda done, total: bar.update(task, completed=done, total=total or None),
        )
        report = replayer.run()
    append_audit(
        "quarantine_replay",
        run_id=report.run_id,
        topic=replayer.topic,
        dry_run=dry_run,
        quarantine_key_ids=[k.key_id for k in keyring.keys_for(Domain.QUARANTINE)],
        counts=dict(report.counts),
    )
    if not quiet:
        for line in report.problems:
            click.echo(f"replay: {line}", err=True)
        hidden = sum(
            report.counts[k] for k in ("quarantined", "unseal_failed", "unreadable", "truncated")
        )
        if hidden > len(report.problems):
            click.echo(f"replay: ... {hidden - len(report.problems)} more not listed", err=True)
    click.echo(report.summary())
    sys.stdout.flush()
