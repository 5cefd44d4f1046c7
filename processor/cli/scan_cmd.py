"""Sub-command: scan — look for raw identifiers in outputs and logs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import click

from processor.cli import main
from processor.errors import ConfigError
from processor.ops.scan import LeakScanner


@contextmanager
def _opened(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed below, after the caller is done)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    with stream:
        yield stream


def _read_lines(paths: tuple[str, ...]) -> Iterator[bytes]:
    for path in paths:
        with _opened(path) as stream:
            yield from stream


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--raw",
    "raw_files",
    multiple=True,
    metavar="RAWFILE",
    help="Raw events (JSON lines) whose identifier values are searched for in every spelling.",
)
def scan(files: tuple[str, ...], raw_files: tuple[str, ...]) -> None:
    """Report raw identifiers in FILE... (JSON lines or text; - is stdin).

    Exit 0 when clean, 1 when anything is found. Excerpts in the report are masked.
    """
    scanner = LeakScanner.from_raw_events(_read_lines(raw_files))
    lines = findings = 0

    def counted(stream: BinaryIO) -> Iterator[bytes]:
        nonlocal lines
        for line in stream:
            lines += 1
            yield line

    for path in files:
        with _opened(path) as stream:
            for finding in scanner.scan_lines(counted(stream)):
                findings += 1
                click.echo(
                    f"{path}:{finding.line} {finding.kind} {finding.where} {finding.excerpt}"
                )
    click.echo(f"scanned {lines} lines, {findings} findings")
    sys.exit(1 if findings else 0)
