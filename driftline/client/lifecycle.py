"""Typed records of the model lifecycle: retrain triggers and registry versions.

>>> trigger = RetrainTrigger(trigger_id="t-1", model="churn", idempotency_key="churn:1",
...                          reasons=("manual",), evidence={}, requested_by="ops",
...                          created_at_ms=1_700_000_000_000)
>>> trigger.key(), RetrainTrigger.TOPIC
('churn', 'retrain')
>>> RetrainTrigger.from_dict(trigger.to_dict()) == trigger
True
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from driftline.client.records import FeatureValue, Record

__all__ = ["ModelVersion", "RetrainTrigger"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrainTrigger(Record):
    """A request to train a new version of a model. Key: ``model``.

    Triggers with the same ``idempotency_key`` describe the same request: act on it once.
    The training window is ``[window_start_ms, window_end_ms)`` in event time (None: open),
    at most the ``last_n`` latest outcomes (None: all).
    """

    SCHEMA: ClassVar[str] = "io.driftline.RetrainTrigger"
    TOPIC: ClassVar[str] = "retrain"
    TIME_FIELD: ClassVar[str] = "created_at_ms"

    trigger_id: str
    model: str
    idempotency_key: str
    reasons: Sequence[str]
    evidence: Mapping[str, FeatureValue]
    requested_by: str
    created_at_ms: int
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    last_n: int | None = None
    champion_version: str | None = None

    def key(self) -> str:
        return self.model

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "model": self.model,
            "idempotency_key": self.idempotency_key,
            "reasons": list(self.reasons),
            "evidence": dict(self.evidence),
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "last_n": self.last_n,
            "champion_version": self.champion_version,
            "requested_by": self.requested_by,
            "created_at_ms": self.created_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            trigger_id=d["trigger_id"],
            model=d["model"],
            idempotency_key=d["idempotency_key"],
            reasons=tuple(d["reasons"]),
            evidence=dict(d["evidence"]),
            requested_by=d["requested_by"],
            created_at_ms=d["created_at_ms"],
            window_start_ms=d.get("window_start_ms"),
            window_end_ms=d.get("window_end_ms"),
            last_n=d.get("last_n"),
            champion_version=d.get("champion_version"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersion(Record):
    """One version of a model and its stage, as the compacted registry holds it.
    Key: ``model/version``.

    ``stage`` is candidate, challenger, champion, archived, rejected or retired
    (``previous_stage``: the one it left, v2). The nested
    records stay dicts shaped as ``schemas/model_version.v2.avsc`` says:
    ``feature_spec`` (a list of FeatureSpec), ``lineage`` (Lineage), ``gate``
    (GateVerdict or None) and ``artifact`` (Artifact). ``training_sample`` is the
    compressed sample of its training rows (v2; None in v1 records).
    """

    SCHEMA: ClassVar[str] = "io.driftline.ModelVersion"
    TOPIC: ClassVar[str] = "registry"
    TIME_FIELD: ClassVar[str] = "stage_changed_at_ms"

    model: str
    version: str
    stage: str
    stage_changed_at_ms: int
    stage_changed_by: str
    stage_reason: str
    created_at_ms: int
    task: str
    factory: str
    feature_spec: Sequence[Mapping[str, Any]]
    metrics: Mapping[str, float]
    reference_profile: str
    lineage: Mapping[str, Any]
    artifact: Mapping[str, Any]
    segment_metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    gate: Mapping[str, Any] | None = None
    training_sample: bytes | None = None
    previous_stage: str | None = None

    def key(self) -> str:
        return f"{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "stage_changed_at_ms": self.stage_changed_at_ms,
            "stage_changed_by": self.stage_changed_by,
            "stage_reason": self.stage_reason,
            "created_at_ms": self.created_at_ms,
            "task": self.task,
            "factory": self.factory,
            "feature_spec": [dict(spec) for spec in copy.deepcopy(self.feature_spec)],
            "metrics": dict(self.metrics),
            "segment_metrics": {k: dict(v) for k, v in self.segment_metrics.items()},
            "reference_profile": self.reference_profile,
            "lineage": dict(copy.deepcopy(self.lineage)),
            "gate": None if self.gate is None else dict(copy.deepcopy(self.gate)),
            "artifact": dict(copy.deepcopy(self.artifact)),
            "training_sample": self.training_sample,
            "previous_stage": self.previous_stage,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        gate = d.get("gate")
        return cls(
            model=d["model"],
            version=d["version"],
            stage=d["stage"],
            stage_changed_at_ms=d["stage_changed_at_ms"],
            stage_changed_by=d["stage_changed_by"],
            stage_reason=d["stage_reason"],
            created_at_ms=d["created_at_ms"],
            task=d["task"],
            factory=d["factory"],
            feature_spec=[dict(spec) for spec in d["feature_spec"]],
            metrics=dict(d["metrics"]),
            reference_profile=d["reference_profile"],
            lineage=dict(d["lineage"]),
            artifact=dict(d["artifact"]),
            segment_metrics={k: dict(v) for k, v in (d.get("segment_metrics") or {}).items()},
            gate=None if gate is None else dict(gate),
            training_sample=d.get("training_sample"),
            previous_stage=d.get("previous_stage"),
        )
