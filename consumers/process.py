"""What the trainer and the projector each do when run as a process: serve their
Prometheus metrics and turn SIGTERM into a stop flag their loop polls."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from driftline.settings import Settings


def start(settings: Settings, metrics_port: int | None) -> tuple[int, Callable[[], bool]]:
    """Serve metrics on ``metrics_port`` (default ``settings.metrics_port``; 0 serves
    none) and catch SIGTERM; returns the port and a function that is True once SIGTERM
    came."""
    from prometheus_client import start_http_server

    port = settings.metrics_port if metrics_port is None else metrics_port
    if port:
        start_http_server(port)
    stop = False

    def _stop(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    return port, lambda: stop
