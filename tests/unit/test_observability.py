"""The alert rules (run through ``promtool test rules``), the Prometheus configuration and the
Grafana dashboard: every metric they name is one the worker's registry exports.

promtool comes with Debian's ``prometheus`` package; the README's test command and
``.ci/run`` install it when it is missing, and these tests fail (never skip) without it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.ops.metrics import KeyAge, PartitionOffsets, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = (DEPLOY / "alerts.test.yml", DEPLOY / "alerts.days.test.yml")
DASHBOARD = DEPLOY / "grafana" / "pseudostream.json"
COMPOSE = DEPLOY / "compose.yaml"
# Names in the expressions that could be metrics: the project's and the process collector's.
METRIC = re.compile(r"(?<![\w$])((?:pseudostream|process)_[a-z0-9_]+)")
SCRAPE_SERIES = {"up"}  # made by Prometheus for every target


class _EmptyView:
    """A worker with nothing assigned: every family is still described."""

    def consent_table_size(self) -> int:
        return 0

    def active_key_ids(self) -> Mapping[str, str]:
        return {}

    def key_ages(self) -> Iterable[KeyAge]:
        return []

    def pseudonym_cache(self) -> Mapping[str, tuple[int, int]]:
        return {}

    def partition_offsets(self) -> Iterable[PartitionOffsets]:
        return []

    def readiness(self) -> Mapping[str, bool]:
        return {}

    def pipeline_stats(self) -> Mapping[str, int]:
        return {}

    def counts(self) -> Mapping[str, int]:
        return {}


def exported_series() -> set[str]:
    """Every series name the worker's registry can expose (counters with ``_total``,
    histograms with ``_bucket``, ``_sum`` and ``_count``)."""
    metrics = WorkerMetrics()
    metrics.bind(_EmptyView())
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: `apt-get update && apt-get install -y prometheus` "
            "(the README's test command does it when it is missing)"
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alert_tests() -> list[dict[str, Any]]:
    return [case for path in ALERT_TESTS for case in yaml.safe_load(path.read_text())["tests"]]


def _dashboard_queries() -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every query, and the template variables' queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        yield f"${variable['name']}", variable["definition"]


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = _run("test", "rules", *(path.name for path in ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_and_its_rule_files_are_valid() -> None:
    result = _run("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 rules found" in result.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    cases = _alert_tests()
    firing: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules()}
    assert firing == alerts
    assert silent == alerts


def test_every_metric_the_alerts_and_their_tests_name_is_exported() -> None:
    exported = exported_series()
    named = {m for rule in _rules() for m in METRIC.findall(rule["expr"])}
    cases = _alert_tests()
    series = {s["series"].partition("{")[0] for case in cases for s in case["input_series"]}
    assert named - exported == set()
    assert series - exported - SCRAPE_SERIES == set()
    assert "pseudostream_leak_findings_total" in named
    assert "pseudostream_active_key_created_timestamp_seconds" in named


def test_every_dashboard_query_names_a_metric_the_worker_exports() -> None:
    exported = exported_series()
    queries = list(_dashboard_queries())
    assert len(queries) > 15
    for title, expr in queries:
        named = set(METRIC.findall(expr))
        assert named, f"{title}: {expr} names no pseudostream or process metric"
        assert named <= exported, f"{title}: {sorted(named - exported)} not exported"


def test_dashboard_shows_what_operations_asked_for() -> None:
    exprs = " ".join(expr for _, expr in _dashboard_queries())
    for wanted in (
        "sum by (topic) (rate(pseudostream_events_in_total",
        "sum by (topic) (rate(pseudostream_events_out_total",
        "sum by (topic, partition) (pseudostream_consumer_lag",
        "sum by (reason) (rate(pseudostream_quarantined_total",
        "sum by (reason) (rate(pseudostream_suppressed_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.99,",
        "pseudostream_leak_findings_total",
        "rate(process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert wanted in exprs, wanted


def test_compose_provisions_grafana_with_the_dashboard_and_prometheus_loads_the_rules() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    assert mounts["./grafana/pseudostream.json"] == "/var/lib/grafana/dashboards/pseudostream.json"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/pseudostream.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uids = {
        panel["datasource"]["uid"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        if "datasource" in panel
    }
    assert uids == {source["datasources"][0]["uid"]}
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    prometheus = compose["services"]["prometheus"]
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus["volumes"]


def test_ci_runs_the_readme_test_command_which_installs_promtool_when_missing() -> None:
    readme_blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.DOTALL)
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert readme_blocks[1] == ci_command
    assert ci_command.startswith(
        "{ command -v promtool || (apt-get update && apt-get install -y prometheus); } && "
    )
