"""The join, measured through a ``driftline worker``: label-to-outcome throughput, label
-> outcome latency at a fixed label rate, and bytes per pending prediction."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.pipeline import env
from bench.pipeline.driver import Latency, Paced
from bench.pipeline.loops import scoring_for
from bench.pipeline.worker import Drain, Watermarks, WorkerProc, drain
from driftline.core.join import JoinEntry, JoinState
from driftline.core.models import ServedModel


def predictions(champion: ServedModel, events: list[dict[str, Any]]) -> env.Encoded:
    """The Prediction bytes the scorer makes for ``events`` (scored here, offline)."""
    scoring = scoring_for(champion)
    now = int(time.time() * 1000)
    out = []
    for key, value in env.encode_all("io.driftline.FeatureEvent", map(env.feature_event, events)):
        out.append((key, scoring.score(value, key, now).prediction))
    return out


def labels(events: list[dict[str, Any]]) -> env.Encoded:
    return env.encode_all("io.driftline.Label", (env.label_record(e) for e in events))


@dataclass
class EntrySize:
    """Bytes of a pending prediction's join entry (JoinEntry.to_bytes), and its parts."""

    entry: float
    header: int
    prediction: float
    key: float


def entry_size(preds: env.Encoded) -> EntrySize:
    sizes = [
        len(JoinEntry(JoinState.WAITING_FOR_LABEL, 0, 0, 1, value).to_bytes()) for _, value in preds
    ]
    return EntrySize(
        statistics.fmean(sizes),
        JoinEntry.HEADER_BYTES,
        statistics.fmean(len(v) for _, v in preds),
        statistics.fmean(len(k) for k, _ in preds),
    )


@dataclass
class JoinResult:
    throughput: Drain
    latency: dict[str, Latency]
    size: EntrySize


def run(
    bootstrap: str, workdir: Path, n: int, rate: float, seconds: float, half_rate: bool,
    warmup: int = 200,
) -> JoinResult:  # fmt: skip
    """Pre-fill ``n`` predictions and their labels, time a worker to ``n`` outcomes; then
    hold ``rate * seconds`` more predictions and send their labels at ``rate``/s (and,
    with ``half_rate``, again at half the measured outcome rate)."""
    d = env.deploy(bootstrap, "join", workdir, "logistic_regression", 3_000)
    s = d.settings
    events = env.examples(n, seed=21)
    preds = predictions(d.champion, events)
    env.produce_all(s, s.topic("predictions"), preds)
    env.produce_all(s, s.topic("labels"), labels(events))
    watch = Watermarks(s, s.topic("outcomes"))
    proc = WorkerProc(s, workdir, "join")
    t0 = time.perf_counter()
    proc.start()
    latency: dict[str, Latency] = {}
    try:
        thr = drain(watch, n, proc.cpu_s, t0)
        read = 2 * n
        rates = [] if seconds <= 0 else [rate] + ([thr.rate / 2] if half_rate else [])
        for i, r in enumerate(rates):
            held = env.examples(warmup + int(r * seconds), seed=22 + i)
            env.produce_all(s, s.topic("predictions"), predictions(d.champion, held))
            read += len(held)
            _wait_joined(proc, read)
            paced = Paced(s, s.topic("labels"), s.topic("outcomes"), labels(held), warmup, r,
                          drain_s=300)  # fmt: skip
            latency[f"{r:.0f}"] = paced.result()
            read += len(held)
    finally:
        proc.stop()
        watch.close()
    return JoinResult(thr, latency, entry_size(preds))


def _wait_joined(proc: WorkerProc, count: int, timeout: float = 300) -> None:
    """Until the join agent has read ``count`` records (its events_in counter)."""
    deadline = time.monotonic() + timeout
    seen = 0.0
    while time.monotonic() < deadline:
        seen = proc.metric("driftline_events_in_total", 'stage="join"')
        if seen >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"join read {seen:.0f} of {count} records in {timeout} s")
