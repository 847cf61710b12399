"""One training run: examples in, a gated ModelVersion record (and the records that set
its stage) out. Pure apart from the clock and the host name; the trainer consumer does
the reading and publishing.

Steps (each timed into ``lineage.step_ms``): ``split`` the time-ordered examples (the
newest ``holdout_fraction`` are held out), ``spec`` (the models file's features, else
:meth:`Spec.infer` over every example), ``train`` (``learn_one`` in event-time order,
features in name order; with ``params.epochs`` > 1, more passes in orders shuffled with the
model's seed: :func:`fit`), ``serialize`` (canonical pickle, sha256, HMAC signature),
``profile`` (reference profile of the training features, and of the predictions on
the newest 5,000 rows, training and held-out alike), ``gate`` (which also calibrates a
classifier's scores on the held-out rows: the record's ``calibration``, ModelVersion v3)
and ``importance`` (permutation importance on the held-out rows, into
``lineage.importance``: :mod:`~driftline.core.lifecycle.importance`; with
``importance=False`` left to the caller, who adds it with :func:`add_importance` once it
knows the candidate may serve: the trainer skips it for a rejected candidate).
Same examples, code, parameters and seed: same artifact digest.

>>> from driftline.core.model.config import GateConfig, ModelConfig
>>> from driftline.core.lifecycle.trainset import build_frame, examples
>>> cfg = ModelConfig("churn", factory="logistic_regression",
...                   gate=GateConfig(min_segment_samples=10))
>>> rows = examples(build_frame(
...     {"features": {"x": i % 2, "plan": "a"}, "label": i % 2 == 1} for i in range(500)))
>>> run = train(rows, cfg, key=b"k", now_ms=1_000, code="0.1.0", host="h")
>>> run.record["version"], run.record["stage"], run.record["lineage"]["rows"]  # doctest: +ELLIPSIS
('v1-...', 'candidate', 400)
>>> run.verdict["passed"], decide(run.verdict, "auto"), decide(run.verdict, "manual")
(True, 'champion', 'challenger')
>>> run2 = train(rows, cfg, key=b"k", now_ms=2_000, code="0.1.0", host="h")
>>> run2.record["artifact"]["sha256"] == run.record["artifact"]["sha256"]
True
"""

from __future__ import annotations

import functools
import json
import random
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline import __version__
from driftline.core.errors import ConfigError
from driftline.core.lifecycle import reservoir
from driftline.core.lifecycle.gate import GateResult, run_gate, time_split
from driftline.core.lifecycle.importance import permutation_importance
from driftline.core.lifecycle.registry import MAX_CHALLENGERS, Registry, transition
from driftline.core.lifecycle.reservoir import SAMPLE_ROWS
from driftline.core.lifecycle.trainset import build_frame, examples
from driftline.core.model.config import ModelConfig
from driftline.core.model.estimators import (
    ServedModel,
    artifact_record,
    build,
    serialize,
    training_epochs,
)
from driftline.core.model.validation import Spec
from driftline.core.watch.profile import ReferenceProfile

__all__ = [
    "Laps",
    "TrainingRun",
    "add_importance",
    "bootstrap",
    "code_version",
    "decide",
    "fit",
    "gate_record",
    "next_version",
    "reference_profile",
    "stage_records",
    "train",
]


class Laps:
    """The wall milliseconds of a run's named steps, each timed from the end of the one
    before (the first from when it was made), into :attr:`steps` (which starts as a copy
    of ``steps``: what the caller timed before); call it with a step's name as it ends.

    >>> ticks = iter([10.0, 10.25, 10.5, 11.0])
    >>> lap = Laps(lambda: next(ticks), {"read": 3.0})
    >>> lap("train"); lap("gate"); lap.steps, lap.total_ms()
    ({'read': 3.0, 'train': 250.0, 'gate': 250.0}, 1000)
    """

    def __init__(
        self, clock: Callable[[], float], steps: Mapping[str, float] | None = None
    ) -> None:
        self.clock = clock
        self.steps: dict[str, float] = dict(steps or {})
        self.started = self._last = clock()

    def __call__(self, name: str) -> None:
        now = self.clock()
        self.steps[name] = round((now - self._last) * 1000, 3)
        self._last = now

    def total_ms(self) -> int:
        """Whole milliseconds since it was made."""
        return round((self.clock() - self.started) * 1000)


Store = Callable[[str, str, bytes], str]
"""``(model, version, data) -> uri``: keeps an artifact too large to travel inline."""
PROFILE_ROWS = 5_000


