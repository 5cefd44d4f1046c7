"""Sub-commands: ``keys init|rotate|schedule|list|new-master-key`` manage the sealed keyring."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from keys import (
    Domain,
    Keyring,
    RotationSchedule,
    generate_master_key,
    load_keyring,
    load_keyring_from,
    resolve_master_key,
    save_keyring,
)
from keys.model import SCHEDULABLE
from processor.cli import main
from processor.cli.options import master_key_file_option
from processor.errors import KeyringError, KeyringFormatError, MasterKeyError
from processor.ops.audit import append_audit

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(dir_okay=False, path_type=Path)


def _keyring_options(command: F) -> F:
    keyring = click.option(
        "--keyring",
        "keyring_path",
        type=_FILE,
        required=True,
        help="Path of the sealed keyring file.",
    )
    return keyring(master_key_file_option(command))


def _domain_option(help_text: str) -> Callable[[F], F]:
    """The required ``--domain`` of the commands that act on one domain's keys."""
    return click.option(
        "--domain", type=click.Choice([d.value for d in Domain]), required=True, help=help_text
    )


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@main.group()
def keys() -> None:
    """Create, rotate and list the keys that make pseudonyms (never shows key material)."""


@keys.command()
@_keyring_options
@click.option("--force", is_flag=True, help="Replace an existing keyring (its keys are lost).")
def init(keyring_path: Path, master_key_file: Path | None, force: bool) -> None:
    """Create a keyring with one fresh active key per domain."""
    master = resolve_master_key(master_key_file, os.environ)
    if keyring_path.exists() and not force:
        raise KeyringError(
            f"keyring {keyring_path} already exists; not overwriting it, since pseudonyms"
            " made with its keys could no longer be matched (pass --force to replace it)"
        )
    keyring = Keyring.generate()
    save_keyring(keyring_path, keyring, master)
    append_audit(
        "keys_init",
        keyring=str(keyring_path),
        replaced=force,
        active_key_ids=[keyring.active(d).key_id for d in Domain],
    )
    ids = ", ".join(keyring.active(d).key_id for d in Domain)
    click.echo(f"created keyring {keyring_path} with active keys {ids}")


@keys.command()
@_keyring_options
@_domain_option("Domain that gets a new active key; its current key is retired.")
def rotate(keyring_path: Path, master_key_file: Path | None, domain: str) -> None:
    """Give a domain a new active key and print its key id."""
    master = resolve_master_key(master_key_file, os.environ)
    rotated = load_keyring(keyring_path, master).rotate(Domain(domain))
    save_keyring(keyring_path, rotated, master)
    new_id = rotated.active(Domain(domain)).key_id
    append_audit("keys_rotate", keyring=str(keyring_path), domain=domain, key_id=new_id)
    click.echo(new_id)
    plan = rotated.scheduled(Domain(domain))
    if plan is not None:
        upcoming = plan.next_boundary_ms(time.time_ns() // 1_000_000)
        click.echo(
            f"{domain} follows a schedule: period keys derive from this key from the"
            f" boundary at {_when(upcoming)} on",
            err=True,
        )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"([0-9]+)([smhdw]?)")
_HOUR = 3600


def _duration(value: str, option: str) -> int:
    """``7d``, ``12h``, ``30m``, ``45s`` or plain seconds -> seconds."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(
            f"{value!r} is not a duration; write a whole number with s, m, h, d or w (7d, 12h)",
            param_hint=option,
        )
    return int(match[1]) * _UNITS[match[2] or "s"]


def _start(value: str | None, period_s: int) -> datetime:
    if value is None:
        # the current period on the Unix epoch's grid: 1d periods change at 00:00 UTC, and
        # any ad statistics window dividing the period is aligned with it
        now = int(time.time())
        return datetime.fromtimestamp(now - now % period_s, UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time with a zone (2026-12-01T00:00:00Z)",
            param_hint="--start",
        )
    return moment.astimezone(UTC)


def _when(ms: int) -> str:
    return _utc(datetime.fromtimestamp(ms / 1000, UTC))


@keys.command()
@_keyring_options
@_domain_option("Domain whose pseudonym key changes every period (only ad-analytics).")
@click.option("--period", help="Length of a key period: 7d, 24h, 30m or seconds.")
@click.option(
    "--overlap",
    default="0",
    show_default=True,
    help="How long after a boundary the previous period's key is still accepted.",
)
@click.option("--start", help="First boundary, ISO 8601 with a zone (default: on the period grid).")
@click.option("--off", is_flag=True, help="Remove the schedule: the active stored key serves.")
def schedule(
    keyring_path: Path,
    master_key_file: Path | None,
    domain: str,
    period: str | None,
    overlap: str,
    start: str | None,
    off: bool,
) -> None:
    """Rotate a domain's key on a schedule kept in the keyring, which workers follow."""
    chosen = Domain(domain)
    if chosen not in SCHEDULABLE:
        raise KeyringError(
            f"{domain} keys cannot rotate on a schedule: only"
            f" {', '.join(sorted(SCHEDULABLE))} can (recommendation pseudonyms stay stable for"
            " long-term features; quarantine keys must keep opening sealed records); rotate it"
            f" by hand with `pseudostream keys rotate --domain {domain}`"
        )
    master = resolve_master_key(master_key_file, os.environ)
    keyring = load_keyring(keyring_path, master)
    if off:
        if period is not None or start is not None:
            raise click.UsageError("--off takes no --period or --start")
        save_keyring(keyring_path, keyring.with_schedule(None), master)
        append_audit("keys_schedule", keyring=str(keyring_path), domain=domain, schedule="off")
        click.echo(f"{domain}: no schedule; {keyring.active(chosen).key_id} makes pseudonyms")
        return
    if period is None:
        raise click.UsageError("give --period (7d, 24h...) or --off")
    period_s = _duration(period, "--period")
    try:
        plan = RotationSchedule(
            chosen, period_s, _duration(overlap, "--overlap"), _start(start, period_s)
        )
    except KeyringFormatError as exc:
        raise click.BadParameter(str(exc).removeprefix("rotation schedule ")) from exc
    save_keyring(keyring_path, keyring.with_schedule(plan), master)
    append_audit(
        "keys_schedule",
        keyring=str(keyring_path),
        domain=domain,
        period_s=period_s,
        overlap_s=plan.overlap_s,
        start=_utc(plan.start),
    )
    if period_s < _HOUR:
        click.echo(f"warning: a period under an hour ({period_s} s) is meant for tests", err=True)
    for line in _schedule_lines(keyring.with_schedule(plan)):
        click.echo(line)
    click.echo("running workers follow it after a restart or their keyring reload (docs/keys.md)")


