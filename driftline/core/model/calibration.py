"""Calibrating a classifier's class scores on held-out data, and its calibration error.

A classifier's scores estimate the probability of each class only as well as the model
was fitted; a Hoeffding tree's leaf frequencies or an under-trained logistic regression
are often over- or under-confident. Confidence-based performance estimation
(:mod:`driftline.core.watch.estimate`) needs probabilities that mean what they say, so
each classifier version is calibrated at training time on its held-out rows (never
trained on), and the map travels with the version (ModelVersion v3's ``calibration``).

Method, by what the held-out rows support (the smaller class count decides):

=========  ===================================================================
isotonic   >= ``ISOTONIC_MIN_ROWS`` rows and >= ``ISOTONIC_MIN_CLASS`` of the rarer
           outcome: a monotone step map (pool-adjacent-violators), as NannyML's CBPE
           uses; no shape assumed, but it needs many rows or it overfits its steps.
platt      >= ``PLATT_MIN_ROWS`` rows and >= ``PLATT_MIN_CLASS`` of the rarer outcome:
           ``sigmoid(a * logit(p) + b)``, two parameters, with Platt's smoothed
           targets; stable on small samples, but it can only bend the scores one way.
identity   fewer rows: the scores are used as they are (and the reason says so).
=========  ===================================================================

A binary model gets one map (for the second class in label order, the other is its
complement); a multi-class model one map per class (one against the rest), the mapped
scores normalised to sum to 1.

Calibration error is the top-label expected calibration error (ECE): the confidence of
the predicted class in ``ECE_BINS`` equal-width bins, ``sum(n_b / n * |accuracy_b -
confidence_b|)``. ``ece_after`` is measured by cross-fitting (a map fitted on the even
rows judges the odd ones and the reverse), so it is not flattered by the rows that fitted
it; the map that ships is then fitted on all the rows.

>>> import random
>>> rng = random.Random(3)
>>> rows = []
>>> for _ in range(4_000):   # a model whose scores are too confident
...     p = rng.random()
...     label = rng.random() < 0.5 + (p - 0.5) * 0.4
...     rows.append((p >= 0.5, {"True": p, "False": 1 - p}, label))
>>> cal = fit(rows)
>>> cal.method, cal.rows, cal.ece_before > 0.1, cal.ece_after < 0.03
('isotonic', 4000, True, True)
>>> round(cal.probabilities({"True": 0.95, "False": 0.05})["True"], 1)
0.7
>>> Calibration.from_record(cal.to_record()) == cal
True
>>> fit(rows[:200]).method, fit(rows[:20]).method
('platt', 'identity')
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ECE_BINS",
    "Calibration",
    "ClassMap",
    "ece",
    "fit",
    "fit_isotonic",
    "fit_platt",
]

ISOTONIC_MIN_ROWS = 1_000
ISOTONIC_MIN_CLASS = 100
PLATT_MIN_ROWS = 50
PLATT_MIN_CLASS = 5
ECE_BINS = 10
_EPS = 1e-6

Row = tuple[Any, Mapping[str, float], Any]
"""(prediction, class scores, label) of one held-out row."""


def _key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


@dataclass(frozen=True, slots=True)
class ClassMap:
    """One score-to-probability map: isotonic knots (``xs``, ``ys``, linear between them,
    flat beyond) or Platt's ``slope`` and ``intercept`` on the logit; neither: identity.

    >>> round(ClassMap(xs=(0.2, 0.8), ys=(0.1, 0.5))(0.5), 6)
    0.3
    >>> ClassMap(slope=1.0, intercept=0.0)(0.3)
    0.3
    """

    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()
    slope: float | None = None
    intercept: float | None = None

    def __call__(self, p: float) -> float:
        if self.xs:
            xs, ys = self.xs, self.ys
            i = bisect_right(xs, p)
            if i == 0:
                return ys[0]
            if i == len(xs):
                return ys[-1]
            x0, x1 = xs[i - 1], xs[i]
            return ys[i - 1] + (ys[i] - ys[i - 1]) * (p - x0) / (x1 - x0)
        if self.slope is not None and self.intercept is not None:
            return _sigmoid(self.slope * _logit(p) + self.intercept)
        return p


IDENTITY = ClassMap()


def fit_isotonic(scores: Sequence[float], hits: Sequence[bool]) -> ClassMap:
    """Pool-adjacent-violators: the non-decreasing step map of ``hits`` on ``scores``
    with the least squared error; each block contributes its lowest and highest score as
    knots (so the map is flat within a block and linear between blocks).

    >>> m = fit_isotonic([0.1, 0.2, 0.3, 0.4], [False, True, False, True])
    >>> m.xs, m.ys
    ((0.1, 0.2, 0.3, 0.4), (0.0, 0.5, 0.5, 1.0))
    """
    if len(scores) != len(hits) or not scores:
        raise ValueError("scores and hits must be non-empty and of one length")
    pairs = sorted(zip(scores, hits, strict=True))
    # blocks: [sum of hits, count, lowest score, highest score]
    blocks: list[list[float]] = []
    for s, h in pairs:
        blocks.append([float(h), 1.0, s, s])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            top = blocks.pop()
            below = blocks[-1]
            below[0] += top[0]
            below[1] += top[1]
            below[3] = top[3]
    xs: list[float] = []
    ys: list[float] = []
    for total, n, lo, hi in blocks:
        for x in (lo, hi) if hi > lo else (lo,):
            if xs and x <= xs[-1]:  # equal scores in two blocks cannot happen; be safe
                continue
            xs.append(x)
            ys.append(total / n)
    return ClassMap(xs=tuple(xs), ys=tuple(ys))


def fit_platt(scores: Sequence[float], hits: Sequence[bool], iterations: int = 50) -> ClassMap:
    """Platt scaling on the logit of ``scores``: ``sigmoid(a * logit(p) + b)``, fitted by
    Newton's method on the log loss with Platt's smoothed targets
    (``(n1 + 1) / (n1 + 2)`` and ``1 / (n0 + 2)``).

    >>> m = fit_platt([0.9] * 60 + [0.1] * 60, [True] * 45 + [False] * 15 + [False] * 60)
    >>> round(m(0.9), 2), round(m(0.1), 2)
    (0.74, 0.01)
    """
    if len(scores) != len(hits) or not scores:
        raise ValueError("scores and hits must be non-empty and of one length")
    n1 = sum(1 for h in hits if h)
    n0 = len(hits) - n1
    t1, t0 = (n1 + 1) / (n1 + 2), 1 / (n0 + 2)
    zs = [_logit(s) for s in scores]
    ts = [t1 if h else t0 for h in hits]
    a, b = 1.0, 0.0
    for _ in range(iterations):
        g_a = g_b = h_aa = h_ab = h_bb = 0.0
        for z, t in zip(zs, ts, strict=True):
            p = _sigmoid(a * z + b)
            d, w = p - t, max(p * (1 - p), 1e-12)
            g_a += d * z
            g_b += d
            h_aa += w * z * z
            h_ab += w * z
            h_bb += w
        det = h_aa * h_bb - h_ab * h_ab
        if abs(det) < 1e-12:
            break
        step_a = (h_bb * g_a - h_ab * g_b) / det
        step_b = (h_aa * g_b - h_ab * g_a) / det
        a, b = a - step_a, b - step_b
        if abs(step_a) < 1e-9 and abs(step_b) < 1e-9:
            break
    return ClassMap(slope=a, intercept=b)


def ece(confidences: Sequence[float], hits: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Expected calibration error of predicted-class ``confidences`` against whether the
    prediction was right (``hits``), over ``bins`` equal-width bins.

    >>> ece([0.9, 0.9, 0.6, 0.6], [True, False, True, True])
    0.4
    """
    n = len(confidences)
    if n == 0:
        return math.nan
    sums = [[0.0, 0.0, 0] for _ in range(bins)]
    for c, h in zip(confidences, hits, strict=True):
        b = sums[min(int(c * bins), bins - 1)]
        b[0] += c
        b[1] += float(h)
        b[2] += 1
    return round(sum(abs(s[1] - s[0]) for s in sums if s[2]) / n, 12)


