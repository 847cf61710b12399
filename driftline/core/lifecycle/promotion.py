"""Promotion on live, paired evidence: is a challenger better than the champion on the
same labelled events? Pure and clock-free; the trainer feeds it outcomes and publishes
what it decides.

Every Outcome carries the champion's prediction and every challenger's prediction of the
same event (``challengers``). For one champion and one challenger, an outcome where both
predicted is a *pair*: for classifiers, which of the two was right; for regressors,
which absolute error was smaller. Ties (both right, both wrong, equal errors) say
nothing about which is better. Among the other, *discordant* pairs let ``b`` count those
the challenger won and ``c`` those the champion won. If neither model is better, each
discordant pair is a fair coin: ``b ~ Binomial(b + c, 1/2)`` (a sign test, so for
regressors it compares typical errors, not means: one huge error cannot win it).

**The bound.** The test is a mixture sequential probability ratio test (Robbins, 1970):
with a uniform prior on ``p`` = P(the challenger wins a discordant pair),

    LR = ∫ p^b (1 - p)^c dp / (1/2)^(b + c) = B(b + 1, c + 1) · 2^(b + c)

is a nonnegative martingale of mean 1 when ``p = 1/2``, so by Ville's inequality
``P(LR ≥ 1/alpha at any time) ≤ alpha``: looking after every outcome, forever, a
challenger that is not better is promoted with probability at most ``alpha``, and a
champion that is not worse is rolled back with probability at most ``alpha``. A decision
also needs ``min_pairs`` paired outcomes.

**Segments.** A challenger better overall is not promoted while, on a segment with at
least ``min_segment_pairs`` discordant pairs, the champion is better by the same test at
``alpha / k`` (Bonferroni over the ``k`` such segments).

**Fresh evidence.** The evidence restarts when the champion changes, when a concept
drift alarm of the model arrives (:meth:`Promoter.on_alarm`: pairs from before a change
say little about after it), and after ``max_pairs`` discordant pairs without a decision.
Each restart begins a new test with the same bound.

**Probation.** After a promotion the previous champion stays a challenger, on
probation, for ``probation_pairs`` paired outcomes. If the test says it is better than
the new champion, the decision is a rollback; if probation ends first, it is archived.

>>> test = PairedTest(LiveConfig(alpha=0.05, min_pairs=20))
>>> for i in range(60):  # the challenger right 3 times in 4, the champion 1 in 4 (also
...     # right where the challenger is: a tie)
...     test.add(champion_won=i % 2 == 0 and i % 4 != 0, challenger_won=i % 4 != 0)
>>> test.b, test.c, test.verdict()
(30, 0, 'challenger')
>>> round(test.log_lr(), 2)
17.36
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.core.errors import StageError
from driftline.core.lifecycle.registry import (
    MAX_CHALLENGERS,
    PROBATION,
    Registry,
    is_online,
    is_probation,
    registry_key,
    restage,
    transition,
)
from driftline.core.model.config import LiveConfig

__all__ = [
    "PROBATION",
    "Decision",
    "LiveConfig",
    "PairedTest",
    "Promoter",
    "decision_records",
    "is_probation",
    "outcome_pairs",
]


def _log_mixture_lr(b: int, c: int) -> float:
    """log of B(b + 1, c + 1) · 2^(b + c)."""
    n = b + c
    return math.lgamma(b + 1) + math.lgamma(c + 1) - math.lgamma(n + 2) + n * math.log(2)


@dataclass
class PairedTest:
    """The sequential sign test of one challenger against the champion (module docstring).

    ``segments`` keeps the same counts per segment (``attr=value``).
    """

    config: LiveConfig
    pairs: int = 0
    b: int = 0
    c: int = 0
    loss_diff: float = 0.0
    """Sum of champion loss minus challenger loss over the pairs (0/1 or absolute error)."""
    segments: dict[str, list[int]] = field(default_factory=dict)
    """Per segment: [pairs, b, c]."""

    def add(
        self,
        champion_won: bool,
        challenger_won: bool,
        segments: Iterable[str] = (),
        loss_diff: float = 0.0,
    ) -> None:
        """One paired outcome: who was right (classifier) or closer (regressor); both
        True or both False is a tie."""
        self.pairs += 1
        self.loss_diff += loss_diff
        b = challenger_won and not champion_won
        c = champion_won and not challenger_won
        self.b += b
        self.c += c
        for s in segments:
            counts = self.segments.setdefault(s, [0, 0, 0])
            counts[0] += 1
            counts[1] += b
            counts[2] += c

    def log_lr(self) -> float:
        """log of the mixture likelihood ratio against "neither is better"."""
        return _log_mixture_lr(self.b, self.c)

    def verdict(self) -> str | None:
        """'challenger' or 'champion' (the better one, beyond the bound), else None."""
        if self.pairs < self.config.min_pairs or self.b == self.c:
            return None
        if self.log_lr() < math.log(1 / self.config.alpha):
            return None
        return "challenger" if self.b > self.c else "champion"

    def worse_segments(self) -> list[str]:
        """Large segments where the champion is better than the challenger beyond the
        Bonferroni-corrected bound."""
        large = {
            s: v for s, v in self.segments.items() if v[1] + v[2] >= self.config.min_segment_pairs
        }
        if not large:
            return []
        threshold = math.log(len(large) / self.config.alpha)
        return sorted(
            s for s, (_, b, c) in large.items() if c > b and _log_mixture_lr(b, c) >= threshold
        )

    @property
    def stale(self) -> bool:
        """Discordant pairs reached ``max_pairs`` without a decision."""
        return self.b + self.c >= self.config.max_pairs

    def evidence(self) -> dict[str, Any]:
        """What a decision records: counts, the likelihood ratio and the bound."""
        return {
            "paired_outcomes": self.pairs,
            "challenger_won": self.b,
            "champion_won": self.c,
            "log_likelihood_ratio": round(self.log_lr(), 4),
            "alpha": self.config.alpha,
            "mean_loss_reduction": round(self.loss_diff / self.pairs, 6) if self.pairs else 0.0,
        }


def _key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def outcome_pairs(outcome: Mapping[str, Any], task: str) -> list[tuple[str, bool, bool, float]]:
    """Per challenger prediction in ``outcome``: ``(version, champion_won,
    challenger_won, champion_loss - challenger_loss)``. A challenger that did not predict
    (None) or a champion that did not is no pair.

    >>> o = {"version": "v1", "prediction": True, "label": False,
    ...      "challengers": [{"version": "v2", "prediction": False, "scores": {}}]}
    >>> outcome_pairs(o, "classification")
    [('v2', False, True, 1.0)]
    >>> outcome_pairs({"version": "v1", "prediction": 2.0, "label": 3.0, "challengers": [
    ...     {"version": "v2", "prediction": 2.5, "scores": {}}]}, "regression")
    [('v2', False, True, 0.5)]
    """
    y, champ = outcome["label"], outcome["prediction"]
    if champ is None or y is None:
        return []
    out = []
    classify = task == "classification"
    for ch in outcome.get("challengers") or ():
        pred = ch.get("prediction")
        if pred is None:
            continue
        if classify:
            lc, lh = float(_key(champ) != _key(y)), float(_key(pred) != _key(y))
        else:
            lc, lh = abs(float(champ) - float(y)), abs(float(pred) - float(y))
        out.append((ch["version"], lc < lh, lh < lc, lc - lh))
    return out


@dataclass(frozen=True)
class Decision:
    """What the promoter decided for one model.

    ``action`` is ``promote`` (``version`` becomes champion, ``replaces`` goes on
    probation), ``rollback`` (the probation version ``version`` is champion again,
    ``replaces`` is archived) or ``end_probation`` (``version`` is archived).
    """

    action: str
    model: str
    version: str
    replaces: str | None
    reason: str
    evidence: dict[str, Any]


class Promoter:
    """Live promotion, probation and rollback of one model (see the module docstring).

    Tell it the registry's state with :meth:`on_registry`, feed it every outcome of the
    model with :meth:`on_outcome`, and ask :meth:`decide` after each batch. A decision
    is taken at most once: the promoter waits for the registry to show it
    (:meth:`on_registry`) before deciding again.

    >>> p = Promoter("churn", "classification", LiveConfig(min_pairs=10))
    >>> p.on_registry("v1", ["v2"])
    >>> for i in range(40):
    ...     p.on_outcome({"version": "v1", "prediction": i % 2 == 0, "label": True,
    ...                   "segment": {}, "challengers": [
    ...                   {"version": "v2", "prediction": True, "scores": {}}]})
    >>> d = p.decide()
    >>> d.action, d.version, d.replaces, d.evidence["challenger_won"]
    ('promote', 'v2', 'v1', 20)
    >>> p.decide() is None  # waits for the registry to show it
    True
    >>> p.on_registry("v2", ["v1"], probation="v1")
    >>> p.probation, sorted(p.tests)
    ('v1', ['v1'])
    """

    def __init__(self, model: str, task: str, config: LiveConfig) -> None:
        self.model = model
        self.task = task
        self.config = config
        self.champion: str | None = None
        self.tests: dict[str, PairedTest] = {}
        self.probation: str | None = None
        self.probation_pairs = 0
        self.restarts = 0
        self._pending: Decision | None = None

    def on_registry(
        self, champion: str | None, challengers: Iterable[str], probation: str | None = None
    ) -> None:
        """The registry's champion and challengers of the model now; ``probation`` is
        the challenger that was champion before this one (None: none). A decision taken
        is awaited until the registry shows it (or :meth:`drop` gives it up)."""
        challengers = [v for v in challengers if v != champion]
        if champion != self.champion:
            self.champion = champion
            self.tests = {}
            self.probation_pairs = 0
        self.probation = probation if probation in challengers else None
        self.tests = {v: self.tests.get(v) or PairedTest(self.config) for v in challengers}
        pending = self._pending
        if pending is not None and (
            champion != pending.replaces
            if pending.action != "end_probation"
            else pending.version not in challengers or probation != pending.version
        ):
            self._pending = None

    def drop(self) -> None:
        """Give up the decision awaited (its records could not be published): the evidence
        that led to it restarts."""
        if self._pending is not None:
            version = self._pending.version
            if version in self.tests:
                self.tests[version] = PairedTest(self.config)
            self._pending = None

    def on_alarm(self) -> None:
        """A concept drift alarm of the model: restart the evidence of every challenger."""
        self.tests = {v: PairedTest(self.config) for v in self.tests}
        self.restarts += 1

    def on_outcome(self, outcome: Mapping[str, Any]) -> None:
        """One Outcome of the model; only pairs with the champion count."""
        if outcome.get("version") != self.champion or not self.tests:
            return
        segs = [f"{k}={v}" for k, v in sorted((outcome.get("segment") or {}).items())]
        paired = False
        for version, champ_won, chall_won, diff in outcome_pairs(outcome, self.task):
            test = self.tests.get(version)
            if test is not None:
                test.add(champ_won, chall_won, segs, diff)
                paired |= version == self.probation
        if paired:
            self.probation_pairs += 1

    def decide(self) -> Decision | None:
        """The next decision, if the evidence allows one (see :class:`Decision`)."""
        if self._pending is not None or self.champion is None:
            return None
        best: tuple[float, str, PairedTest] | None = None
        for version, test in self.tests.items():
            if test.verdict() == "challenger" and not test.worse_segments():
                score = test.log_lr()
                if best is None or score > best[0]:
                    best = (score, version, test)
            elif test.stale:
                self.tests[version] = PairedTest(self.config)
                self.restarts += 1
        if best is not None:
            _, version, test = best
            rollback = version == self.probation
            action = "rollback" if rollback else "promote"
            ev = {**test.evidence(), "champion": self.champion, "challenger": version}
            why = (
                f"{'rollback' if rollback else 'promoted'} on live evidence: {version} right "
                f"where {self.champion} was wrong {test.b} times, the reverse {test.c} times, "
                f"over {test.pairs} paired outcomes (likelihood ratio "
                f"{math.exp(min(test.log_lr(), 700)):.3g} >= {1 / self.config.alpha:g})"
            )
            self._pending = Decision(action, self.model, version, self.champion, why, ev)
            return self._pending
        if self.probation is not None and self.probation_pairs >= self.config.probation_pairs:
            test = self.tests[self.probation]
            why = (
                f"probation over: {self.champion} not worse than {self.probation} on "
                f"{self.probation_pairs} paired outcomes"
            )
            self._pending = Decision("end_probation", self.model, self.probation, None, why,
                                     {**test.evidence(), "champion": self.champion})  # fmt: skip
            return self._pending
        return None


def decision_records(
    reg: Registry,
    decision: Decision,
    *,
    by: str,
    now_ms: int,
    max_challengers: int = MAX_CHALLENGERS,
) -> list[dict[str, Any]]:
    """The registry records that carry out ``decision``, in publish order.

    * promote: the champion goes on probation, the winner becomes champion
      (:func:`~driftline.core.lifecycle.registry.transition`);
    * rollback: the champion on trial leaves (archived; an online learner stays a
      challenger and keeps learning), the version on probation is champion again;
    * end_probation: the version on probation is archived (an online learner stays a
      plain challenger).

    Raises StageError when the registry no longer matches the decision (it was made on
    an older state): the caller drops it.
    """
    model = decision.model
    champion = reg.champion(model)
    target = reg.get(model, decision.version)
    where = registry_key(model, decision.version)
    if target is None:
        raise StageError(f"{where} is no longer in the registry")
    if decision.action == "end_probation":
        if not is_probation(target):
            raise StageError(f"{where} is not on probation")
        stays = is_online(decision.version)
        return [restage(target, "challenger" if stays else "archived", by=by,
                        reason=decision.reason, now_ms=now_ms)]  # fmt: skip
    if champion is None or champion["version"] != decision.replaces:
        raise StageError(f"{model}: the champion is no longer {decision.replaces}")
    if target["stage"] != "challenger":
        raise StageError(f"{where} is {target['stage']}, not a challenger")
    if decision.action == "promote":
        replaced = "probation"
    elif decision.action == "rollback":
        replaced = "challenger" if is_online(champion["version"]) else "archived"
    else:
        raise StageError(f"unknown decision {decision.action!r}")
    reason = decision.reason if decision.action == "promote" else f"rollback: {decision.reason}"
    return transition(
        reg, model, decision.version, "champion", by=by, reason=reason,
        now_ms=now_ms, max_challengers=max_challengers, replaced=replaced,
    )  # fmt: skip
