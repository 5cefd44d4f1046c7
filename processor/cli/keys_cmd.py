"""Sub-commands: ``keys init|rotate|list|new-master-key`` manage the sealed keyring."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from keys import (
    Domain,
    Keyring,
    generate_master_key,
    load_keyring,
    load_keyring_from,
    resolve_master_key,
    save_keyring,
)
from processor.cli import main
from processor.cli.options import master_key_file_option
from processor.errors import KeyringError, MasterKeyError

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
    ids = ", ".join(keyring.active(d).key_id for d in Domain)
    click.echo(f"created keyring {keyring_path} with active keys {ids}")


@keys.command()
@_keyring_options
@click.option(
    "--domain",
    type=click.Choice([d.value for d in Domain]),
    required=True,
    help="Domain that gets a new active key; its current key is retired.",
)
def rotate(keyring_path: Path, master_key_file: Path | None, domain: str) -> None:
    """Give a domain a new active key and print its key id."""
    master = resolve_master_key(master_key_file, os.environ)
    rotated = load_keyring(keyring_path, master).rotate(Domain(domain))
    save_keyring(keyring_path, rotated, master)
    click.echo(rotated.active(Domain(domain)).key_id)


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
    if as_json:
        fields = ("key_id", "domain", "status", "created", "retired")
        click.echo(json.dumps([dict(zip(fields, row, strict=True)) for row in rows], indent=2))
        return
    lines = [
        ("KEY ID", "DOMAIN", "STATUS", "CREATED", "RETIRED"),
        *((*row[:4], row[4] or "-") for row in rows),
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    for line in lines:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


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
