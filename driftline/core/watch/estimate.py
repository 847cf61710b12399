"""Performance estimated from predictions alone, before labels come (CBPE), and the
estimator's own error once they do.

Confidence-based performance estimation (NannyML's CBPE): if a classifier's class
probabilities are calibrated, the probability that a prediction is right is the
calibrated probability of the predicted class, so a window's expected accuracy is the
mean of those confidences, whatever the inputs did. Each version is calibrated at
training time (:mod:`driftline.core.model.calibration`); the estimator maps every
prediction's scores through its version's map.

Per segment (``'all'`` and ``attr=value``, bounded as in
:mod:`~driftline.core.watch.performance`) the estimator keeps the last ``window_size``
predictions (a rolling window, published as window ``estimate:N``) and tumbling chunks
of ``window_size`` predictions, whose estimates are frozen when they close.

Estimates of a window of n predictions with calibrated confidences ``c_i``:

* ``estimated_accuracy = mean(c_i)``; band ``± z * sqrt(sum c_i (1 - c_i)) / n``: if the
  calibration holds, the realized accuracy is a sum of independent Bernoulli(c_i)
  draws, so it lies in that band with probability ~``confidence``.
* binary models: expected confusion counts from the calibrated probability ``p_i`` of
  the positive class: ``TP = sum p_i`` over predicted positives, ``FP = sum (1 - p_i)``
  there, ``FN = sum p_i`` over predicted negatives. ``estimated_f1 = 2TP / (2TP + FP +
  FN)`` (of the positive class when the models file names one; else the mean of both
  classes' F1, as the realized macro F1); with a positive class, ``estimated_roc_auc``
  from fractional labels (each row counts ``p_i`` as a positive and ``1 - p_i`` as a
  negative). Their bands are the quantiles of the metric over ``draws`` label sets drawn
  from the calibrated probabilities (a parametric bootstrap, seeded: ``± z`` standard
  deviations of the drawn metrics). A segment's estimate is recomputed only when it got
  new predictions since the last snapshot (~4 ms for a window of 1,000). Multi-class models
  get accuracy only: a sound multi-class F1 needs one calibrated map per class and
  enough rows per class, which the held-out rows seldom give.

What it cannot see: a change of concept (P(y | x) moves) that leaves the scores where
they were. CBPE assumes the calibration learnt on the held-out rows still holds; under
covariate shift alone it does, under a concept change it does not, and the estimate is
then wrong by as much as the concept moved. The estimator's own error says when.

**Its own error.** An outcome (a labelled prediction) is placed, on segment ``'all'``, in
the chunk its prediction went to (by ``event_id``, remembered for the chunks kept: the
spans of consecutive chunks overlap when partitions interleave); on other segments, and
for a prediction no longer remembered, in the newest chunk whose event time span holds
its event time. Once a closed chunk has ``min_labelled`` outcomes,
:meth:`PerformanceEstimator.checks` publishes (window ``estimate-check:N``) the chunk's
estimate, the realized metric over its labelled predictions, their difference
``estimation_error_*`` (realized minus estimated) and ``estimation_mae_*``, the mean
absolute error over the last judged chunks, again each time more labels arrive.

>>> from driftline.core.model.calibration import Calibration
>>> est = PerformanceEstimator("churn", "v1", None, positive="True", window_size=4)
>>> for i, p in enumerate([0.9, 0.8, 0.3, 0.6]):
...     est.update({"event_time_ms": i, "prediction": p >= 0.5,
...                 "scores": {"True": p, "False": 1 - p}, "segment": {}})
>>> snap = est.snapshot(now_ms=10)[0]
>>> snap["window"], snap["count"], round(snap["metrics"]["estimated_accuracy"], 3)
('estimate:4', 4, 0.75)
>>> for i, y in enumerate([True, True, False, False]):
...     est.observe_outcome({"event_time_ms": i, "prediction": [.9, .8, .3, .6][i] >= .5,
...                          "label": y, "scores": {}, "segment": {}})
>>> check = est.checks(now_ms=20, min_labelled=4)[0]
>>> m = check["metrics"]
>>> m["realized_accuracy"], round(m["estimated_accuracy"], 3)
(0.75, 0.75)
>>> abs(m["estimation_error_accuracy"]) < 1e-9
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from driftline.core.model.calibration import Calibration

__all__ = ["ESTIMATE", "ESTIMATE_CHECK", "PerformanceEstimator", "estimates", "summary"]

ESTIMATE = "estimate"
"""Window prefix of the rolling estimate's snapshots: ``estimate:N``."""
ESTIMATE_CHECK = "estimate-check"
"""Window prefix of a closed chunk's estimate against its labels: ``estimate-check:N``."""
OTHER = "__other__"