@functools.cache
def code_version() -> str:
    """Driftline's version, with ``+g<commit>`` (and ``.dirty``) when run from a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}" if commit else __version__


def next_version(existing: Iterable[str], digest: str) -> str:
    """``v<n>-<digest[:7]>``, n one past the highest n among ``existing``."""
    numbers = [int(m.group(1)) for v in existing if (m := re.match(r"v(\d+)", v))]
    return f"v{max(numbers, default=0) + 1}-{digest[:7]}"


def packed(
    model: str,
    estimator: Any,
    key: bytes,
    existing_versions: Iterable[str],
    inline_max_bytes: int,
    store: Store | None,
) -> tuple[bytes, dict[str, Any], str]:
    """``estimator`` serialized, its signed artifact record and its new version name: inline when
    it fits in ``inline_max_bytes``, else written by ``store`` and referenced by its URI
    (a ConfigError without a store)."""
    blob = serialize(estimator)
    artifact = artifact_record(blob, key)
    version = next_version(existing_versions, artifact["sha256"])
    if len(blob) > inline_max_bytes:
        if store is None:
            raise ConfigError(f"artifact of {len(blob)} bytes is too large to travel inline")
        artifact = artifact_record(blob, key, uri=store(model, version, blob))
    return blob, artifact, version


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in sorted(params.items())}


@dataclass
class TrainingRun:
    """A trained, gated version: its record (stage candidate) and what produced it."""

    record: dict[str, Any]
    estimator: Any
    artifact: bytes
    gate: GateResult
    train_rows: int
    holdout_rows: int
    step_ms: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> dict[str, Any]:
        return self.gate.verdict


def fit(
    estimator: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    epochs: int = 1,
    seed: int = 0,
    regression: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """``learn_one`` every row (``features``, ``label``), ``epochs`` times: the first pass in
    the given (event-time) order, each later one in an order shuffled with ``seed``.
    ``progress(done, total)`` counts learnt rows over all passes. Returns ``estimator``.

    >>> from river import tree
    >>> rows = [{"features": {"x": i % 4}, "label": i % 4 > 1} for i in range(40)]
    >>> model = fit(tree.HoeffdingTreeClassifier(), rows, epochs=3, seed=1)
    >>> model.predict_one({"x": 3}), model.predict_one({"x": 0})
    (True, False)
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs!r}")
    order = list(rows)
    rng = random.Random(seed)
    total, done = len(order) * epochs, 0
    for epoch in range(epochs):
        if epoch:
            rng.shuffle(order)
        for r in order:
            estimator.learn_one(r["features"], float(r["label"]) if regression else r["label"])
            done += 1
            if progress is not None and (done % 1_000 == 0 or done == total):
                progress(done, total)
    return estimator


def inconclusive(verdict: Mapping[str, Any], min_improvement: float = 0.0) -> bool:
    """Whether a verdict failed only for want of evidence: every check passed but the
    improvement, whose point estimate (the gain) still beats ``min_improvement``."""
    failed = {c for c, ok in verdict["checks"].items() if not ok}
    gain = (verdict.get("candidate_metrics") or {}).get("gain")
    return failed == {"improvement"} and gain is not None and gain > min_improvement


def decide(verdict: Mapping[str, Any], promotion: str, min_improvement: float = 0.0) -> str:
    """The stage a gated candidate goes to: champion (auto) or challenger (manual, waiting
    for approval) when it passed; challenger, in shadow and not approvable, when the gate
    was :func:`inconclusive` (better, not proven better); else rejected."""
    if not verdict["passed"]:
        return "challenger" if inconclusive(verdict, min_improvement) else "rejected"
    return "champion" if promotion == "auto" else "challenger"


