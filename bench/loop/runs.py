"""One benchmark task: a stream (river's, or a user's file), a seed and a label delay
through the loop and every baseline; or a stationary stream through the loop alone
(false triggers)."""

from __future__ import annotations

import dataclasses
import inspect
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.loop import baselines
from bench.loop.data import Source, config_for, load_rows
from bench.loop.loop import Loop, demo_config
from driftline.core.watch.retrain_policy import RetrainPolicy
from driftline.demo.run import SEGMENTS
from driftline.demo.synthetic import drift_points, drifting_stream

LAST_N: int = inspect.signature(RetrainPolicy).parameters["last_n"].default
"""The retrain policy's default training window (a models file without ``last_n``)."""
TOLERANCE = 1_000
"""An alarm within this many events after a drift (by the event time of the outcome that
raised it) is a hit."""


@dataclass(frozen=True)
class Task:
    kind: str
    seed: int
    delay: int
    events: int
    drift_every: int
    warmup: int = 2_000
    grid: tuple[int, ...] = ()
    tick_every: int = 1_000
    serve_lag: int = 0
    concepts: tuple[int, ...] | None = None
    """Concepts to cycle through (None: all of the stream kind's)."""
    retrain: tuple[tuple[str, Any], ...] = ()
    """Retrain settings overriding the demo's (or the user's model's)."""
    source: Source | None = None
    """A user's file (``kind`` is its name; ``events``, ``drift_every`` and ``concepts``
    do not apply: the file's rows, drift points unknown)."""

    @property
    def stationary(self) -> bool:
        return self.source is None and self.drift_every >= self.events


def detection(alarms: list[int], drifts: list[int], tolerance: int = TOLERANCE) -> dict[str, Any]:
    """Hits (a drift ``d`` with an alarm in ``[d, d + tolerance)``), the delay of the first
    such alarm, and false alarms: alarms in no such window (a second detector confirming a
    hit is no false alarm).

    >>> detection([150, 900, 1_010, 1_020, 2_050, 4_500], [1_000, 2_000, 3_000])
    {'hits': 2, 'delays': [10, 50], 'false_alarms': 3}
    """
    delays = []
    for d in drifts:
        first = next((a for a in sorted(alarms) if d <= a < d + tolerance), None)
        if first is not None:
            delays.append(first - d)
    false = [a for a in alarms if not any(d <= a < d + tolerance for d in drifts)]
    return {"hits": len(delays), "delays": delays, "false_alarms": len(false)}


def run_task(task: Task) -> dict[str, Any]:
    """Run one task; a JSON-compatible result."""
    # scipy's KS test warns when it falls back from its exact method: noise here
    warnings.filterwarnings("ignore", "ks_2samp", RuntimeWarning)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if task.source is None:
        config = demo_config(task.kind, **dict(task.retrain))
        stream = list(
            drifting_stream(task.kind, task.events, task.drift_every, task.seed, task.concepts)
        )
        warm, rows = stream[: task.warmup], stream[task.warmup :]
        segments: tuple[str, ...] = SEGMENTS[task.kind]
        drifts = list(drift_points(task.events, task.drift_every))
    else:
        stream = load_rows(task.source)
        warm, rows = stream[: task.warmup], stream[task.warmup :]
        config = config_for(task.source, warm)
        if task.retrain:
            config = dataclasses.replace(config, retrain={**config.retrain, **dict(task.retrain)})
        segments, drifts = task.source.segments, []
    loop = Loop(config, warm, delay=task.delay, tick_every=task.tick_every,
                serve_lag=task.serve_lag, segments=segments)  # fmt: skip
    res = loop.run(rows)
    out: dict[str, Any] = {
        "task": {**dataclasses.asdict(task), "events": len(stream)},
        "stationary": task.stationary,
        "drifts": drifts,
        "driftline": {
            "accuracy": res.accuracy,
            "retrains": res.retrains,
            "promotions": res.promotions,
            "reasons": dict(Counter(r for t in res.triggers for r in t["reasons"])),
            "trigger_at": res.trigger_at,
            "train_rows": res.train_rows,
            "stages": [s for _, _, s in res.stages],
            "old_rule": res.old_rule,
            "alarms": res.alarms,
            "feature_alarms": res.feature_alarms,
            **detection(res.alarms, drifts),
        },
    }
    out["seconds_loop"] = time.perf_counter() - t0
    if task.stationary:
        out["seconds"] = time.perf_counter() - t0
        out["cpu_seconds"] = time.process_time() - cpu0
        return out
    initial = loop.frozen.model
    out["frozen"] = _mean(baselines.frozen(initial, rows))
    window = int(config.retrain.get("last_n", LAST_N))  # the window the loop trains on
    periodic = baselines.Periodic(config, rows, delay=task.delay, window=window)
    same_every = periodic.every_for(res.retrains)
    correct, n = periodic.run(same_every, initial)
    out["periodic_same"] = {"every": same_every, "retrains": n, "accuracy": _mean(correct)}
    out["periodic_grid"] = {}
    for every in task.grid:
        correct, n = periodic.run(every, initial)
        out["periodic_grid"][str(every)] = {"retrains": n, "accuracy": _mean(correct)}
    t1 = time.perf_counter()
    tree_params = config.params if "tree" in config.factory else {}
    out["hat"] = _mean(baselines.hat(warm, rows, delay=task.delay, params=tree_params,
                                     seed=task.seed))  # fmt: skip
    out["seconds_hat"] = time.perf_counter() - t1
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - cpu0
    return out


def _mean(flags: list[bool]) -> float:
    return sum(flags) / max(1, len(flags))