def _key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@dataclass(slots=True)
class _Chunk:
    """A tumbling chunk: its estimate's sums, then the realized counts of its labels."""

    start: int
    end: int
    n: int = 0
    conf: float = 0.0
    var: float = 0.0
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    tn: float = 0.0
    labelled: int = 0
    correct: int = 0
    conf_labelled: float = 0.0
    rtp: int = 0
    rfp: int = 0
    rfn: int = 0
    rtn: int = 0
    published: int = 0
    """Labelled count when last published."""


def _f1(tp: float, fp: float, fn: float) -> float:
    d = 2 * tp + fp + fn
    return 2 * tp / d if d > 0 else math.nan


def _chunk_f1(c: _Chunk, macro: bool, realized: bool) -> float:
    tp, fp, fn, tn = (c.rtp, c.rfp, c.rfn, c.rtn) if realized else (c.tp, c.fp, c.fn, c.tn)
    pos = _f1(tp, fp, fn)
    return (pos + _f1(tn, fn, fp)) / 2 if macro else pos


@dataclass(slots=True)
class _Segment:
    window: deque[tuple[float, float, float, bool]]
    """(confidence, calibrated p of the positive class, raw positive score, predicted
    positive) of the last predictions; the last three unused for multi-class models."""
    chunks: deque[_Chunk]
    current: _Chunk | None = None
    errors: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    seen: int = 0
    """Predictions added so far (a snapshot is recomputed only when it grew)."""
    cached: tuple[int, dict[str, float]] | None = None


def estimates(
    conf: np.ndarray,
    p_pos: np.ndarray | None = None,
    raw: np.ndarray | None = None,
    pred_pos: np.ndarray | None = None,
    *,
    macro: bool = False,
    auc: bool = True,
    z: float = 1.96,
    draws: int = 40,
    seed: int = 0,
) -> dict[str, float]:
    """CBPE of one window: accuracy with its band, and for a binary model (``p_pos``
    given) F1 (of the positive class, or ``macro``) and, with ``auc``, ROC AUC, each with
    a bootstrap band. Names: ``estimated_<metric>``, ``..._lower``, ``..._upper``.

    >>> e = estimates(np.array([0.9, 0.9, 0.9, 0.9]))
    >>> round(e["estimated_accuracy"], 3), round(e["estimated_accuracy_lower"], 3)
    (0.9, 0.606)
    """
    n = len(conf)
    out: dict[str, float] = {}
    if n == 0:
        return out
    acc = float(conf.mean())
    half = z * math.sqrt(float((conf * (1 - conf)).sum())) / n
    out.update(
        estimated_accuracy=acc,
        estimated_accuracy_lower=max(0.0, acc - half),
        estimated_accuracy_upper=min(1.0, acc + half),
    )
    if p_pos is None or pred_pos is None:
        return out
    q = 1 - p_pos
    tp, fp = float(p_pos[pred_pos].sum()), float(q[pred_pos].sum())
    fn, tn = float(p_pos[~pred_pos].sum()), float(q[~pred_pos].sum())
    f1 = _f1(tp, fp, fn)
    if macro:
        f1 = (f1 + _f1(tn, fn, fp)) / 2
    rng = np.random.default_rng(seed)
    ys = rng.random((draws, n)) < p_pos  # label sets drawn from the calibrated probabilities
    pp = pred_pos[None, :]
    dtp = (ys & pp).sum(1)
    dfp = (~ys & pp).sum(1)
    dfn = (ys & ~pp).sum(1)
    dtn = (~ys & ~pp).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1s = 2 * dtp / (2 * dtp + dfp + dfn)
        if macro:
            f1s = (f1s + 2 * dtn / (2 * dtn + dfn + dfp)) / 2
    if not math.isnan(f1):
        out["estimated_f1"] = f1
        out.update(_band("f1", f1, f1s, z))
    if auc and raw is not None:
        value, aucs = _auc(raw, p_pos, ys)
        if not math.isnan(value):
            out["estimated_roc_auc"] = value
            out.update(_band("roc_auc", value, aucs, z))
    return out