def train(
    rows: Sequence[Mapping[str, Any]],
    config: ModelConfig,
    *,
    key: bytes,
    now_ms: int,
    trigger: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    champion: Mapping[str, Any] | None = None,
    data_ranges: Sequence[Mapping[str, Any]] = (),
    existing_versions: Iterable[str] = (),
    code: str | None = None,
    host: str | None = None,
    inline_max_bytes: int = 512_000,
    store: Store | None = None,
    started_at_ms: int | None = None,
    step_ms: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    earlier: Sequence[Mapping[str, Any]] = (),
    earlier_version: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    importance: bool = True,
) -> TrainingRun:
    """Train, serialize, sign, profile and gate a version of ``config`` on ``rows``.

    ``rows`` are a training frame's :func:`~driftline.core.lifecycle.trainset.examples`, oldest
    first: the newest ``holdout_fraction`` of them are held out. ``earlier`` rows (older
    examples, e.g. from ``earlier_version``'s training sample) are learnt first and never
    held out. The record keeps a sample of every training row
    (:mod:`~driftline.core.lifecycle.reservoir`, ``sample_rows`` at most, 0: none).
    ``champion`` is the record the candidate is gated against; ``now_ms`` is the
    version's creation time; ``started_at_ms`` (default ``now_ms``) and ``step_ms`` carry
    what the caller did before (``read``, ``frame``). ``progress(done, total)`` is called
    while learning. ``code`` defaults to :func:`code_version`. With ``importance`` false,
    ``lineage.importance`` stays None (see :func:`add_importance`).
    """
    lap = Laps(clock, step_ms)
    steps = lap.steps
    data = list(rows)
    if not data:
        raise ConfigError(f"model {config.name}: no labelled rows to train on")
    window_rows, holdout = time_split(data, config.gate.holdout_fraction)
    train_rows = [*earlier, *window_rows]
    lap("split")
    spec = (
        config.spec() if config.features else Spec.infer(r["features"] for r in [*earlier, *data])
    )
    lap("spec")
    estimator = build(config.factory, config.params, config.seed)
    regression = config.task == "regression"
    epochs = training_epochs(config.params)
    fit(estimator, train_rows, epochs=epochs, seed=config.seed, regression=regression,
        progress=progress)  # fmt: skip
    lap("train")
    blob, artifact, version = packed(
        config.name, estimator, key, existing_versions, inline_max_bytes, store
    )
    lap("serialize")
    live = ServedModel(config.name, version, config.task, estimator, spec, "{}")
    # the most recent rows, training and held-out alike: a prediction profile drawn from
    # the held-out slice alone is too small a sample and false-alarms on noise
    profile = reference_profile(live, config, train_rows, [*train_rows, *holdout])
    lap("profile")
    record: dict[str, Any] = {
        "model": config.name,
        "version": version,
        "stage": "candidate",
        "stage_changed_at_ms": now_ms,
        "stage_changed_by": "trainer",
        "stage_reason": (
            f"trained for trigger {trigger['trigger_id']}" if trigger else "trained (bootstrap)"
        ),
        "created_at_ms": now_ms,
        "task": config.task,
        "factory": config.factory,
        "feature_spec": spec.to_dicts(),
        "metrics": {},
        "segment_metrics": {},
        "reference_profile": profile.to_json(),
        "lineage": {
            "trigger_id": trigger["trigger_id"] if trigger else None,
            "trigger_key": trigger["idempotency_key"] if trigger else None,
            "training_run_id": run_id or str(uuid.uuid4()),
            "data_ranges": [dict(r) for r in data_ranges],
            "rows": len(train_rows),
            "holdout_rows": len(holdout),
            "code_version": code if code is not None else code_version(),
            "params": _params(config.params),
            "seed": config.seed,
            "champion_version": champion["version"] if champion else None,
            "started_at_ms": now_ms if started_at_ms is None else started_at_ms,
            "finished_at_ms": None,
            "host": host if host is not None else socket.gethostname(),
            "step_ms": steps,
            "earlier_rows": len(earlier),
            "earlier_version": earlier_version if earlier else None,
            "importance": None,
        },
        "gate": None,
        "artifact": artifact,
        "training_sample": None,
        "calibration": None,
    }
    if sample_rows > 0:
        kept = reservoir.sample(train_rows, sample_rows, config.seed)
        room = reservoir.budget(artifact, record["reference_profile"])
        record["training_sample"] = reservoir.encode(kept, room) if room else None
    labels = [r["label"] for r in train_rows]
    result = gate_record(record, live, champion, holdout, config, key=key, train_labels=labels,
                         lap=lap, importance=importance)  # fmt: skip
    record["lineage"]["finished_at_ms"] = now_ms + lap.total_ms()
    return TrainingRun(record, estimator, blob, result, len(train_rows), len(holdout), steps)


