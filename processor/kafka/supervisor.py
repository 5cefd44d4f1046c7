"""``pseudostream worker --processes N``: one supervisor, N worker processes in one group.

One container per machine instead of one per core. The supervisor checks the keyring and
creates the topics once, then starts N ``python -m processor worker`` processes as members
of the same consumer group (``processes = 1`` in their environment: a worker process never
supervises), and:

- gives each its own data directory (``<data_dir>/process-<i>``: faust needs one per
  worker), its own stats file (``<stats_file stem>.<i><suffix>``) and, when ``web_port`` is
  set, its own web server on a free port of 127.0.0.1 that only the supervisor reads;
- serves ``web_port`` itself: ``/health``, ``/ready`` (200 only when every process is
  ready; the body says which is not and why) and ``/metrics`` (every process's metrics with
  a ``process`` label, plus the supervisor's own: processes up, restarts);
- writes ``stats_file`` as the sum of its processes' stats files, including what the
  earlier runs of a restarted process counted, so a reader of the one file sees every input;
- restarts a process that exits (a crash, a stall: exit 70) after a backoff; a process that
  keeps failing soon after its start makes the supervisor stop the others and exit with
  that process's exit code (:class:`RestartPolicy`);
- on SIGTERM or SIGINT sends SIGTERM to every process (each commits what it acknowledged),
  waits up to ``shutdown_timeout``, kills what is left, and exits 0 only if every process
  stopped by itself with 0.

Every log line of a worker process carries ``"process": <i>``, the supervisor's
``"process": "supervisor"``. A worker process gets SIGTERM when the supervisor dies
(``PR_SET_PDEATHSIG`` on Linux), so a killed supervisor leaves no orphan in the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from processor.kafka.settings import Settings
from processor.ops.metrics import CONTENT_TYPE, PREFIX

log = logging.getLogger("pseudostream.supervisor")

CHILD_ENV = "PSEUDOSTREAM_CHILD"
"""Set in each worker process's environment to its index; its log lines carry it."""
SUPERVISOR = "supervisor"
WORKER_COMMAND = ("-m", "processor", "worker")
_PR_SET_PDEATHSIG = 1
_SCRAPE_TIMEOUT = 2.0
_STATS_EVERY = 0.1  # a reader's count lags a worker's by this more
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the supervisor --------------------------------------------------------------------


@dataclass
class Child:
    """One worker process slot: restarted in place, same index."""

    index: int
    data_dir: Path
    stats_file: Path | None
    proc: asyncio.subprocess.Process | None = None
    web_port: int = 0
    restarts: int = 0
    state: str = "starting"  # starting, running, restarting in Ns, failed, stopped
    last_code: int | None = None
    clean: bool = False  # stopped by itself with exit code 0 when told to stop

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"


def _die_with_parent() -> None:
    """In the forked child, before exec: SIGTERM when the supervisor dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _unused_port() -> int:
    """A port of 127.0.0.1 nothing listens on now: a worker process's private web server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_stats_file(stats_file: Path, index: int) -> Path:
    return stats_file.with_name(f"{stats_file.stem}.{index}{stats_file.suffix}")


