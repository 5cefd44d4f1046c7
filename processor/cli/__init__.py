"""The `pseudostream` command line (also `python -m processor`).

Each sub-command lives in its own module and registers itself on ``main``; errors of the
``EXPECTED_ERRORS`` (processor.errors) become a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from processor import __version__
from processor.errors import EXPECTED_ERRORS
from processor.pipeline import build


class _Group(click.Group):
    """Turns our own errors into one clear line and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as exc:
            click.echo(f"pseudostream: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    prog_name="pseudostream",
    message=f"%(prog)s, version %(version)s (pipeline: {build()})",
)
def main() -> None:
    """Turn raw app events into pseudonymous, city-level, consent-aware events."""


def _register() -> None:
    # Imported for their side effect of adding commands to ``main``.
    from processor.cli import (  # noqa: F401
        bench_cmd,
        config_cmd,
        keys_cmd,
        policy_cmd,
        quarantine_cmd,
        scan_cmd,
        schemas_cmd,
        stats_cmd,
        subject_cmd,
        top_cmd,
        transform_cmd,
        worker_cmd,
    )


_register()