def add_importance(
    run: TrainingRun,
    config: ModelConfig,
    holdout: Sequence[Mapping[str, Any]],
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Write the permutation importance of ``run``'s candidate on ``holdout`` (its
    held-out rows) into its record's lineage, timed as step ``importance`` (also added to
    ``finished_at_ms``): what :func:`train` skipped with ``importance=False``. Nothing
    for a candidate whose artifact the gate could not load, or without held-out rows."""
    if run.gate.candidate is None or not holdout:
        return
    t = clock()
    record, lineage = run.record, run.record["lineage"]
    spec = Spec.from_dicts(record["feature_spec"])
    live = ServedModel(config.name, record["version"], config.task, run.estimator, spec, "{}")
    lineage["importance"] = permutation_importance(live, holdout, config.task, seed=config.seed)
    ms = round((clock() - t) * 1000, 3)
    run.step_ms["importance"] = ms
    lineage["step_ms"] = run.step_ms
    if lineage.get("finished_at_ms") is not None:
        lineage["finished_at_ms"] += round(ms)


def reference_profile(
    live: ServedModel,
    config: ModelConfig,
    feature_rows: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
) -> ReferenceProfile:
    """The reference profile of a version: its features' distribution over
    ``feature_rows`` and its predictions (and a classifier's scores) on the newest
    :data:`PROFILE_ROWS` of ``rows``."""
    reference = list(rows)[-PROFILE_ROWS:]
    outputs = live.predict_many(r["features"] for r in reference)
    regression = config.task == "regression"
    return ReferenceProfile.build(
        (r["features"] for r in feature_rows),
        live.spec.to_dicts(),
        predictions=[p for p, _ in outputs],
        scores=None if regression else [s for _, s in outputs],
        task=config.task,
        score_class=config.positive_class,
    )


def gate_record(
    record: dict[str, Any],
    live: ServedModel,
    champion: Mapping[str, Any] | None,
    holdout: Sequence[Mapping[str, Any]],
    config: ModelConfig,
    *,
    key: bytes,
    train_labels: Sequence[Any] | None,
    lap: Callable[[str], None] = lambda name: None,
    importance: bool = True,
) -> GateResult:
    """Gate ``record`` (whose estimator ``live`` serves) against ``champion`` on
    ``holdout`` and write the verdict, the calibration, the held-out metrics and (with
    ``importance``) the permutation importance into it."""
    result = run_gate(record, champion, holdout, config.gate, key=key, train_labels=train_labels)
    lap("gate")
    record["gate"] = result.verdict
    if result.calibration is not None:
        record["calibration"] = result.calibration.to_record()
    if importance and result.candidate is not None and holdout:
        record["lineage"]["importance"] = permutation_importance(
            live, holdout, config.task, seed=config.seed
        )
        lap("importance")
    if result.candidate is not None:
        record["metrics"] = dict(result.candidate.metrics)
        record["segment_metrics"] = result.candidate.segments
    return result


def stage_records(
    candidate: Mapping[str, Any],
    stage: str,
    *,
    current: Iterable[Mapping[str, Any]],
    by: str,
    reason: str,
    now_ms: int,
    max_challengers: int = MAX_CHALLENGERS,
    replaced: str = "archived",
) -> list[dict[str, Any]]:
    """The records that follow a published candidate into ``stage`` (archiving the
    champion among ``current``, or putting it on probation with ``replaced``, and the
    oldest challengers past ``max_challengers``), in publish order. ``current``: the
    model's champion and every challenger."""
    reg = Registry.from_records([*current, candidate])
    model, version = candidate["model"], candidate["version"]
    return transition(reg, model, version, stage, by=by, reason=reason, now_ms=now_ms,
                      max_challengers=max_challengers, replaced=replaced)  # fmt: skip


def bootstrap(
    rows: Iterable[Mapping[str, Any]],
    config: ModelConfig,
    *,
    key: bytes,
    by: str,
    reason: str,
    now_ms: int,
    current: Iterable[Mapping[str, Any]] = (),
    **kw: Any,
) -> tuple[TrainingRun, list[dict[str, Any]]]:
    """Train a model's first champion from Outcome-like dicts (``features``, ``label`` and
    optionally ``event_time_ms``, ``segment``, ``event_id``): the run and the records to
    publish (the candidate, then the same version as champion, after archiving the holder
    of the slot among ``current`` if any). The gate runs without a champion; a version
    failing it (non-finite output, too slow, ...) is a ConfigError.
    """
    run = train(examples(build_frame(rows)), config, key=key, now_ms=now_ms, **kw)
    if not run.verdict["passed"]:
        raise ConfigError(f"bootstrap of {config.name} failed the gate: {run.verdict['summary']}")
    why = f"bootstrap: {reason}"
    run.record.update(stage_changed_by=by, stage_reason=why)
    later = stage_records(run.record, "champion", current=current, by=by, reason=why, now_ms=now_ms)
    return run, [dict(run.record), *later]
