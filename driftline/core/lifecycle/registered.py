"""A model trained outside Driftline, registered as a version: checked on the user's
labelled rows, profiled, signed and gated like a trained candidate
(``driftline models register``). Pure apart from the clock and the host name; the
command reads the files and publishes.

Steps (each timed into ``lineage.step_ms``): ``adapt`` (:func:`~driftline.core.model.
foreign.adapt`: a river model as it is, a scikit-learn-like one wrapped), ``validate``
(every row against the feature spec, then the model scores a sample of the rows:
any exception, non-finite output, or classes that are not the labels' is a
ConfigError naming the row), ``serialize`` (canonical pickle, sha256, HMAC
signature), ``profile`` (reference profile of the rows' features and of the model's
predictions), ``gate`` and ``importance`` (every row is held out: the model never saw
them as Driftline's training data, and the gate compares it with the champion, or
with the labels' baseline when there is none). The stage follows the gate as for a
trained candidate (:func:`~driftline.core.lifecycle.training.decide`; the model's first
version becomes champion when it passes), or stays ``candidate`` when asked.

>>> from river import linear_model
>>> from driftline.core.model.config import ModelConfig
>>> rows = [{"features": {"x": i % 10}, "label": i % 10 > 4, "event_time_ms": i}
...         for i in range(300)]
>>> outside = linear_model.LogisticRegression()
>>> for r in rows:
...     outside.learn_one(r["features"], r["label"])
>>> run, records = register(outside, rows, ModelConfig("m"), key=b"k", by="me",
...                         source="m.pkl", now_ms=1_000, host="h", code="0.1.0")
>>> [(r["version"][:3], r["stage"]) for r in records], run.verdict["passed"]
([('v1-', 'candidate'), ('v1-', 'champion')], True)
>>> records[0]["lineage"]["holdout_rows"], records[0]["stage_reason"][:60]
(300, 'registered from m.pkl (river.linear_model.log_reg.LogisticRe')
>>> register(outside, [{"features": {"x": "a"}, "label": True}], ModelConfig("m"),
...          key=b"k", by="me", source="m.pkl", now_ms=1)
Traceback (most recent call last):
...
driftline.core.errors.ConfigError: m: the model cannot score row 1 (x='a'): TypeError: ...
"""

from __future__ import annotations

import math
import numbers
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from driftline.core.errors import ConfigError, ValidationError
from driftline.core.lifecycle.registry import MAX_CHALLENGERS
from driftline.core.lifecycle.training import (
    Laps,
    Store,
    TrainingRun,
    code_version,
    decide,
    gate_record,
    packed,
    reference_profile,
    stage_records,
)
from driftline.core.lifecycle.trainset import build_frame, examples
from driftline.core.model.config import ModelConfig
from driftline.core.model.estimators import ServedModel
from driftline.core.model.foreign import adapt, describe
from driftline.core.model.validation import Spec

__all__ = ["CHECK_ROWS", "check_rows", "register"]

CHECK_ROWS = 200
"""Rows the model must score before anything is signed (spread over the file)."""
SHOWN = 5


def _show(features: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in sorted(features.items()))
    return text if len(text) <= 200 else text[:197] + "..."


def _conformed(spec: Spec, rows: Sequence[dict[str, Any]], model: str) -> None:
    """Each row's features through the spec (integral floats of integer features become
    ints); a ConfigError listing the first problems, by row (1 = the oldest)."""
    problems: list[str] = []
    for i, r in enumerate(rows, 1):
        try:
            r["features"] = dict(spec.conform(r["features"]))
        except ValidationError:
            found = "; ".join(str(e) for e in spec.check_all(r["features"]))
            problems.append(f"row {i}: {found}")
    if problems:
        more = f" (and {len(problems) - SHOWN} more rows)" if len(problems) > SHOWN else ""
        raise ConfigError(
            f"{model}: {len(problems)} of {len(rows)} rows do not match the models file's "
            f"features: {' | '.join(problems[:SHOWN])}{more}"
        )


def _label_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def check_rows(live: ServedModel, rows: Sequence[Mapping[str, Any]], n: int = CHECK_ROWS) -> None:
    """``live`` scores ``n`` rows spread over ``rows``: a ConfigError (naming the row,
    1 = the oldest) for an exception, a non-finite or missing output, a regressor's
    non-number, or a classifier whose classes and the labels have none in common."""
    step = max(1, len(rows) // n)
    predicted: set[str] = set()
    for i in range(0, len(rows), step):
        features = rows[i]["features"]
        where = f"{live.name}: the model cannot score row {i + 1} ({_show(features)})"
        try:
            value, scores = live.predict_one(features)
        except Exception as exc:  # the user's code: any failure is theirs to see
            raise ConfigError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if live.task == "regression":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"{where}: a regressor must predict a number, not {value!r}")
            if not math.isfinite(float(value)):
                raise ConfigError(f"{where}: it predicted {value}")
            continue
        if value is None or not scores:
            raise ConfigError(f"{where}: it gave no class probabilities")
        if not all(math.isfinite(p) for p in scores.values()):
            raise ConfigError(f"{where}: non-finite probabilities {scores}")
        predicted.update(scores)
    if live.task == "classification":
        labels = {_label_text(r["label"]) for r in rows}
        if not labels & predicted:
            raise ConfigError(
                f"{live.name}: the model's classes {sorted(predicted)} are none of the labels "
                f"{sorted(labels)[:10]}: was it trained on this label, with these values "
                "(True/False, 0/1, strings)?"
            )


