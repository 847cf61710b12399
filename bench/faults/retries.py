"""``driftline_transactions_retried_total`` of every worker process, read from its
``/metrics`` once a second: the batches a scorer or join loop read again after an
aborted transaction (``aborted``), a fenced or replaced producer (``fenced``) or a hung
``send_offsets_to_transaction`` (``stuck``), with the time each increase was seen, so
the report can count them per fault. A process's counters start at zero; increases it
made in the second before it was SIGKILLed are not seen."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections import Counter

from bench.faults.workers import Supervisor

METRIC = "driftline_transactions_retried_total"
_LINE = re.compile(METRIC + r"\{([^}]*)\}\s+([0-9.eE+-]+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse(text: str) -> dict[tuple[str, str], float]:
    """(loop, why) -> value of every sample of the metric in a Prometheus text page.

    >>> parse('driftline_transactions_retried_total{loop="scorer",why="aborted"} 3.0\\n')
    {('scorer', 'aborted'): 3.0}
    """
    out = {}
    for labels, value in _LINE.findall(text):
        tags = dict(_LABEL.findall(labels))
        out[(tags.get("loop", ""), tags.get("why", ""))] = float(value)
    return out


class Retries:
    def __init__(self, sup: Supervisor, every_s: float = 1.0) -> None:
        self.sup = sup
        self.every_s = every_s
        self.last: dict[tuple[str, int, str, str], float] = {}
        self.seen: list[tuple[float, str, int]] = []  # (monotonic, why, increase)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)
        self._scrape()  # the last increases of the processes still running

    def _run(self) -> None:
        while not self.done.wait(self.every_s):
            self._scrape()

    def _scrape(self) -> None:
        for w in self.sup.workers:
            if w.stopped or not w.web_port:
                continue
            incarnation, port = w.starts, w.web_port
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.5) as r:
                    values = parse(r.read().decode())
            except OSError:
                continue
            now = time.monotonic()
            for (loop, why), v in values.items():
                key = (w.id, incarnation, loop, why)
                if v > self.last.get(key, 0.0):
                    self.seen.append((now, why, int(v - self.last.get(key, 0.0))))
                    self.last[key] = v

    def between(self, t0: float, t1: float) -> Counter[str]:
        """Increases seen in [t0, t1), by why."""
        out: Counter[str] = Counter()
        for t, why, n in self.seen:
            if t0 <= t < t1:
                out[why] += n
        return out
