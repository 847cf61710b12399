"""Worker processes under a supervisor: each has a stable DRIFTLINE_INSTANCE_ID, its own
data dir, web port and log; one that exits unasked is restarted, and that is recorded.
Beside them, the trainer (``driftline trainer``, its live loop on: an online challenger
learning every outcome, checkpointed to the registry), supervised the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from driftline.procs import env_for, free_port
from driftline.settings import Settings

LAYOUTS = ("all", "split")
"""all: every worker runs every role; split: even workers --role score, odd --role join."""


class Worker:
    ready_line = "driftline worker ready"
    """What the log shows, after the current start's banner, once the process is ready."""

    def __init__(self, settings: Settings, run_dir: Path, index: int, role: str = "all") -> None:
        self.id = f"w{index}"
        self.role = role
        self.log = run_dir / f"{self.id}.log"
        s = settings.model_copy(update={"data_dir": run_dir / f"{self.id}-data"})
        self.env = env_for(s, DRIFTLINE_INSTANCE_ID=self.id)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.web_port = 0  # of the current process: its /metrics (bench/faults/retries.py)
        self.stopped = False  # SIGSTOPped

    def args(self) -> list[str]:
        """``driftline ARGS`` for a start: a worker on a fresh web port."""
        self.web_port = free_port()
        port = str(self.web_port)
        args = ["worker", "--name", "faults", "--web-port", port, "--loglevel", "info"]
        if self.role != "all":
            args += ["--role", self.role]
        return args

    def start(self) -> None:
        args = self.args()
        with self.log.open("ab") as out:
            out.write(f"\n===== {time.strftime('%T')} start {self.starts + 1} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "driftline", *args], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)  # fmt: skip
        self.starts += 1

    def ready(self) -> bool:
        marker = f"start {self.starts} ====="
        text = self.log.read_text(errors="replace")
        return self.ready_line in text[text.rfind(marker) :]

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        if sig == signal.SIGKILL and self.proc is not None:
            self.proc.wait()
        self.stopped = sig == signal.SIGSTOP

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class TrainerProc(Worker):
    """``driftline trainer`` with its live loop (DRIFTLINE_LIVE on), its artifacts in the
    run's directory; ready once its live loop has started."""

    ready_line = "live loop on"

    def __init__(self, settings: Settings, run_dir: Path) -> None:
        super().__init__(settings, run_dir, 0)
        self.id, self.role = "trainer", "trainer"
        self.log = run_dir / "trainer.log"
        s = settings.model_copy(update={"artifact_dir": run_dir / "artifacts", "live": True})
        self.env = env_for(s, DRIFTLINE_METRICS_PORT="0")

    def args(self) -> list[str]:
        return ["trainer"]


class Supervisor:
    """Start ``n`` workers; restart any that exits, calling ``on_exit(worker, code)``."""

    def __init__(self, settings: Settings, run_dir: Path, n: int,
                 on_exit: Callable[[Worker, int], None], layout: str = "all") -> None:  # fmt: skip
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        if layout == "split" and n < 2:
            raise ValueError("the split layout needs at least 2 workers (score and join)")
        roles = ["all"] * n if layout == "all" else [("score", "join")[i % 2] for i in range(n)]
        self.workers = [Worker(settings, run_dir, i, roles[i]) for i in range(n)]
        self.trainer = TrainerProc(settings, run_dir)
        self.on_exit = on_exit
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    @property
    def procs(self) -> list[Worker]:
        """The workers, then the trainer."""
        return [*self.workers, self.trainer]

    def start(self, timeout: float = 120) -> None:
        for w in self.procs:
            w.start()
        deadline = time.monotonic() + timeout
        while not all(w.ready() for w in self.procs):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"workers or trainer not ready in {timeout} s (logs: {self.workers[0].log}, "
                    f"{self.trainer.log})"
                )
            time.sleep(0.2)
        self.thread.start()

    def kill_and_restart(self, w: Worker) -> None:
        with self.lock:
            w.signal(signal.SIGKILL)
            w.start()

    def kill_all_and_restart(self) -> None:
        with self.lock:
            for w in self.workers:
                w.signal(signal.SIGKILL)
            for w in self.workers:
                w.start()

    def _watch(self) -> None:
        while not self.done.wait(0.5):
            with self.lock:
                for w in self.procs:
                    code = None if w.proc is None else w.proc.poll()
                    if code is not None:
                        self.on_exit(w, code)
                        w.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)
        for w in self.procs:
            w.stop()