def _band(name: str, value: float, values: np.ndarray, z: float) -> dict[str, float]:
    """``value ± z * sd`` of the metric over the drawn label sets (a few dozen draws
    estimate a spread far better than they estimate 2.5% quantiles)."""
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return {}
    half = z * float(finite.std(ddof=1))
    return {
        f"estimated_{name}_lower": max(0.0, value - half),
        f"estimated_{name}_upper": min(1.0, value + half),
    }


def _auc(raw: np.ndarray, p: np.ndarray, ys: np.ndarray) -> tuple[float, np.ndarray]:
    """ROC AUC of ``raw`` scores with fractional labels ``p`` (the estimate: each pair
    (i, j), i != j, counts ``p_i (1 - p_j)`` times, ties half) and with each drawn label
    set ``ys`` (rows, by mid-ranks).

    >>> v, _ = _auc(np.array([.1, .4, .35, .8]), np.array([0., 0., 1., 1.]), np.ones((1, 4)) > 0)
    >>> v
    0.75
    """
    order = np.argsort(raw, kind="mergesort")
    s, ps = raw[order], p[order]
    qs = 1 - ps
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    group_q = np.add.reduceat(qs, first)
    below = np.repeat(np.cumsum(group_q) - group_q, counts)
    tied = np.repeat(group_q, counts)
    num = float((ps * (below + 0.5 * (tied - qs))).sum())
    denom = float(ps.sum() * qs.sum() - (ps * qs).sum())
    value = num / denom if denom > 0 else math.nan
    ranks = np.empty(len(raw))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)  # 1-based mid-ranks
    n1 = ys.sum(1)
    n0 = ys.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = ((ys * ranks).sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return value, aucs


class PerformanceEstimator:
    """CBPE of one (model, version), per segment: see the module docstring.

    Parameters
    ----------
    calibration
        The version's calibration (None or identity: the scores as they are).
    positive
        Binary models: the positive class of F1 and ROC AUC (None: macro F1, no AUC).
    window_size
        Predictions in the rolling window and in each chunk.
    keep_chunks
        Closed chunks kept for labels to reach (their span is how far back an outcome
        can still be placed).
    confidence
        Coverage of the bands.

    """

    def __init__(
        self,
        model: str,
        version: str,
        calibration: Calibration | None,
        *,
        positive: Any = None,
        window_size: int = 1_000,
        keep_chunks: int = 20,
        confidence: float = 0.95,
        draws: int = 40,
        max_segment_values: int = 50,
        max_segment_attributes: int = 10,
        seed: int = 0,
    ) -> None:
        if window_size < 1 or keep_chunks < 1 or draws < 10:
            raise ValueError("window_size and keep_chunks must be >= 1, draws >= 10")
        if not 0.5 < confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), not {confidence!r}")
        self.model, self.version = model, version
        self.calibration = calibration if calibration and calibration.maps else None
        self.classes = calibration.classes if calibration else ()
        self.positive = None if positive is None else _key(positive)
        self.window_size = window_size
        self.keep_chunks = keep_chunks
        self.z = NormalDist().inv_cdf(0.5 + confidence / 2)
        self.draws = draws
        self.seed = seed
        self.max_segment_values = max_segment_values
        self.max_segment_attributes = max_segment_attributes
        self._segments: dict[str, _Segment] = {"all": self._new()}
        self._values: dict[str, int] = {}
        self._placed: dict[str, _Chunk] = {}
        """Segment 'all': event_id -> the chunk its prediction went to (the newest
        ``window_size * (keep_chunks + 1)``)."""
        self.binary: bool | None = len(self.classes) == 2 if self.classes else None

    def _new(self) -> _Segment:
        return _Segment(deque(maxlen=self.window_size), deque(maxlen=self.keep_chunks))

    def _segment(self, attr: str, value: Any) -> _Segment | None:
        key = f"{attr}={value}"
        seg = self._segments.get(key)
        if seg is not None:
            return seg
        seen = self._values.get(attr)
        if seen is None:
            if len(self._values) >= self.max_segment_attributes:
                return None
            seen = self._values[attr] = 0
        if seen >= self.max_segment_values:
            key = f"{attr}={OTHER}"
            seg = self._segments.get(key)
        else:
            self._values[attr] = seen + 1
        if seg is None:
            seg = self._segments[key] = self._new()
        return seg

    def _segments_of(self, record: Mapping[str, Any]) -> list[_Segment]:
        segs = [self._segments["all"]]
        for attr, value in (record.get("segment") or {}).items():
            seg = self._segment(attr, value)
            if seg is not None:
                segs.append(seg)
        return segs

    def _probabilities(self, scores: Mapping[str, float]) -> Mapping[str, float]:
        return scores if self.calibration is None else self.calibration.probabilities(scores)

    def update(self, prediction: Mapping[str, Any]) -> None:
        """One Prediction (dict shaped like the schema); abstentions and predictions
        without finite scores are skipped."""
        yp, scores = prediction.get("prediction"), prediction.get("scores")
        if yp is None or not scores:
            return
        yp = _key(yp)
        if self.binary is None:
            self.binary = len(scores) == 2
            self.classes = tuple(sorted(scores))
        probs = self._probabilities(scores)
        conf = probs.get(yp, 0.0)
        if not 0.0 <= conf <= 1.0:  # NaN or out of range: nothing to estimate from
            return
        pos = self.positive or (self.classes[1] if len(self.classes) == 2 else "")
        p, raw = float(probs.get(pos, 0.0)), float(scores.get(pos, 0.0))
        row = (conf, p, raw, yp == pos)
        t = int(prediction.get("event_time_ms") or 0)
        eid = prediction.get("event_id")
        for seg in self._segments_of(prediction):
            seg.window.append(row)
            seg.seen += 1
            c = seg.current
            if c is None:
                c = seg.current = _Chunk(t, t)
            if eid is not None and seg is self._segments["all"]:
                placed = self._placed
                placed[str(eid)] = c
                if len(placed) > self.window_size * (self.keep_chunks + 1):
                    del placed[next(iter(placed))]
            c.n += 1
            c.conf += conf
            c.var += conf * (1 - conf)
            c.start, c.end = min(c.start, t), max(c.end, t)
            if yp == pos:
                c.tp += p
                c.fp += 1 - p
            else:
                c.fn += p
                c.tn += 1 - p
            if c.n >= self.window_size:
                seg.chunks.append(c)
                seg.current = None

    def observe_outcome(self, outcome: Mapping[str, Any]) -> None:
        """One Outcome of this version: counted in the chunk whose span holds its event
        time (the newest such chunk; none: too old or too early, ignored)."""
        yp, y = outcome.get("prediction"), outcome.get("label")
        if yp is None or y is None:
            return
        yp, y = _key(yp), _key(y)
        t = int(outcome.get("event_time_ms") or 0)
        scores = outcome.get("scores") or {}
        conf = self._probabilities(scores).get(yp, math.nan) if scores else math.nan
        pos = self.positive or (self.classes[1] if len(self.classes) == 2 else "")
        eid = outcome.get("event_id")
        for seg in self._segments_of(outcome):
            chunk = None
            if eid is not None and seg is self._segments["all"]:
                chunk = self._placed.pop(str(eid), None)  # (a chunk dropped since: unseen)
            if chunk is not None:
                pass
            elif seg.current is not None and seg.current.start <= t <= seg.current.end:
                chunk = seg.current
            else:
                for c in reversed(seg.chunks):
                    if c.start <= t <= c.end:
                        chunk = c
                        break
            if chunk is None:
                continue
            chunk.labelled += 1
            chunk.correct += yp == y
            if not math.isnan(conf):
                chunk.conf_labelled += conf
            if yp == pos:
                chunk.rtp += y == pos
                chunk.rfp += y != pos
            else:
                chunk.rfn += y == pos
                chunk.rtn += y != pos

    @property
    def segments(self) -> list[str]:
        return list(self._segments)

    def snapshot(self, now_ms: int) -> list[dict[str, Any]]:
        """One MetricSnapshot dict (window ``estimate:N``) per segment with predictions."""
        out = []
        macro = self.positive is None
        for key, seg in self._segments.items():
            if not seg.window:
                continue
            if seg.cached is not None and seg.cached[0] == seg.seen:
                metrics = dict(seg.cached[1])
            else:
                metrics = self._estimate(seg, macro)
                seg.cached = (seg.seen, dict(metrics))
            span = [c for c in (*seg.chunks, seg.current) if c is not None]
            out.append(
                self._snap(
                    key,
                    f"{ESTIMATE}:{self.window_size}",
                    now_ms,
                    len(seg.window),
                    metrics,
                    span[-1].start if span else 0,
                    span[-1].end if span else 0,
                    {"n": len(seg.window), "calibrated": int(self.calibration is not None)},
                )
            )
        return out

    def _estimate(self, seg: _Segment, macro: bool) -> dict[str, float]:
        rows = np.array([r[:3] for r in seg.window], dtype=float)
        pred_pos = np.array([r[3] for r in seg.window], dtype=bool)
        binary = bool(self.binary)
        return estimates(
            rows[:, 0],
            rows[:, 1] if binary else None,
            rows[:, 2] if binary else None,
            pred_pos if binary else None,
            macro=macro,
            auc=not macro,
            z=self.z,
            draws=self.draws,
            seed=self.seed,
        )

    def checks(self, now_ms: int, min_labelled: int = 100) -> list[dict[str, Any]]:
        """A MetricSnapshot dict (window ``estimate-check:N``) per closed chunk that has
        ``min_labelled`` outcomes and gained some since it was last published."""
        out = []
        macro = self.positive is None
        binary = bool(self.binary)
        for key, seg in self._segments.items():
            for c in seg.chunks:
                if c.labelled < min_labelled or c.labelled == c.published:
                    continue
                first = c.published == 0
                c.published = c.labelled
                est = c.conf / c.n
                real = c.correct / c.labelled
                error = real - est
                if first:
                    seg.errors.append(abs(error))
                else:
                    seg.errors[-1] = abs(error)  # the chunk's error, updated
                half = self.z * math.sqrt(c.var) / c.n
                metrics = {
                    "estimated_accuracy": est,
                    "estimated_accuracy_lower": max(0.0, est - half),
                    "estimated_accuracy_upper": min(1.0, est + half),
                    "realized_accuracy": real,
                    "estimation_error_accuracy": error,
                    "estimation_mae_accuracy": sum(seg.errors) / len(seg.errors),
                    "labelled_share": c.labelled / c.n,
                }
                if c.conf_labelled:
                    metrics["estimated_accuracy_labelled"] = c.conf_labelled / c.labelled
                if binary:
                    ef1, rf1 = _chunk_f1(c, macro, False), _chunk_f1(c, macro, True)
                    if not (math.isnan(ef1) or math.isnan(rf1)):
                        metrics.update(
                            estimated_f1=ef1, realized_f1=rf1, estimation_error_f1=rf1 - ef1
                        )
                counts = {"n": c.n, "labelled": c.labelled}
                out.append(
                    self._snap(
                        key,
                        f"{ESTIMATE_CHECK}:{self.window_size}",
                        now_ms,
                        c.n,
                        metrics,
                        c.start,
                        c.end,
                        counts,
                    )
                )
        return out

    def _snap(
        self,
        segment: str,
        window: str,
        now_ms: int,
        count: int,
        metrics: dict[str, float],
        start: int,
        end: int,
        counts: dict[str, int],
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "segment": segment,
            "window": window,
            "window_start_ms": int(start),
            "window_end_ms": int(end),
            "emitted_at_ms": now_ms,
            "count": count,
            "metrics": metrics,
            "baseline": {},
            "counts": counts,
        }


