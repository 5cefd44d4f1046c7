"""`pseudostream schemas export DIR`: the contracts as JSON Schema for downstream teams."""

from __future__ import annotations

from pathlib import Path

import click

from processor.cli import main
from schemas import export_json_schema


@main.group()
def schemas() -> None:
    """The raw and output contracts."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export(directory: Path) -> None:
    """Write one JSON Schema (draft 2020-12) file per contract into DIRECTORY."""
    for path in export_json_schema(directory):
        click.echo(str(path))
