"""Permutation importance: deterministic for a seed, zero for ignored features."""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping
from typing import Any

import pytest

from driftline.core.lifecycle.importance import permutation_importance, ranked


class Threshold:
    """Predicts ``x > 0`` (classification) or ``2 * x`` (regression); ignores the rest."""

    def __init__(self, task: str) -> None:
        self.task = task

    def predict_one(self, f: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        return (f["x"] > 0, {}) if self.task == "classification" else (2 * f["x"], {})


def _rows(task: str, n: int = 400) -> list[dict[str, Any]]:
    rng = random.Random(3)
    out = []
    for _ in range(n):
        x, noise = rng.gauss(0, 1), rng.gauss(0, 1)
        label = x > 0 if task == "classification" else 2 * x
        out.append({"features": {"x": x, "noise": noise, "plan": rng.choice("ab")}, "label": label})
    return out


@pytest.mark.parametrize(("task", "least"), [("classification", 0.3), ("regression", 0.5)])
def test_the_used_feature_ranks_first_and_ignored_ones_score_zero(task: str, least: float) -> None:
    imp = permutation_importance(Threshold(task), _rows(task), task, seed=7)
    assert next(f for f, *_ in ranked(imp)) == "x"
    assert imp["x"]["mean"] > least and imp["x"]["std"] > 0
    assert imp["noise"] == {"mean": 0.0, "std": 0.0, "repeats": 5}


def test_deterministic_for_a_seed_and_capped() -> None:
    rows = _rows("classification")
    a = permutation_importance(Threshold("classification"), rows, "classification", seed=1)
    b = permutation_importance(Threshold("classification"), rows, "classification", seed=1)
    c = permutation_importance(Threshold("classification"), rows, "classification", seed=2)
    assert a == b and a["x"] != c["x"]
    few = permutation_importance(Threshold("classification"), rows, "classification", seed=1,
                                 max_rows=10, repeats=2)  # fmt: skip
    assert few["x"]["repeats"] == 2
    assert permutation_importance(Threshold("classification"), [], "classification", seed=1) == {}


@pytest.mark.parametrize("kw", [{"repeats": 0}, {"max_rows": 0}])
def test_bad_arguments(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        permutation_importance(Threshold("classification"), _rows("classification"),
                               "classification", seed=1, **kw)  # fmt: skip


class Counting:
    """A model of every feature (a weighted sum, thresholded for a classifier) that counts
    its predictions; 1, 1.0 and True weigh differently (as inputs a model may tell apart)."""

    def __init__(self, task: str) -> None:
        self.task, self.calls = task, 0

    def predict_one(self, f: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        self.calls += 1
        total = sum(
            (3.0 if v is True else 2.0 if isinstance(v, float) else 1.0) * (hash(v) % 7)
            for v in f.values()
            if v is not None and not isinstance(v, str)
        ) + sum(len(v) for v in f.values() if isinstance(v, str))
        return (total > 6, {}) if self.task == "classification" else (total, {})


def _naive(model: Any, rows: list[dict[str, Any]], task: str, seed: int) -> dict[str, Any]:
    """The definition, one prediction per row, feature and repeat (no value remembered)."""
    from driftline.core.lifecycle.importance import _row_loss, _seed

    classify = task == "classification"

    def loss(rs: list[dict[str, Any]]) -> float:
        total = 0.0
        for r in rs:
            total += _row_loss(model, r["features"], r["label"], classify)
        return total / len(rs)

    base, out = loss(rows), {}
    for name in sorted({k for r in rows for k in r["features"]}):
        drops = []
        for k in range(5):
            col = [r["features"].get(name) for r in rows]
            random.Random(_seed(seed, name, k)).shuffle(col)
            permuted = [
                {**r, "features": {**r["features"], name: v}}
                for r, v in zip(rows, col, strict=True)
            ]
            drops.append(loss(permuted) - base)
        out[name] = drops
    return out


@pytest.mark.parametrize(
    ("case", "column", "predictions"),
    [
        ("a flag: one more prediction per row", lambda rng, i: rng.random() < 0.5, 300),
        ("a category of 3", lambda rng, i: rng.choice("abc"), 600),
        ("1, 1.0 and True are different values", lambda rng, i: rng.choice([1, 1.0, True]), 600),
        ("missing in some rows, None in others",
         lambda rng, i: rng.choice([None, 2, "skip"]), 1_100),
        ("a number: every repeat predicts", lambda rng, i: rng.random(), 1_500),
    ],
)  # fmt: skip
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_value_a_row_already_had_is_not_predicted_again(
    case: str, column: Any, predictions: int, task: str
) -> None:
    rng = random.Random(5)
    rows = []
    for i in range(300):
        v = column(rng, i)
        features: dict[str, Any] = {}
        if v != "skip":
            features["f"] = v
        label = rng.random() < 0.5 if task == "classification" else rng.random() * 10
        rows.append({"features": features, "label": label})
    model = Counting(task)
    imp = permutation_importance(model, rows, task, seed=11)
    base_calls = len(rows)
    # one prediction per row and value it had not had before (5 repeats: 5 at most)
    assert model.calls - base_calls <= predictions, case
    assert model.calls - base_calls >= min(predictions, 1_500) // 3, case  # it did predict
    naive = _naive(Counting(task), rows, task, seed=11)
    assert set(imp) == set(naive) == {"f"}
    assert imp["f"]["mean"] == round(statistics.fmean(naive["f"]), 12), case
    assert imp["f"]["std"] == round(statistics.pstdev(naive["f"]), 12), case
