"""Feature and prediction drift of the live stream against a version's reference profile.

Per event, ``FeatureDriftMonitor.update`` does one ``bisect`` per numeric feature, one dict
increment per categorical feature and one random draw (a row reservoir for the KS test):
no test runs per event. The live window is the last ``window_size`` events, kept as
``n_chunks`` chunks (so it holds between ``window_size * (n_chunks - 1) / n_chunks`` and
``window_size`` events); each chunk keeps its own reservoir of rows.

``evaluate`` computes, per feature, PSI against the profile's bins, a chi-square test of
the bin (or category) counts, and for numbers the KS statistic against the profile's
sample. A feature drifts only when an effect size passes its threshold *and* its test is
significant: ``(psi - bias >= psi_threshold and p_chi2 < a) or (ks >= ks_threshold and
p_ks < a)``, where ``bias`` is PSI's expected value between two samples of one distribution
and ``a`` is ``alpha`` divided by the number of tests in the evaluation (Bonferroni); KS
needs at least 300 live values. Large windows thus do not flag tiny shifts, and small
windows or frequent evaluations do not flag noise.
The prediction (``__prediction__``) and top or chosen class score (``__score__``) are
tested the same way and need no labels. Names in ``exclude`` (the models file's
``[models.NAME.drift] exclude``: time stamps, ids, counters) are neither counted nor
tested, so they never drift, alert or trigger, nor count in the Bonferroni correction.

>>> import random
>>> from driftline.core.watch.profile import ReferenceProfile
>>> rng = random.Random(1)
>>> train = [{"amount": rng.gauss(0, 1)} for _ in range(5_000)]
>>> profile = ReferenceProfile.build(train, [{"name": "amount", "type": "number"}])
>>> monitor = FeatureDriftMonitor("churn", "v1", profile, window_size=2_000)
>>> for _ in range(2_000):
...     monitor.update({"amount": rng.gauss(1, 1)})
>>> [(r.feature, r.drifted, r.test) for r in monitor.evaluate()]
[('amount', True, 'psi')]
>>> [e.detector for e in monitor.events(monitor.evaluate(), now_ms=0)]
['psi']
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.core.watch.concept_drift import FEATURE_DRIFT, PREDICTION_DRIFT, DriftEvent
from driftline.core.watch.profile import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    chi2_test,
    ks_test,
    psi,
    rounded,
    score_of,
)

__all__ = ["PREDICTION", "SCORE", "FeatureDrift", "FeatureDriftMonitor", "drift_metrics"]

KS_MIN_SAMPLE = 300
"""No KS verdict on fewer live values: with ~100 of them, D >= 0.1 is common noise."""

BATCH_MIN = 64
"""Fewer rows than this are counted one by one (numpy's cost per call outweighs it)."""

Row = tuple[Mapping[str, Any], Any, Mapping[str, float] | None]
"""One event for :meth:`FeatureDriftMonitor.update_many`: features, prediction, scores."""

PREDICTION = "__prediction__"
SCORE = "__score__"


@dataclass(frozen=True)
class FeatureDrift:
    """Drift statistics of one feature (or ``__prediction__`` / ``__score__``)."""

    feature: str
    n: int  # live values with a usable value (finite number or category)
    missing_rate: float
    nan_rate: float
    inf_rate: float
    psi: float | None = None
    chi2_p: float | None = None
    ks: float | None = None
    ks_p: float | None = None
    drifted: bool = False
    test: str | None = None  # 'psi' or 'ks': the one that flagged

    @property
    def kind(self) -> str:
        return PREDICTION_DRIFT if self.feature in (PREDICTION, SCORE) else FEATURE_DRIFT


class _Chunk:
    __slots__ = ("bad", "bins", "cats", "n", "rows")

    def __init__(self, numeric: list[tuple[float, ...]], categorical: int) -> None:
        self.n = 0
        self.bins = [[0] * (len(edges) + 1) for edges in numeric]
        self.bad = [[0, 0, 0] for _ in range(len(numeric) + categorical)]  # missing nan inf
        self.cats: list[dict[str, int]] = [{} for _ in range(categorical)]
        self.rows: list[list[Any]] = []


class FeatureDriftMonitor:
    """Live-window feature and prediction drift of one version against its profile.

    Parameters
    ----------
    model, version, profile
        The version and its ``ReferenceProfile``.
    window_size, n_chunks
        Live window length in events and the chunks it is kept in.
    reservoir_size
        Live rows kept for the KS test, across all chunks.
    psi_threshold, ks_threshold, alpha
        Effect size thresholds and significance level (see the module docstring).
    eps
        PSI smoothing: bin fractions are at least ``eps``.
    min_count
        Features with fewer live values are reported without tests.
    seed
        Seed of the reservoir's random draws.
    exclude
        Features (or ``__prediction__``, ``__score__``) left out of every test.

    """

    def __init__(
        self,
        model: str,
        version: str,
        profile: ReferenceProfile,
        *,
        window_size: int = 10_000,
        n_chunks: int = 4,
        reservoir_size: int = 500,
        psi_threshold: float = 0.2,
        ks_threshold: float = 0.1,
        alpha: float = 0.01,
        eps: float = 1e-4,
        min_count: int = 200,
        seed: int = 0,
        exclude: Iterable[str] = (),
    ) -> None:
        if n_chunks < 1 or window_size < n_chunks:
            raise ValueError("n_chunks must be >= 1 and window_size >= n_chunks")
        if reservoir_size < n_chunks:
            raise ValueError("reservoir_size must be >= n_chunks")
        if psi_threshold <= 0 or not 0 < ks_threshold <= 1 or not 0 < alpha < 1:
            raise ValueError("psi_threshold must be > 0, ks_threshold in (0, 1], alpha in (0, 1)")
        if not 0 < eps < 1 or min_count < 1:
            raise ValueError("eps must be in (0, 1) and min_count >= 1")
        self.model, self.version, self.profile = model, version, profile
        self.window_size, self.n_chunks = window_size, n_chunks
        self.psi_threshold, self.ks_threshold, self.alpha = psi_threshold, ks_threshold, alpha
        self.eps, self.min_count = eps, min_count
        self._chunk_size = window_size // n_chunks
        self._reservoir = reservoir_size // n_chunks
        self._rng = random.Random(seed)
        self.exclude = frozenset(exclude)
        self._num: list[tuple[str, NumericProfile]] = []
        self._cat: list[tuple[str, CategoricalProfile]] = []
        for name, p in profile.features.items():
            if name in self.exclude:
                continue
            if isinstance(p, NumericProfile):
                self._num.append((name, p))
            else:
                self._cat.append((name, p))
        self._names = [name for name, _ in self._num]
        self._n_cat = len(self._cat)
        prediction = None if PREDICTION in self.exclude else profile.prediction
        self._pred_numeric = isinstance(prediction, NumericProfile)
        if isinstance(prediction, NumericProfile):
            self._num.append((PREDICTION, prediction))
        elif isinstance(prediction, CategoricalProfile):
            self._cat.append((PREDICTION, prediction))
        self._score = None if SCORE in self.exclude else profile.score
        if self._score is not None:
            self._num.append((SCORE, self._score))
        self._edges = [p.edges for _, p in self._num]
        self._edge_arrays = [np.asarray(e, dtype=np.float64) for e in self._edges]
        self._known = [frozenset(p.counts) for _, p in self._cat]
        self._chunks: deque[_Chunk] = deque(maxlen=n_chunks)
        self._new_chunk()

    def _new_chunk(self) -> _Chunk:
        chunk = _Chunk(self._edges, len(self._cat))
        self._chunks.append(chunk)
        return chunk

    def update(
        self,
        features: Mapping[str, Any],
        prediction: Any = None,
        scores: Mapping[str, float] | None = None,
    ) -> None:
        """Count one event's features (and, without labels, its prediction and scores)."""
        chunk = self._chunks[-1]
        if chunk.n >= self._chunk_size:
            chunk = self._new_chunk()
        n = chunk.n = chunk.n + 1
        get = features.get
        xs: list[Any] = [get(name) for name in self._names]
        if self._pred_numeric:
            xs.append(prediction)
        if self._score is not None:
            xs.append(score_of(scores, self.profile.score_class))
        bad, bins, edges = chunk.bad, chunk.bins, self._edges
        for j, x in enumerate(xs):
            if x is None:
                bad[j][0] += 1
            elif x != x:
                bad[j][1] += 1
            elif x in (math.inf, -math.inf):
                bad[j][2] += 1
            else:
                try:
                    bins[j][bisect_left(edges[j], x)] += 1
                except TypeError:  # not a number: validation should have caught it
                    bad[j][0] += 1
        off, cf = len(xs), self._n_cat
        for j, (name, _) in enumerate(self._cat):
            v = get(name) if j < cf else prediction
            if v is None:
                bad[off + j][0] += 1
                continue
            key = v if isinstance(v, str) else str(v)
            counts = chunk.cats[j]
            key = key if key in self._known[j] else OTHER
            counts[key] = counts.get(key, 0) + 1
        k = self._reservoir
        if n <= k:
            chunk.rows.append(xs)
        else:
            i = int(self._rng.random() * n)
            if i < k:
                chunk.rows[i] = xs

    def update_many(self, rows: Sequence[Row]) -> None:
        """:meth:`update` for each of ``rows`` (features, prediction, scores), in order,
        with the same result: the same counts, and the same reservoir rows from the same
        random draws. Parts of ``BATCH_MIN`` rows or more are counted a column at a time
        with numpy (``np.searchsorted`` is ``bisect_left``); a column it cannot take as
        numbers (a string, an int beyond int64) is counted value by value."""
        i = 0
        while i < len(rows):
            chunk = self._chunks[-1]
            if chunk.n >= self._chunk_size:
                chunk = self._new_chunk()
            take = min(len(rows) - i, self._chunk_size - chunk.n)
            part = rows[i : i + take]
            if take < BATCH_MIN:
                for features, prediction, scores in part:
                    self.update(features, prediction, scores)
            else:
                self._count_part(chunk, part)
            i += take

    def _count_part(self, chunk: _Chunk, part: Sequence[Row]) -> None:
        """Count ``part``, which fits in ``chunk``, a column at a time."""
        feats = [r[0] for r in part]
        cols: list[list[Any]] = [[f.get(name) for f in feats] for name in self._names]
        if self._pred_numeric:
            cols.append([r[1] for r in part])
        if self._score is not None:
            cls = self.profile.score_class
            cols.append([score_of(r[2], cls) for r in part])
        bad, bins = chunk.bad, chunk.bins
        for j, col in enumerate(cols):
            _count_numbers(col, bins[j], bad[j], self._edges[j], self._edge_arrays[j])
        off, cf = len(cols), self._n_cat
        for j, (name, _) in enumerate(self._cat):
            col = [f.get(name) for f in feats] if j < cf else [r[1] for r in part]
            _count_categories(col, chunk.cats[j], bad[off + j], self._known[j])
        n0 = chunk.n
        chunk.n = n0 + len(part)
        k, rows, rand = self._reservoir, chunk.rows, self._rng.random
        for t in range(len(part)):
            n = n0 + t + 1
            if n <= k:
                rows.append([c[t] for c in cols])
            else:
                i = int(rand() * n)
                if i < k:
                    rows[i] = [c[t] for c in cols]

    @property
    def count(self) -> int:
        """Events in the live window."""
        return sum(c.n for c in self._chunks)

    def evaluate(self) -> list[FeatureDrift]:
        """Test every feature of the live window against the profile (not per event)."""
        total = self.count
        out = []
        chunks = list(self._chunks)
        for j, (name, prof) in enumerate(self._num):
            live = [sum(c.bins[j][b] for c in chunks) for b in range(len(prof.counts))]
            sample = [  # at the reference sample's precision (see profile.rounded)
                rounded(x)
                for c in chunks
                for row in c.rows
                if isinstance(x := row[j], (int, float)) and math.isfinite(x)
            ]
            out.append(
                self._result(name, j, total, live, list(prof.counts), sample, list(prof.sample))
            )
        off = len(self._num)
        for j, (name, cprof) in enumerate(self._cat):
            keys = list(cprof.counts)
            if OTHER not in cprof.counts:
                keys.append(OTHER)
            live = [sum(c.cats[j].get(k, 0) for c in chunks) for k in keys]
            ref = [cprof.counts.get(k, 0) for k in keys]
            out.append(self._result(name, off + j, total, live, ref, None, None))
        return out

    def _result(
        self,
        name: str,
        j: int,
        total: int,
        live: list[int],
        ref: list[int],
        sample: list[float] | None,
        ref_sample: list[float] | None,
    ) -> FeatureDrift:
        bad = [sum(c.bad[j][i] for c in self._chunks) for i in range(3)]
        missing, nan, inf = (b / total if total else 0.0 for b in bad)
        n = sum(live)
        if n < self.min_count or sum(ref) == 0:
            return FeatureDrift(name, n, missing, nan, inf)
        value = psi(ref, live, self.eps)
        _, chi2_p = chi2_test(ref, live)
        ks = ks_p = None
        test = None
        # PSI of two samples of one distribution is about (bins - 1) * (1/n_ref + 1/n_live)
        # on average: judge the excess over that, so a small reference does not alarm
        bias = (len(ref) - 1) * (1 / sum(ref) + 1 / n)
        # every evaluation tests every feature: Bonferroni keeps the family-wise error at
        # alpha, or a monitor evaluating each second flags noise sooner or later
        alpha = self.alpha / max(1, len(self._num) + len(self._cat))
        if value - bias >= self.psi_threshold and chi2_p < alpha:
            test = "psi"
        if sample is not None and ref_sample:
            ks, ks_p = ks_test(ref_sample, sample)
            enough = len(sample) >= min(KS_MIN_SAMPLE, len(ref_sample))
            if test is None and enough and ks >= self.ks_threshold and ks_p < alpha:
                test = "ks"
        return FeatureDrift(
            name,
            n,
            missing,
            nan,
            inf,
            psi=value,
            chi2_p=chi2_p,
            ks=ks,
            ks_p=ks_p,
            drifted=test is not None,
            test=test,
        )

    def events(self, results: list[FeatureDrift], now_ms: int) -> list[DriftEvent]:
        """A DriftEvent per drifted feature of ``results``."""
        out = []
        for r in results:
            if not r.drifted:
                continue
            by_psi = r.test == "psi"
            out.append(
                DriftEvent(
                    kind=r.kind,
                    model=self.model,
                    version=self.version,
                    detector=r.test or "",
                    detected_at_ms=now_ms,
                    n=r.n,
                    feature=r.feature,
                    statistic=r.psi if by_psi else r.ks,
                    threshold=self.psi_threshold if by_psi else self.ks_threshold,
                    p_value=r.chi2_p if by_psi else r.ks_p,
                )
            )
        return out


def _count_numbers(
    col: list[Any], bins: list[int], bad: list[int], edges: tuple[float, ...],
    edge_array: np.ndarray[Any, Any],
) -> None:  # fmt: skip
    """Count a column of numbers into ``bins`` (by ``bisect_left`` on ``edges``) and
    ``bad`` (missing, nan, inf), as :meth:`FeatureDriftMonitor.update` does."""
    if None in col:  # missing values
        bad[0] += col.count(None)
        col = [x for x in col if x is not None]
    arr = np.asarray(col, dtype=None if col else np.float64)
    kind = arr.dtype.kind
    if kind not in "biuf":  # strings, ints beyond int64: value by value
        for x in col:
            _count_one(x, bins, bad, edges)
        return
    if kind == "f":
        nan = np.isnan(arr)
        inf = np.isinf(arr)
        bad[1] += int(nan.sum())
        bad[2] += int(inf.sum())
        arr = arr[~(nan | inf)]
    counts = np.bincount(np.searchsorted(edge_array, arr, side="left"), minlength=len(bins))
    for b, c in enumerate(counts.tolist()):
        bins[b] += c


def _count_one(x: Any, bins: list[int], bad: list[int], edges: tuple[float, ...]) -> None:
    if x is None:
        bad[0] += 1
    elif x != x:
        bad[1] += 1
    elif x in (math.inf, -math.inf):
        bad[2] += 1
    else:
        try:
            bins[bisect_left(edges, x)] += 1
        except TypeError:  # not a number: validation should have caught it
            bad[0] += 1


def _count_categories(
    col: list[Any], counts: dict[str, int], bad: list[int], known: frozenset[str]
) -> None:
    """Count a column of categories into ``counts`` (unknown ones as ``OTHER``) and
    missing ones into ``bad[0]``, as :meth:`FeatureDriftMonitor.update` does."""
    tally = Counter(col)
    if not all(type(v) is str or v is None for v in tally):  # True == 1: keep them apart
        tally = Counter(None if v is None else v if type(v) is str else str(v) for v in col)
    for v, c in tally.items():
        if v is None:
            bad[0] += c
            continue
        key = v if v in known else OTHER
        counts[key] = counts.get(key, 0) + c


def drift_metrics(results: list[FeatureDrift]) -> dict[str, float]:
    """``psi.<feature>``, ``ks.<feature>``, ``nan_rate.<feature>``, ... for a MetricSnapshot."""
    out: dict[str, float] = {}
    for r in results:
        for key in ("psi", "ks", "missing_rate", "nan_rate", "inf_rate"):
            value = getattr(r, key)
            if value is not None and (value or key in ("psi", "ks")):
                out[f"{key}.{r.feature}"] = float(value)
    return out
