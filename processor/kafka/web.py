"""The worker's ``/metrics``, ``/health`` and ``/ready`` pages on faust's web server (the
metrics themselves are :mod:`processor.ops.metrics`, which imports no faust)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from processor.ops.metrics import CONTENT_TYPE, WorkerMetrics


def install_pages(
    app: Any, metrics: WorkerMetrics, readiness: Callable[[], Mapping[str, bool]]
) -> None:
    """``/metrics`` (Prometheus text), ``/health`` (the process and its event loop answer)
    and ``/ready`` (200 only when every readiness check passes, else 503) on faust's web
    server."""
    from faust import web

    async def metrics_page(self: web.View, request: web.Request) -> web.Response:
        return self.bytes(metrics.exposition(), content_type=CONTENT_TYPE)

    async def health_page(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "ok"})

    async def ready_page(self: web.View, request: web.Request) -> web.Response:
        checks = dict(readiness())
        ready = all(checks.values())
        return self.json({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app.page("/metrics", name="pseudostream-metrics")(metrics_page)
    app.page("/health", name="pseudostream-health")(health_page)
    app.page("/ready", name="pseudostream-ready")(ready_page)


__all__ = ["install_pages"]
