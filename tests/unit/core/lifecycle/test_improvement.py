"""The gate's improvement bound: a table of cases, and its false-pass rate under the null."""

from __future__ import annotations

import math
import random

import pytest

from driftline.core.lifecycle.improvement import (
    improvement_bound,
    losses_of,
    row_loss,
    trivial_prediction,
)

# (case, reference losses, candidate losses, task, alpha, gain, bound test)
CASES = [
    ("30 of 100 won, none lost", [1.0] * 30 + [0.0] * 70, [0.0] * 100, "classification", 0.05,
     0.30, lambda b: 0.2 < b < 0.3),
    ("3 of 100 won: no evidence", [1.0] * 3 + [0.0] * 97, [0.0] * 100, "classification", 0.05,
     0.03, lambda b: b < 0),
    ("5 of 100 won: the exact sign test says p = 1/32 < 0.05", [1.0] * 5 + [0.0] * 95,
     [0.0] * 100, "classification", 0.05, 0.05, lambda b: b > 0),
    ("won 60, lost 40 of 800: p = 0.028", [1.0] * 60 + [0.0] * 740,
     [0.0] * 60 + [1.0] * 40 + [0.0] * 700, "classification", 0.05, 0.025, lambda b: b > 0),
    ("won 55, lost 45 of 800: p = 0.18", [1.0] * 55 + [0.0] * 745,
     [0.0] * 55 + [1.0] * 45 + [0.0] * 700, "classification", 0.05, 0.0125, lambda b: b < 0),
    ("equal", [0.0, 1.0] * 50, [0.0, 1.0] * 50, "classification", 0.05, 0.0, lambda b: b == 0),
    ("point estimate", [1.0] * 3 + [0.0] * 97, [0.0] * 100, "classification", None, 0.03,
     lambda b: b == pytest.approx(0.03)),
    ("regression, steady gain", [2.0] * 50, [1.0] * 50, "regression", 0.05, 1.0,
     lambda b: b == pytest.approx(1.0)),
    ("regression, a gain in the noise", [1.1] * 100, [0.1, 2.0] * 50, "regression", 0.05, 0.05,
     lambda b: b < 0),
    ("unscored rows are left out", [1.0, None, 1.0, 1.0] * 30, [0.0, 0.0, None, 0.0] * 30,
     "classification", 0.05, 1.0, lambda b: b > 0.9),
    ("no paired row", [None] * 5, [0.0] * 5, "classification", 0.05, 0.0,
     lambda b: b == -math.inf),
    ("one regression row", [2.0], [1.0], "regression", 0.05, 1.0, lambda b: b == -math.inf),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "candidate", "task", "alpha", "gain", "check"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bound(reference, candidate, task, alpha, gain, check) -> None:
    b = improvement_bound(reference, candidate, task, alpha)
    assert b.gain == pytest.approx(gain)
    assert check(b.bound), b
    assert b.bound <= b.gain + 1e-12
    level = "lower bound" if alpha is None else f"{100 * (1 - alpha):g}% lower bound"
    assert (level in b.describe()) is (alpha is not None)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_candidate_no_better_passes_at_most_alpha_of_the_time(task: str) -> None:
    """2,000 held-out sets of 150 rows where candidate and reference are equally good:
    the bound exceeds 0 in at most 5% of them (plus sampling slack)."""
    rng = random.Random(3)
    passed = 0
    for _ in range(2_000):
        if task == "classification":  # both wrong 20% of the time, independently
            ref = [float(rng.random() < 0.2) for _ in range(150)]
            cand = [float(rng.random() < 0.2) for _ in range(150)]
        else:  # skewed absolute errors of the same law
            ref = [abs(rng.gauss(0, 1)) ** 1.5 for _ in range(150)]
            cand = [abs(rng.gauss(0, 1)) ** 1.5 for _ in range(150)]
        passed += improvement_bound(ref, cand, task, 0.05).bound > 0
    assert passed / 2_000 < 0.05 + 0.015, passed


@pytest.mark.parametrize(
    ("task", "labels", "expected"),
    [
        ("classification", [True, False, True], True),
        ("classification", ["b", "a", "a", "b"], "a"),  # a tie: the smallest as text
        ("classification", [1, 2, 2], 2),
        ("classification", [], None),
        ("regression", [1, 2, 6], 3.0),
        ("regression", [], None),
    ],
)
def test_trivial_prediction(task: str, labels: list[int], expected) -> None:
    assert trivial_prediction(task, labels) == expected


def test_losses() -> None:
    assert row_loss("classification", True, "True") == 0.0  # compared as text
    assert row_loss("classification", 1, 2) == 1.0
    assert row_loss("regression", 2.5, 4) == 1.5
    assert losses_of("regression", 1.0, [{"label": 0}, {"label": 3}]) == [1.0, 2.0]