@dataclass(frozen=True)
class Calibration:
    """A version's calibration: the method, why, the rows it was fitted on, the classes
    it maps (label keys, in order), one map per class (binary: one, for ``classes[1]``),
    and the ECE of the raw and of the (cross-fitted) calibrated scores."""

    method: str
    reason: str
    rows: int
    classes: tuple[str, ...]
    maps: dict[str, ClassMap] = field(default_factory=dict)
    ece_before: float = math.nan
    ece_after: float = math.nan

    def probabilities(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Calibrated probability of every class of ``scores`` (classes it does not
        know keep their score; identity: the scores as they are)."""
        if not self.maps:
            return dict(scores)
        if len(self.classes) == 2:
            neg, pos = self.classes
            p = self.maps[pos](scores.get(pos, 1 - scores.get(neg, 0.0)))
            return {**scores, pos: p, neg: 1 - p}
        out = {c: (self.maps[c](p) if c in self.maps else p) for c, p in scores.items()}
        total = sum(out.values())
        return {c: p / total for c, p in out.items()} if total > 0 else dict(scores)

    def confidence(self, prediction: Any, scores: Mapping[str, float]) -> float:
        """Calibrated probability that ``prediction`` is right."""
        return self.probabilities(scores).get(_key(prediction), 0.0)

    def to_record(self) -> dict[str, Any]:
        """The ModelVersion v3 ``calibration`` record."""
        return {
            "method": self.method,
            "reason": self.reason,
            "rows": self.rows,
            "classes": list(self.classes),
            "maps": {
                c: {
                    "xs": list(m.xs),
                    "ys": list(m.ys),
                    "slope": m.slope,
                    "intercept": m.intercept,
                }
                for c, m in self.maps.items()
            },
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> Calibration | None:
        """The calibration a ModelVersion record carries (None: none, a v2 record)."""
        if not record:
            return None
        maps = {
            c: ClassMap(
                tuple(m.get("xs") or ()),
                tuple(m.get("ys") or ()),
                m.get("slope"),
                m.get("intercept"),
            )
            for c, m in (record.get("maps") or {}).items()
        }
        return cls(
            method=str(record["method"]),
            reason=str(record.get("reason") or ""),
            rows=int(record.get("rows") or 0),
            classes=tuple(record.get("classes") or ()),
            maps=maps,
            ece_before=float(record.get("ece_before", math.nan)),
            ece_after=float(record.get("ece_after", math.nan)),
        )


def _method(n: int, rarer: int) -> tuple[str, str]:
    if n >= ISOTONIC_MIN_ROWS and rarer >= ISOTONIC_MIN_CLASS:
        return "isotonic", (
            f"isotonic: {n} held-out rows, {rarer} of the rarer outcome (>= "
            f"{ISOTONIC_MIN_ROWS} and {ISOTONIC_MIN_CLASS}) support a free monotone map"
        )
    if n >= PLATT_MIN_ROWS and rarer >= PLATT_MIN_CLASS:
        return "platt", (
            f"platt: {n} held-out rows, {rarer} of the rarer outcome (isotonic needs >= "
            f"{ISOTONIC_MIN_ROWS} and {ISOTONIC_MIN_CLASS}); two parameters do not overfit"
        )
    return "identity", (
        f"identity: {n} held-out rows, {rarer} of the rarer outcome, too few to fit a map "
        f"(Platt needs >= {PLATT_MIN_ROWS} and {PLATT_MIN_CLASS}); raw scores used"
    )


def _fit_maps(
    method: str, classes: Sequence[str], rows: Sequence[tuple[Mapping[str, float], str]]
) -> dict[str, ClassMap]:
    if method == "identity":
        return {}
    targets = [classes[1]] if len(classes) == 2 else list(classes)
    fitter = fit_isotonic if method == "isotonic" else fit_platt
    maps = {}
    for c in targets:
        hits = [y == c for _, y in rows]
        if not any(hits) or all(hits):
            maps[c] = IDENTITY
            continue
        maps[c] = fitter([float(s.get(c, 0.0)) for s, _ in rows], hits)
    return maps


def _confidences(
    cal: Calibration, rows: Sequence[tuple[str, Mapping[str, float], str]]
) -> list[float]:
    return [cal.confidence(yp, s) for yp, s, _ in rows]


def fit(rows: Sequence[Row], classes: Sequence[Any] | None = None) -> Calibration:
    """Calibrate on held-out ``rows`` of (prediction, class scores, label); rows with no
    prediction or no scores are left out. ``classes`` default to every class the scores
    and labels name, in label-key order."""
    usable = [
        (_key(yp), {_key(c): float(p) for c, p in s.items()}, _key(y))
        for yp, s, y in rows
        if yp is not None and s and y is not None
    ]
    names = sorted(
        {_key(c) for c in classes}
        if classes is not None
        else {c for _, s, y in usable for c in (*s, y)}
    )
    n = len(usable)
    counts = [sum(1 for *_, y in usable if y == c) for c in names]
    rarer = min(counts, default=0)  # (one against the rest: the rarest class bounds each map)
    method, reason = _method(n, rarer)
    raw_conf = [s.get(yp, 0.0) for yp, s, _ in usable]
    hits = [yp == y for yp, _, y in usable]
    before = ece(raw_conf, hits)
    classes_t = tuple(names)
    if method == "identity" or len(names) < 2:
        return Calibration("identity", reason, n, classes_t, {}, before, before)
    pairs = [(s, y) for _, s, y in usable]
    even, odd = usable[0::2], usable[1::2]
    after_conf: list[float] = [0.0] * n
    for fold, (fit_on, judge) in enumerate([(odd, even), (even, odd)]):
        fold_cal = Calibration(
            method,
            reason,
            len(fit_on),
            classes_t,
            _fit_maps(method, names, [(s, y) for _, s, y in fit_on]),
        )
        for i, c in enumerate(_confidences(fold_cal, judge)):
            after_conf[2 * i + fold] = c
    after = ece(after_conf, hits)
    if after > before:  # the map fitted on one half misjudges the other: keep the scores
        why = (f"identity: {method} calibrated, cross-fitted, had ECE {after:.4f} against "
               f"{before:.4f} raw on {n} held-out rows; raw scores used")  # fmt: skip
        return Calibration("identity", why, n, classes_t, {}, before, before)
    return Calibration(method, reason, n, classes_t, _fit_maps(method, names, pairs), before, after)
