"""What a table of labelled rows says about the model to bootstrap from it: the task, the
feature spec, and the columns that drift by construction. Pure; ``driftline models
bootstrap`` prints what it found and can write it as a models file.

**Task** (:func:`infer_task`), from the label column's values (null labels are refused):

=====================================  ==================================================
labels                                 task
=====================================  ==================================================
booleans                               classification
integers, at most 20 distinct values   classification
strings, at most 20 distinct values    classification
numbers with a fraction (``3.25``)     regression
integral floats only (``0.0``, ``1.0``) regression if more than 20 distinct values, else
                                       refused: classes written as floats, or a target?
integers, more than 20 distinct        refused: classes or a quantity?
strings, more than 20 distinct         refused: that many classes is rarely meant
mixed types (``true`` and ``"yes"``)   refused: one label type per model
=====================================  ==================================================

A refusal names ``--task``; with ``--task`` (or the models file's ``task``) every label
must fit it (:func:`check_labels`, the joiner's own check).

**Columns that drift by construction** (:func:`drifting_columns`): a feature with at least
20 non-null values of which at least 10 are distinct, that never falls (or never rises)
between consecutive rows of the file on at least 95% of them (time stamps, counters, ids
given in order), or an integer or string feature with a different value on every row (an
id). They drift for ever: bootstrap suggests ``[models.NAME.drift] exclude`` for them and
gives them no bounds.

**Feature spec** (:func:`infer_spec`): :meth:`Spec.infer`'s types and ``required``; bounds
for numbers, the observed range widened by :data:`MARGIN` (half its span) on each side,
rounded outwards for integers: wide enough for a drifting feature to still be scored (drift
is the monitor's job), narrow enough to dead-letter a unit mistake (cents for euros, x100)
or a sign flip; categories listed (anything else dead-lettered as ``unseen_category``) only
when there are at most :data:`MAX_CATEGORIES` values and each was seen at least twice: a
value seen once says others are still unseen, and a listed set would refuse them.

>>> infer_task([True, False, True]).task, infer_task([0.5, 1.25, 3.0]).task
('classification', 'regression')
>>> rows = [{"day": 20_000 + i, "amount": float(i % 7), "plan": "ab"[i % 2]} for i in range(40)]
>>> drifting_columns(rows)
{'day': 'never falls between consecutive rows (39 of 39 pairs), 40 distinct values'}
>>> [(f.name, f.min, f.max, f.categories) for f in infer_spec(rows, {"day"}).features]
[('amount', -3.0, 9.0, ()), ('day', None, None, ()), ('plan', None, None, ('a', 'b'))]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from driftline.core.errors import ConfigError, ValidationError
from driftline.core.model.config import DriftConfig, ModelConfig, check_model
from driftline.core.model.config_problems import ModelsFileError, Problem, dotted
from driftline.core.model.validation import Spec
from driftline.core.wire.envelope import check_label, label_type

__all__ = [
    "BOOTSTRAP_TTL_MS",
    "MARGIN",
    "MAX_CATEGORIES",
    "MAX_CLASSES",
    "Plan",
    "TaskGuess",
    "check_labels",
    "drifting_columns",
    "infer_spec",
    "infer_task",
    "plan",
]

MAX_CLASSES = 20
"""A label column with at most this many distinct values reads as classes."""
MARGIN = 0.5
"""Bounds: the observed range widened by this fraction of its span on each side."""
MAX_CATEGORIES = 50
"""Categories are listed (a closed set) only up to this many values."""
BOOTSTRAP_TTL_MS = 86_400_000
"""Join TTL a bootstrapped models file proposes: 24 h. A label later than the TTL is lost
(``late_label``), and a prediction whose label never comes holds its place in the join
state for the TTL (~220 bytes, docs/benchmarks.md: 24 h at 100 events/s is ~8.6 M entries,
~1.9 GB). A day covers labels from a daily batch or a person's review, which the 1 h
default of a model the file does not name silently drops; at high rates lower it, or keep
the join state in RocksDB (``DRIFTLINE_TABLE_STORE``)."""
MONOTONIC_SHARE = 0.95
MONOTONIC_MIN_VALUES = 20
MONOTONIC_MIN_DISTINCT = 10


@dataclass(frozen=True)
class TaskGuess:
    """The task read from a label column, and the rule that gave it."""

    task: str
    why: str


def _ambiguous(column: str, what: str, hint: str) -> ConfigError:
    return ConfigError(
        f"cannot tell the task from label column {column!r}: {what}; pass --task "
        f"classification or --task regression ({hint})"
    )


def infer_task(labels: Sequence[Any], column: str = "label") -> TaskGuess:
    """The task the labels say (see the module docstring), or a ConfigError naming
    ``--task`` when they do not say it."""
    missing = [i for i, v in enumerate(labels) if v is None]
    if missing:
        raise ConfigError(
            f"label column {column!r} is empty on {len(missing)} row(s) (first: row "
            f"{missing[0] + 1}): every row needs a label"
        )
    if not labels:
        raise ConfigError("no rows: nothing to learn the task from")
    kinds = Counter(label_type(v) for v in labels)
    distinct = len({(label_type(v), v) for v in labels})
    few = distinct <= MAX_CLASSES
    if set(kinds) == {"boolean"}:
        return TaskGuess("classification", "boolean labels")
    if set(kinds) <= {"integer", "number"} and "number" in kinds:
        if any(not float(v).is_integer() for v in labels):
            return TaskGuess("regression", "numbers with a fraction")
        if not few:
            return TaskGuess("regression", f"{distinct} distinct numbers (more than {MAX_CLASSES})")
        raise ConfigError(
            f"cannot tell the task from label column {column!r}: {distinct} distinct whole "
            f"numbers written as floats ({_some(labels)}); pass --task regression for a "
            "value, or write the classes as integers (0, 1, ...) for classification (a "
            "float label never equals a class)"
        )
    if set(kinds) == {"integer"}:
        if few:
            return TaskGuess(
                "classification", f"{distinct} distinct integers (at most {MAX_CLASSES})"
            )
        raise _ambiguous(
            column, f"{distinct} distinct integers (more than {MAX_CLASSES})", "classes or a value?"
        )
    if set(kinds) == {"string"}:
        if few:
            return TaskGuess(
                "classification", f"{distinct} distinct strings (at most {MAX_CLASSES})"
            )
        raise _ambiguous(
            column,
            f"{distinct} distinct strings (more than {MAX_CLASSES} classes)",
            "a regression target must be numbers",
        )
    raise ConfigError(
        f"label column {column!r} mixes {' and '.join(sorted(kinds))} values "
        f"({_some(labels)}): a model's labels have one type"
    )


def _some(values: Sequence[Any], n: int = 4) -> str:
    seen = list(dict.fromkeys(repr(v) for v in values))
    return ", ".join(seen[:n]) + (", ..." if len(seen) > n else "")


def check_labels(labels: Sequence[Any], task: str, column: str = "label") -> None:
    """Every label fits ``task`` (the joiner's :func:`check_label`) and, for a classifier,
    they share one type; a ConfigError names the first rows that do not."""
    bad = []
    for i, v in enumerate(labels):
        try:
            check_label(v, task)
        except ValidationError as exc:
            bad.append(f"row {i + 1}: {exc.detail}")
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ConfigError(
            f"label column {column!r} does not fit task {task}: {'; '.join(bad[:3])}{more}"
        )
    kinds = {label_type(v) for v in labels}
    if task == "classification" and len(kinds) > 1:
        raise ConfigError(
            f"label column {column!r} mixes {' and '.join(sorted(kinds))} classes "
            f"({_some(labels)}): a model's labels have one type"
        )


def drifting_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Features that look monotonic or id-like (see the module docstring): name -> why."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    out: dict[str, str] = {}
    for name in names:
        values: list[Any] = [v for r in rows if (v := r.get(name)) is not None]
        kinds = {label_type(v) for v in values}
        numeric = kinds <= {"integer", "number"} and not any(
            isinstance(v, float) and not math.isfinite(v) for v in values
        )
        if len(values) < MONOTONIC_MIN_VALUES or not (numeric or kinds == {"string"}):
            continue
        distinct = len(set(values))
        pairs = len(values) - 1
        up = sum(b >= a for a, b in pairwise(values))
        down = sum(b <= a for a, b in pairwise(values))
        if distinct >= MONOTONIC_MIN_DISTINCT and max(up, down) >= MONOTONIC_SHARE * pairs:
            way = "falls" if up >= down else "rises"
            out[name] = (
                f"never {way} between consecutive rows ({max(up, down)} of {pairs} pairs), "
                f"{distinct} distinct values"
            )
        elif distinct == len(values) and kinds in ({"integer"}, {"string"}):
            out[name] = f"a different value on each of its {len(values)} rows (an id?)"
    return out


def _round_out(lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` widened to three significant digits of its span (no float noise).

    >>> _round_out(-2.285, 102.61500000000001)
    (-3.0, 103.0)
    """
    span = hi - lo or max(abs(lo), 1.0)
    digits = 2 - math.floor(math.log10(span))
    step = 10.0**-digits
    return (
        round(math.floor(lo / step) * step, max(digits, 0)),
        round(math.ceil(hi / step) * step, max(digits, 0)),
    )


def infer_spec(rows: Sequence[Mapping[str, Any]], drifting: Collection[str] = ()) -> Spec:
    """The feature spec of ``rows`` (see the module docstring); features in ``drifting``
    get no bounds."""
    spec = Spec.infer(rows, margin=MARGIN, max_categories=MAX_CATEGORIES)
    features = []
    for f in spec.features:
        if f.name in drifting:
            f = replace(f, min=None, max=None)
        elif f.type == "number" and f.min is not None and f.max is not None:
            lo, hi = _round_out(f.min, f.max)
            f = replace(f, min=lo, max=hi)
        if f.categories:
            counts = Counter(r.get(f.name) for r in rows)
            if any(counts[c] < 2 for c in f.categories):
                f = replace(f, categories=())
        features.append(f)
    return Spec(tuple(features), spec.allow_extra)


@dataclass(frozen=True)
class Plan:
    """What ``models bootstrap`` trains with, and what it found on the way."""

    config: ModelConfig
    """The model's configuration: the models file's, else one for the labels' task; its
    features inferred from the rows when the file declares none."""
    task_why: str
    drifting: dict[str, str]
    """Features that drift by construction, with why (:func:`drifting_columns`)."""
    inferred: bool
    """Whether the features were inferred here."""

    def file_config(self) -> ModelConfig:
        """The configuration to write as a models file: the flagged features excluded
        from drift unless the configuration excludes some already."""
        if self.config.drift.exclude or not self.drifting:
            return self.config
        return replace(self.config, drift=DriftConfig(tuple(self.drifting)))

    def lines(self, rows: int, label: str) -> list[str]:
        """What bootstrap prints about the plan."""
        cfg = self.config
        out = [f"task: {cfg.task} (label {label!r}: {self.task_why})"]
        if self.inferred:
            out.append(f"features: {len(cfg.features)} inferred from {rows} rows:")
            out += [f"  {_describe(f)}" for f in cfg.features]
        for name, why in self.drifting.items():
            out.append(
                f"column {name!r} drifts by construction: {why}; leave it out of drift "
                f'checks with [models.{cfg.name}.drift] exclude = ["{name}"] (or drop it)'
            )
        return out


def _describe(f: Mapping[str, Any]) -> str:
    text = f"{f['name']}: {f['type']}"
    if f.get("min") is not None or f.get("max") is not None:
        text += f" in [{f.get('min')}, {f.get('max')}]"
    if f.get("categories"):
        text += f" one of {', '.join(f['categories'])}"
    return text + ("" if f.get("required", True) else " (optional)")


def plan(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    declared: ModelConfig | None,
    *,
    task: str | None = None,
    factory: str | None = None,
    label_column: str = "label",
) -> Plan:
    """The bootstrap of model ``name`` from Outcome-like ``rows`` (``features``,
    ``label``): ``declared`` is the models file's configuration of it (None: absent),
    ``task`` and ``factory`` the command's options. A ConfigError (a ModelsFileError for a
    configuration mistake) says what does not fit: an ambiguous task, a label of the wrong
    type, an option the models file contradicts."""
    labels = [r.get("label") for r in rows]
    if declared is not None:
        for option, given, have in (("task", task, declared.task),
                                    ("factory", factory, declared.factory)):  # fmt: skip
            if given and given != have:
                raise ConfigError(
                    f"the models file gives {name} {option} {have}; --{option} {given} "
                    "disagrees: drop the option or change the file"
                )
        cfg, why = declared, "the models file's task"
    else:
        if task is not None:
            why = f"--task {task}"
        else:
            guess = infer_task(labels, label_column)
            task, why = guess.task, guess.why
        cfg = ModelConfig(name, task=task, factory=factory or "", join_ttl_ms=BOOTSTRAP_TTL_MS)
        found = check_model(cfg)
        if found:
            problems = [Problem(dotted(("models", name, *p)), r, name) for p, r in found]
            raise ModelsFileError(problems, "(command line)")
    check_labels(labels, cfg.task, label_column)
    features = [r.get("features") or {} for r in rows]
    drifting = drifting_columns(features)
    inferred = not cfg.features
    if inferred:
        spec = infer_spec(features, drifting)
        cfg = replace(cfg, features=tuple(spec.to_dicts()))
    return Plan(cfg, why, drifting, inferred)
