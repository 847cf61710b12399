"""Driftline processes (worker, trainer, ...) run as children: used by the demo and
by the integration tests, so both start them the same way."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from driftline.settings import Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        key = f"DRIFTLINE_{name.upper()}"
        if value is None:
            env.pop(key, None)
            continue
        secret = getattr(settings, name)
        env[key] = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(value)
    env["PYTHONUNBUFFERED"] = "1"  # a killed child's last log lines must reach its log
    env.update(extra)
    return env


class Process:
    """``driftline ARGS`` in a child process; output goes to ``log``; ``start`` returns
    once the log shows ``ready``."""

    def __init__(self, settings: Settings, args: list[str], log: Path, ready: str) -> None:
        self.settings = settings
        self.args = args
        self.log = log
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> Process:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "driftline", *self.args],
                env=env_for(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"driftline {self.args[0]} exited: {self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"driftline {self.args[0]} not ready in {timeout} s: {self.tail()}")

    def tail(self, chars: int = 6000) -> str:
        """The end of the log, without librdkafka's own lines."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        lines = [line for line in text.splitlines() if not line.startswith("%")]
        return "\n".join(lines)[-chars:] or "(empty)"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait; SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)


def worker(
    settings: Settings, logdir: Path, name: str = "worker", role: str = "all", processes: int = 1
) -> Process:
    """A ``driftline worker`` of ``role`` with its own web port (``processes`` > 1: that
    many children, on that port and the next ones)."""
    args = ["worker", "--name", name, "--web-port", str(free_port()), "--loglevel", "info"]
    if role != "all":
        args += ["--role", role]
    if processes > 1:
        args += ["--processes", str(processes)]
    tail = "" if role == "all" else f"-{role}"
    return Process(settings, args, logdir / f"{name}{tail}.log", "driftline worker ready")
