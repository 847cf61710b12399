"""Alert rules: turn metric snapshots, drift events and rates into Alert dicts.

Pure and clock-injected: every check takes ``now_ms``. An alert says what happened and why
in one sentence with the numbers, and ``evidence`` holds the numbers. The same (model,
version, kind, segment) alert is not raised again within ``cooldown_ms``; the state of that
dedupe is ``to_dict`` / ``from_dict``-able for a changelogged table. The monitor sets no
cooldown: it folds every alert into an incident (:mod:`driftline.core.watch.incidents`).

A judgement that raises no alert is a :class:`~driftline.core.watch.incidents.Check`
(``checks_snapshot``, ``check_rate``, ``checks_drift``, ``check_concept``): healthy when
the statistic is at most ``clear_factor`` times its threshold, which is what resolves an
incident; between the two it is recovering. For accuracy the clearing margin also allows
for the baseline's own sampling error when the baseline says on how many held-out rows
(``count``) it was measured (:meth:`AlertRules.clearing_margin`).

Performance is worse than baseline when a higher-is-better metric (accuracy, precision,
recall, f1, roc_auc, r2) is more than ``margin`` below it (absolute), or a loss (log_loss,
mae, rmse) more than ``relative_margin`` above it (relative).

>>> rules = AlertRules(margin=0.05, min_count=100, cooldown_ms=60_000)
>>> snap = {"model": "churn", "version": "v3", "segment": "all", "window": "count:1000",
...         "count": 1000, "metrics": {"accuracy": 0.81}, "baseline": {"accuracy": 0.9},
...         "counts": {"n": 1000, "nan": 0, "inf": 0}}
>>> for alert in rules.check_snapshot(snap, now_ms=0):
...     print(alert["kind"], alert["severity"], alert["evidence"]["metric"])
...     print(alert["message"])
performance_degradation warning accuracy
accuracy of churn v3 on all fell to 0.81 over count:1000 (1000 outcomes), 0.09 below its \
baseline 0.9 (margin 0.05).
>>> rules.check_snapshot(snap, now_ms=30_000)  # within the cooldown
[]
>>> snap["metrics"] = {"accuracy": 0.89}  # recovered: a healthy check of each rule
>>> for check in rules.checks_snapshot(snap):
...     print(check.kind, check.healthy)
numerical_instability True
performance_degradation True
>>> print(check.message)
accuracy of churn v3 on all is 0.89 over count:1000 (1000 outcomes), 0.01 below its \
baseline 0.9: within the clearing margin 0.025.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

from driftline.core.watch.concept_drift import CONCEPT_DRIFT, DriftEvent
from driftline.core.watch.feature_drift import FeatureDrift
from driftline.core.watch.incidents import PRIMARY, Check
from driftline.core.watch.rates import Window, wilson_lower

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "AlertRules", "Degradation", "degradations"]

HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
_SETTINGS = (
    "margin",
    "relative_margin",
    "min_count",
    "watch",
    "nan_rate",
    "skew_rate",
    "expired_rate",
    "min_events",
    "cooldown_ms",
    "critical_factor",
    "confidence",
    "clear_factor",
    "quiet_outcomes",
)
_NAMESPACE = uuid.UUID("6f1d2a52-5c43-4c1e-9a55-2f1f0c7e3b10")


@dataclass(frozen=True)
class Degradation:
    """How much one metric is worse than its baseline, in its margin's unit."""

    metric: str
    value: float
    baseline: float
    worse_by: float  # absolute drop (higher-is-better) or relative rise (losses)
    margin: float

    @property
    def ratio(self) -> float:
        """``worse_by / margin``: above 1 means degraded."""
        return self.worse_by / self.margin


def degradations(
    snapshot: Mapping[str, Any],
    margin: float,
    relative_margin: float,
    watch: frozenset[str] | None = None,
) -> list[Degradation]:
    """Every watched metric of ``snapshot`` that has a baseline, worst first."""
    out = []
    base = snapshot.get("baseline") or {}
    for name, value in snapshot["metrics"].items():
        if name not in base or (watch is not None and name not in watch):
            continue
        b = base[name]
        if name in HIGHER_IS_BETTER:
            out.append(Degradation(name, value, b, b - value, margin))
        elif name in LOWER_IS_BETTER and b > 0:
            out.append(Degradation(name, value, b, (value - b) / b, relative_margin))
    return sorted(out, key=lambda d: -d.ratio)


