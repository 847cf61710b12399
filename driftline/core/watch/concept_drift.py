# mypy: disable-error-code="no-untyped-call"
# (river ships py.typed but leaves most of its estimators and metrics unannotated)
"""Drift detection: concept drift on the error stream, feature and prediction drift.

``ConceptDriftDetector`` feeds each outcome's error (0/1 for a classifier, absolute error
for a regressor) to river's ``ADWIN`` and, for classifiers, to ``DDM`` or ``HDDM_A``. An
alarm becomes a ``DriftEvent`` that says how many recent outcomes came after the estimated
change (ADWIN's window width after the cut; for DDM/HDDM_A, the outcomes since their
warning zone began), so the trainer can learn from post-change data only.

An alarm stands only if the error history agrees: its best split into before and after
(binary segmentation over stretches of outcomes) must show a *higher* error after, with
a p-value below ``alpha`` divided by the number of stretches of history it could have
picked (Bonferroni): for 0/1 errors, the binomial tail of the errors after the split at
the pooled error rate (a normal approximation calls five errors in 121 outcomes at a
0.6% rate a 5-sigma event; it is a 1-in-1,000 one); for absolute errors, a z test with
the pooled variance. DDM keeps the lowest error rate it has seen as its reference, so on
a champion with a steady 10% error it alarmed every few thousand outcomes at z of 2 to
3.5, and sometimes on a *fall* of the error; true changes showed z of 6 and more. A
falling error needs no retrain. The stretch tested was picked at both ends: the split
chooses where it starts, and the alarm, raised where ADWIN or DDM found the recent
errors high, where it ends. So with ``k`` splits tried the correction counts
``k(k+1)/2`` stretches, not ``k`` starts (``scan``): counting the starts alone, a
stationary Agrawal stream with a steady 14.5% error confirmed an ADWIN alarm on 121
errors in 544 outcomes (p = 1.6e-6, 228 splits tried) after 14,000 outcomes, and the
false retrain it triggered was rejected by the gate. Since the correction pays for every
end, an alarm the history does not confirm yet is tested again at the next few stretch
ends (``recheck``): the first alarm of a real change often comes a few dozen outcomes
too early to pass.

An alarm in the warm-up of a version (its first ``warmup`` outcomes) is held back, not
lost: at the end of the warm-up the error history is tested as above, and if the error
rose within the warm-up the alarm is raised then. (ADWIN drops the pre-change part of
its window when it detects, so it would not alarm again; and a drift right after a
promotion would go unnoticed.)

:meth:`ConceptDriftDetector.prime` starts a version's history with its held-out error (the
gate's evaluation): a version that starts serving after the stream drifted sees a
steady, high error, with no change in it to detect, unless compared with what it
showed on held-out data.

Feature and prediction drift against a version's ``ReferenceProfile``
(``driftline.core.watch.profile``) is ``FeatureDriftMonitor`` in
``driftline.core.watch.feature_drift``; it reports with the same ``DriftEvent``.

>>> import random
>>> rng = random.Random(7)
>>> detector = ConceptDriftDetector("churn", "v1", warmup=100)
>>> events = []
>>> for i in range(6_000):
...     error = rng.random() < (0.1 if i < 3_000 else 0.5)
...     event = detector.update(error, event_time_ms=i)
...     if event:
...         events.append(event)
>>> first = events[0]
>>> first.detector, first.n > 3_000, 0 < first.since_change < 1_000
('adwin', True, True)
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from river import drift
from river.drift import binary as binary_drift
from scipy import stats

__all__ = ["ConceptDriftDetector", "DriftEvent", "outcome_error"]

CONCEPT_DRIFT = "concept_drift"
FEATURE_DRIFT = "feature_drift"
PREDICTION_DRIFT = "prediction_drift"
_BINARY = {"ddm": binary_drift.DDM, "hddm_a": binary_drift.HDDMA}


@dataclass(frozen=True)
class DriftEvent:
    """One drift alarm: what fired, on which stream, and the numbers behind it.

    ``kind`` is concept_drift, feature_drift or prediction_drift; ``detector`` is adwin,
    ddm, hddm_a, psi, ks or chi2. ``statistic`` is the post-change error (concept) or the
    test statistic; ``reference`` the error before the change. ``n`` is the number of
    outcomes the detector has seen (concept) or the live window size (feature).
    ``since_change``: outcomes after the estimated change point, newest last; with
    ``change_time_ms``, the event time where that stretch starts, when known.
    """

    kind: str
    model: str
    version: str
    detector: str
    detected_at_ms: int
    n: int
    segment: str = "all"
    feature: str | None = None
    statistic: float | None = None
    reference: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    since_change: int | None = None
    change_time_ms: int | None = None

    def evidence(self) -> dict[str, Any]:
        """Flat evidence map for an Alert or RetrainTrigger (nulls left out)."""
        skip = ("kind", "model", "version")
        return {k: v for k, v in asdict(self).items() if v is not None and k not in skip}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftEvent:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def outcome_error(outcome: Mapping[str, Any], task: str = "classification") -> float | None:
    """0/1 error (classification) or absolute error (regression); None when not computable."""
    yp, y = outcome["prediction"], outcome["label"]
    if yp is None or y is None:
        return None
    if task == "classification":
        return float(yp != y)
    if isinstance(yp, str) or isinstance(y, str):
        return None
    err = abs(float(yp) - float(y))
    return err if math.isfinite(err) else None


MIN_ERRORS = 5
"""A DDM/HDDM_A alarm needs this many errors after its change point (not one stray)."""
SPLIT_STRETCHES = 320
"""Stretches of error history searched for a change point (20,480 outcomes by default)."""


class ConceptDriftDetector:
    """ADWIN (plus DDM or HDDM_A for 0/1 errors) on one model version's error stream.

    Parameters
    ----------
    model, version
        Copied into the events.
    task
        ``'classification'`` (0/1 errors) or ``'regression'`` (absolute errors, ADWIN only).
    binary
        ``'ddm'``, ``'hddm_a'`` or None; ``'auto'`` is ``'ddm'`` for classification, None
        for regression.
    delta
        ADWIN's confidence.
    warmup
        Alarms in the first ``warmup`` outcomes (after creation or ``reset``, i.e. after a
        version switch) are suppressed (counted in ``suppressed``).
    checkpoint_every, history
        Every ``checkpoint_every`` outcomes the oldest event time of the stretch is kept,
        ``history`` stretches back, to turn a change point into an event time.
    alpha
        Significance of the error increase the history must show for an alarm to stand
        (see the module docstring); None: every alarm stands.
    scan
        Correct ``alpha`` for every stretch of history the test could have picked (both
        ends); False: for the split points alone.
    recheck
        With ``scan``, an alarm the history did not confirm is tested again at the end of
        each of the next ``recheck`` stretches (the correction already counts those ends).

    """

    def __init__(
        self,
        model: str,
        version: str,
        task: str = "classification",
        *,
        binary: str | None = "auto",
        delta: float = 0.002,
        warmup: int = 1_000,
        checkpoint_every: int = 64,
        history: int = 4_096,
        alpha: float | None = 0.01,
        scan: bool = True,
        recheck: int = 4,
    ) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
        if binary == "auto":
            binary = "ddm" if task == "classification" else None
        if binary is not None and binary not in _BINARY:
            raise ValueError(f"binary must be one of {sorted(_BINARY)} or None, not {binary!r}")
        if binary is not None and task == "regression":
            raise ValueError("DDM and HDDM_A need 0/1 errors: use binary=None for regression")
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), not {delta!r}")
        if warmup < 0 or recheck < 0 or checkpoint_every < 1 or history < 1:
            raise ValueError("warmup, recheck must be >= 0, checkpoint_every and history >= 1")
        if alpha is not None and not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1) or None, not {alpha!r}")
        self.model = model
        self.version = version
        self.task = task
        self.binary = binary
        self.delta = delta
        self.warmup = warmup
        self.checkpoint_every = checkpoint_every
        self.history = history
        self.alpha = alpha
        self.scan = scan
        self.recheck = recheck
        self.reset()

    def reset(self, version: str | None = None) -> None:
        """Start afresh, e.g. for a new version: new detectors, warm-up again."""
        if version is not None:
            self.version = version
        self.adwin = drift.ADWIN(delta=self.delta)
        self.detector = None if self.binary is None else _BINARY[self.binary]()
        self.n = 0
        self.total = 0
        """Outcomes in the history, primed ones included (``n`` counts live ones)."""
        self.suppressed = 0
        self.primed = 0
        self._held: DriftEvent | None = None
        self._recheck: tuple[DriftEvent, int] | None = None
        self.unconfirmed = 0
        """Alarms the error history did not confirm (see ``alpha``)."""
        self._warning_start: int | None = None
        self._checkpoints: deque[int] = deque(maxlen=self.history)
        self._stretch_min = math.inf
        self._err_sums: deque[float] = deque(maxlen=SPLIT_STRETCHES)
        self._sq_sums: deque[float] = deque(maxlen=SPLIT_STRETCHES)
        self._stretch_err = 0.0
        self._stretch_sq = 0.0

    def update(self, error: float, event_time_ms: int) -> DriftEvent | None:
        """Add one outcome's error; return a DriftEvent if a detector alarms."""
        n = self.total = self.total + 1
        self.n = n - self.primed
        if event_time_ms < self._stretch_min:
            self._stretch_min = event_time_ms
        self._stretch_err += error
        self._stretch_sq += error * error
        if n % self.checkpoint_every == 0:
            self._checkpoints.append(int(self._stretch_min))
            self._stretch_min = math.inf
            self._err_sums.append(self._stretch_err)
            self._sq_sums.append(self._stretch_sq)
            self._stretch_err = self._stretch_sq = 0.0
        before = self.adwin.estimation
        self.adwin.update(error)
        event = None
        if self.adwin.drift_detected:
            # ADWIN's kept window still holds pre-change outcomes: prefer the history split
            since_adwin = self.split_since() or int(self.adwin.width)
            event = self._event("adwin", event_time_ms, since_adwin, before, self.adwin.estimation)
        det = self.detector
        if det is not None:
            det.update(bool(error))
            if det.drift_detected:
                self._warning_start = None
                # DDM's warning start is no change point: on an error-free champion it
                # starts at the first stray error, and one error is enough to alarm. So
                # the change point comes from the error history, and an alarm counts only
                # with at least MIN_ERRORS errors after it.
                since = self.split_since()
                if event is None and since is not None and self._errors_in(since) >= MIN_ERRORS:
                    event = self._event(self.binary or "", event_time_ms, since, before, None)
            elif not det.warning_detected:
                self._warning_start = None
            elif self._warning_start is None:
                self._warning_start = n
        live = n - self.primed
        if live <= 0:
            return None
        if event is not None and live <= self.warmup:
            self.suppressed += 1
            self._held = event
            return None
        if live == self.warmup + 1 and self._held is not None and event is None:
            held, self._held = self._held, None
            since = self.split_since()
            if since is None:
                return None
            event = self._event(held.detector, event_time_ms, since, held.reference or 0.0, None)
        if (
            event is None
            and self._recheck is not None
            and n % self.checkpoint_every == 0
            and self.alpha is not None
        ):
            # an unconfirmed alarm, tested again at the end of the next stretches: the
            # correction already counts every stretch end (``scan``)
            held, left = self._recheck
            self._recheck = (held, left - 1) if left > 1 else None
            if self.confirmed():
                self._recheck = None
                since = self.split_since()
                return self._event(held.detector, event_time_ms, since, held.reference or 0.0,
                                   None)  # fmt: skip
            return None
        if event is not None and self.alpha is not None and not self.confirmed():
            self.unconfirmed += 1
            if self.recheck and self.scan:
                self._recheck = (event, self.recheck)
            return None
        if event is not None:
            self._recheck = None
        return event

    def prime(self, error_rate: float, n: int, event_time_ms: int) -> None:
        """Start a fresh history with ``n`` outcomes at ``error_rate`` (0/1 errors spread
        evenly), e.g. the version's held-out evaluation; the warm-up counts live outcomes
        after them. Classification only (ignored for regression)."""
        if self.total:
            raise ValueError("prime a detector before its first update")
        if not 0 <= error_rate <= 1 or n < 0:
            raise ValueError("error_rate must be in [0, 1] and n >= 0")
        if self.task != "classification":
            return
        self.primed = n
        for i in range(n):
            self.update(float(math.floor((i + 1) * error_rate) - math.floor(i * error_rate)),
                        event_time_ms)  # fmt: skip

    def confirmed(self) -> bool:
        """Whether the error history's best split shows a significant error increase."""
        found = self._split()
        if found is None:
            return False
        after, z, tried = found
        tests = tried * (tried + 1) // 2 if self.scan else tried
        alpha = (self.alpha if self.alpha is not None else 1.0) / max(1, tests)
        if self.task == "classification":
            sums = [*self._err_sums, self._stretch_err]
            total_n = (
                self.checkpoint_every * len(self._err_sums) + self.total % self.checkpoint_every
            )
            rate = sum(sums) / total_n
            errors = round(self._errors_in(after))
            return float(stats.binom.sf(errors - 1, after, rate)) <= alpha
        return z >= statistics.NormalDist().inv_cdf(1 - alpha)

    def update_outcome(self, outcome: Mapping[str, Any]) -> DriftEvent | None:
        """``update`` with the error of one Outcome dict (skipped when not computable)."""
        error = outcome_error(outcome, self.task)
        if error is None:
            return None
        return self.update(error, outcome["event_time_ms"])

    def _errors_in(self, last: int) -> float:
        """Sum of the errors of (about) the last ``last`` outcomes, by whole stretches."""
        sums = [*self._err_sums, self._stretch_err]
        k = min(len(sums), 1 + last // self.checkpoint_every)
        return sum(sums[-k:])

    def split_since(self) -> int | None:
        """Outcomes since the most likely change point: the split of the recent error
        history (in stretches of ``checkpoint_every``) with the largest standardised
        increase of the mean error, as binary segmentation does. None without enough
        history or without a split where the error rose.
        """
        found = self._split()
        return None if found is None else found[0]

    def _split(self) -> tuple[int, float, int] | None:
        """(outcomes after, z statistic, splits tried) of the best error-increase split."""
        sums = [*self._err_sums, self._stretch_err]
        sizes = [self.checkpoint_every] * len(self._err_sums) + [self.total % self.checkpoint_every]
        total_s, total_n = sum(sums), sum(sizes)
        if total_n < 2:
            return None
        mean = total_s / total_n
        var = (sum(self._sq_sums) + self._stretch_sq) / total_n - mean * mean
        best, best_after, tried = 0.0, None, 0
        before_s = before_n = 0.0
        for k in range(len(sums) - 1):
            before_s += sums[k]
            before_n += sizes[k]
            after_n = total_n - before_n
            if before_n < self.checkpoint_every or after_n < self.checkpoint_every:
                continue
            tried += 1
            gap = (total_s - before_s) / after_n - before_s / before_n
            score = gap * math.sqrt(before_n * after_n / total_n)
            if score > best:
                best, best_after = score, int(after_n)
        if best_after is None:
            return None
        return best_after, best / math.sqrt(max(var, 1e-12)), tried

    def change_time_ms(self, since_change: int) -> int | None:
        """Oldest event time of the stretch holding the change point, if still kept."""
        first = self.total - since_change + 1  # 1-based index of the first post-change outcome
        k = (first - 1) // self.checkpoint_every  # stretch index, 0-based
        oldest = self.total // self.checkpoint_every - len(self._checkpoints)
        if k < oldest:
            return None
        if k >= oldest + len(self._checkpoints):  # the current, unfinished stretch
            return None if math.isinf(self._stretch_min) else int(self._stretch_min)
        return self._checkpoints[k - oldest]

    def _event(
        self, name: str, t: int, since: int | None, before: float, after: float | None
    ) -> DriftEvent:
        since = None if since is None else min(since, self.n)
        return DriftEvent(
            kind=CONCEPT_DRIFT,
            model=self.model,
            version=self.version,
            detector=name,
            detected_at_ms=t,
            n=self.n,
            statistic=after,
            reference=before,
            since_change=since,
            change_time_ms=None if since is None else self.change_time_ms(since),
        )
