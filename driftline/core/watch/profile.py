"""A version's reference profile of its training data, and the two-sample tests run against it.

Per numeric feature the profile keeps quantile bin edges (``n_bins`` bins from the training
quantiles), the training counts per bin and a sorted sample of at most ``sample_size``
values (evenly spaced order statistics) for the KS test; per categorical feature the counts
of its ``max_categories`` most frequent values (the rest under ``'__other__'``); and the
distribution of the predictions (class frequencies, or bins for a regressor) and of the
scores; for a classifier, the types of the classes it predicts and the classes its scores
name (``label_types``, ``classes``: what its labels are checked against, see
:func:`label_spec`). It travels as compact JSON in ``ModelVersion.reference_profile``;
keys added later are optional, so older profiles still read.

Bins are right-closed: value ``x`` falls in bin ``bisect_left(edges, x)``, so a discrete
feature's most common value does not swallow its neighbours.

>>> rows = [{"amount": float(i), "country": "fr" if i % 4 else "de"} for i in range(100)]
>>> spec = [{"name": "amount", "type": "number"}, {"name": "country", "type": "category"}]
>>> profile = ReferenceProfile.build(rows, spec, predictions=[i % 2 == 0 for i in range(100)])
>>> profile.features["amount"].counts
(10, 10, 10, 10, 10, 10, 10, 10, 10, 10)
>>> profile.features["country"].counts
{'fr': 75, 'de': 25}
>>> ReferenceProfile.from_json(profile.to_json()) == profile
True
>>> round(psi([50, 50], [25, 75]), 4)
0.2747
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from driftline.core.watch.performance import label_key
from driftline.core.wire.envelope import LabelSpec, label_type

__all__ = [
    "CategoricalProfile",
    "NumericProfile",
    "ReferenceProfile",
    "bin_counts",
    "category_counts",
    "chi2_test",
    "ks_test",
    "label_spec",
    "psi",
]

OTHER = "__other__"
NUMERIC_TYPES = ("number", "integer")
CATEGORICAL_TYPES = ("boolean", "category")
FORMAT_VERSION = 1


def rounded(x: float) -> float:
    """Round to 6 significant digits (keeps the JSON small). A sample kept this way must
    be compared with live values rounded alike: a tree's scores take a few distinct
    values, and 0.717678 against 0.7176781... made KS see D = 0.5 on a stationary stream.
    """
    return float(f"{x:.6g}")


_r = rounded


def psi(expected: Sequence[float], actual: Sequence[float], eps: float = 1e-4) -> float:
    """Population stability index of two histograms over the same bins.

    Both are normalised to fractions; fractions below ``eps`` are raised to ``eps`` so an
    empty bin gives a large but finite term. ``sum((a - e) * ln(a / e))``.
    """
    ne, na = sum(expected), sum(actual)
    if ne <= 0 or na <= 0:
        raise ValueError("psi needs two non-empty histograms")
    if len(expected) != len(actual):
        raise ValueError(f"psi needs histograms of one length ({len(expected)} != {len(actual)})")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        fe, fa = max(e / ne, eps), max(a / na, eps)
        total += (fa - fe) * math.log(fa / fe)
    return total


def chi2_test(expected: Sequence[float], actual: Sequence[float]) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count histograms (no continuity correction).

    Bins empty in both are dropped; returns ``(statistic, p_value)``, ``(0.0, 1.0)`` when
    fewer than two bins remain. Same value as ``scipy.stats.chi2_contingency([e, a],
    correction=False)``.
    """
    pairs = [(e, a) for e, a in zip(expected, actual, strict=True) if e + a > 0]
    ne, na = sum(e for e, _ in pairs), sum(a for _, a in pairs)
    if len(pairs) < 2 or ne <= 0 or na <= 0:
        return 0.0, 1.0
    n = ne + na
    stat = 0.0
    for e, a in pairs:
        col = e + a
        ee, ea = col * ne / n, col * na / n
        stat += (e - ee) ** 2 / ee + (a - ea) ** 2 / ea
    return stat, float(sps.chi2.sf(stat, len(pairs) - 1))


