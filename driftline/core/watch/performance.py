# mypy: disable-error-code="no-untyped-call"
# (river ships py.typed but leaves most of its estimators and metrics unannotated)
"""Rolling performance of one model version, per segment, over a count and a time window.

Segments are ``'all'`` plus ``'attr=value'`` for each segment attribute of an outcome; each
attribute keeps at most ``max_segment_values`` distinct values, later ones share
``'attr=__other__'``, so memory stays bounded. Every segment has two windows:

* ``count:N`` -- the last N outcomes, a ``river.utils.Rolling`` around river's metrics;
* ``time:Ps`` -- outcomes whose event time lies in the last P seconds of event time (the
  newest event time seen), kept as ``n_buckets`` buckets of river metrics merged at snapshot
  time. ``river.utils.TimeRolling`` copies its whole history on each expiry, which is too
  slow for thousands of events per second, hence the buckets. An outcome older than the
  oldest live bucket is not added to the time window; it is counted as ``late`` in the
  bucket that was newest when it came, so a snapshot's ``late`` counts the late outcomes
  seen while its window's buckets were the newest, not since the tracker started.

Classification (``positive`` set: binary metrics of that class and ROC AUC; ``positive=None``:
macro averages over classes) gives accuracy, precision, recall, f1, log_loss and roc_auc;
regression gives mae, rmse and r2. Class labels are compared as ``label_key(value)``
(``str``), the form the scores map uses for its keys. Predictions or scores that are NaN or
infinite, and abstentions (null prediction), are counted and kept out of the metrics.
Call ``snapshot`` periodically: river's ``RollingROCAUC`` buffers its updates until read.

>>> tracker = PerformanceTracker("churn", "v1", "classification", positive=True,
...                              window_size=3, period_ms=60_000)
>>> for i, (label, p) in enumerate([(True, .9), (False, .2), (True, .4), (False, .1)]):
...     tracker.update({"event_time_ms": 1_000 * i, "prediction": p >= .5, "label": label,
...                     "scores": {"True": p, "False": 1 - p}, "segment": {"region": "eu"}})
>>> for s in tracker.snapshot(now_ms=9_000, baseline={"accuracy": .9}):
...     print(s["segment"], s["window"], s["count"], round(s["metrics"]["accuracy"], 3))
all count:3 3 0.667
all time:60s 4 0.75
region=eu count:3 3 0.667
region=eu time:60s 4 0.75
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from river import utils

from driftline.core.watch.window_stats import (
    ABSTAIN,
    CLASSIFICATION,
    OK,
    REGRESSION,
    STATUS_NAMES,
    WindowStats,
    loss_of,
    status_of,
    window_metrics,
)

__all__ = ["CLASSIFICATION", "REGRESSION", "PerformanceTracker", "label_key"]

OTHER = "__other__"

Args = tuple[int, Any, Any, Any, int, float | None]
"""status, label, prediction, score(s), event time, log loss (see ``_args``)."""


def label_key(value: Any) -> str:
    """The string a class label is compared as (the key type of a Prediction's scores)."""
    return value if isinstance(value, str) else str(value)


class _Segment:
    """Count window and time buckets of one segment."""

    def __init__(self, tracker: PerformanceTracker) -> None:
        tr = tracker
        self.rolling = utils.Rolling(
            WindowStats,
            window_size=tr.window_size,
            task=tr.task,
            positive=tr._pos,
            auc_window=tr.window_size,
            n_thresholds=tr.n_thresholds,
        )
        self.buckets: dict[int, WindowStats] = {}
        self.newest = -1
        self.late: dict[int, int] = {}  # newest bucket when they came -> late outcomes

    def update(self, args: Args, b: int, tr: PerformanceTracker) -> None:
        self.rolling.update(*args)
        bucket = self.buckets.get(b)
        if bucket is None:
            if b <= tr._newest_bucket - tr.n_buckets:
                self.late[tr._newest_bucket] = self.late.get(tr._newest_bucket, 0) + 1
                return
            bucket = self.buckets[b] = WindowStats(tr.task, tr._pos, None, tr.n_thresholds)
            if b > self.newest:
                self.newest = b
                self.evict(b - tr.n_buckets)
        bucket.update(*args)

    def evict(self, oldest_dead: int) -> None:
        for k in [k for k in self.buckets if k <= oldest_dead]:
            del self.buckets[k]
        for k in [k for k in self.late if k <= oldest_dead]:
            del self.late[k]


class PerformanceTracker:
    """Rolling performance of one (model, version), per segment and window.

    Parameters
    ----------
    model, version
        Copied into the snapshots.
    task
        ``'classification'`` or ``'regression'``.
    positive
        Classification only: the positive class for precision, recall, F1, log loss and ROC
        AUC (binary). ``None``: macro precision, recall and F1, cross-entropy, no ROC AUC.
    window_size
        Outcomes in the count window.
    period_ms, n_buckets
        Length of the time window (event time) and the buckets it is kept in; the window
        covers between ``period_ms * (n_buckets - 1) / n_buckets`` and ``period_ms``.
    max_segment_values
        Distinct values kept per segment attribute; later values go to ``attr=__other__``.
    max_segment_attributes
        Segment attributes tracked; later attributes are ignored (counted).
    n_thresholds
        Thresholds of river's ``ROCAUC`` in the time window (the count window is exact).

    """

    def __init__(
        self,
        model: str,
        version: str,
        task: str,
        *,
        positive: Any = None,
        window_size: int = 1_000,
        period_ms: int = 300_000,
        n_buckets: int = 10,
        max_segment_values: int = 50,
        max_segment_attributes: int = 10,
        n_thresholds: int = 50,
    ) -> None:
        if task not in (CLASSIFICATION, REGRESSION):
            raise ValueError(f"task must be {CLASSIFICATION!r} or {REGRESSION!r}, not {task!r}")
        if task == REGRESSION and positive is not None:
            raise ValueError("positive applies to classification only")
        for name, value, low in [
            ("window_size", window_size, 1),
            ("period_ms", period_ms, 1),
            ("n_buckets", n_buckets, 1),
            ("n_thresholds", n_thresholds, 2),
            ("max_segment_values", max_segment_values, 1),
            ("max_segment_attributes", max_segment_attributes, 0),
        ]:
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, not {value!r}")
        if period_ms % n_buckets:
            raise ValueError(f"period_ms ({period_ms}) must be a multiple of n_buckets")
        self.model = model
        self.version = version
        self.task = task
        self.positive = positive
        self.window_size = window_size
        self.period_ms = period_ms
        self.n_buckets = n_buckets
        self.max_segment_values = max_segment_values
        self.max_segment_attributes = max_segment_attributes
        self.n_thresholds = n_thresholds
        self._pos = None if positive is None else label_key(positive)
        self._width = period_ms // n_buckets
        self._newest_bucket = -(2**62)
        self._all = _Segment(self)
        self._segments: dict[str, _Segment] = {"all": self._all}
        self._lookup: dict[tuple[str, str], _Segment] = {}
        self._values: dict[str, int] = {}  # attribute -> distinct values seen
        self.ignored_attributes = 0

    def update(self, outcome: Mapping[str, Any]) -> None:
        """Add one Outcome (a dict shaped like the schema)."""
        t = outcome["event_time_ms"]
        args = self._args(outcome["prediction"], outcome["label"], outcome.get("scores"), t)
        b = t // self._width
        if b > self._newest_bucket:
            self._newest_bucket = b
        self._all.update(args, b, self)
        segment = outcome.get("segment")
        if segment:
            lookup = self._lookup
            for item in segment.items():
                seg = lookup.get(item)
                if seg is None:
                    seg = self._new_segment(item)
                    if seg is None:
                        continue
                seg.update(args, b, self)

    def _args(self, yp: Any, y: Any, scores: Mapping[str, float] | None, t: int) -> Args:
        """``WindowStats.update``'s arguments for one outcome: status, label, prediction,
        score(s), event time and the log loss (computed here once, not in every window)."""
        if yp is None or y is None:
            return (ABSTAIN, None, None, None, t, None)
        if self.task == REGRESSION:
            if isinstance(yp, str) or isinstance(y, str):
                return (ABSTAIN, None, None, None, t, None)
            status = status_of(yp) or status_of(y)
            return (status, float(y), float(yp), None, t, None)
        y, yp = label_key(y), label_key(yp)
        if not scores:
            return (OK, y, yp, None, t, None)
        for v in scores.values():
            status = status_of(v)
            if status:
                return (status, y, yp, None, t, None)
        pos = self._pos
        if pos is not None:
            hit, p = y == pos, scores.get(pos, 0.0)
            return (OK, hit, yp == pos, p, t, loss_of(True, hit, p))
        p_all = scores if y in scores else {**scores, y: 0.0}
        return (OK, y, yp, p_all, t, loss_of(False, y, p_all))

    def _new_segment(self, item: tuple[str, str]) -> _Segment | None:
        attr, value = item
        seen = self._values.get(attr)
        if seen is None:
            if len(self._values) >= self.max_segment_attributes:
                self.ignored_attributes += 1
                return None
            seen = self._values[attr] = 0
        overflow = seen >= self.max_segment_values
        if not overflow:
            self._values[attr] = seen + 1
        key = f"{attr}={OTHER if overflow else value}"
        seg = self._segments.get(key)
        if seg is None:
            seg = self._segments[key] = _Segment(self)
        if not overflow:  # overflow values are not cached: the lookup would grow unbounded
            self._lookup[item] = seg
        return seg

    @property
    def segments(self) -> list[str]:
        """Segment keys seen so far, 'all' first."""
        return list(self._segments)

    def snapshot(
        self,
        now_ms: int,
        baseline: Mapping[str, float] | None = None,
        segment_baselines: Mapping[str, Mapping[str, float]] | None = None,
        segments: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """MetricSnapshot dicts, two per segment with outcomes (count window, time window).

        ``baseline`` is the version's validation metrics; ``segment_baselines`` its
        per-segment ones, used instead of ``baseline`` for the segments they name.
        """
        out = []
        oldest_live = self._newest_bucket - self.n_buckets + 1
        for key in self._segments if segments is None else segments:
            seg = self._segments[key]
            base = dict((segment_baselines or {}).get(key, baseline or {}))
            seg.evict(oldest_live - 1)
            ts = [a[0][4] for a in seg.rolling.window]  # Rolling's queue: (args, kwargs)
            window = [
                (
                    [seg.rolling.obj],
                    f"count:{self.window_size}",
                    0,
                    min(ts, default=0),
                    max(ts, default=0),
                )
            ]
            buckets = [seg.buckets[k] for k in sorted(seg.buckets)]
            if buckets:
                window.append(
                    (
                        buckets,
                        f"time:{self.period_ms / 1000:g}s",
                        sum(seg.late.values()),
                        min(s.t_min for s in buckets),
                        max(s.t_max for s in buckets),
                    )
                )
            for parts, name, late, start, end in window:
                n = sum(sum(s.counts) for s in parts)
                if n == 0:
                    continue
                counts = {STATUS_NAMES[i]: sum(s.counts[i] for s in parts) for i in range(4)}
                counts.update(n=n, scored=sum(s.n_scored for s in parts), late=late)
                out.append(
                    {
                        "model": self.model,
                        "version": self.version,
                        "segment": key,
                        "window": name,
                        "window_start_ms": int(start),
                        "window_end_ms": int(end),
                        "emitted_at_ms": now_ms,
                        "count": n,
                        "metrics": window_metrics(parts, self._pos),
                        "baseline": base,
                        "counts": counts,
                    }
                )
        return out
