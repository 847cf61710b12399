# mypy: disable-error-code="no-untyped-call"
# (river ships py.typed but leaves most of its estimators and metrics unannotated)
"""River metrics of one window or time bucket, with update, revert and merge.

``WindowStats`` is what ``PerformanceTracker`` keeps per segment: wrapped in
``river.utils.Rolling`` for the count window (update and revert), and one per time bucket
(update only, merged by ``window_metrics`` at snapshot time). Mean metrics (MAE, MSE, log
loss) merge as count-weighted means, confusion matrices by adding their cells, R2 from the
merged MSE and ``stats.Var`` of the labels, ROC AUC from ``ScoreHistogram`` bins.

>>> a, b = WindowStats("regression", None, None, 10), WindowStats("regression", None, None, 10)
>>> for y, yp in [(1.0, 1.5), (2.0, 2.0)]:
...     a.update(OK, y, yp, None, 0)
>>> b.update(OK, 3.0, 2.0, None, 0)
>>> {k: round(v, 4) for k, v in window_metrics([a, b], None).items()}  # merged buckets
{'mae': 0.5, 'rmse': 0.6455, 'r2': 0.375}
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import pairwise
from typing import Any

from river import metrics, stats

__all__ = [
    "ABSTAIN",
    "CLASSIFICATION",
    "INF",
    "NAN",
    "OK",
    "REGRESSION",
    "STATUS_NAMES",
    "TASK_METRICS",
    "ScoreHistogram",
    "WindowStats",
    "loss_of",
    "roc_auc",
    "status_of",
    "window_metrics",
]

CLASSIFICATION = "classification"
REGRESSION = "regression"
OK, NAN, INF, ABSTAIN = 0, 1, 2, 3
STATUS_NAMES = ("ok", "nan", "inf", "abstained")
TASK_METRICS = {
    CLASSIFICATION: ("accuracy", "precision", "recall", "f1", "log_loss", "roc_auc"),
    REGRESSION: ("mae", "rmse", "r2"),
}
"""Every metric :func:`window_metrics` may give, by task (what ``retrain.watch`` may name)."""


def status_of(x: float) -> int:
    """NAN, INF or OK for one float."""
    if x != x:
        return NAN
    return INF if x in (math.inf, -math.inf) else OK


_LOG_LOSS = metrics.LogLoss()
_CROSS_ENTROPY = metrics.CrossEntropy()


def loss_of(binary: bool, y: Any, p: Any) -> float:
    """The log loss of one outcome, as river's ``LogLoss`` (``binary``: ``y`` a bool, ``p``
    the positive class's score) or ``CrossEntropy`` (``p`` the scores) computes it.
    ``PerformanceTracker`` computes it once per outcome and hands it to every window and
    bucket the outcome enters (and leaves), instead of each of them computing it again.

    >>> round(loss_of(True, True, 0.8), 6), round(loss_of(False, "b", {"a": 0.3, "b": 0.7}), 6)
    (0.223144, 0.356675)
    """
    return float((_LOG_LOSS if binary else _CROSS_ENTROPY)._eval(y, p))


class WindowStats:
    """River metrics of one window (or one time bucket): update, revert and merge."""

    def __init__(
        self, task: str, positive: str | None, auc_window: int | None, n_thresholds: int
    ) -> None:
        self.classify = task == CLASSIFICATION
        self.binary = positive is not None
        self.counts = [0, 0, 0, 0]  # by status
        self.t_min = math.inf
        self.t_max = -math.inf
        self.n_scored = 0
        self.auc: Any = None
        if self.classify:
            self.cm = metrics.ConfusionMatrix()
            self.loss = stats.Mean()  # of loss_of(...): what LogLoss or CrossEntropy keeps
            if self.binary and auc_window:  # keeps its own window: never reverted here
                self.auc = metrics.RollingROCAUC(window_size=auc_window)
            elif self.binary:  # a time bucket: score histogram, see _roc_auc
                self.auc = ScoreHistogram(n_thresholds)
        else:
            self.mae = metrics.MAE()
            self.mse = metrics.MSE()
            self.y_var = stats.Var(ddof=0)

    def update(
        self, status: int, y: Any, yp: Any, p: Any, t: int, loss: float | None = None
    ) -> None:
        """One outcome; ``loss`` is ``loss_of(y, p)`` when the caller has it already."""
        self.counts[status] += 1
        if t < self.t_min:
            self.t_min = t
        if t > self.t_max:
            self.t_max = t
        if status:
            return
        if self.classify:
            self.cm.update(y, yp)
            if p is not None:
                self.n_scored += 1
                self.loss.update(loss_of(self.binary, y, p) if loss is None else loss)
                if self.auc is not None:
                    self.auc.update(y, p)
        else:
            self.mae.update(y, yp)
            self.mse.update(y, yp)
            self.y_var.update(y)

    def revert(
        self, status: int, y: Any, yp: Any, p: Any, t: int, loss: float | None = None
    ) -> None:
        self.counts[status] -= 1
        if status:
            return
        if self.classify:
            self.cm.revert(y, yp)
            if p is not None:
                self.n_scored -= 1
                self.loss.revert(loss_of(self.binary, y, p) if loss is None else loss)
        else:
            self.mae.revert(y, yp)
            self.mse.revert(y, yp)
            self.y_var.revert(y)


def _mean(parts: list[tuple[float, int]]) -> float | None:
    n = sum(w for _, w in parts)
    return sum(v * w for v, w in parts) / n if n else None


def window_metrics(parts: list[WindowStats], positive: str | None) -> dict[str, float]:
    """Metric values of the union of ``parts`` (one Rolling window or several buckets)."""
    first = parts[0]
    out: dict[str, float | None] = {}
    if first.classify:
        cm = metrics.ConfusionMatrix()
        for s in parts:
            for yt, row in s.cm.data.items():
                for yp, w in row.items():
                    if w:
                        cm.update(yt, yp, w)
        if cm.total_weight:
            out["accuracy"] = metrics.Accuracy(cm=cm).get()
            if positive is not None:
                kinds = (metrics.Precision, metrics.Recall, metrics.F1)
                out.update((k.__name__.lower(), k(cm=cm).get()) for k in kinds)  # keys: y == pos
            else:
                out["precision"] = metrics.MacroPrecision(cm=cm).get()
                out["recall"] = metrics.MacroRecall(cm=cm).get()
                out["f1"] = metrics.MacroF1(cm=cm).get()
        out["log_loss"] = _mean([(s.loss.get(), s.n_scored) for s in parts])
        if first.auc is not None:
            out["roc_auc"] = roc_auc(parts)
    else:
        mae = _mean([(s.mae.get(), s.counts[OK]) for s in parts])
        mse = _mean([(s.mse.get(), s.counts[OK]) for s in parts])
        y_var = sum((s.y_var for s in parts[1:]), start=parts[0].y_var)
        out["mae"] = mae
        out["rmse"] = None if mse is None else math.sqrt(mse)
        if mse is not None and y_var.n > 1 and y_var.get() > 0:
            out["r2"] = 1.0 - mse / y_var.get()  # = 1 - SSE/SST, as river's R2
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


class ScoreHistogram:
    """Scores of positives and negatives binned at river ``ROCAUC``'s thresholds.

    Bin k holds the scores above exactly k thresholds, so replaying each bin once, weighted
    by its count, into ``ROCAUC(n_thresholds)`` gives the value ROCAUC would have had on
    the scores themselves, at one list increment per outcome instead of n confusion
    matrix updates.
    """

    def __init__(self, n_thresholds: int) -> None:
        self.roc = metrics.ROCAUC(n_thresholds=n_thresholds)
        th = self.roc.thresholds
        self.thresholds = th
        self.points = [th[0] - 1.0, *((a + b) / 2 for a, b in pairwise(th)), th[-1] + 1.0]
        self.counts = {True: [0] * (len(th) + 1), False: [0] * (len(th) + 1)}

    def update(self, y: bool, p: float) -> None:
        self.counts[y][bisect_left(self.thresholds, p)] += 1


def roc_auc(parts: list[WindowStats]) -> float | None:
    """ROC AUC of the window; None unless both classes are present."""
    pos = sum(s.cm.sum_row[True] for s in parts)
    if not 0 < pos < sum(s.counts[OK] for s in parts):
        return None
    first = parts[0].auc
    if not isinstance(first, ScoreHistogram):
        return float(first.get())
    roc = metrics.ROCAUC(n_thresholds=first.roc.n_thresholds)
    for y in (True, False):
        for k, point in enumerate(first.points):
            w = sum(s.auc.counts[y][k] for s in parts)
            if w:
                roc.update(y, point, w)
    return float(roc.get())
