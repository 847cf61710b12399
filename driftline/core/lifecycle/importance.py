"""Permutation importance of each feature on a version's held-out rows.

A feature's importance is how much the primary metric worsens when its held-out values
are shuffled among the rows (the link between that feature and the label broken, its
distribution kept): the drop of accuracy for a classifier, the rise of MAE for a
regressor. Each feature is shuffled ``repeats`` times, each time with a generator seeded
from the version's seed, the feature's name and the repeat, so the same rows, model and
seed give the same figures. At most ``max_rows`` held-out rows (the newest) are used:
the cost is at most ``features x repeats x rows`` predictions, fewer where a shuffled
value is one a row already had (its original value, or one an earlier repeat gave it:
the prediction is remembered per row and value, so a feature with few distinct values,
a flag or a category, costs a prediction per row and value at most).

A feature the model ignores scores ~0 (its spread says how far from 0 noise goes); a
negative mean is noise too.

>>> class Model:
...     def predict_one(self, x):
...         return (x["a"] > 0, {})
>>> rows = [{"features": {"a": i - 50, "b": i % 3}, "label": i > 50} for i in range(100)]
>>> imp = permutation_importance(Model(), rows, "classification", seed=1, repeats=3)
>>> imp["a"]["mean"] > 0.3, imp["b"]["mean"], imp["b"]["repeats"]
(True, 0.0, 3)
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["MAX_ROWS", "REPEATS", "permutation_importance", "ranked"]

REPEATS = 5
MAX_ROWS = 500
"""Held-out rows importance is measured on at most (the newest). It costs ``features x
repeats x rows`` predictions after the gate, on the trainer's path from a trigger to its
answer: 1,000 rows took 28% of an 8,000-row answer (7.1 of 25.8 s, Agrawal, 9 features,
at load 15), more than the gate; 500 rows halve it and still resolve a drop of 0.002."""


class Predictor(Protocol):
    def predict_one(self, features: Mapping[str, Any]) -> tuple[Any, Mapping[str, float]]: ...


def _key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _row_loss(
    model: Predictor, features: Mapping[str, Any], label: Any, classify: bool
) -> float | bool:
    """0/1 error or absolute error of one row (a row the model cannot score: wrong)."""
    try:
        value, _ = model.predict_one(features)
    except Exception:  # a model that fails on a shuffled row: worst case
        value = None
    if classify:
        return value is None or _key(value) != _key(label)
    if value is None or not math.isfinite(float(value)):
        return abs(float(label))
    return abs(float(value) - float(label))


def _same(value: Any) -> Any:
    """What a shuffled value is remembered by: its type and itself (1, 1.0 and True are
    different inputs to a model); None for a value that cannot be (unhashable)."""
    try:
        hash(value)
    except TypeError:
        return None
    return (type(value), value)


def _seed(seed: int, feature: str, repeat: int) -> int:
    digest = hashlib.sha256(f"{seed}|{feature}|{repeat}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def permutation_importance(
    model: Predictor,
    rows: Sequence[Mapping[str, Any]],
    task: str,
    *,
    seed: int,
    repeats: int = REPEATS,
    max_rows: int = MAX_ROWS,
) -> dict[str, dict[str, float | int]]:
    """``{feature: {"mean", "std", "repeats"}}`` over the features the rows name (see the
    module docstring); empty with no rows."""
    if repeats < 1 or max_rows < 1:
        raise ValueError("repeats and max_rows must be >= 1")
    rows = list(rows)[-max_rows:]
    if not rows:
        return {}
    classify = task == "classification"
    base_losses = [_row_loss(model, r["features"], r["label"], classify) for r in rows]
    base = _mean(base_losses)
    names = sorted({k for r in rows for k in r["features"]})
    out: dict[str, dict[str, float | int]] = {}
    for name in names:
        drops = []
        column = [r["features"].get(name) for r in rows]
        # per row, the loss with each value it was given so far (its own: the base loss;
        # a row without the feature is not remembered, as its features lack the key)
        seen: list[dict[Any, float | bool]] = [
            {} if name not in r["features"] or (key := _same(v)) is None else {key: loss}
            for r, v, loss in zip(rows, column, base_losses, strict=True)
        ]
        for k in range(repeats):
            shuffled = column[:]
            random.Random(_seed(seed, name, k)).shuffle(shuffled)
            losses = _losses_with(model, rows, name, shuffled, seen, classify)
            drops.append(_mean(losses) - base)
        out[name] = {
            "mean": round(statistics.fmean(drops), 12),
            "std": round(statistics.pstdev(drops), 12) if len(drops) > 1 else 0.0,
            "repeats": repeats,
        }
    return out


def _losses_with(
    model: Predictor,
    rows: Sequence[Mapping[str, Any]],
    name: str,
    values: Sequence[Any],
    seen: Sequence[dict[Any, float | bool]],
    classify: bool,
) -> list[float | bool]:
    """Each row's loss with feature ``name`` set to its value of ``values``: from ``seen``
    (per row, the loss with each value it was given before) where it is there, else
    predicted and remembered there."""
    losses = []
    for r, v, memo in zip(rows, values, seen, strict=True):
        key = _same(v)
        loss = memo.get(key) if key is not None else None
        if loss is None:
            loss = _row_loss(model, {**r["features"], name: v}, r["label"], classify)
            if key is not None:
                memo[key] = loss
        losses.append(loss)
    return losses


def _mean(losses: Sequence[float | bool]) -> float:
    """The mean row loss, summed in row order (as it always was: same figures)."""
    total = 0.0
    for x in losses:
        total += x
    return total / len(losses)


def ranked(importance: Mapping[str, Mapping[str, Any]] | None) -> list[tuple[str, float, float]]:
    """(feature, mean, std), most important first.

    >>> ranked({"a": {"mean": 0.1, "std": 0.0}, "b": {"mean": 0.3, "std": 0.1}})
    [('b', 0.3, 0.1), ('a', 0.1, 0.0)]
    """
    items = [(f, float(v["mean"]), float(v["std"])) for f, v in (importance or {}).items()]
    return sorted(items, key=lambda t: (-t[1], t[0]))
