"""`pseudostream config show`: the effective settings (defaults < TOML < environment), with
secrets hidden. A setting that does not validate ends the command with exit code 2 and a
message naming it, exactly as the worker would at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from processor.cli import main
from processor.cli.options import config_file_option
from processor.ops.settings import Secret, Settings

HIDDEN = "**********"


def effective(settings: Settings) -> dict[str, Any]:
    """Every setting as a JSON-ready value: secrets as ``**********``, paths as text."""
    out: dict[str, Any] = {}
    for name in settings.public():
        value = getattr(settings, name)
        if isinstance(value, Secret):
            out[name] = HIDDEN
        elif isinstance(value, Path):
            out[name] = str(value)
        else:
            out[name] = value
    # the topic_* values are shown before topic_prefix is applied, like the worker reads them
    out["topic_consent_changelog"] = (
        settings.topic_consent_changelog or f"{settings.app_id}-consent-changelog"
    )
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@main.group()
def config() -> None:
    """Inspect the worker's configuration (PSEUDOSTREAM_* and the TOML file)."""


@config.command("show")
@config_file_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of name = value.")
def show(config_file: Path | None, as_json: bool) -> None:
    """Print the effective settings, validated, with secrets shown as **********."""
    values = effective(Settings.load(config_file=config_file))
    if as_json:
        click.echo(orjson.dumps(values, option=orjson.OPT_INDENT_2).decode())
        return
    width = max(len(name) for name in values)
    for name, value in values.items():
        click.echo(f"{name:<{width}} = {_text(value)}")
