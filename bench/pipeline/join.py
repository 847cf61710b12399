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
from driftline.core.codec import default_codec
from driftline.core.deadletter import Origin
from driftline.core.join import JoinEntry
from driftline.core.joiner import Joiner
from driftline.core.leanentry import is_names_key
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
    """Bytes of a pending prediction's join entry as the join stores it, and its parts."""

    entry: float
    """The entry (lean form), as the Joiner makes it with a store to keep names in."""
    names: int
    """Bytes (keys and values) of the names records those entries share, per partition."""
    header: int
    prediction: float
    """The Prediction's own bytes, which the entry held whole before the lean form."""
    key: float


def entry_size(preds: env.Encoded) -> EntrySize:
    """What the join stores for ``preds``: the Joiner's steps into one in-memory store
    (one partition), with the store lookup the join loop gives it."""
    joiner = Joiner(default_codec(), lambda m: "classification", lambda m: 600_000, "p")
    store: dict[bytes, bytes] = {}
    sizes = []
    for key, value in preds:
        step = joiner.on_message(Origin("p", 0, 0, key, None, []), value, None, 0, store.get)
        store.update(step.extra)
        assert step.entry is not None and JoinEntry.from_bytes(step.entry).lean
        sizes.append(len(step.entry))
    return EntrySize(
        statistics.fmean(sizes),
        sum(len(k) + len(v) for k, v in store.items() if is_names_key(k)),
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
    warmup: int = 200, src: Path | None = None, name: str = "join",
) -> JoinResult:  # fmt: skip
    """Pre-fill ``n`` predictions and their labels, time a worker to ``n`` outcomes; then
    hold ``rate * seconds`` more predictions and send their labels at ``rate``/s (and,
    with ``half_rate``, again at half the measured outcome rate). ``src``: run the worker
    from that tree (an older commit's, for a before/after in one run)."""
    d = env.deploy(bootstrap, name, workdir, "logistic_regression", 3_000)
    s = d.settings
    events = env.examples(n, seed=21)
    preds = predictions(d.champion, events)
    env.produce_all(s, s.topic("predictions"), preds)
    env.produce_all(s, s.topic("labels"), labels(events))
    watch = Watermarks(s, s.topic("outcomes"))
    proc = WorkerProc(s, workdir, name, src)
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
    size = entry_size(preds)
    if src is not None:  # an older worker holds predictions whole
        size = EntrySize(size.header + size.prediction, 0, size.header, size.prediction, size.key)
    return JoinResult(thr, latency, size)


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