def ks_test(reference: Sequence[float], live: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov ``(D, p_value)`` (``scipy.stats.ks_2samp``)."""
    if not reference or not live:
        return 0.0, 1.0
    res = sps.ks_2samp(reference, live)
    return float(res.statistic), float(res.pvalue)


def bin_counts(edges: Sequence[float], values: Iterable[float]) -> list[int]:
    """How many of ``values`` fall in each right-closed bin of ``edges`` (len + 1 bins).

    >>> bin_counts((1.0, 2.0), [0.5, 1.0, 1.5, 3.0])
    [2, 1, 1]
    """
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect_left(edges, v)] += 1
    return counts


def category_counts(values: Iterable[Any]) -> tuple[Counter[str], int]:
    """Each value's count by its label key, and how many were missing (None).

    >>> category_counts(["a", True, None, "a"])
    (Counter({'a': 2, 'True': 1}), 1)
    """
    seen: Counter[str] = Counter()
    missing = 0
    for v in values:
        if v is None:
            missing += 1
        else:
            seen[label_key(v)] += 1
    return seen, missing


@dataclass(frozen=True)
class NumericProfile:
    """Quantile bins, their training counts and a sorted sample of one numeric feature."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    sample: tuple[float, ...]
    missing: int = 0
    nan: int = 0
    inf: int = 0

    @classmethod
    def build(
        cls, values: Iterable[Any], n_bins: int = 10, sample_size: int = 500
    ) -> NumericProfile:
        finite: list[float] = []
        missing = nan = inf = 0
        for v in values:
            if v is None:
                missing += 1
            elif v != v:
                nan += 1
            elif v in (math.inf, -math.inf):
                inf += 1
            else:
                finite.append(float(v))
        finite.sort()
        if finite:
            qs = np.quantile(finite, [i / n_bins for i in range(1, n_bins)])
            edges = tuple(sorted({_r(float(q)) for q in qs}))
        else:
            edges = ()
        counts = bin_counts(edges, finite)
        n = len(finite)
        if n > sample_size:
            finite = [finite[int((i + 0.5) * n / sample_size)] for i in range(sample_size)]
        return cls(edges, tuple(counts), tuple(_r(v) for v in finite), missing, nan, inf)

    @property
    def n(self) -> int:
        """Finite values seen."""
        return sum(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "number",
            "edges": list(self.edges),
            "counts": list(self.counts),
            "sample": list(self.sample),
            "missing": self.missing,
            "nan": self.nan,
            "inf": self.inf,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericProfile:
        return cls(
            tuple(map(float, d["edges"])),
            tuple(map(int, d["counts"])),
            tuple(map(float, d["sample"])),
            int(d.get("missing", 0)),
            int(d.get("nan", 0)),
            int(d.get("inf", 0)),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """Counts of the most frequent values of one categorical feature (rest: ``__other__``)."""

    counts: dict[str, int]
    missing: int = 0

    @classmethod
    def build(cls, values: Iterable[Any], max_categories: int = 50) -> CategoricalProfile:
        seen, missing = category_counts(values)
        counts = dict(seen.most_common(max_categories))
        rest = sum(seen.values()) - sum(counts.values())
        if rest:
            counts[OTHER] = counts.get(OTHER, 0) + rest
        return cls(counts, missing)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"type": "category", "counts": self.counts, "missing": self.missing}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalProfile:
        return cls({str(k): int(v) for k, v in d["counts"].items()}, int(d.get("missing", 0)))


Profile = NumericProfile | CategoricalProfile


def _profile_from_dict(d: Mapping[str, Any]) -> Profile:
    kind = d.get("type")
    if kind == "number":
        return NumericProfile.from_dict(d)
    if kind == "category":
        return CategoricalProfile.from_dict(d)
    raise ValueError(f"unknown profile type {kind!r}")


@dataclass(frozen=True)
class ReferenceProfile:
    """Training-data profile of one model version (see the module docstring)."""

    features: dict[str, Profile]
    prediction: Profile | None = None
    score: NumericProfile | None = None
    score_class: str | None = None
    n: int = 0
    label_types: tuple[str, ...] = ()
    """Classifier: the types of the classes it predicts (boolean, integer, string)."""
    classes: tuple[str, ...] = ()
    """Classifier: the classes its predictions and scores name (``label_key`` form)."""

    @classmethod
    def build(
        cls,
        rows: Iterable[Mapping[str, Any]],
        spec: Iterable[Mapping[str, Any]],
        predictions: Iterable[Any] | None = None,
        scores: Iterable[Mapping[str, float]] | None = None,
        *,
        task: str | None = None,
        score_class: str | None = None,
        n_bins: int = 10,
        sample_size: int = 500,
        max_categories: int = 50,
    ) -> ReferenceProfile:
        """Profile ``rows`` (feature maps) by the FeatureSpec dicts in ``spec``.

        ``predictions`` are profiled as categories for ``task='classification'`` (or when
        any is a str or bool), else as numbers. ``scores`` (class -> probability maps) are
        profiled by the score of ``score_class``, or the top score when it is None.
        """
        if n_bins < 2 or sample_size < 1 or max_categories < 1:
            raise ValueError("n_bins must be >= 2, sample_size and max_categories >= 1")
        rows = list(rows)
        features: dict[str, Profile] = {}
        for f in spec:
            name, kind = f["name"], f["type"]
            values = [row.get(name) for row in rows]
            if kind in NUMERIC_TYPES:
                features[name] = NumericProfile.build(values, n_bins, sample_size)
            elif kind in CATEGORICAL_TYPES:
                features[name] = CategoricalProfile.build(values, max_categories)
            else:
                raise ValueError(f"feature {name!r} has unknown type {kind!r}")
        prediction: Profile | None = None
        label_types: set[str] = set()
        classes: set[str] = set()
        scores = None if scores is None else list(scores)
        if predictions is not None:
            preds = list(predictions)
            categorical = task == "classification" or (
                task is None and any(isinstance(p, (str, bool)) for p in preds)
            )
            if categorical:
                label_types = {label_type(p) for p in preds if p is not None}
                classes = {label_key(p) for p in preds if p is not None}
                classes.update(c for s in scores or () for c in s)
            prediction = (
                CategoricalProfile.build(preds, max_categories)
                if categorical
                else NumericProfile.build(preds, n_bins, sample_size)
            )
        score = None
        if scores is not None:
            score = NumericProfile.build(
                (score_of(s, score_class) for s in scores), n_bins, sample_size
            )
        return cls(
            features, prediction, score, score_class, len(rows),
            tuple(sorted(label_types)), tuple(sorted(classes)[:max_categories]),
        )  # fmt: skip

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "n": self.n,
            "features": {k: p.to_dict() for k, p in self.features.items()},
        }
        if self.prediction is not None:
            d["prediction"] = self.prediction.to_dict()
        if self.score is not None:
            d["score"] = self.score.to_dict()
            d["score_class"] = self.score_class
        if self.label_types:
            d["label_types"] = list(self.label_types)
            d["classes"] = list(self.classes)
        return json.dumps(d, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        d = json.loads(text)
        if d.get("v") != FORMAT_VERSION:
            raise ValueError(f"unsupported reference profile format {d.get('v')!r}")
        score = d.get("score")
        pred = d.get("prediction")
        return cls(
            {k: _profile_from_dict(p) for k, p in d["features"].items()},
            None if pred is None else _profile_from_dict(pred),
            None if score is None else NumericProfile.from_dict(score),
            d.get("score_class"),
            int(d.get("n", 0)),
            tuple(d.get("label_types", ())),
            tuple(d.get("classes", ())),
        )


def score_of(scores: Mapping[str, float] | None, score_class: str | None) -> float | None:
    """The score a profile tracks: that of ``score_class``, else the top one."""
    if not scores:
        return None
    if score_class is not None:
        return scores.get(score_class)
    return max(scores.values())


def label_spec(record: Mapping[str, Any]) -> LabelSpec:
    """What the labels of a ModelVersion record's model must be (see
    :func:`driftline.core.wire.envelope.check_label`): its task and, for a classifier,
    the class types and classes its profile recorded. A version profiled before they were
    recorded is judged by its predictions' profile: only ``True``/``False`` means a
    boolean model; other class names are ambiguous (``"1"`` is the int 1 or the string
    "1"), so such a version checks the task only.

    >>> rows = [{"x": float(i)} for i in range(10)]
    >>> profile = ReferenceProfile.build(rows, [{"name": "x", "type": "number"}],
    ...     predictions=[i > 4 for i in range(10)], task="classification")
    >>> spec = label_spec({"model": "churn", "version": "v1", "task": "classification",
    ...                    "reference_profile": profile.to_json()})
    >>> sorted(spec.types), spec.classes, spec.source
    (['boolean'], ('False', 'True'), 'churn v1')
    """
    task = str(record["task"])
    source = f"{record.get('model')} {record.get('version')}"
    if task != "classification":
        return LabelSpec(task, source=source)
    try:
        profile = ReferenceProfile.from_json(record["reference_profile"])
    except (ValueError, KeyError, TypeError):
        return LabelSpec(task, source=source)
    types, classes = profile.label_types, profile.classes
    if not types and isinstance(profile.prediction, CategoricalProfile):
        seen = set(profile.prediction.counts) - {OTHER}
        if seen and seen <= {"True", "False"}:
            types, classes = ("boolean",), tuple(sorted(seen))
    return LabelSpec(task, frozenset(types), classes, source)