def summary(snapshots: Iterable[Mapping[str, Any]], metric: str = "accuracy") -> dict[str, Any]:
    """Estimated beside realized ``metric`` of one version on segment 'all', from its
    latest snapshots (any windows; the newest of each kind is used): ``estimated`` with
    ``lower`` and ``upper`` (window ``estimate:N``), ``realized`` (``count:N``), and from
    the last checked chunk (``estimate-check:N``) ``checked_estimated``,
    ``checked_realized``, ``error`` (realized minus estimated), ``mae`` (over the last
    judged chunks) and ``labelled_share``. Keys without data are None; ``{}`` when there is
    no estimate and no check.

    >>> snaps = [
    ...     {"window": "estimate:1000", "segment": "all", "emitted_at_ms": 5, "count": 1000,
    ...      "metrics": {"estimated_accuracy": 0.8, "estimated_accuracy_lower": 0.77,
    ...                  "estimated_accuracy_upper": 0.83}},
    ...     {"window": "count:1000", "segment": "all", "emitted_at_ms": 5, "count": 400,
    ...      "metrics": {"accuracy": 0.78}},
    ...     {"window": "estimate-check:1000", "segment": "all", "emitted_at_ms": 4,
    ...      "count": 1000, "metrics": {"estimated_accuracy": 0.81, "realized_accuracy": 0.79,
    ...      "estimation_error_accuracy": -0.02, "estimation_mae_accuracy": 0.015,
    ...      "labelled_share": 0.4}}]
    >>> s = summary(snaps)
    >>> s["estimated"], s["realized"], s["error"], s["mae"], s["window"]
    (0.8, 0.78, -0.02, 0.015, 'estimate:1000')
    >>> summary([{"window": "count:1000", "segment": "all", "emitted_at_ms": 1,
    ...           "count": 3, "metrics": {"accuracy": 1.0}}])
    {}
    """
    newest: dict[str, Mapping[str, Any]] = {}
    for s in snapshots:
        if (s.get("segment") or "all") != "all":
            continue
        kind = str(s["window"]).split(":", 1)[0]
        if kind not in (ESTIMATE, ESTIMATE_CHECK, "count"):
            continue
        old = newest.get(kind)
        if old is None or int(s.get("emitted_at_ms") or 0) >= int(old.get("emitted_at_ms") or 0):
            newest[kind] = s
    est, check, real = newest.get(ESTIMATE), newest.get(ESTIMATE_CHECK), newest.get("count")
    if est is None and check is None:
        return {}
    em = est["metrics"] if est else {}
    cm = check["metrics"] if check else {}
    return {
        "metric": metric,
        "window": est["window"] if est else None,
        "estimated": em.get(f"estimated_{metric}"),
        "lower": em.get(f"estimated_{metric}_lower"),
        "upper": em.get(f"estimated_{metric}_upper"),
        "realized": (real["metrics"] if real else {}).get(metric),
        "realized_count": real["count"] if real else None,
        "checked_estimated": cm.get(f"estimated_{metric}"),
        "checked_realized": cm.get(f"realized_{metric}"),
        "error": cm.get(f"estimation_error_{metric}"),
        "mae": cm.get(f"estimation_mae_{metric}"),
        "labelled_share": cm.get("labelled_share"),
    }