def register(
    estimator: Any,
    rows: Iterable[Mapping[str, Any]],
    config: ModelConfig,
    *,
    key: bytes,
    by: str,
    source: str,
    now_ms: int,
    reason: str | None = None,
    champion: Mapping[str, Any] | None = None,
    current: Iterable[Mapping[str, Any]] = (),
    existing_versions: Iterable[str] = (),
    stage: str | None = None,
    max_challengers: int = MAX_CHALLENGERS,
    code: str | None = None,
    host: str | None = None,
    inline_max_bytes: int = 512_000,
    store: Store | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[TrainingRun, list[dict[str, Any]]]:
    """The run and the records to publish for ``estimator``, a model trained elsewhere
    (read from ``source``), as a version of ``config``'s model, gated on ``rows``
    (Outcome-like dicts: ``features``, ``label``, optionally ``event_time_ms``,
    ``segment``, ``event_id``) against ``champion``. ``stage``: None (the gate decides,
    as for a trained candidate) or ``"candidate"`` (publish it for a person to
    promote). A model or rows that fail the checks raise ConfigError before any record
    exists."""
    lap = Laps(clock)
    steps = lap.steps
    if stage not in (None, "candidate"):
        raise ConfigError(f"stage must be None (the gate decides) or candidate, not {stage!r}")
    data = examples(build_frame(rows))
    if not data:
        raise ConfigError(f"{config.name}: no labelled rows to check the model on")
    spec = config.spec() if config.features else Spec.infer(r["features"] for r in data)
    model = adapt(estimator, config.task, [f.name for f in spec.features])
    lap("adapt")
    _conformed(spec, data, config.name)
    check_rows(ServedModel(config.name, "check", config.task, model, spec, "{}"), data)
    lap("validate")
    blob, artifact, version = packed(
        config.name, model, key, existing_versions, inline_max_bytes, store
    )
    lap("serialize")
    live = ServedModel(config.name, version, config.task, model, spec, "{}")
    profile = reference_profile(live, config, data, data)
    lap("profile")
    why = f"registered from {source} ({describe(model)}, trained outside Driftline)"
    record: dict[str, Any] = {
        "model": config.name,
        "version": version,
        "stage": "candidate",
        "stage_changed_at_ms": now_ms,
        "stage_changed_by": by,
        "stage_reason": why if reason is None else f"{why}: {reason}",
        "created_at_ms": now_ms,
        "task": config.task,
        "factory": config.factory,  # what a retrain builds
        "feature_spec": spec.to_dicts(),
        "metrics": {},
        "segment_metrics": {},
        "reference_profile": profile.to_json(),
        "lineage": {
            "trigger_id": None,
            "trigger_key": None,
            "training_run_id": f"registered-{uuid.uuid4()}",
            "data_ranges": [],
            "rows": 0,  # none of Driftline's: it was trained elsewhere
            "holdout_rows": len(data),
            "code_version": code if code is not None else code_version(),
            "params": {},
            "seed": config.seed,
            "champion_version": champion["version"] if champion else None,
            "started_at_ms": now_ms,
            "finished_at_ms": None,
            "host": host if host is not None else socket.gethostname(),
            "step_ms": steps,
            "earlier_rows": 0,
            "earlier_version": None,
            "importance": None,
        },
        "gate": None,
        "artifact": artifact,
        "training_sample": None,
        "calibration": None,
    }
    result = gate_record(record, live, champion, data, config, key=key, train_labels=None, lap=lap)
    record["lineage"]["finished_at_ms"] = now_ms + lap.total_ms()
    run = TrainingRun(record, model, blob, result, 0, len(data), steps)
    if stage == "candidate":
        return run, [dict(record)]
    decided = decide(result.verdict, config.promotion, config.gate.min_improvement)
    held = [*([champion] if champion else []), *current]
    verdict = result.verdict["summary"]
    later = stage_records(record, decided, current=held, by=by, now_ms=now_ms,
                          reason=f"{why}; gate: {verdict}",
                          max_challengers=max_challengers)  # fmt: skip
    return run, [dict(record), *later]
