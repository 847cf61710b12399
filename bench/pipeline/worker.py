"""A full ``driftline worker`` subprocess (scorer + registry follower + join + monitor),
watched from outside: output counted by topic high watermarks, CPU read from
``/proc/<pid>/stat`` (utime + stime of all its threads)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench.pipeline.loops import Run
from driftline.kafka.clients import confluent_common
from driftline.procs import env_for, free_port
from driftline.settings import Settings

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class WorkerProc:
    """``python -m driftline worker`` in ``workdir`` (its Faust data dir lands there)."""

    def __init__(
        self,
        settings: Settings,
        workdir: Path,
        name: str = "worker",
        src: Path | None = None,
        instance: int = 0,
        role: str = "all",
    ) -> None:
        """``instance``: a second worker of the same group (``name``) gets 1, and so on;
        each runs in its own directory. ``role``: ``driftline worker --role``."""
        self.settings = settings
        self.src = src
        """Run the driftline package found in ``src`` (e.g. an export of an older commit)."""
        tail = (f"-{instance}" if instance else "") + ("" if role == "all" else f"-{role}")
        self.dir = workdir / f"{settings.topic_prefix.rstrip('.')}-{name}{tail}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "worker.log"
        self.port = free_port()
        self.args = ["worker", "--name", name, "--web-port", str(self.port), "--loglevel", "info"]
        if role != "all":
            self.args += ["--role", role]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120) -> WorkerProc:
        return self.launch().wait_ready(timeout)

    def launch(self) -> WorkerProc:
        """Start the process; :meth:`wait_ready` waits for it to serve."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "driftline", *self.args],
                env=env_for(self.settings, **({"PYTHONPATH": str(self.src)} if self.src else {})),
                cwd=self.dir,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 120) -> WorkerProc:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "driftline worker ready" in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"worker not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    def scrape(self) -> str:
        """The worker's /metrics page."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, labels: str = "", page: str | None = None) -> float:
        """A sample of the worker's /metrics, or of ``page`` scraped already (0 when
        absent)."""
        text = self.scrape() if page is None else page
        pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+]+)"
        m = re.search(pattern, text)
        return float(m.group(1)) if m else 0.0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Watermarks:
    """Sum of the high watermarks of a topic's partitions (records written so far)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        conf = confluent_common(settings, "bench-watch")
        conf.update({"group.id": "bench-watch-unused", "enable.auto.commit": False})
        self.consumer = Consumer(conf)
        md = self.consumer.list_topics(topic, timeout=30)
        self.tps = [TopicPartition(topic, p) for p in md.topics[topic].partitions]

    def total(self) -> int:
        return sum(self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self.tps)

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Drain(Run):
    """Output counted from the first record out to the target count."""

    startup_s: float
    """From starting the process to its first output record."""


def drain(
    watch: Watermarks, target: int, cpu: Callable[[], float], t_start: float,
    timeout: float = 600, every_s: float = 0.05, settled: Callable[[], bool] | None = None,
) -> Drain:  # fmt: skip
    """Wait until ``watch`` reaches ``target`` and then until ``settled()`` (the join has
    read every prediction: the whole path, not the scorer alone); time and CPU from the
    first output."""
    first: tuple[float, int, float] | None = None
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        if first is None or n < target:
            n = watch.total()
        now = time.perf_counter()
        if first is None and n > 0:
            first = (now, n, cpu())
        if n >= target and first is not None and (settled is None or settled()):
            c = cpu()
            return Drain(target - first[1], now - first[0], c - first[2], first[0] - t_start)
        time.sleep(every_s)
    raise TimeoutError(f"{watch.tps[0].topic}: {n} of {target} records after {timeout} s")


def joined_all(procs: list[WorkerProc], target: int) -> Callable[[], bool]:
    """Whether the join of ``procs`` (whichever runs it) has read ``target`` records."""

    def check() -> bool:
        stage = 'stage="join"'
        try:
            return sum(p.metric("driftline_events_in_total", stage) for p in procs) >= target
        except OSError:  # a web server not listening yet: the loops start before it
            return False

    return check
