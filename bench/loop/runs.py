"""One in-process benchmark task: a stream (river's, or a user's file), a seed and a label
delay through the loop and every baseline (frozen, periodic at each N of the grid, HAT,
ARF, the oracle); a stationary stream through the loop, frozen and HAT only (false
triggers; periodic and ARF over 200,000 events would cost minutes and have no drift to
answer)."""

from __future__ import annotations

import dataclasses
import inspect
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.loop import baselines
from bench.loop.data import Source, config_for, load_rows
from bench.loop.lineage import first_served, onset_delays, stage_counts
from bench.loop.loop import Loop, demo_config
from driftline.core.lifecycle.registry import Registry
from driftline.core.watch.retrain_policy import RetrainPolicy
from driftline.demo.synthetic import change_points, drifting_stream, kind, transition

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

    arf: bool = True
    """Run the ARF baseline (1.2-1.5 ms per learnt event)."""
    live: bool = True
    """Run the trainer's live loop in the loop (online challenger, live promotion)."""

    @property
    def stationary(self) -> bool:
        if self.source is not None:
            return False
        drift = kind(self.kind).drift
        return drift == "none" or (drift != "incremental" and self.drift_every >= self.events)

    @property
    def change_points(self) -> list[int]:
        if self.source is not None:
            return []  # a user's file: its drift points are not known
        return change_points(self.kind, self.events, self.drift_every)


def detection(
    alarms: list[int], drifts: list[int], tolerance: int = TOLERANCE, width: int = 0
) -> dict[str, Any]:
    """Hits (a drift ``d`` with an alarm in ``[d - width, d + width + tolerance)``: a
    gradual change of sigmoid ``width`` is under way from ``d - width``, 2% of the new
    concept, to ``d + width``, 98%), the delay of the first such alarm from ``d``
    (negative: before the centre), and false alarms: alarms in no such window (a second
    detector confirming a hit is no false alarm).

    >>> detection([150, 900, 1_010, 1_020, 2_050, 4_500], [1_000, 2_000, 3_000])
    {'hits': 2, 'delays': [10, 50], 'false_alarms': 3}
    >>> detection([150, 900, 1_010, 1_020, 2_050, 4_500], [1_000, 2_000, 3_000], width=200)
    {'hits': 2, 'delays': [-100, 50], 'false_alarms': 2}
    """

    def near(a: int, d: int) -> bool:
        return d - width <= a < d + width + tolerance

    delays = []
    for d in drifts:
        first = next((a for a in sorted(alarms) if near(a, d)), None)
        if first is not None:
            delays.append(first - d)
    false = [a for a in alarms if not any(near(a, d) for d in drifts)]
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
    else:
        stream = load_rows(task.source)
        warm, rows = stream[: task.warmup], stream[task.warmup :]
        config = config_for(task.source, warm)
        if task.retrain:
            config = dataclasses.replace(config, retrain={**config.retrain, **dict(task.retrain)})
    loop = Loop(config, warm, delay=task.delay, tick_every=task.tick_every,
                serve_lag=task.serve_lag, live=task.live)  # fmt: skip
    applied = _recording(loop.registry)
    res = loop.run(rows)
    drifts = task.change_points
    width = 0 if task.source else transition(task.kind, task.drift_every)
    out: dict[str, Any] = {
        "task": {**dataclasses.asdict(task), "events": len(stream)},
        "stationary": task.stationary,
        "drifts": drifts,
        "driftline": {
            "accuracy": res.accuracy,
            "retrains": res.retrains,
            **stage_counts(applied),
            "reasons": dict(Counter(r for t in res.triggers for r in t["reasons"])),
            "trigger_at": res.trigger_at,
            "train_rows": res.train_rows,
            "stages": [s for _, _, s in res.stages],
            "old_rule": res.old_rule,
            "live": [list(x) for x in res.live],
            "alarms": res.alarms,
            "feature_alarms": res.feature_alarms,
            "incidents": res.incident_counts(),
            **detection(res.alarms, drifts, width=width),
            # an alarm fires when its outcome arrives: ``delay`` events after its event
            "onset_delays": onset_delays(
                drifts,
                [a + task.delay for a in res.alarms],
                first_served(res.served).values(),
                width,
            ),
        },
    }
    out["seconds_loop"] = time.perf_counter() - t0
    initial = loop.frozen.model
    out["frozen"] = _mean(baselines.frozen(initial, rows))
    tree_params = config.params if "tree" in config.factory else {}
    hat = baselines.hat(warm, rows, delay=task.delay, params=tree_params, seed=task.seed)
    out["hat"] = _mean(hat.correct)
    out["hat_cost"] = _cost(hat)
    if task.stationary:
        return _done(out, t0, cpu0)
    periodic = baselines.Periodic(config, rows, delay=task.delay,
                                  window=int(config.retrain.get("last_n", LAST_N)))  # fmt: skip
    same_every = periodic.every_for(res.retrains)
    correct, n = periodic.run(same_every, initial)
    out["periodic_same"] = {"every": same_every, "retrains": n, "accuracy": _mean(correct)}
    out["periodic_grid"] = {}
    for every in task.grid:
        correct, n = periodic.run(every, initial)
        out["periodic_grid"][str(every)] = {"retrains": n, "accuracy": _mean(correct)}
    if drifts:
        correct, n = baselines.oracle(config, initial, rows, drifts, delay=task.delay)
        out["oracle"] = {"accuracy": _mean(correct), "retrains": n}
    if task.arf:
        arf = baselines.arf(warm, rows, delay=task.delay, seed=task.seed)
        out["arf"] = _mean(arf.correct)
        out["arf_cost"] = _cost(arf)
    return _done(out, t0, cpu0)


def _recording(registry: Registry) -> list[dict[str, Any]]:
    """The current champions, then every record applied to ``registry`` from now on, in
    order (whatever part of the loop applies it), for :func:`bench.loop.lineage.stage_counts`."""
    applied = [c for m in registry.models() if (c := registry.champion(m)) is not None]
    apply = registry.apply

    def recorded(record: Mapping[str, Any]) -> Any:
        applied.append(dict(record))
        return apply(record)

    setattr(registry, "apply", recorded)  # noqa: B010 (an instance attribute over the method)
    return applied


def _cost(o: baselines.Online) -> dict[str, float]:
    return {"us_per_learn": o.us_per_learn, "cpu_us_per_learn": o.cpu_us_per_learn,
            "learn_seconds": o.learn_seconds, "learns": o.learns}  # fmt: skip


def _done(out: dict[str, Any], t0: float, cpu0: float) -> dict[str, Any]:
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - cpu0
    return out


def _mean(flags: list[bool]) -> float:
    return sum(flags) / max(1, len(flags))
