"""What the supervisor of ``pseudostream worker --processes N`` decides without doing any
I/O of its own (processor/kafka/supervisor.py does the processes and the web port): how many
processes, when to restart one, and the processes' metrics and stats files taken together.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from processor.ops.metrics import PREFIX

CHILD_ENV = "PSEUDOSTREAM_CHILD"
"""Set in each worker process's environment to its index; its log lines carry it."""
SUPERVISOR = "supervisor"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on: its affinity mask (which a container's cpuset
    limits), else the machine's count; at most its cgroup v2 CPU quota, rounded up (a
    container's ``--cpus``, a Kubernetes CPU limit)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 here, or no quota
        pass
    return cpus


def log_fields() -> dict[str, Any]:
    """The field every log line of this process carries: the worker process's index under
    a supervisor, nothing otherwise."""
    index = os.environ.get(CHILD_ENV)
    return {"process": int(index)} if index and index.isdigit() else {}


# -- the restart policy (pure) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """How the supervisor restarts a process that exited."""

    first: float = 1.0
    """Seconds before the first restart; doubled for each further early exit in a row."""
    most: float = 30.0
    """The longest wait between restarts."""
    settled_after: float = 60.0
    """A process that ran this long had started fine: its next exit starts a new count."""
    give_up_after: int = 5
    """Early exits in a row (each before ``settled_after``) after which the supervisor
    gives up instead of restarting."""


@dataclass(frozen=True, slots=True)
class Restart:
    delay: float
    attempt: int  # early exits in a row so far, this one included


@dataclass(frozen=True, slots=True)
class GiveUp:
    exits: int  # early exits in a row
    within: float  # seconds each ran at most


class RestartPolicy:
    """Per process: when to restart it after an exit, or to give up. Fed start and exit
    times by the caller (a clock of its choice), so it is tested with a fake one."""

    def __init__(self, backoff: Backoff = Backoff()) -> None:
        self.backoff = backoff
        self._started: dict[int, float] = {}
        self._early: Counter[int] = Counter()

    def started(self, index: int, now: float) -> None:
        self._started[index] = now

    def exited(self, index: int, now: float) -> Restart | GiveUp:
        b = self.backoff
        ran = now - self._started.get(index, now)
        if ran >= b.settled_after:
            self._early[index] = 0
        self._early[index] += 1
        attempt = self._early[index]
        if attempt > b.give_up_after:  # each of them early: a settled run resets the count
            return GiveUp(attempt, b.settled_after)
        return Restart(min(b.most, b.first * 2 ** (attempt - 1)), attempt)


# -- metrics and stats of the processes together (pure) --------------------------------


def merge_metrics(expositions: Mapping[str, str]) -> list[Metric]:
    """Prometheus text of each process -> one family per name, every sample labelled
    ``process=<name>``. A label keeps counters monotonic per series when a process
    restarts (a sum would drop back), and Prometheus sums them where wanted."""
    families: dict[str, Metric] = {}
    for name, text in expositions.items():
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type
                )
            for sample in family.samples:
                merged.add_sample(sample.name, {**sample.labels, "process": name}, sample.value)
    return list(families.values())


_SUMMED_FIELDS = ("in", "consent_table_size", "device_link_users", "erased_identifiers")
_COUNTED_FIELDS = ("counts", "pipeline", "ad_stats")


def add_stats(total: dict[str, Any], stats: Mapping[str, Any]) -> None:
    """Add one worker's stats file (its counters) to ``total``."""
    for name in _SUMMED_FIELDS:
        if isinstance(stats.get(name), int):
            total[name] = total.get(name, 0) + stats[name]
    for name in _COUNTED_FIELDS:
        counts = stats.get(name)
        if isinstance(counts, dict):
            merged = Counter(total.get(name) or {})
            merged.update({k: v for k, v in counts.items() if isinstance(v, int)})
            total[name] = dict(merged)


def combined_stats(
    retired: Mapping[str, Any], current: Mapping[int, Mapping[str, Any]]
) -> dict[str, Any]:
    """The supervisor's stats file: the counters of every process summed, earlier runs of
    restarted ones (``retired``) included; ``events_per_second`` is the sum of the running
    processes' own rates; each running process's file under ``processes``."""
    total: dict[str, Any] = {"pid": os.getpid()}
    add_stats(total, retired)
    rates = []
    for stats in current.values():
        add_stats(total, stats)
        rate = stats.get("events_per_second")
        if isinstance(rate, (int, float)):
            rates.append(float(rate))
    total.setdefault("in", 0)
    total["events_per_second"] = round(sum(rates), 1) if rates else None
    total["processes"] = {str(i): dict(s) for i, s in sorted(current.items())}
    return total


def combined_metrics(texts: Mapping[str, str], running: Mapping[str, tuple[bool, int]]) -> bytes:
    """The supervisor's ``/metrics``: each process's own (``texts``, by process name), its
    ``process_up`` and ``process_restarts_total`` (``running``: name -> (up, restarts)), and
    the supervisor's own ``process_*``."""
    up = GaugeMetricFamily(
        f"{PREFIX}_process_up", "1 while the worker process runs", labels=["process"]
    )
    restarts = CounterMetricFamily(
        f"{PREFIX}_process_restarts",
        "Times the supervisor restarted the worker process",
        labels=["process"],
    )
    for name, (is_up, count) in running.items():
        up.add_metric([name], 1 if is_up else 0)
        restarts.add_metric([name], count)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merge_metrics(texts)))
    registry.register(_Families([up, restarts, *_own_process_metrics()]))
    return generate_latest(registry)


def _own_process_metrics() -> list[Metric]:
    """The supervisor's own ``process_*`` (CPU, memory), labelled ``process="supervisor"``
    like the workers' (so a sum over ``process`` is the whole container)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    return merge_metrics({SUPERVISOR: generate_latest(registry).decode()})


class _Families(Collector):
    """A collector that yields ready-made metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def combined_readiness(
    answers: Iterable[tuple[str, str, int, bytes]],
) -> tuple[dict[str, Any], int]:
    """The supervisor's ``/ready`` from each process's (name, state, HTTP status, body):
    200 only when every process answered ready; ``not_ready`` names the others."""
    processes: dict[str, Any] = {}
    for name, state, status, body in answers:
        answer: dict[str, Any] = {"ready": False, "state": state}
        if status:
            with contextlib.suppress(orjson.JSONDecodeError):
                answer.update(orjson.loads(body))
            answer["ready"] = status == 200 and answer.get("ready") is True
        processes[name] = answer
    not_ready = [name for name, answer in processes.items() if not answer["ready"]]
    answer_all = {"ready": not not_ready, "not_ready": not_ready, "processes": processes}
    return answer_all, 503 if not_ready else 200
