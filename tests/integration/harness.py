"""Helpers for tests that run Driftline processes against the real broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from driftline.core.codec import default_codec
from driftline.core.headers import build as build_headers
from driftline.core.headers import for_confluent
from driftline.kafka.clients import consumer_config, producer_config
from driftline.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DRIFTLINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_DATA_PARTITIONS": str(settings.data_partitions),
            "DRIFTLINE_SIGNING_KEY": settings.signing_key.get_secret_value(),
            "DRIFTLINE_MONITOR_INTERVAL_S": str(settings.monitor_interval_s),
        }
    )
    if settings.models_file is not None:
        env["DRIFTLINE_MODELS_FILE"] = str(settings.models_file)
    env.update(extra)
    return env


class Process:
    """A ``driftline`` subcommand in a child process, its output kept in a file."""

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
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited: {self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.args[0]} not ready in {timeout} s: {self.tail()}")

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if not line.startswith("%"))[-6000:] or "(empty)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def worker(settings: Settings, tmp: Path, name: str = "worker") -> Process:
    port = str(free_port())
    return Process(
        settings, ["worker", "--name", name, "--web-port", port, "--loglevel", "info"],
        tmp / f"{name}.log", "driftline worker ready",
    )  # fmt: skip


def produce(
    settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Produce raw (key, value) pairs; returns how many, all delivered."""
    p = Producer(producer_config(settings, "test"))
    n = 0
    for key, value in records:
        p.produce(settings.topic(topic), value, key)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    return n


def encoded(record_name: str, records: Iterable[dict[str, Any]], key_field: str = "event_id"):
    codec = default_codec()
    for r in records:
        yield str(r[key_field]).encode(), codec.encode(record_name, r)


def publish(settings: Settings, topic: str, name: str, records: list[dict[str, Any]],
            key: Callable[[dict[str, Any]], str]) -> None:  # fmt: skip
    codec = default_codec()
    p = Producer(producer_config(settings, "test"))
    for r in records:
        p.produce(settings.topic(topic), codec.encode(name, r), key(r).encode(),
                  headers=for_confluent(build_headers(name, None, None)))  # fmt: skip
    assert p.flush(30) == 0


def collect(
    settings: Settings, topic: str, until: Callable[[list[Any]], bool], timeout: float = 60,
    decode: bool = True,
) -> list[Any]:  # fmt: skip
    """Read ``topic`` from the beginning until ``until(records)`` or ``timeout``."""
    codec = default_codec()
    c = Consumer(consumer_config(settings, "test", f"collect-{uuid.uuid4().hex[:8]}",
                                 **{"enable.auto.commit": False}))  # fmt: skip
    c.subscribe([settings.topic(topic)])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(got):
            for msg in c.consume(1000, 0.5):
                if msg.error() is None:
                    got.append(codec.decode(msg.value()).value if decode else msg)
    finally:
        c.close()
    return got


class Background:
    """Run a callable on a thread until stopped (for in-process consumers)."""

    def __init__(self, target: Callable[[threading.Event], None]) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=target, args=(self.stop,), daemon=True)

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
