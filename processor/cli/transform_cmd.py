"""`pseudostream transform`: JSON lines on stdin, one routed record per line on stdout.

An input line is an envelope ``{"topic": T, "key": K, "value": V}`` (the shape the command
writes; ``V`` an object or a JSON string), bound to its topic exactly as the worker binds
records (``topic_schemas``), or a bare raw record: a trusted file, whose schema decides.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import click
import orjson

from keys import load_keyring_from
from processor.cli import main
from processor.cli.options import master_key_file_option
from processor.pipeline.binding import (
    DEFAULT_TOPIC_SCHEMAS,
    INPUT_TOPICS,
    TRUSTED_SOURCE,
    parse_topic_schemas,
)
from processor.pipeline.geo import build_locator
from processor.pipeline.outcome import DEFAULT_TOPICS, SourceRef
from processor.pipeline.policy import compile_policy
from processor.pipeline.process import DEFAULT_MAX_RECORD_BYTES, Pipeline
from processor.pipeline.scrub import DEFAULT_MAX_TEXT_CHARS

keyring_option = click.option(
    "--keyring",
    "keyring_path",
    required=True,
    envvar="PSEUDOSTREAM_KEYRING",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sealed keyring file (`pseudostream keys init` makes one). Env: PSEUDOSTREAM_KEYRING.",
)


# An envelope naming a topic that is no input: nothing is admitted on it (the name written
# in the envelope is not copied into the quarantine record, it could be anything).
UNBOUND_SOURCE = "unbound"


def unwrap(line: bytes) -> tuple[bytes, str, bytes | None]:
    """(record bytes, source topic, message key) of one input line. An object with
    ``topic`` and ``value`` and no ``schema`` is an envelope; anything else is a bare record
    from the trusted file (a line the pipeline cannot decode is quarantined by it)."""
    if b'"topic"' not in line:  # an escaped spelling leaves a record without a schema
        return line, TRUSTED_SOURCE, None
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line, TRUSTED_SOURCE, None
    if (
        type(document) is not dict
        or "schema" in document
        or "topic" not in document
        or "value" not in document
    ):
        return line, TRUSTED_SOURCE, None
    topic = document["topic"]
    value = document["value"]
    key = document.get("key")
    return (
        value.encode() if type(value) is str else b"" if value is None else orjson.dumps(value),
        topic if topic in INPUT_TOPICS else UNBOUND_SOURCE,
        key.encode() if type(key) is str else None if key is None else orjson.dumps(key),
    )


def run_transform(pipeline: Pipeline, lines: BinaryIO, out: BinaryIO) -> Counter[str]:
    """Feed every line through the pipeline; write one JSON line per routed record."""
    totals: Counter[str] = Counter()
    topics = {route: orjson.dumps(name) for route, name in DEFAULT_TOPICS.items()}
    write = out.write
    for line_no, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            totals["blank"] += 1  # a blank line holds no record: counted, not quarantined
            continue
        totals["in"] += 1
        pipeline.follow_schedule(time.time_ns() // 1_000_000)  # cheap unless a boundary passed
        value, topic, key = unwrap(raw)
        outcome = pipeline.process(value, SourceRef(topic, None, line_no), key)
        for record in outcome.records:
            write(
                b'{"topic":'
                + topics[record.route]
                + b',"key":'
                + orjson.dumps(record.key)
                + b',"value":'
                + record.value
                + b"}\n"
            )
        totals[outcome.counted_as] += 1
    return totals


def summary(totals: Counter[str], stats: Counter[str]) -> str:
    """The one-line summary on stderr; dropped fields as ``<path> <reason> <count>``."""

    def group(prefix: str) -> str:
        items = sorted(
            (k.removeprefix(prefix).replace(":", " "), v)
            for k, v in stats.items()
            if k.startswith(prefix)
        )
        return ", ".join(f"{k} {v}" for k, v in items) or "none"

    line = (
        f"transform: {totals['in']} records in ({totals['blank']} blank lines skipped): "
        f"{totals['routed']} routed, {totals['quarantined']} quarantined, {totals['suppressed']} suppressed; "
        f"out: {group('out:')}; quarantined: {group('quarantined:')}; suppressed: {group('suppressed:')}; "
        f"dropped fields: {group('dropped_field:')}"
    )
    cut = group("text_truncated:")
    return line if cut == "none" else f"{line}; free text cut: {cut}"


@main.command()
@keyring_option
@master_key_file_option
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Policy file (JSON); default: the shipped default/1 policy.",
)
@click.option(
    "--mmdb",
    "mmdb_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="PSEUDOSTREAM_GEO_CITY_DB",
    help="MaxMind MMDB city database for IP location. Env: PSEUDOSTREAM_GEO_CITY_DB.",
)
@click.option(
    "--xdb",
    "xdb_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="PSEUDOSTREAM_GEO_IP2REGION_DB",
    help="ip2region xdb database for IP location in China (replaces the shipped one of its IP "
    "version). Env: PSEUDOSTREAM_GEO_IP2REGION_DB.",
)
@click.option(
    "--shipped-ip/--no-shipped-ip",
    default=True,
    envvar="PSEUDOSTREAM_GEO_SHIPPED_IP",
    show_default=True,
    help="Locate Chinese IP addresses with the shipped ip2region data. Env: "
    "PSEUDOSTREAM_GEO_SHIPPED_IP.",
)
@click.option(
    "--max-record-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_RECORD_BYTES,
    show_default=True,
    help="Larger records are quarantined as too_large.",
)
@click.option(
    "--max-text-chars",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_TEXT_CHARS,
    show_default=True,
    help="Longer free text is cut before scrubbing (counted as text_truncated).",
)
@click.option(
    "--topic-schemas",
    default=DEFAULT_TOPIC_SCHEMAS,
    show_default=True,
    envvar="PSEUDOSTREAM_TOPIC_SCHEMAS",
    help="Schemas each envelope topic admits, as the worker's topic_schemas setting.",
)
@click.option("--strict", is_flag=True, help="Exit 1 when any record was quarantined.")
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
def transform(
    keyring_path: Path,
    master_key_file: Path | None,
    policy_path: Path | None,
    mmdb_path: Path | None,
    xdb_path: Path | None,
    shipped_ip: bool,
    max_record_bytes: int,
    max_text_chars: int,
    topic_schemas: str,
    strict: bool,
    quiet: bool,
) -> None:
    """JSON lines on stdin -> {"topic", "key", "value"} JSON lines on stdout.

    An input line is an envelope {"topic", "key", "value"} (value an object or a JSON
    string), whose schema must be one its topic admits, as in the worker; or a bare raw
    record, taken as from a trusted file (its schema decides). Consent records in the input
    update the consent state for the lines after them, as the stream's consent table would. A bad line becomes a sealed quarantine record; nothing is
    dropped silently. A summary goes to stderr.
    """
    binding = parse_topic_schemas(topic_schemas)
    keyring = load_keyring_from(keyring_path, master_key_file, os.environ)
    pipeline = Pipeline(
        keyring,
        policy=compile_policy(policy_path),
        max_record_bytes=max_record_bytes,
        max_text_chars=max_text_chars,
        locator=build_locator(mmdb_path, xdb_path, shipped_ip=shipped_ip),
        topic_schemas=binding,
    )
    totals = run_transform(pipeline, sys.stdin.buffer, sys.stdout.buffer)
    sys.stdout.flush()
    if not quiet:
        click.echo(summary(totals, pipeline.stats), err=True)
    if strict and totals["quarantined"]:
        sys.exit(1)
