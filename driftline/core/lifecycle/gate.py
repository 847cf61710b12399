# mypy: disable-error-code="no-untyped-call"
# (river ships py.typed but leaves its metrics unannotated)
"""The validation gate: may a candidate replace the champion?

The held-out rows are the newest ones (:func:`time_split`). The candidate is loaded from
its signed artifact with :func:`~driftline.core.model.estimators.load_version` and scored through
:meth:`~driftline.core.model.estimators.ServedModel.predict_one`, the scorer's own path; the
champion is scored on the same rows. Checks (all must pass):

=============  ===================================================================
artifact       the candidate's artifact loads (digest, signature, unpickling)
smoke          every held-out row scored without an exception (and there were rows)
holdout        at least ``min_holdout_rows`` held-out rows
finite         no NaN or infinite prediction or score
size           artifact size <= ``max_artifact_bytes``
latency        p95 of predict_one <= ``max_predict_us``
improvement    the one-sided lower confidence bound (at ``improvement_alpha``) of the
               gain over the reference exceeds ``min_improvement``; the reference is
               the champion, or with none (or one whose artifact is refused) the
               trivial baseline: the training labels' majority class, or their mean
               (:mod:`~driftline.core.lifecycle.improvement`)
segments       no segment ('attr=value') with >= ``min_segment_samples`` held-out
               rows worse than the champion's by more than ``segment_tolerance``,
               beyond sampling noise (see below)
=============  ===================================================================

The gain is the mean per-row loss difference (0/1 error for a classifier, absolute
error for a regressor), reference minus candidate: the primary metric's improvement
(accuracy; MAE for regression). Its bound is exact for classifiers (McNemar's pairs:
the rows where one model is right and the other wrong, with a Clopper-Pearson bound on
the share won by the candidate) and a paired t bound for regressors; the verdict's
summary states gain, bound, level and method. A candidate no better than its
reference passes with probability at most ``improvement_alpha``. ``min_holdout_rows``
(default 100) refuses a verdict on fewer rows: a trial gated a linear model on 35
held-out rows of a monotonic feature, promoted it (MAE 3.39 against the champion's
7.56), and it then served an MAE of 30.7 against 7.0.

A segment holds a few hundred held-out rows, so its accuracy moves by a few points from
sampling alone: with five segments, a candidate better by 20 points overall was seen
rejected for one segment "worse by 0.04". So, with ``segment_alpha`` set, a segment
fails only when its loss exceeds the tolerance by more than ``z * SE``: SE is the
standard error of the paired per-row difference (0/1 error, or absolute error, of the
candidate minus the champion's on the same rows) and ``z`` the one-sided normal quantile
of ``segment_alpha`` divided by the number of gated segments (Bonferroni).

>>> from driftline.core.model.estimators import build, serialize, artifact_record
>>> model = build("logistic_regression", {}, seed=1)
>>> rows = [{"features": {"x": i % 2}, "label": i % 2 == 1, "segment": {"r": "eu"}}
...         for i in range(300)]
>>> for r in rows[:200]:
...     model.learn_one(r["features"], r["label"])
>>> record = {"model": "m", "version": "v1", "task": "classification", "feature_spec": [],
...           "reference_profile": "{}", "artifact": artifact_record(serialize(model), b"k")}
>>> labels = [r["label"] for r in rows[:200]]
>>> result = run_gate(record, None, rows[200:], GateConfig(min_segment_samples=50), key=b"k",
...                   train_labels=labels)
>>> result.verdict["passed"], result.verdict["candidate_metrics"]["accuracy"]
(True, 1.0)
>>> print(result.verdict["summary"].split(" (gain")[0])
passed: accuracy 1.0000 on 100 held-out rows vs majority-class baseline (False) 0.5000
>>> print(result.improvement.describe())
gain +0.5000, 95% lower bound +0.4418 (exact McNemar, 50 of 100 rows differ)
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from river import metrics

from driftline.core.errors import ArtifactError
from driftline.core.lifecycle.improvement import (
    Bound,
    improvement_bound,
    losses_of,
    trivial_prediction,
)
from driftline.core.model.config import GateConfig
from driftline.core.model.estimators import ServedModel, is_finite_output, load_version

__all__ = [
    "PRIMARY",
    "Evaluation",
    "GateConfig",
    "GateResult",
    "evaluate",
    "run_gate",
    "time_split",
]

T = TypeVar("T")
PRIMARY = {"classification": ("accuracy", 1), "regression": ("mae", -1)}
"""Per task: the metric the gate compares and its direction (+1: higher is better)."""
CHECKS = ("artifact", "smoke", "holdout", "finite", "size", "latency", "improvement", "segments")


def time_split(rows: Sequence[T], holdout_fraction: float) -> tuple[list[T], list[T]]:
    """(train, holdout) of time-ordered ``rows``: the newest ``ceil(n * fraction)`` rows are
    held out, leaving at least one row to train on.

    >>> time_split(list(range(10)), 0.25)
    ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    """
    n = len(rows)
    k = min(max(n - 1, 0), math.ceil(n * holdout_fraction))
    return list(rows[: n - k]), list(rows[n - k :])


def _new_metrics(task: str) -> dict[str, Any]:
    if task == "classification":
        return {
            "accuracy": metrics.Accuracy(),
            "macro_f1": metrics.MacroF1(),
            "log_loss": metrics.CrossEntropy(),
        }
    return {"mae": metrics.MAE(), "rmse": metrics.RMSE(), "r2": metrics.R2()}


def _key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@dataclass
class Evaluation:
    """One model on the held-out rows: metrics overall and per segment (with ``count``)."""

    metrics: dict[str, float]
    segments: dict[str, dict[str, float]]
    rows: int = 0
    errors: int = 0
    non_finite: int = 0
    latencies_us: list[float] = field(default_factory=list, repr=False)
    losses: list[float | None] = field(default_factory=list, repr=False)
    """Per row: 0/1 error (classification) or absolute error; None when not scored."""

    def percentile_us(self, q: float) -> float:
        if not self.latencies_us:
            return 0.0
        ordered = sorted(self.latencies_us)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def evaluate(
    model: ServedModel,
    rows: Sequence[Mapping[str, Any]],
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Evaluation:
    """Score ``rows`` (dicts with features, label, segment) through ``model.predict_one``."""
    classify = model.task == "classification"
    overall = _new_metrics(model.task)
    per_segment: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    ev = Evaluation({}, {}, rows=len(rows))
    for row in rows:
        t0 = clock()
        ev.losses.append(None)
        try:
            value, scores = model.predict_one(row["features"])
        except Exception:  # a model that raises fails the smoke check; keep counting
            ev.errors += 1
            continue
        ev.latencies_us.append((clock() - t0) / 1_000)
        if not is_finite_output(value, scores) or value is None:
            ev.non_finite += value is not None
            continue
        y = row["label"]
        ev.losses[-1] = float(_key(value) != _key(y)) if classify else abs(float(value) - float(y))
        segs = [f"{k}={v}" for k, v in sorted((row.get("segment") or {}).items())]
        for group in [
            overall,
            *(per_segment.setdefault(s, _new_metrics(model.task)) for s in segs),
        ]:
            for name, metric in group.items():
                if not classify:
                    metric.update(float(y), float(value))
                elif name == "log_loss":
                    metric.update(_key(y), scores)
                else:
                    metric.update(_key(y), _key(value))
        for s in segs:
            counts[s] = counts.get(s, 0) + 1
    ev.metrics = {n: float(m.get()) for n, m in overall.items()}
    ev.segments = {
        s: {**{n: float(m.get()) for n, m in group.items()}, "count": float(counts[s])}
        for s, group in sorted(per_segment.items())
    }
    return ev


@dataclass
class GateResult:
    """The verdict (a GateVerdict record) and the evaluations behind it."""

    verdict: dict[str, Any]
    candidate: Evaluation | None
    champion: Evaluation | None
    champion_error: str | None = None
    improvement: Bound | None = None
    """The candidate's gain over its reference (champion or baseline) and its bound."""