def _schedule_lines(keyring: Keyring) -> list[str]:
    """What ``keys list`` and ``keys schedule`` say about the schedule, if any."""
    plan = keyring.schedule
    if plan is None:
        return []
    now = time.time_ns() // 1_000_000
    upcoming = plan.next_boundary_ms(now)
    accepted = ", ".join(k.key_id for k in keyring.accepted(plan.domain, now))
    return [
        f"schedule: {plan.domain} key changes every {plan.period_s} s from {_utc(plan.start)};"
        f" the previous key is accepted for {plan.overlap_s} s after each change",
        f"in force: {keyring.in_force(plan.domain, now).key_id} (accepted now: {accepted})",
        f"next: {keyring.period_key(plan.domain, upcoming).key_id} from {_when(upcoming)}",
    ]


def _scheduled_rows(keyring: Keyring) -> list[tuple[str, str, str, str, str | None]]:
    """Derived keys as ``keys list`` rows: those accepted now ("scheduled", with the end of
    their acceptance as "retired") and the next one ("next", from its boundary)."""
    plan = keyring.schedule
    if plan is None:
        return []
    now = time.time_ns() // 1_000_000
    domain = plan.domain.value
    rows: list[tuple[str, str, str, str, str | None]] = []
    for key in keyring.accepted(plan.domain, now):
        if plan.derives(key.key_id):  # else a stored key, listed already
            ends = int(key.created_at.timestamp() * 1000) + plan.period_ms + plan.overlap_s * 1000
            rows.append((key.key_id, domain, "scheduled", _utc(key.created_at), _when(ends)))
    upcoming = plan.next_boundary_ms(now)
    rows.append(
        (keyring.period_key(plan.domain, upcoming).key_id, domain, "next", _when(upcoming), None)
    )
    return rows


@keys.command("list")
@_keyring_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_keys(keyring_path: Path, master_key_file: Path | None, as_json: bool) -> None:
    """List key ids, domains, status and times (ISO 8601 UTC)."""
    keyring = load_keyring_from(keyring_path, master_key_file, os.environ)
    rows = [
        (
            k.key_id,
            k.domain.value,
            "active" if k.active else "retired",
            _utc(k.created_at),
            _utc(k.retired_at) if k.retired_at is not None else None,
        )
        for k in keyring
    ]
    rows += _scheduled_rows(keyring)
    if as_json:
        fields = ("key_id", "domain", "status", "created", "retired")
        listed = [dict(zip(fields, row, strict=True)) for row in rows]
        click.echo(json.dumps(listed, indent=2))
        return
    lines = [
        ("KEY ID", "DOMAIN", "STATUS", "CREATED", "RETIRED"),
        *((*row[:4], row[4] or "-") for row in rows),
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    for line in lines:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    for text in _schedule_lines(keyring):
        click.echo(text)


@keys.command("new-master-key")
@click.option(
    "--out",
    type=_FILE,
    help="Write the key to this new file (mode 0600) instead of printing it.",
)
def new_master_key(out: Path | None) -> None:
    """Make a fresh random master key (base64 of 32 bytes)."""
    text = generate_master_key()
    if out is None:
        click.echo(text)
        return
    try:
        # O_EXCL: never overwrite a master key, it is the only way into its keyring.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise MasterKeyError(f"{out} already exists; not overwriting a master key") from exc
    except OSError as exc:
        raise MasterKeyError(f"cannot create {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
    click.echo(f"wrote a new master key to {out}")
