"""Permutation importance: deterministic for a seed, zero for ignored features."""

from __future__ import annotations

import random
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
