"""How much better is a candidate, at least? A one-sided lower confidence bound on its
gain over a reference (the champion, or a trivial baseline) on the same held-out rows.

Per held-out row, each model's loss: 0/1 error for a classifier, absolute error for a
regressor. The gain is the mean of the paired differences ``d = loss(reference) -
loss(candidate)`` over the rows both scored: accuracy points for a classifier, MAE
units for a regressor (positive: the candidate is better). The gate passes the
improvement check only when the lower bound beats ``min_improvement``:

* **classifier**: an exact bound on the rows where the two disagree about being right
  (McNemar's pairs). Of ``m`` such rows among ``n``, ``k`` favour the candidate; ``p_L``
  is the one-sided Clopper-Pearson lower bound of ``k / m`` at ``alpha``, and the bound
  is ``(m / n) * (2 * p_L - 1)``. With ``min_improvement = 0`` the check is the exact
  one-sided McNemar (sign) test at ``alpha``: three rows out of three in the candidate's
  favour prove nothing (``p_L = 0.37``), where a normal approximation would pass them.
* **regressor**: the paired t bound, ``mean(d) - t(1 - alpha, n - 1) * sd(d) / sqrt(n)``.
* ``alpha = None``: the point estimate ``mean(d)`` (the gate's rule before this bound).

So the chance that a candidate no better than its reference passes is at most
``alpha`` (exactly for classifiers, given the number of disagreeing rows; to the t
approximation for regressors, which is why the gate also needs ``min_holdout_rows``).

The trivial baseline, the reference of a first champion, predicts the training labels'
majority class (classifier; ties go to the smallest label as text) or their mean
(regressor).

>>> ref = [1.0] * 30 + [0.0] * 70          # the champion is wrong on 30 of 100 rows
>>> cand = [0.0] * 30 + [0.0] * 70         # the candidate on none of them
>>> b = improvement_bound(ref, cand, "classification", alpha=0.05)
>>> round(b.gain, 4), round(b.bound, 4), b.n, b.differing
(0.3, 0.243, 100, 30)
>>> improvement_bound(ref[:3] + [0.0] * 97, [0.0] * 100, "classification", 0.05).bound < 0
True
>>> trivial_prediction("classification", [True, False, True])
True
>>> trivial_prediction("regression", [1, 2, 6])
3.0
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

__all__ = ["Bound", "improvement_bound", "losses_of", "row_loss", "trivial_prediction"]


@dataclass(frozen=True)
class Bound:
    """The gain of a candidate over a reference on ``n`` paired rows, and its lower bound."""

    gain: float
    bound: float
    n: int
    differing: int
    """Rows where the two losses differ."""
    method: str
    """``exact McNemar``, ``paired t`` or ``point estimate``."""
    alpha: float | None

    def describe(self) -> str:
        """E.g. ``gain +0.0500, 95% lower bound +0.0331 (exact McNemar, 40 of 800 rows
        differ)``."""
        if self.alpha is None:
            return f"gain {self.gain:+.4f} (point estimate on {self.n} rows)"
        level = f"{100 * (1 - self.alpha):g}%"
        bound = "none" if math.isinf(self.bound) else f"{self.bound:+.4f}"
        return (
            f"gain {self.gain:+.4f}, {level} lower bound {bound} ({self.method}, "
            f"{self.differing} of {self.n} rows differ)"
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def row_loss(task: str, prediction: Any, label: Any) -> float:
    """0/1 error (classification, compared as text, as the gate's metrics do) or the
    absolute error (regression)."""
    if task == "classification":
        return float(_text(prediction) != _text(label))
    return abs(float(prediction) - float(label))


def trivial_prediction(task: str, labels: Sequence[Any]) -> Any:
    """The majority class of ``labels`` (ties: the smallest as text) or their mean; None
    without labels."""
    if not labels:
        return None
    if task != "classification":
        return statistics.fmean(float(y) for y in labels)
    counts = Counter(_text(y) for y in labels)
    first: dict[str, Any] = {}
    for y in labels:
        first.setdefault(_text(y), y)
    best = min(counts, key=lambda k: (-counts[k], k))
    return first[best]


def improvement_bound(
    reference: Sequence[float | None],
    candidate: Sequence[float | None],
    task: str,
    alpha: float | None,
) -> Bound:
    """The candidate's gain over the reference from their per-row losses (None: the row
    was not scored; such rows are left out of the pair), with its one-sided lower bound
    at ``alpha`` (see the module docstring). No paired row: gain 0, bound -inf."""
    d = [
        r - c for r, c in zip(reference, candidate, strict=True) if r is not None and c is not None
    ]
    n = len(d)
    differing = sum(1 for x in d if x != 0)
    if n == 0:
        return Bound(0.0, -math.inf, 0, 0, "no rows", alpha)
    gain = math.fsum(d) / n
    if alpha is None:
        return Bound(gain, gain, n, differing, "point estimate", alpha)
    if task == "classification":
        k = sum(1 for x in d if x > 0)
        p_low = float(stats.beta.ppf(alpha, k, differing - k + 1)) if k > 0 else 0.0
        bound = (differing / n) * (2 * p_low - 1) if differing else 0.0
        return Bound(gain, bound, n, differing, "exact McNemar", alpha)
    if n < 2:
        return Bound(gain, -math.inf, n, differing, "paired t", alpha)
    se = statistics.stdev(d) / math.sqrt(n)
    bound = gain - float(stats.t.ppf(1 - alpha, n - 1)) * se
    return Bound(gain, bound, n, differing, "paired t", alpha)


def losses_of(task: str, prediction: Any, rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The per-row losses of a constant ``prediction`` on ``rows`` (dicts with a label)."""
    return [row_loss(task, prediction, r["label"]) for r in rows]
