"""`pseudostream subject lookup`: a person's pseudonyms, for access and deletion requests
that downstream teams must answer (docs/privacy.md)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from keys import load_keyring_from
from processor.cli import main
from processor.cli.options import master_key_file_option
from processor.cli.transform_cmd import keyring_option
from processor.errors import ConfigError
from processor.ops.audit import append_audit
from processor.pipeline.canonical import canonicalize
from processor.pipeline.kinds import IdKind
from processor.pipeline.process import NAMED_DOMAINS, keys_naming
from processor.pipeline.pseudonym import Pseudonymizer

_DEVICE_KINDS = [k.value for k in IdKind if k is not IdKind.USER_ID]


@main.group()
def subject() -> None:
    """Answer requests about one person (data subject)."""


def _identifier(spec: str) -> tuple[IdKind, str]:
    kind, sep, value = spec.partition("=")
    if not sep or kind not in _DEVICE_KINDS:
        raise click.BadParameter(
            f"expected KIND=VALUE with KIND one of {', '.join(_DEVICE_KINDS)}",
            param_hint="--device-id",
        )
    return IdKind(kind), value


@subject.command()
@keyring_option
@master_key_file_option
@click.option("--user-id", required=True, help="The person's account id, as the apps send it.")
@click.option(
    "--device-id",
    "device_ids",
    multiple=True,
    metavar="KIND=VALUE",
    help="A device identifier of theirs (imei=..., oaid=..., android_id=...); repeatable.",
)
def lookup(
    keyring_path: Path, master_key_file: Path | None, user_id: str, device_ids: tuple[str, ...]
) -> None:
    """Print the person's pseudonyms under every key of every domain, one per line:
    domain, key id, identifier kind, pseudonym (tab-separated). The key ids are the keys
    still in the ring (and, for a scheduled domain, the period keys accepted now), so the
    list covers every pseudonym the pipeline may have written for them. The lookup is
    recorded in the audit log (PSEUDOSTREAM_AUDIT_LOG), without the identifiers."""
    wanted = [(IdKind.USER_ID, user_id), *(_identifier(spec) for spec in device_ids)]
    canonical = []
    for kind, raw in wanted:
        value = canonicalize(kind, raw)
        if value is None:
            shown = "--user-id" if kind is IdKind.USER_ID else f"--device-id {kind}"
            raise ConfigError(f"{shown}: a placeholder or malformed value, not an identifier")
        canonical.append((kind, value))
    keyring = load_keyring_from(keyring_path, master_key_file, os.environ)
    now = time.time_ns() // 1_000_000
    key_ids = []
    for domain in NAMED_DOMAINS:
        for key in keys_naming(keyring, domain, now):
            key_ids.append(key.key_id)
            pseudonymizer = Pseudonymizer(key, cache_size=0)
            for kind, value in canonical:
                pseudonym = pseudonymizer.of_canonical(kind, value)
                click.echo(f"{domain}\t{key.key_id}\t{kind}\t{pseudonym}")
    append_audit(
        "subject_lookup",
        kinds=[str(kind) for kind, _ in canonical],
        key_ids=key_ids,
        pseudonyms=len(key_ids) * len(canonical),
    )