def _load(record: Mapping[str, Any] | None, key: bytes) -> tuple[ServedModel | None, str | None]:
    if record is None:
        return None, None
    try:
        return load_version(record, key), None
    except ArtifactError as exc:
        return None, str(exc)


def run_gate(
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    holdout: Sequence[Mapping[str, Any]],
    config: GateConfig,
    *,
    key: bytes,
    train_labels: Sequence[Any] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> GateResult:
    """Gate the candidate ModelVersion record against the champion's (or None).

    Without a champion (or with one whose artifact is refused) the candidate is compared
    with the trivial baseline of ``train_labels``, the labels it was trained on (None: the
    held-out labels themselves, a baseline that can only be harder to beat)."""
    cand, cand_error = _load(candidate, key)
    champ, champ_error = _load(champion, key)
    task = candidate["task"]
    metric, sign = PRIMARY[task]
    size = int(candidate["artifact"]["size_bytes"])
    if cand is None:
        checks = dict.fromkeys(CHECKS, False)
        checks["size"] = size <= config.max_artifact_bytes
        checks["holdout"] = len(holdout) >= config.min_holdout_rows
        verdict = _verdict(checks, f"failed artifact: {cand_error}", {}, {})
        return GateResult(verdict, None, None, champ_error)
    ce = evaluate(cand, holdout, clock)
    he = None if champ is None else evaluate(champ, holdout, clock)
    if he is not None:
        reference = f"champion {champion['version'] if champion else '?'} {he.metrics[metric]:.4f}"
        ref_losses: Sequence[float | None] = he.losses
        baseline_metric = None
    else:
        labels = [r["label"] for r in holdout] if train_labels is None else list(train_labels)
        constant = trivial_prediction(task, labels)
        ref_losses = losses_of(task, constant, holdout) if labels else [None] * len(holdout)
        baseline_metric = _constant_metric(task, ref_losses)
        if task == "classification":
            what = f"majority-class baseline ({constant})"
        else:
            what = "mean baseline" + ("" if constant is None else f" ({constant:.4g})")
        reference = f"{what} {baseline_metric:.4f}"
    bound = improvement_bound(ref_losses, ce.losses, task, config.improvement_alpha)
    p95 = ce.percentile_us(0.95)
    worst = _worst_segment(ce, he, metric, sign, config, holdout)
    checks = {
        "artifact": True,
        "smoke": ce.errors == 0 and ce.rows > 0,
        "holdout": ce.rows >= config.min_holdout_rows,
        "finite": ce.non_finite == 0,
        "size": size <= config.max_artifact_bytes,
        "latency": p95 <= config.max_predict_us,
        "improvement": bound.bound > config.min_improvement,
        "segments": worst is None or worst[1] <= worst[2],
    }
    cand_metrics = {
        **ce.metrics,
        "rows": float(ce.rows),
        "errors": float(ce.errors),
        "non_finite": float(ce.non_finite),
        "predict_p50_us": ce.percentile_us(0.5),
        "predict_p95_us": p95,
        "artifact_bytes": float(size),
        "gain": bound.gain,
    }
    if math.isfinite(bound.bound):
        cand_metrics["gain_bound"] = bound.bound
    if baseline_metric is not None:
        cand_metrics[f"baseline_{metric}"] = baseline_metric
    champ_metrics = {} if he is None else {**he.metrics, "rows": float(he.rows)}
    for seg in _gated_segments(ce, he, config):
        cand_metrics[f"{metric}@{seg}"] = ce.segments[seg][metric]
        if he is not None:
            champ_metrics[f"{metric}@{seg}"] = he.segments[seg][metric]
    summary = _summary(checks, task, ce, reference, bound, worst, p95, size, config)
    if champ_error:
        summary += (
            f" The champion could not be loaded ({champ_error}), so it was not compared;"
            " the candidate was compared with the baseline."
        )
    verdict = _verdict(checks, summary, cand_metrics, champ_metrics)
    return GateResult(verdict, ce, he, champ_error, bound)


def _constant_metric(task: str, losses: Sequence[float | None]) -> float:
    """The primary metric of a constant prediction from its per-row losses."""
    scored = [x for x in losses if x is not None]
    if not scored:
        return math.nan
    mean = math.fsum(scored) / len(scored)
    return 1 - mean if task == "classification" else mean


def _verdict(
    checks: dict[str, bool], summary: str, cand: dict[str, float], champ: dict[str, float]
) -> dict[str, Any]:
    return {
        "passed": all(checks.values()),
        "summary": summary,
        "checks": checks,
        "candidate_metrics": cand,
        "champion_metrics": champ,
    }


def _gated_segments(ce: Evaluation, he: Evaluation | None, config: GateConfig) -> list[str]:
    """Segments with enough held-out rows scored by the candidate (and the champion)."""
    return [
        s
        for s, m in ce.segments.items()
        if m["count"] >= config.min_segment_samples and (he is None or s in he.segments)
    ]


def _worst_segment(
    ce: Evaluation,
    he: Evaluation | None,
    metric: str,
    sign: int,
    config: GateConfig,
    rows: Sequence[Mapping[str, Any]],
) -> tuple[str, float, float] | None:
    """The gated segment where the candidate is worst against the champion: its name, how
    much worse, and the loss it may show (the tolerance plus the noise margin)."""
    if he is None:
        return None
    gated = _gated_segments(ce, he, config)
    z = 0.0
    if config.segment_alpha is not None and gated:
        z = statistics.NormalDist().inv_cdf(1 - config.segment_alpha / len(gated))
    worst = None
    for s in gated:
        loss = sign * (he.segments[s][metric] - ce.segments[s][metric])
        allowed = config.segment_tolerance + z * _paired_se(ce, he, rows, s)
        if worst is None or loss - allowed > worst[1] - worst[2]:
            worst = (s, loss, allowed)
    return worst


def _paired_se(
    ce: Evaluation, he: Evaluation, rows: Sequence[Mapping[str, Any]], segment: str
) -> float:
    """Standard error of the mean per-row loss difference on the rows of ``segment``."""
    attr, _, value = segment.partition("=")
    diffs = [
        c - h
        for row, c, h in zip(rows, ce.losses, he.losses, strict=False)
        if c is not None and h is not None and str((row.get("segment") or {}).get(attr)) == value
    ]
    if len(diffs) < 2:
        return 0.0
    return statistics.stdev(diffs) / math.sqrt(len(diffs))


def _summary(
    checks: dict[str, bool],
    task: str,
    ce: Evaluation,
    reference: str,
    bound: Bound,
    worst: tuple[str, float, float] | None,
    p95: float,
    size: int,
    config: GateConfig,
) -> str:
    metric = PRIMARY[task][0]
    failed = [c for c, ok in checks.items() if not ok]
    head = "passed" if not failed else f"failed {', '.join(failed)}"
    rows = f"{ce.rows} held-out rows"
    if not checks["holdout"]:
        rows += f" (needs >= {config.min_holdout_rows})"
    parts = [
        f"{head}: {metric} {ce.metrics[metric]:.4f} on {rows} vs {reference}"
        f" ({bound.describe()}, needs > {config.min_improvement:+.4f})"
    ]
    if worst is not None:
        how = f"worse by {worst[1]:.4f}" if worst[1] > 0 else f"better by {-worst[1]:.4f}"
        noise = worst[2] - config.segment_tolerance
        parts.append(
            f"worst segment {worst[0]} {how} (tolerance {config.segment_tolerance:.4f}"
            + (f" + noise {noise:.4f}" if noise > 0 else "")
            + f", segments of >= {config.min_segment_samples} rows)"
        )
    if ce.errors or ce.non_finite:
        parts.append(f"{ce.errors} scoring errors, {ce.non_finite} non-finite outputs")
    parts.append(f"p95 latency {p95:.0f} us (max {config.max_predict_us:.0f})")
    parts.append(f"artifact {size} bytes (max {config.max_artifact_bytes})")
    return "; ".join(parts) + "."
