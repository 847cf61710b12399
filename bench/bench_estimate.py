# mypy: disable-error-code="no-untyped-call"
"""How far Driftline's streaming CBPE estimate is from realized accuracy, and its cost.

    .venv/bin/python -m bench.bench_estimate [--events 40000] [--window 1000]

Each stream has two numeric features and a fixed logistic concept
``P(y) = sigmoid(4 * x0)`` (x1 unused) unless it says otherwise. A logistic regression
(Driftline's factory) learns 5,000 events of the reference distribution and is calibrated
on 2,000 held-out ones (:func:`driftline.core.model.calibration.fit`, isotonic); then
``--events`` events stream through :class:`~driftline.core.watch.estimate.PerformanceEstimator`
(the monitor's code), every label delivered, and each window of ``--window`` events'
estimate is compared with its realized accuracy. Streams:

* ``stationary``: x0, x1 ~ N(0, 1) throughout.
* ``covariate``: x0's spread grows from 0.3 to 3 (accuracy rises as events move away from
  the boundary; the concept does not change: CBPE's case).
* ``virtual``: x1 (unused) moves from N(0, 1) to N(4, 1): inputs drift, accuracy does not.
* ``concept``: halfway, the concept flips to ``sigmoid(-4 * x0)``: the scores do not see
  it, CBPE is expected to fail (the estimate stays put while accuracy collapses).

The batch column is a faithful reimplementation of NannyML's CBPE for accuracy (isotonic
calibration on the reference, the mean calibrated confidence of the predicted class per
chunk) applied to the same windows; nannyml itself is not installed in the project's
environment. Prints a table; ``--json`` prints the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from driftline.core.model.calibration import fit
from driftline.core.model.estimators import ServedModel, build
from driftline.core.model.validation import Spec
from driftline.core.watch.estimate import PerformanceEstimator

Draw = Callable[[random.Random, float], tuple[dict[str, float], bool]]


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _make(spread: Callable[[float], float], shift1: Callable[[float], float],
          sign: Callable[[float], float]) -> Draw:  # fmt: skip
    def draw(rng: random.Random, f: float) -> tuple[dict[str, float], bool]:
        x0 = rng.gauss(0, spread(f))
        x1 = rng.gauss(shift1(f), 1)
        return {"x0": x0, "x1": x1}, rng.random() < _sigmoid(sign(f) * 4 * x0)

    return draw


STREAMS: dict[str, Draw] = {
    "stationary": _make(lambda f: 1.0, lambda f: 0.0, lambda f: 1.0),
    "covariate": _make(lambda f: 0.3 + 2.7 * f, lambda f: 0.0, lambda f: 1.0),
    "virtual": _make(lambda f: 1.0, lambda f: 4.0 * f, lambda f: 1.0),
    "concept": _make(lambda f: 1.0, lambda f: 0.0, lambda f: 1.0 if f < 0.5 else -1.0),
}


def _reference(rng: random.Random, n: int) -> Iterator[tuple[dict[str, float], bool]]:
    draw = STREAMS["stationary"]
    for _ in range(n):
        yield draw(rng, 0.0)


def run(stream: str, events: int, window: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    model = build("logistic_regression", {}, seed)
    for x, y in _reference(rng, 5_000):
        model.learn_one(x, y)
    served = ServedModel("m", "v1", "classification", model, Spec(()), "{}")
    held = []
    for x, y in _reference(rng, 2_000):
        yp, scores = served.predict_one(x)
        held.append((yp, scores, y))
    cal = fit(held)
    est = PerformanceEstimator("m", "v1", cal, window_size=window, keep_chunks=events // window)
    draw = STREAMS[stream]
    realized: list[float] = []
    batch: list[float] = []
    hits: list[bool] = []
    confs: list[float] = []
    cpu = 0.0
    rows = []
    for i in range(events):
        x, y = draw(rng, i / events)
        yp, scores = served.predict_one(x)
        p = {"event_time_ms": i, "prediction": yp, "scores": scores, "segment": {}}
        t0 = time.perf_counter()
        est.update(p)
        cpu += time.perf_counter() - t0
        rows.append((p, y))
        hits.append(yp == y)
        confs.append(cal.confidence(yp, scores))
        if len(hits) == window:
            realized.append(sum(hits) / window)
            batch.append(sum(confs) / window)
            hits, confs = [], []
    t0 = time.perf_counter()
    snaps = est.snapshot(0)
    snap_ms = (time.perf_counter() - t0) * 1000
    for p, y in rows:
        est.observe_outcome({**p, "label": y})
    checks = est.checks(0, min_labelled=window)
    errors = [abs(c["metrics"]["estimation_error_accuracy"]) for c in checks]
    inside = sum(
        c["metrics"]["estimated_accuracy_lower"] <= c["metrics"]["realized_accuracy"]
        <= c["metrics"]["estimated_accuracy_upper"]
        for c in checks
    )  # fmt: skip
    batch_err = [abs(b - r) for b, r in zip(batch, realized, strict=True)]
    return {
        "stream": stream,
        "windows": len(checks),
        "calibration": cal.method,
        "ece_raw": cal.ece_before,
        "ece": cal.ece_after,
        "realized_min": min(realized),
        "realized_max": max(realized),
        "mae": statistics.fmean(errors),
        "max_error": max(errors),
        "in_band": inside / len(checks),
        "batch_mae": statistics.fmean(batch_err),
        "update_us": cpu / events * 1e6,
        "snapshot_ms": snap_ms,
        "last_estimate": snaps[0]["metrics"]["estimated_accuracy"],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--window", type=int, default=1_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = [run(s, args.events, args.window) for s in STREAMS]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'stream':<11} {'windows':>7} {'realized':>13} {'MAE':>6} {'max':>6} "
          f"{'in band':>7} {'batch MAE':>9} {'update µs':>9}")  # fmt: skip
    for r in results:
        print(f"{r['stream']:<11} {r['windows']:>7} "
              f"{r['realized_min']:.3f}-{r['realized_max']:.3f} {r['mae']:>6.3f} "
              f"{r['max_error']:>6.3f} {r['in_band']:>7.0%} {r['batch_mae']:>9.3f} "
              f"{r['update_us']:>9.1f}")  # fmt: skip
    r = results[0]
    print(
        f"calibration {r['calibration']}, ECE {r['ece_raw']:.4f} raw, {r['ece']:.4f} calibrated;"
        f" snapshot of one {args.window}-event window {r['snapshot_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
