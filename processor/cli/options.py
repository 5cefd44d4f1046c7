"""Options that several sub-commands share, declared once."""

from __future__ import annotations

from pathlib import Path

import click

config_file_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (else PSEUDOSTREAM_CONFIG). Environment wins over it.",
)

# No ``exists=True``: resolve_master_key reports a missing or unreadable file in one line.
master_key_file_option = click.option(
    "--master-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the base64 master key; default: $PSEUDOSTREAM_MASTER_KEY.",
)