class Supervisor:
    """Runs ``count`` worker processes until a signal or a give-up (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        *,
        config_file: Path | None = None,
        command: Sequence[str] = WORKER_COMMAND,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.command = [sys.executable, *command]
        if config_file is not None:
            self.command += ["--config", str(config_file)]
        self.policy = RestartPolicy(backoff)
        self.clock = clock
        stats = settings.stats_file
        self.children = [
            Child(
                i,
                Path(settings.data_dir) / f"process-{i}",
                child_stats_file(stats, i) if stats is not None else None,
            )
            for i in range(count)
        ]
        self.retired: dict[str, Any] = {}  # stats of runs that ended
        self._stopping = asyncio.Event()
        self._gave_up: int | None = None  # the exit code to give when giving up
        self._stats_written = b""

    # -- processes ---------------------------------------------------------------------

    def _environment(self, child: Child) -> dict[str, str]:
        s = self.settings
        child.web_port = _unused_port() if s.web_port else 0
        overrides = {
            "processes": "1",
            "data_dir": str(child.data_dir),
            "web_port": str(child.web_port),
            "web_host": "127.0.0.1",  # private: only the supervisor reads it
            "create_topics": "false",  # created once, by the supervisor
        }
        if child.stats_file is not None:
            overrides["stats_file"] = str(child.stats_file)
        env = dict(os.environ)
        env.update({f"PSEUDOSTREAM_{k.upper()}": v for k, v in overrides.items()})
        env[CHILD_ENV] = str(child.index)
        return env

    async def _start(self, child: Child) -> None:
        self.policy.started(child.index, self.clock())  # also when the start fails
        child.data_dir.mkdir(parents=True, exist_ok=True)
        if child.stats_file is not None:
            child.stats_file.unlink(missing_ok=True)
        child.proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.DEVNULL,
            env=self._environment(child),
            start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        child.state = "running"
        log.info("process %d started (pid %d)", child.index, child.proc.pid)

    def _retire(self, child: Child) -> None:
        """A run ended: keep its counters, so the stats file still counts them."""
        if child.stats_file is not None:
            add_stats(self.retired, _read_json(child.stats_file))
            child.stats_file.unlink(missing_ok=True)

    async def _run_once(self, child: Child) -> int | None:
        """One run of the process: its exit code, or None when it was stopped (or stopped
        by itself while the others were being stopped)."""
        try:
            await self._start(child)
        except OSError as exc:  # no such interpreter, no more processes, a read-only disk
            log.error("process %d could not be started: %s", child.index, exc)
            return 1
        assert child.proc is not None  # noqa: S101 - just started
        exited = asyncio.ensure_future(child.proc.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not exited.done():
            await self._stop(child, exited)
            return None
        code = child.last_code = exited.result()
        if self._stopping.is_set():  # exited as the others were told to stop
            child.clean = code == 0
            return None
        return code

    async def _keep(self, child: Child) -> None:
        """Start the process, and again after each exit, until stopping (then stop it) or
        giving up."""
        while not self._stopping.is_set():
            code = await self._run_once(child)
            if code is None:
                return
            self._retire(child)
            decision = self.policy.exited(child.index, self.clock())
            if isinstance(decision, GiveUp):
                child.state = "failed"
                log.critical(
                    "process %d exited with code %d: %d exits in a row, each within %.0fs of"
                    " its start; giving up and stopping the other processes",
                    child.index,
                    code,
                    decision.exits,
                    decision.within,
                )
                self._gave_up = code if 0 < code < 126 else 1
                self._stopping.set()
                return
            child.restarts += 1
            child.state = f"restarting in {decision.delay:.0f}s"
            log.error(
                "process %d exited with code %d; restarting it in %.1fs (attempt %d)",
                child.index,
                code,
                decision.delay,
                decision.attempt,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), decision.delay)
        child.clean = False  # down (waiting to restart) when told to stop

    async def _stop(self, child: Child, exited: asyncio.Future[int]) -> None:
        """SIGTERM (the worker commits what it acknowledged), SIGKILL after
        ``shutdown_timeout``."""
        assert child.proc is not None  # noqa: S101 - running
        timeout = self.settings.shutdown_timeout
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(asyncio.shield(exited), timeout)
            child.clean = code == 0
        except TimeoutError:
            log.error("process %d did not stop within %.0fs: killing it", child.index, timeout)
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            code = await exited
            child.clean = False
        child.last_code = code
        child.state = "stopped"
        if code != 0:
            log.error("process %d stopped with code %d", child.index, code)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT or a give-up; returns the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        runner = await self._serve() if self.settings.web_port else None
        keepers = [asyncio.create_task(self._keep(child)) for child in self.children]
        stats = asyncio.create_task(self._write_stats_forever())
        log.info("supervising %d worker processes", len(self.children))
        try:
            await asyncio.gather(*keepers)
        finally:
            stats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stats
            for child in self.children:
                self._retire(child)
            self.write_stats()
            if runner is not None:
                await runner.cleanup()
        if self._gave_up is not None:
            return self._gave_up
        clean = all(child.clean for child in self.children)
        log.info("stopped: %s", "every process exited cleanly" if clean else "not cleanly")
        return 0 if clean else 1

    def _on_signal(self, signum: int) -> None:
        if not self._stopping.is_set():
            log.info("%s: stopping %d processes", signal.Signals(signum).name, len(self.children))
        self._stopping.set()

    # -- stats file ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        current = {
            c.index: _read_json(c.stats_file) for c in self.children if c.stats_file is not None
        }
        return combined_stats(self.retired, current)

    def write_stats(self) -> None:
        path = self.settings.stats_file
        if path is None:
            return
        body = orjson.dumps(self.stats(), option=orjson.OPT_INDENT_2)
        if body == self._stats_written:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        self._stats_written = body

    async def _write_stats_forever(self) -> None:
        while True:
            await asyncio.sleep(_STATS_EVERY)
            self.write_stats()

    # -- web: /health, /ready, /metrics --------------------------------------------------

    async def _serve(self) -> Any:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/health", self._health_page)
        app.router.add_get("/ready", self._ready_page)
        app.router.add_get("/metrics", self._metrics_page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.web_host, self.settings.web_port).start()
        return runner

    async def _get(self, session: Any, child: Child, path: str) -> tuple[int, bytes]:
        """A page of a running process: (status, body); (0, b"") when it does not answer."""
        import aiohttp

        if not child.running or not child.web_port:
            return 0, b""
        try:
            async with session.get(child.base + path) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0, b""

    async def _gather(self, path: str) -> list[tuple[Child, int, bytes]]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            answers = await asyncio.gather(*(self._get(session, c, path) for c in self.children))
        return [(c, status, body) for c, (status, body) in zip(self.children, answers, strict=True)]

    async def _health_page(self, request: Any) -> Any:
        from aiohttp import web

        states = {str(c.index): c.state for c in self.children}
        return web.json_response({"status": "ok", "processes": states})

    async def _ready_page(self, request: Any) -> Any:
        from aiohttp import web

        processes: dict[str, Any] = {}
        for child, status, body in await self._gather("/ready"):
            answer: dict[str, Any] = {"ready": False, "state": child.state}
            if status:
                with contextlib.suppress(orjson.JSONDecodeError):
                    answer.update(orjson.loads(body))
                answer["ready"] = status == 200 and answer.get("ready") is True
            processes[str(child.index)] = answer
        not_ready = [name for name, answer in processes.items() if not answer["ready"]]
        return web.json_response(
            {"ready": not not_ready, "not_ready": not_ready, "processes": processes},
            status=503 if not_ready else 200,
        )

    async def _metrics_page(self, request: Any) -> Any:
        from aiohttp import web

        texts = {
            str(child.index): body.decode("utf-8", "replace")
            for child, status, body in await self._gather("/metrics")
            if status == 200
        }
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(merge_metrics(texts)))
        registry.register(_Families([*self._own_metrics(), *_own_process_metrics()]))
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})

    def _own_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_process_up", "1 while the worker process runs", labels=["process"]
        )
        restarts = CounterMetricFamily(
            f"{PREFIX}_process_restarts",
            "Times the supervisor restarted the worker process",
            labels=["process"],
        )
        for child in self.children:
            up.add_metric([str(child.index)], 1 if child.running else 0)
            restarts.add_metric([str(child.index)], child.restarts)
        yield up
        yield restarts


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


def supervise(settings: Settings, count: int, config_file: Path | None = None) -> int:
    """``pseudostream worker`` with ``count`` > 1 processes: check the keyring (a bad one is
    refused here, once, exit 2), create the topics, then supervise until stopped."""
    from processor.kafka.keywatch import load_keyring
    from processor.kafka.topics import prepare_topics

    load_keyring(settings)
    if settings.create_topics:
        created = prepare_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return asyncio.run(Supervisor(settings, count, config_file=config_file).run())


__all__ = [
    "CHILD_ENV",
    "Backoff",
    "GiveUp",
    "Restart",
    "RestartPolicy",
    "Supervisor",
    "combined_stats",
    "log_fields",
    "merge_metrics",
    "supervise",
    "usable_cpus",
]
