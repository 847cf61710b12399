"""Baselines on the same stream and label delay as the loop: the frozen initial model,
periodic retraining every N events on the last W labelled events, river's
HoeffdingAdaptiveTree and Adaptive Random Forest learning online (test-then-train with
the same label delay), and an oracle that retrains at each true change point.

Periodic retraining trains a fresh estimator of the same factory, parameters and seed as
Driftline's model on all W rows (no hold-out, no gate: the plain baseline), in one pass:
learning its window ``epochs`` times as Driftline's trainer does made it worse (Agrawal,
seed 1, delay 500, N = 1,000: 0.792 against 0.879 in one pass, of which ~7,500 rows were
of the old concept after a drift), so the baseline keeps the pass in its favour. Retrains
happen at ``warmup + k * N``; the model trained there serves from that event on, on the
labels that had arrived by then (events before ``t - delay``), outcomes only (the warm-up
rows trained the initial model, as in the loop). Models and their predictions are cached
by retrain time, so a grid of nested N (1,000, 2,000, 4,000, ...) trains each model once.

The oracle (:func:`oracle`) knows where the concept changes: from each true change point
``c`` it trains a fresh model of the loop's factory, parameters and seed on the first
``m`` post-change events, as Driftline's trainer learns (``training.fit``, the model's
``epochs`` passes), for ``m`` = the loop's ``min_rows`` growing by its ``growth`` up to
``max_rows`` (500, 1,000, ..., 8,000 in the demo's policy), each serving from the event
at which the last of its labels has arrived (``c + m + delay``) until the next. That is
the loop's own schedule with a detector that fires on the change point itself, a gate
that never errs and no serving lag: the best a detector-driven loop of this model could
do. Before the first change point the initial model serves. It needs change points, so
it has no figure on the incremental and stationary streams.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from river import forest, tree

from driftline.core.lifecycle.training import fit
from driftline.core.model.config import ModelConfig
from driftline.core.model.estimators import build, estimator_params, training_epochs
from driftline.core.watch.retrain_policy import RetrainPolicy
from driftline.demo.synthetic import Row


def _correct(model: Any, rows: list[Row]) -> list[bool]:
    out = []
    for r in rows:
        proba = model.predict_proba_one(r.features)
        out.append(bool(proba) and max(proba, key=proba.__getitem__) == r.label)
    return out


def frozen(served_model: Any, rows: list[Row]) -> list[bool]:
    """Per replayed event: is the initial champion right."""
    return _correct(served_model, rows)


class Periodic:
    """Periodic retraining over ``rows`` (the replayed events, indexes from ``warmup``)."""

    def __init__(self, config: ModelConfig, rows: list[Row], *, delay: int, window: int) -> None:
        self.config = config
        self.rows = rows
        self.first = rows[0].index if rows else 0
        self.delay = delay
        self.window = window
        self._models: dict[int, Any] = {}
        self._correct: dict[int, list[bool]] = {}

    def _model(self, t: int, initial: Any) -> Any:
        """The model that serves from event ``t`` (retrained there; ``initial`` at the start)."""
        if t == self.first:
            return initial
        if t not in self._models:
            end = t - self.delay - self.first  # labels of events before t - delay arrived
            start = max(0, end - self.window)
            est = build(self.config.factory, self.config.params, self.config.seed)
            for r in self.rows[start : max(start, end)]:
                est.learn_one(r.features, r.label)
            self._models[t] = est
        return self._models[t]

    def _served(self, t: int, until: int, initial: Any) -> list[bool]:
        """Correctness of the model retrained at ``t`` on events ``[t, until)``."""
        have = self._correct.setdefault(t, [])
        need = until - t
        if len(have) < need:
            lo, hi = t + len(have) - self.first, until - self.first
            have += _correct(self._model(t, initial), self.rows[lo:hi])
        return have[:need]

    def run(self, every: int, initial: Any) -> tuple[list[bool], int]:
        """(per-event correctness, number of retrains) of retraining every ``every`` events."""
        end = self.first + len(self.rows)
        starts = list(range(self.first, end, every))
        out: list[bool] = []
        for k, t in enumerate(starts):
            out += self._served(t, starts[k + 1] if k + 1 < len(starts) else end, initial)
        return out, len(starts) - 1

    def every_for(self, retrains: int) -> int:
        """The period that gives ``retrains`` retrains over the replayed events."""
        return max(1, math.ceil(len(self.rows) / (retrains + 1)))


@dataclass
class Online:
    """What an online learner did: per-event correctness, and the cost of its learning."""

    correct: list[bool]
    learns: int
    learn_seconds: float
    """Wall time in ``learn_one``."""
    learn_cpu_seconds: float = 0.0
    """CPU time of this process in ``learn_one`` (what a loaded machine does not inflate)."""

    @property
    def us_per_learn(self) -> float:
        return 1e6 * self.learn_seconds / max(1, self.learns)

    @property
    def cpu_us_per_learn(self) -> float:
        return 1e6 * self.learn_cpu_seconds / max(1, self.learns)


def online(model: Any, warm: list[Row], rows: list[Row], *, delay: int) -> Online:
    """Test-then-train: ``model`` learns the warm-up rows, then predicts each event and
    learns it ``delay`` events later. Times its ``learn_one`` calls on the replayed rows
    (wall and CPU)."""
    for r in warm:
        model.learn_one(r.features, r.label)
    out, spent, cpu, learns = [], 0.0, 0.0, 0
    clock, cpu_clock = time.perf_counter, time.process_time
    for k, r in enumerate(rows):
        proba = model.predict_proba_one(r.features)
        out.append(bool(proba) and max(proba, key=proba.__getitem__) == r.label)
        if k >= delay:
            old = rows[k - delay]
            t, c = clock(), cpu_clock()
            model.learn_one(old.features, old.label)
            spent += clock() - t
            cpu += cpu_clock() - c
            learns += 1
    return Online(out, learns, spent, cpu)


def hat(
    warm: list[Row], rows: list[Row], *, delay: int, params: Mapping[str, Any], seed: int
) -> Online:
    """HoeffdingAdaptiveTree (with the served tree's parameters), online."""
    model = tree.HoeffdingAdaptiveTreeClassifier(seed=seed, **estimator_params(params))
    return online(model, warm, rows, delay=delay)


def arf(warm: list[Row], rows: list[Row], *, delay: int, seed: int) -> Online:
    """river's Adaptive Random Forest (``ARFClassifier``, its defaults: 10 trees, ADWIN
    drift and warning detectors per tree, grace period 50, delta 0.01), online."""
    return online(forest.ARFClassifier(seed=seed), warm, rows, delay=delay)


def oracle_sizes(config: ModelConfig) -> list[int]:
    """Post-change rows of each oracle retrain after a change point: the loop's policy's
    ``min_rows`` grown by ``growth`` up to ``max_rows`` (else ``last_n``).

    >>> from driftline.core.model.config import ModelConfig
    >>> oracle_sizes(ModelConfig("m", retrain={"min_rows": 500, "max_rows": 8_000}))
    [500, 1000, 2000, 4000, 8000]
    """
    policy = RetrainPolicy(config.name, **config.retrain).config
    cap = policy["max_rows"] or policy["last_n"]
    sizes, m = [], float(policy["min_rows"])
    while round(m) <= cap:
        sizes.append(round(m))
        if policy["growth"] is None:
            break
        m *= policy["growth"]
    return sizes


def oracle(
    config: ModelConfig, initial: Any, rows: list[Row], points: Sequence[int], *, delay: int
) -> tuple[list[bool], int]:
    """(per-event correctness, number of retrains) of the oracle (module docstring) over
    ``rows`` (the replayed events), the concept changing at event indexes ``points``."""
    first = rows[0].index if rows else 0
    end = first + len(rows)
    points = [c for c in points if first <= c < end]
    serve: list[tuple[int, Any]] = [(first, initial)]  # (served from, model)
    epochs = training_epochs(config.params)
    for j, c in enumerate(points):
        nxt = points[j + 1] if j + 1 < len(points) else end
        for m in oracle_sizes(config):
            at = c + m + delay
            if c + m > nxt or at >= nxt:  # its data or its serving would cross a change
                break
            est = build(config.factory, config.params, config.seed)
            data = [
                {"features": r.features, "label": r.label} for r in rows[c - first : c + m - first]
            ]
            serve.append((at, fit(est, data, epochs=epochs, seed=config.seed)))
    serve.sort(key=lambda s: s[0])
    out: list[bool] = []
    for k, (t, model) in enumerate(serve):
        until = serve[k + 1][0] if k + 1 < len(serve) else end
        out += _correct(model, rows[t - first : until - first])
    return out, len(serve) - 1
