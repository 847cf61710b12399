"""Typed records of Driftline's public topics, each with explicit ``to_dict``/``from_dict``.

Each class mirrors the current version of one Avro record (``schemas/*.avsc``) field
for field; nested records of :class:`ModelVersion` stay dicts. ``to_dict`` gives the
dict the codec writes, ``from_dict`` takes the dict the codec reads. Every record
also says where it lives: ``TOPIC`` (the topic name without the prefix), its Kafka
``key()`` and its ``time_ms()`` (the event time Driftline puts in the headers).

>>> label = Label(event_id="e-1", model="churn", label=True, label_time_ms=1_700_000_000_000)
>>> label.key(), Label.TOPIC, Label.SCHEMA
('e-1', 'labels', 'io.driftline.Label')
>>> Label.from_dict(label.to_dict()) == label
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeAlias

__all__ = [
    "Alert",
    "ChallengerPrediction",
    "FeatureEvent",
    "FeatureValue",
    "Label",
    "Outcome",
    "Prediction",
    "Record",
]

FeatureValue: TypeAlias = bool | int | float | str | None
"""A feature, label or prediction value: Avro's union null, boolean, long, double, string."""


class Record(ABC):
    """What every typed record offers; subclasses are frozen, keyword-only dataclasses."""

    __slots__ = ()

    SCHEMA: ClassVar[str]
    """Full name of the Avro record, e.g. ``io.driftline.Label``."""
    TOPIC: ClassVar[str]
    """Name of the record's topic without the prefix, e.g. ``labels``."""
    TIME_FIELD: ClassVar[str]
    """The field holding the record's event time, ms since the epoch."""

    model: str

    @abstractmethod
    def key(self) -> str:
        """The Kafka key (written as UTF-8)."""

    def time_ms(self) -> int:
        """The record's event time (the ``TIME_FIELD``), ms since the Unix epoch."""
        value: int = getattr(self, self.TIME_FIELD)
        return value

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The dict the codec writes (fresh containers, safe to mutate)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """The record from a decoded dict; fields with a schema default may be absent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureEvent(Record):
    """Features of one event to be scored by a model. Key: ``event_id``.

    ``source`` (added in FeatureEvent v2) names the producing application, so refused
    or drifting data can be traced back to it; None when not given.

    >>> FeatureEvent.from_dict({"event_id": "e", "model": "m", "event_time_ms": 0,
    ...                         "features": {}}).source is None  # v1 data has none
    True
    """

    SCHEMA: ClassVar[str] = "io.driftline.FeatureEvent"
    TOPIC: ClassVar[str] = "features"
    TIME_FIELD: ClassVar[str] = "event_time_ms"

    event_id: str
    model: str
    event_time_ms: int
    features: Mapping[str, FeatureValue]
    segment: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None

    def key(self) -> str:
        return self.event_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "model": self.model,
            "event_time_ms": self.event_time_ms,
            "features": dict(self.features),
            "segment": dict(self.segment),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            event_id=d["event_id"],
            model=d["model"],
            event_time_ms=d["event_time_ms"],
            features=dict(d["features"]),
            segment=dict(d.get("segment") or {}),
            source=d.get("source"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Label(Record):
    """Ground truth for an earlier event. Key: ``event_id``."""

    SCHEMA: ClassVar[str] = "io.driftline.Label"
    TOPIC: ClassVar[str] = "labels"
    TIME_FIELD: ClassVar[str] = "label_time_ms"

    event_id: str
    model: str
    label: FeatureValue
    label_time_ms: int

    def key(self) -> str:
        return self.event_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "model": self.model,
            "label": self.label,
            "label_time_ms": self.label_time_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            event_id=d["event_id"],
            model=d["model"],
            label=d["label"],
            label_time_ms=d["label_time_ms"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChallengerPrediction:
    """A challenger version's prediction of the event its champion scored (the
    ``challengers`` of a Prediction or Outcome v2).

    >>> c = ChallengerPrediction.from_dict({"version": "v5", "prediction": True})
    >>> c.scores, c.to_dict()
    ({}, {'version': 'v5', 'prediction': True, 'scores': {}})
    """

    version: str
    prediction: FeatureValue
    scores: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "prediction": self.prediction,
                "scores": dict(self.scores)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(version=d["version"], prediction=d["prediction"],
                   scores=dict(d.get("scores") or {}))  # fmt: skip


def _challengers(d: Mapping[str, Any]) -> tuple[ChallengerPrediction, ...] | None:
    found = d.get("challengers")
    return None if found is None else tuple(ChallengerPrediction.from_dict(c) for c in found)


def _challenger_dicts(
    challengers: tuple[ChallengerPrediction, ...] | None,
) -> list[dict[str, Any]] | None:
    return None if challengers is None else [c.to_dict() for c in challengers]


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction(Record):
    """A model's prediction for one feature event. Key: ``event_id``.

    ``scores`` maps class labels (as strings) to probabilities; empty for regressors.
    ``challengers`` (Prediction v2) holds the predictions of the model's challenger
    versions for the same event, scored with the champion; None when none was served.
    """

    SCHEMA: ClassVar[str] = "io.driftline.Prediction"
    TOPIC: ClassVar[str] = "predictions"
    TIME_FIELD: ClassVar[str] = "event_time_ms"

    event_id: str
    model: str
    version: str
    event_time_ms: int
    predicted_at_ms: int
    prediction: FeatureValue
    latency_us: int
    scores: Mapping[str, float] = field(default_factory=dict)
    features: Mapping[str, FeatureValue] = field(default_factory=dict)
    segment: Mapping[str, str] = field(default_factory=dict)
    served_by: str = "driftline"
    challengers: tuple[ChallengerPrediction, ...] | None = None

    def key(self) -> str:
        return self.event_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "model": self.model,
            "version": self.version,
            "event_time_ms": self.event_time_ms,
            "predicted_at_ms": self.predicted_at_ms,
            "prediction": self.prediction,
            "scores": dict(self.scores),
            "features": dict(self.features),
            "segment": dict(self.segment),
            "latency_us": self.latency_us,
            "served_by": self.served_by,
            "challengers": _challenger_dicts(self.challengers),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            event_id=d["event_id"],
            model=d["model"],
            version=d["version"],
            event_time_ms=d["event_time_ms"],
            predicted_at_ms=d["predicted_at_ms"],
            prediction=d["prediction"],
            latency_us=d["latency_us"],
            scores=dict(d.get("scores") or {}),
            features=dict(d.get("features") or {}),
            segment=dict(d.get("segment") or {}),
            served_by=d.get("served_by", "driftline"),
            challengers=_challengers(d),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome(Record):
    """A prediction joined with its label: training and monitoring data. Key: ``event_id``.

    ``challengers`` (Outcome v2): the challengers' predictions of the same event, copied
    from the Prediction (empty when there were none; None in older outcomes).
    """

    SCHEMA: ClassVar[str] = "io.driftline.Outcome"
    TOPIC: ClassVar[str] = "outcomes"
    TIME_FIELD: ClassVar[str] = "event_time_ms"

    event_id: str
    model: str
    version: str
    event_time_ms: int
    predicted_at_ms: int
    label_time_ms: int
    label_delay_ms: int
    prediction: FeatureValue
    label: FeatureValue
    features: Mapping[str, FeatureValue]
    scores: Mapping[str, float] = field(default_factory=dict)
    segment: Mapping[str, str] = field(default_factory=dict)
    challengers: tuple[ChallengerPrediction, ...] | None = None

    def key(self) -> str:
        return self.event_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "model": self.model,
            "version": self.version,
            "event_time_ms": self.event_time_ms,
            "predicted_at_ms": self.predicted_at_ms,
            "label_time_ms": self.label_time_ms,
            "label_delay_ms": self.label_delay_ms,
            "prediction": self.prediction,
            "scores": dict(self.scores),
            "label": self.label,
            "features": dict(self.features),
            "segment": dict(self.segment),
            "challengers": _challenger_dicts(self.challengers),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            event_id=d["event_id"],
            model=d["model"],
            version=d["version"],
            event_time_ms=d["event_time_ms"],
            predicted_at_ms=d["predicted_at_ms"],
            label_time_ms=d["label_time_ms"],
            label_delay_ms=d["label_delay_ms"],
            prediction=d["prediction"],
            label=d["label"],
            features=dict(d["features"]),
            scores=dict(d.get("scores") or {}),
            segment=dict(d.get("segment") or {}),
            challengers=_challengers(d),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(Record):
    """Something an operator should know about a model. Key: ``model``.

    ``severity`` is info, warning or critical; ``evidence`` holds the numbers behind it.
    """

    SCHEMA: ClassVar[str] = "io.driftline.Alert"
    TOPIC: ClassVar[str] = "alerts"
    TIME_FIELD: ClassVar[str] = "created_at_ms"

    alert_id: str
    model: str
    kind: str
    severity: str
    message: str
    evidence: Mapping[str, FeatureValue]
    created_at_ms: int
    version: str | None = None
    segment: str | None = None

    def key(self) -> str:
        return self.model

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "model": self.model,
            "version": self.version,
            "segment": self.segment,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "evidence": dict(self.evidence),
            "created_at_ms": self.created_at_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return cls(
            alert_id=d["alert_id"],
            model=d["model"],
            kind=d["kind"],
            severity=d["severity"],
            message=d["message"],
            evidence=dict(d["evidence"]),
            created_at_ms=d["created_at_ms"],
            version=d.get("version"),
            segment=d.get("segment"),
        )
