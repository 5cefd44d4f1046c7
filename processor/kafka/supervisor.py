"""``pseudostream worker --processes N``: one supervisor, N worker processes in one group.

One container per machine instead of one per core. The supervisor checks the keyring and
creates the topics once, then starts N ``python -m processor worker`` processes in the same
consumer group (``processes = 1`` in their environment: a worker process never supervises).
Each gets its own data directory, stats file and, with ``web_port`` set, a web server on a
private 127.0.0.1 port. The supervisor serves ``web_port`` itself (``/health``, ``/ready``:
200 only when every process is ready, ``/metrics``: each process's with a ``process``
label), writes ``stats_file`` as the sum of its processes' (earlier runs included),
restarts a process that exits after a backoff or gives up (:class:`RestartPolicy`), and on
SIGTERM/SIGINT stops every process, killing what is left after ``shutdown_timeout``.
What it decides without I/O is in :mod:`processor.ops.supervision`; docs/worker.md has the
operator's view. A worker process gets SIGTERM when the supervisor dies
(``PR_SET_PDEATHSIG`` on Linux), so a killed supervisor leaves no orphan in the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from processor.ops.metrics import CONTENT_TYPE
from processor.ops.settings import Settings
from processor.ops.supervision import (
    CHILD_ENV,
    Backoff,
    GiveUp,
    RestartPolicy,
    add_stats,
    combined_metrics,
    combined_readiness,
    combined_stats,
)

log = logging.getLogger("pseudostream.supervisor")

WORKER_COMMAND = ("-m", "processor", "worker")
_PR_SET_PDEATHSIG = 1
_SCRAPE_TIMEOUT = 2.0
_STATS_EVERY = 0.1  # a reader's count lags a worker's by this more


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
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.command = [sys.executable, *command]
        if config_file is not None:
            self.command += ["--config", str(config_file)]
        self.policy = RestartPolicy(backoff or Backoff())
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

        body, status = combined_readiness(
            (str(child.index), child.state, status, body)
            for child, status, body in await self._gather("/ready")
        )
        return web.json_response(body, status=status)

    async def _metrics_page(self, request: Any) -> Any:
        from aiohttp import web

        texts = {
            str(child.index): body.decode("utf-8", "replace")
            for child, status, body in await self._gather("/metrics")
            if status == 200
        }
        running = {str(c.index): (c.running, c.restarts) for c in self.children}
        return web.Response(
            body=combined_metrics(texts, running), headers={"Content-Type": CONTENT_TYPE}
        )


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


__all__ = ["Supervisor", "supervise"]
