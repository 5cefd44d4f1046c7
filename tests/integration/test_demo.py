"""`pseudostream demo` end to end (its own Tansu broker and worker): the report shows where
locations came from, with IP-derived cities next to GPS-derived ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from processor.devtools.demo import run_demo

pytestmark = pytest.mark.broker


def test_demo_report_shows_ip_derived_cities_next_to_gps_ones(tmp_path: Path) -> None:
    console = Console(record=True, width=160, force_terminal=False)
    assert run_demo(events=3000, users=300, partitions=2, keep=tmp_path, out=console) == 0
    text = console.export_text()
    by_gps = re.search(r"located from GPS \(precise-location consent\)\s+│?\s*([\d,]+)", text)
    by_ip = re.search(r"located from IP address\s+│?\s*([\d,]+)", text)
    assert by_gps and by_ip, text
    assert int(by_gps[1].replace(",", "")) > 0
    assert int(by_ip[1].replace(",", "")) > 0
    assert "from IP" in text and "from GPS" in text
    rows = re.findall(r"^\s*│?\s*(\S+市)\s+│?\s*([\d,]+)\s+│?\s*([\d,]+)", text, re.MULTILINE)
    assert any(int(gps) > 0 and int(ip) > 0 for _, gps, ip in rows), text