def _g(x: float) -> str:
    return f"{x:.4g}"


class AlertRules:
    """Alert rules and their dedupe state.

    Parameters
    ----------
    margin, relative_margin, min_count, watch
        Performance degradation: see the module docstring; snapshots with fewer than
        ``min_count`` outcomes are not judged; ``watch`` limits the metrics (None: all).
    nan_rate, skew_rate, expired_rate
        Thresholds of the NaN/inf prediction rate, the dead-letter (validation or decode
        failure) rate and the expired-label rate.
    min_events
        Rates over fewer events are not judged.
    confidence
        The skew and expired-label rates alert only when the rate is above its threshold
        with this confidence (the one-sided Wilson lower bound of the window's rate is
        above it), so a rate at or below the threshold rarely alerts on sampling noise:
        at 0.95 a window at exactly the threshold alerts in at most about 5% of
        judgements, and far less often below it. 0.5: the rate itself is compared.
    cooldown_ms
        The same (model, version, kind, segment) alert is not repeated within it; a rate
        alert (skew, expired labels) is about the model's windows, whichever versions
        served them: not repeated per model and kind.
    critical_factor
        Severity is critical when the statistic reaches ``critical_factor`` times its
        threshold, else warning.
    clear_factor
        A judgement is healthy (evidence that an incident cleared) when the statistic is
        at most ``clear_factor`` times its threshold: hysteresis, so a value hovering at
        the threshold neither raises nor resolves incidents over and over.
    quiet_outcomes
        Concept drift is healthy again once this many outcomes came with no alarm and
        the served version's performance is healthy.

    """

    def __init__(
        self,
        *,
        margin: float = 0.05,
        relative_margin: float = 0.2,
        min_count: int = 200,
        watch: Sequence[str] | None = None,
        nan_rate: float = 0.01,
        skew_rate: float = 0.05,
        expired_rate: float = 0.2,
        min_events: int = 100,
        cooldown_ms: int = 3_600_000,
        critical_factor: float = 2.0,
        confidence: float = 0.95,
        clear_factor: float = 0.5,
        quiet_outcomes: int = 1_000,
    ) -> None:
        for name, value in [
            ("margin", margin),
            ("relative_margin", relative_margin),
            ("nan_rate", nan_rate),
            ("skew_rate", skew_rate),
            ("expired_rate", expired_rate),
        ]:
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], not {value!r}")
        if min_count < 1 or min_events < 1 or cooldown_ms < 0 or critical_factor < 1:
            raise ValueError("min_count, min_events >= 1, cooldown_ms >= 0, critical_factor >= 1")
        if not 0.5 <= confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), not {confidence!r}")
        if not 0 <= clear_factor <= 1 or quiet_outcomes < 0:
            raise ValueError("clear_factor must be in [0, 1] and quiet_outcomes >= 0")
        self.clear_factor, self.quiet_outcomes = clear_factor, quiet_outcomes
        self.margin, self.relative_margin, self.min_count = margin, relative_margin, min_count
        self.watch = None if watch is None else frozenset(watch)
        self.nan_rate, self.skew_rate, self.expired_rate = nan_rate, skew_rate, expired_rate
        self.min_events, self.cooldown_ms = min_events, cooldown_ms
        self.critical_factor = critical_factor
        self.confidence = confidence
        self._z = NormalDist().inv_cdf(confidence)
        self._last: dict[str, int] = {}
        self.suppressed = 0

    def to_dict(self) -> dict[str, Any]:
        """Settings and dedupe state (last alert time per key), for a changelogged table."""
        config = {k: getattr(self, k) for k in _SETTINGS}
        config["watch"] = None if self.watch is None else sorted(self.watch)
        return {
            "config": config,
            "state": {"last": dict(self._last), "suppressed": self.suppressed},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlertRules:
        """The rules ``to_dict`` described, with their dedupe state."""
        rules = cls(**d["config"])
        state = d.get("state") or {}
        rules._last = {str(k): int(v) for k, v in state.get("last", {}).items()}
        rules.suppressed = int(state.get("suppressed", 0))
        return rules

    def _alert(
        self,
        kind: str,
        model: str,
        version: str | None,
        segment: str | None,
        ratio: float,
        message: str,
        evidence: Mapping[str, Any],
        now_ms: int,
        per_version: bool = True,
    ) -> list[dict[str, Any]]:
        key = f"{model}|{version if per_version else '*'}|{kind}|{segment}"
        last = self._last.get(key)
        if last is not None and now_ms - last < self.cooldown_ms:
            self.suppressed += 1
            return []
        self._last[key] = now_ms
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now_ms - t < self.cooldown_ms}
        return [
            {
                "alert_id": str(uuid.uuid5(_NAMESPACE, f"{key}|{now_ms}")),
                "model": model,
                "version": version,
                "segment": segment,
                "kind": kind,
                "severity": "critical" if ratio >= self.critical_factor else "warning",
                "message": message,
                "evidence": dict(evidence),
                "created_at_ms": now_ms,
            }
        ]

    def check_snapshot(self, snapshot: Mapping[str, Any], now_ms: int) -> list[dict[str, Any]]:
        """performance_degradation (any segment) and numerical_instability (segment 'all')."""
        model, version, seg = snapshot["model"], snapshot["version"], snapshot["segment"]
        window, count = snapshot["window"], snapshot["count"]
        out = []
        counts = snapshot.get("counts") or {}
        bad = counts.get("nan", 0) + counts.get("inf", 0)
        if seg == "all" and count >= self.min_events and bad / count > self.nan_rate:
            rate = bad / count
            out += self._alert(
                "numerical_instability",
                model,
                version,
                seg,
                rate / self.nan_rate,
                f"{rate:.1%} of the predictions of {model} {version} were NaN or infinite "
                f"({counts.get('nan', 0)} NaN, {counts.get('inf', 0)} infinite of {count}, "
                f"{window}), above the {self.nan_rate:.1%} threshold.",
                {
                    "rate": rate,
                    "threshold": self.nan_rate,
                    "nan": counts.get("nan", 0),
                    "inf": counts.get("inf", 0),
                    "count": count,
                    "window": window,
                },
                now_ms,
            )
        if count < self.min_count:
            return out
        worse = [
            d
            for d in degradations(snapshot, self.margin, self.relative_margin, self.watch)
            if d.ratio > 1
        ]
        if worse:
            d = worse[0]
            if d.metric in HIGHER_IS_BETTER:
                how = (
                    f"fell to {_g(d.value)} over {window} ({count} outcomes), "
                    f"{_g(d.worse_by)} below its baseline {_g(d.baseline)} "
                    f"(margin {_g(d.margin)})"
                )
            else:
                how = (
                    f"rose to {_g(d.value)} over {window} ({count} outcomes), "
                    f"{d.worse_by:.0%} above its baseline {_g(d.baseline)} "
                    f"(margin {d.margin:.0%})"
                )
            evidence: dict[str, Any] = {
                "metric": d.metric,
                "value": d.value,
                "baseline": d.baseline,
                "worse_by": d.worse_by,
                "margin": d.margin,
                "count": count,
                "window": window,
                "degraded_metrics": ",".join(x.metric for x in worse),
            }
            out += self._alert(
                "performance_degradation",
                model,
                version,
                seg,
                d.ratio,
                f"{d.metric} of {model} {version} on {seg} {how}.",
                evidence,
                now_ms,
            )
        return out

    def checks_snapshot(self, snapshot: Mapping[str, Any]) -> list[Check]:
        """The judgements of ``snapshot`` that raise no alert: performance (any segment,
        when it has ``min_count`` outcomes and a baseline) and numerical stability
        (segment 'all'), each healthy or recovering."""
        model, version, seg = snapshot["model"], snapshot["version"], snapshot["segment"]
        window, count = snapshot["window"], snapshot["count"]
        out = []
        counts = snapshot.get("counts") or {}
        bad = counts.get("nan", 0) + counts.get("inf", 0)
        if seg == PRIMARY and count >= self.min_events and bad / count <= self.nan_rate:
            rate, clear = bad / count, self.clear_factor * self.nan_rate
            out.append(Check(
                "numerical_instability", PRIMARY, rate <= clear, version,
                f"{rate:.1%} of the predictions of {model} {version} were NaN or infinite "
                f"({bad} of {count}, {window}): {'within' if rate <= clear else 'above'} the "
                f"clearing threshold {clear:.1%}.",
                {"rate": rate, "clear_threshold": clear, "count": count, "window": window},
            ))  # fmt: skip
        if count < self.min_count:
            return out
        found = degradations(snapshot, self.margin, self.relative_margin, self.watch)
        if not found or found[0].ratio > 1:
            return out
        d = found[0]
        clear = self.clearing_margin(d, (snapshot.get("baseline") or {}).get("count"))
        healthy = d.worse_by <= clear
        if d.metric in HIGHER_IS_BETTER:
            gap = f"{_g(abs(d.worse_by))} {'below' if d.worse_by > 0 else 'above'}"
            limit = _g(clear)
        else:
            gap = f"{abs(d.worse_by):.0%} {'above' if d.worse_by > 0 else 'below'}"
            limit = f"{clear:.0%}"
        out.append(Check(
            "performance_degradation", seg, healthy, version,
            f"{d.metric} of {model} {version} on {seg} is {_g(d.value)} over {window} "
            f"({count} outcomes), {gap} its baseline {_g(d.baseline)}: "
            f"{'within' if healthy else 'outside'} the clearing margin {limit}.",
            {"metric": d.metric, "value": d.value, "baseline": d.baseline,
             "worse_by": d.worse_by, "clear_margin": clear, "count": count, "window": window},
        ))  # fmt: skip
        return out

    def clearing_margin(self, d: Degradation, baseline_rows: float | None) -> float:
        """How far below its baseline ``d`` may be and still count as healthy:
        ``clear_factor`` times its margin, plus, for accuracy with a baseline measured on
        ``baseline_rows`` held-out rows, one standard error of that baseline
        (``sqrt(b (1 - b) / rows)``), at most halfway from there to the alerting margin.

        A baseline of 100 rows is itself give or take 0.02: a version serving 0.93
        against a lucky 0.96 would never count as recovered against 0.025 alone.

        >>> rules = AlertRules(margin=0.05)
        >>> d = Degradation("accuracy", 0.93, 0.96, 0.03, 0.05)
        >>> rules.clearing_margin(d, None), round(rules.clearing_margin(d, 100), 4)
        (0.025, 0.0375)
        >>> round(rules.clearing_margin(d, 10_000), 4)  # 0.025 + 0.00196
        0.027
        """
        clear = self.clear_factor * d.margin
        if d.metric != "accuracy" or not baseline_rows or not 0 <= d.baseline <= 1:
            return clear
        se = math.sqrt(d.baseline * (1 - d.baseline) / baseline_rows)
        return min(clear + se, (clear + d.margin) / 2)

    def checks_drift(
        self, model: str, version: str, results: Sequence[FeatureDrift]
    ) -> list[Check]:
        """Feature and prediction drift judged on ``results`` (one evaluation of the live
        window): a healthy check per kind with tested features and none drifted."""
        out = []
        for kind in ("feature_drift", "prediction_drift"):
            tested = [r for r in results if r.kind == kind and r.psi is not None]
            if not tested or any(r.drifted for r in tested):
                continue
            top = max(tested, key=lambda r: r.psi or 0.0)
            what = "prediction distribution" if kind == "prediction_drift" else "features"
            out.append(Check(
                kind, PRIMARY, True, version,
                f"none of the {len(tested)} {what} of {model} {version} drifted from the "
                f"training data (highest PSI {_g(top.psi or 0.0)}, {top.feature}; {top.n} "
                "live values).",
                {"tested": len(tested), "feature": top.feature, "psi": top.psi, "n": top.n},
            ))  # fmt: skip
        return out

    def check_concept(self, model: str, quiet: int, performance: Check | None) -> Check | None:
        """Concept drift judged at a tick: once ``quiet_outcomes`` outcomes (``quiet``)
        came with no alarm, as healthy as the served version's ``performance`` on 'all'
        (the change is over and the model copes with it); None before, or while that
        performance is degraded or not judged."""
        if quiet < self.quiet_outcomes or performance is None:
            return None
        p = performance
        return Check(
            CONCEPT_DRIFT, PRIMARY, p.healthy, p.version,
            f"no change in the error of {model} over its last {quiet} outcomes, and {p.message}",
            {"quiet_outcomes": quiet, **p.evidence},
        )  # fmt: skip

    def check_rate(self, kind: str, model: str, window: Window) -> Check | None:
        """A settled rate window (``skew_rate`` or ``expired_label_rate``) that raises no
        alert: healthy at or below ``clear_factor`` times the threshold; None when too
        small to judge."""
        threshold = self.skew_rate if kind == "skew_rate" else self.expired_rate
        if window.total < self.min_events or self._above(window, threshold):
            return None
        clear = self.clear_factor * threshold
        what = "were dead-lettered" if kind == "skew_rate" else "expired before their label"
        healthy = window.rate <= clear
        return Check(
            kind, PRIMARY, healthy, _version(window),
            f"{window.rate:.1%} of the events of {model} {_span(window)} {what} "
            f"({window.hits} of {window.total}): {'within' if healthy else 'above'} the "
            f"clearing threshold {clear:.1%}.",
            {"rate": window.rate, "clear_threshold": clear, "hits": window.hits,
             "total": window.total, "window_start_ms": window.start_ms,
             "window_end_ms": window.end_ms},
        )  # fmt: skip

    def check_estimate(self, snapshot: Mapping[str, Any], now_ms: int) -> list[dict[str, Any]]:
        """estimated_performance_degradation: a CBPE snapshot (window ``estimate:N``) whose
        estimated metric is more than ``margin`` below the version's baseline *and* whose
        band's upper end is below the baseline too (the drop is beyond the sampling noise
        the band describes). Judged on ``min_count`` predictions at least; no labels
        needed. The metrics watched are those of ``watch`` that have an estimate."""
        count = snapshot["count"]
        if count < self.min_count:
            return []
        metrics, base = snapshot["metrics"], snapshot.get("baseline") or {}
        worst: tuple[float, str, float, float, float] | None = None
        for name in sorted(HIGHER_IS_BETTER):
            value, upper = metrics.get(f"estimated_{name}"), metrics.get(f"estimated_{name}_upper")
            if value is None or upper is None or name not in base:
                continue
            if self.watch is not None and name not in self.watch:
                continue
            drop = base[name] - value
            if drop > self.margin and upper < base[name]:
                ratio = drop / self.margin
                if worst is None or ratio > worst[0]:
                    worst = (ratio, name, value, base[name], upper)
        if worst is None:
            return []
        ratio, name, value, b, upper = worst
        model, version, seg, window = (snapshot["model"], snapshot["version"],
                                       snapshot["segment"], snapshot["window"])  # fmt: skip
        low = metrics.get(f"estimated_{name}_lower", value)
        msg = (
            f"estimated {name} of {model} {version} on {seg} fell to {_g(value)} "
            f"(band {_g(low)}-{_g(upper)}) over the last {count} predictions, before their "
            f"labels, {_g(b - value)} below its baseline {_g(b)} (margin {_g(self.margin)})."
        )
        evidence = {"metric": name, "value": value, "lower": low, "upper": upper,
                    "baseline": b, "worse_by": b - value, "margin": self.margin,
                    "count": count, "window": window}  # fmt: skip
        return self._alert("estimated_performance_degradation", model, version, seg, ratio,
                           msg, evidence, now_ms)  # fmt: skip

    def checks_estimate(self, snapshot: Mapping[str, Any]) -> list[Check]:
        """A CBPE snapshot of segment 'all' that raises no alert, judged: healthy once no
        watched estimate is both more than the margin below its baseline and with its
        band's top below it (the alert's own condition: an estimate from uncalibrated
        scores may never come back within a tighter margin of a realized baseline, and
        the incident's healthy checks in a row are the hysteresis); none before
        ``min_count``."""
        if snapshot["segment"] != PRIMARY or snapshot["count"] < self.min_count:
            return []
        metrics, base = snapshot["metrics"], snapshot.get("baseline") or {}
        drops = {
            name: (base[name] - metrics[f"estimated_{name}"],
                   metrics.get(f"estimated_{name}_upper", metrics[f"estimated_{name}"]))
            for name in sorted(HIGHER_IS_BETTER)
            if f"estimated_{name}" in metrics and name in base
            and (self.watch is None or name in self.watch)
        }  # fmt: skip
        if not drops:
            return []
        name = max(drops, key=lambda n: drops[n][0])
        drop, upper = drops[name]
        healthy = drop <= self.margin or upper >= base[name]
        model, version = snapshot["model"], snapshot["version"]
        return [Check(
            "estimated_performance_degradation", PRIMARY, healthy, version,
            f"estimated {name} of {model} {version} is {_g(metrics[f'estimated_{name}'])} "
            f"(band top {_g(upper)}) over the last {snapshot['count']} predictions, "
            f"{_g(drop)} below its baseline {_g(base[name])}: "
            f"{'no longer' if healthy else 'still'} beyond the margin {_g(self.margin)}.",
            {"metric": name, "worse_by": drop, "upper": upper, "margin": self.margin,
             "count": snapshot["count"], "window": snapshot["window"]},
        )]  # fmt: skip

    def check_drift(
        self,
        events: Sequence[DriftEvent],
        now_ms: int,
        importance: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """One alert per (model, version, kind, segment) among ``events``, on the strongest.

        With ``importance`` (the version's permutation importance per feature), feature
        drift is ranked by importance first (then strength), the alert carries the
        importance of each drifted feature, and a drift whose every feature has
        ~zero importance (mean within twice its spread of 0, or below
        ``NEGLIGIBLE_IMPORTANCE``) is reported at severity ``info``: inputs moved, the
        model does not use them."""
        groups: dict[tuple[str, str, str, str], list[DriftEvent]] = {}
        for e in events:
            groups.setdefault((e.model, e.version, e.kind, e.segment), []).append(e)
        out = []
        for (model, version, kind, seg), group in groups.items():
            if kind == "concept_drift":
                e = group[-1]
                change = (
                    f"; the change began about {e.since_change} outcomes ago"
                    if e.since_change is not None
                    else ""
                )
                before = "?" if e.reference is None else _g(e.reference)
                after = "" if e.statistic is None else f" -> {_g(e.statistic)}"
                msg = (
                    f"{e.detector} detected a change in the error of {model} {version} "
                    f"after {e.n} outcomes (mean error {before}{after}){change}."
                )
                out += self._alert(kind, model, version, seg, 1.0, msg, e.evidence(), now_ms)
                continue

            def strength(e: DriftEvent) -> float:
                return (e.statistic or 0.0) / (e.threshold or 1.0)

            imp = importance or {}

            def weight(e: DriftEvent, imp: Mapping[str, Mapping[str, Any]] = imp) -> float:
                return float((imp.get(str(e.feature)) or {}).get("mean", 0.0))

            ranked_by_importance = kind == "feature_drift" and bool(imp)
            if ranked_by_importance:
                group = sorted(group, key=lambda e: (weight(e), strength(e)), reverse=True)
            else:
                group = sorted(group, key=strength, reverse=True)
            e = group[0]
            what = "prediction distribution" if kind == "prediction_drift" else "features"
            names = ",".join(str(x.feature) for x in group)
            msg = (
                f"{len(group)} of the {what} of {model} {version} drifted from the training "
                f"data, most {e.feature} ({e.detector} {_g(e.statistic or 0.0)} >= "
                f"{_g(e.threshold or 0.0)}, p={e.p_value or 0.0:.2g}, {e.n} live values)."
            )
            evidence = {**e.evidence(), "features": names, "drifted": len(group)}
            if ranked_by_importance:
                evidence.update({f"importance.{x.feature}": weight(x) for x in group})
                negligible = all(_negligible(imp.get(str(x.feature))) for x in group)
                if negligible:
                    msg += " None of them matters to the model (permutation importance ~0)."
                evidence["negligible_importance"] = negligible
                alerts = self._alert(kind, model, version, seg, strength(e), msg, evidence,
                                     now_ms)  # fmt: skip
                if negligible:
                    for a in alerts:
                        a["severity"] = "info"
                out += alerts
                continue
            out += self._alert(kind, model, version, seg, strength(e), msg, evidence, now_ms)
        return out

    def check_skew(self, model: str, window: Window, now_ms: int) -> list[dict[str, Any]]:
        """skew_rate: of the events the scorer handled in ``window``, the share it
        dead-lettered (undecodable, invalid, or refused by the model)."""
        if not self._above(window, self.skew_rate):
            return []
        top = window.reasons[0] if window.reasons else None
        most = f", mostly {top[0]} ({top[1]})" if top else ""
        msg = (
            f"{window.rate:.1%} of the events of {model} handled {_span(window)} were "
            f"dead-lettered ({window.hits} of {window.total}{most}; scored by "
            f"{window.served_by()}), above the {self.skew_rate:.1%} threshold"
            f"{self._surely(window)}."
        )
        evidence = self._rate_evidence(window, self.skew_rate, "failed")
        evidence.update({f"reason.{k}": v for k, v in window.reasons})
        return self._alert(
            "skew_rate", model, _version(window), None, window.rate / self.skew_rate, msg,
            evidence, now_ms, per_version=False,
        )  # fmt: skip

    def check_expired(self, model: str, window: Window, now_ms: int) -> list[dict[str, Any]]:
        """expired_label_rate: of the predictions that reached the join in ``window``,
        the share whose label did not come within the TTL."""
        if not self._above(window, self.expired_rate):
            return []
        msg = (
            f"{window.rate:.1%} of the predictions of {model} that reached the join "
            f"{_span(window)} expired before their label arrived ({window.hits} of "
            f"{window.total}; served by {window.served_by()}), above the "
            f"{self.expired_rate:.1%} threshold{self._surely(window)}."
        )
        evidence = self._rate_evidence(window, self.expired_rate, "expired")
        evidence.update({f"expired.{v}": n for v, n in window.hits_by_version})
        evidence["unresolved"] = window.unresolved
        return self._alert(
            "expired_label_rate", model, _version(window), None,
            window.rate / self.expired_rate, msg, evidence, now_ms, per_version=False,
        )  # fmt: skip

    def _above(self, window: Window, threshold: float) -> bool:
        """The window is large enough and its rate above ``threshold`` with the rules'
        confidence (the Wilson lower bound too, unless ``confidence`` is 0.5)."""
        if window.total < self.min_events or window.rate <= threshold:
            return False
        return wilson_lower(window.hits, window.total, self._z) > threshold

    def _surely(self, window: Window) -> str:
        if self._z <= 0:
            return ""
        low = wilson_lower(window.hits, window.total, self._z)
        return f" (at least {low:.1%} at {self.confidence:.0%} confidence)"

    def _rate_evidence(self, window: Window, threshold: float, hits: str) -> dict[str, Any]:
        return {
            "rate": window.rate,
            "threshold": threshold,
            "lower_bound": wilson_lower(window.hits, window.total, self._z),
            "confidence": self.confidence,
            hits: window.hits,
            "total": window.total,
            "window": f"{window.kind}:{window.start_ms}-{window.end_ms}",
            "window_start_ms": window.start_ms,
            "window_end_ms": window.end_ms,
            "versions": window.served_by(),
        }


NEGLIGIBLE_IMPORTANCE = 0.002
"""A permutation importance below this (of accuracy, or of MAE relative units) is ~0."""


def _negligible(imp: Mapping[str, Any] | None) -> bool:
    """Whether a feature's importance is ~zero (unknown: not negligible)."""
    if not imp:
        return False
    mean, std = float(imp.get("mean", 0.0)), float(imp.get("std", 0.0))
    return mean < NEGLIGIBLE_IMPORTANCE or mean <= 2 * std


def _version(window: Window) -> str | None:
    """The version a rate alert is about: the one that served the whole window, else
    None (the evidence and message name every version)."""
    return window.versions[0][0] if len(window.versions) == 1 else None


def _span(window: Window) -> str:
    """``between 2026-12-06 10:00:00 and 10:01:40 UTC`` (the window's span)."""
    start = datetime.fromtimestamp(window.start_ms / 1000, UTC)
    end = datetime.fromtimestamp(window.end_ms / 1000, UTC)
    last = end.strftime("%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S")
    return f"between {start:%Y-%m-%d %H:%M:%S} and {last} UTC"
