"""Realistic example values of every Driftline record, for tests to reuse.

Each builder returns a fresh dict with every field set (so a decoded value compares
equal to it); pass keyword arguments to override fields::

    from tests.unit.core.examples import EXAMPLES, feature_event

    event = feature_event(features={"age": 41})
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def known(value: T | None) -> T:
    """``value``, which the test knows is there: an AssertionError (not a TypeError further
    on) if it is None, and to mypy the value without its None."""
    assert value is not None
    return value


T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z, ms since epoch

FEATURES: dict[str, Any] = {
    "age": 41,
    "income": 52_300.5,
    "tenure_months": 27,
    "is_premium": True,
    "has_complaint": False,
    "plan": "family",
    "country": "DE",
    "last_login_days": None,
    "avg_session_min": 12.75,
    "referrals": 0,
}
"""Ten features covering null, bool, int, float and str values."""

SEGMENT = {"region": "eu", "channel": "web"}


def feature_event(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "evt-0001",
        "model": "churn",
        "event_time_ms": T0,
        "features": dict(FEATURES),
        "segment": dict(SEGMENT),
        "source": "shop-checkout",
        **overrides,
    }


def prediction(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "evt-0001",
        "model": "churn",
        "version": "v3",
        "event_time_ms": T0,
        "predicted_at_ms": T0 + 12,
        "prediction": True,
        "scores": {"True": 0.83, "False": 0.17},
        "features": dict(FEATURES),
        "segment": dict(SEGMENT),
        "latency_us": 412,
        "served_by": "driftline",
        "challengers": None,
        **overrides,
    }


def label(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "evt-0001",
        "model": "churn",
        "label": False,
        "label_time_ms": T0 + 86_400_000,
        **overrides,
    }


def outcome(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "evt-0001",
        "model": "churn",
        "version": "v3",
        "event_time_ms": T0,
        "predicted_at_ms": T0 + 12,
        "label_time_ms": T0 + 86_400_000,
        "label_delay_ms": 86_400_000,
        "prediction": True,
        "scores": {"True": 0.83, "False": 0.17},
        "label": False,
        "features": dict(FEATURES),
        "segment": dict(SEGMENT),
        "challengers": [
            {"version": "v4", "prediction": False, "scores": {"True": 0.4, "False": 0.6}}
        ],
        **overrides,
    }


def metric_snapshot(**overrides: Any) -> dict[str, Any]:
    return {
        "model": "churn",
        "version": "v3",
        "segment": "region=eu",
        "window": "count:1000",
        "window_start_ms": T0,
        "window_end_ms": T0 + 3_600_000,
        "emitted_at_ms": T0 + 3_600_500,
        "count": 1000,
        "metrics": {"accuracy": 0.912, "f1": 0.874, "log_loss": 0.231, "psi.income": 0.04},
        "baseline": {"accuracy": 0.925, "f1": 0.881},
        "counts": {"nan": 3, "expired": 12, "late": 0},
        **overrides,
    }


def alert(**overrides: Any) -> dict[str, Any]:
    return {
        "alert_id": "alr-0001",
        "model": "churn",
        "version": "v3",
        "segment": None,
        "kind": "feature_drift",
        "severity": "warning",
        "message": "PSI of income rose to 0.31 over the last 1000 outcomes (threshold 0.2).",
        "evidence": {
            "feature": "income",
            "psi": 0.31,
            "threshold": 0.2,
            "window": 1000,
            "confirmed": True,
            "previous": None,
        },
        "created_at_ms": T0 + 3_600_600,
        "incident_key": "churn/feature_drift",
        "incident_id": "5b1f0e8a-6c2d-5d3e-9f1a-2b3c4d5e6f70",
        "state": "firing",
        "opened_at_ms": T0 + 3_600_600,
        "resolved_at_ms": None,
        "duration_ms": None,
        "segments": ["all"],
        "versions": ["v3"],
        **overrides,
    }


def retrain_trigger(**overrides: Any) -> dict[str, Any]:
    return {
        "trigger_id": "trg-0001",
        "model": "churn",
        "idempotency_key": "churn:feature_drift:2023-11-14T23",
        "reasons": ["feature_drift", "performance_degradation"],
        "evidence": {"psi.income": 0.31, "accuracy_drop": 0.05, "alert_id": "alr-0001"},
        "window_start_ms": T0 - 7 * 86_400_000,
        "window_end_ms": None,
        "last_n": 50_000,
        "champion_version": "v3",
        "requested_by": "policy",
        "created_at_ms": T0 + 3_600_700,
        **overrides,
    }


def model_version(**overrides: Any) -> dict[str, Any]:
    return {
        "model": "churn",
        "version": "v4",
        "stage": "challenger",
        "previous_stage": "candidate",
        "stage_changed_at_ms": T0 + 7_200_000,
        "stage_changed_by": "policy",
        "stage_reason": "passed the validation gate",
        "created_at_ms": T0 + 7_000_000,
        "task": "classification",
        "factory": "driftline.models.logistic",
        "feature_spec": [
            {
                "name": "age",
                "type": "integer",
                "required": True,
                "min": 18.0,
                "max": 120.0,
                "categories": [],
            },
            {
                "name": "plan",
                "type": "category",
                "required": False,
                "min": None,
                "max": None,
                "categories": ["basic", "family", "pro"],
            },
        ],
        "metrics": {"accuracy": 0.93, "f1": 0.89},
        "segment_metrics": {"region=eu": {"accuracy": 0.94}, "region=us": {"accuracy": 0.91}},
        "reference_profile": '{"age": {"bins": [18, 30, 45, 60, 120]}}',
        "lineage": {
            "trigger_id": "trg-0001",
            "training_run_id": "run-0042",
            "data_ranges": [
                {"topic": "outcomes", "partition": 0, "start_offset": 100, "end_offset": 50_100},
                {"topic": "outcomes", "partition": 1, "start_offset": 0, "end_offset": 49_800},
            ],
            "rows": 99_800,
            "code_version": "0.1.0+g8b20f0d",
            "params": {"l2": "0.01", "lr": "0.05"},
            "seed": 42,
            "champion_version": "v3",
            "trigger_key": "churn:feature_drift:2023-11-14T23",
            "holdout_rows": 24_950,
            "started_at_ms": T0 + 6_990_000,
            "finished_at_ms": T0 + 7_000_000,
            "host": "trainer-0",
            "step_ms": {"read": 4_200.0, "train": 5_100.5, "gate": 610.25},
            "earlier_rows": 1_000,
            "earlier_version": "v3",
            "importance": {
                "age": {"mean": 0.12, "std": 0.01, "repeats": 5},
                "plan": {"mean": 0.0, "std": 0.0, "repeats": 5},
            },
        },
        "gate": {
            "passed": True,
            "summary": "candidate beats champion on accuracy by 0.012 with no segment worse.",
            "checks": {"accuracy": True, "segments": True, "calibration": True},
            "candidate_metrics": {"accuracy": 0.93},
            "champion_metrics": {"accuracy": 0.918},
        },
        "artifact": {
            "format": "pickle-river",
            "sha256": "ab" * 32,
            "signature": "cd" * 32,
            "size_bytes": 2048,
            "inline": b"\x80\x04\x95" + bytes(range(16)),
            "uri": None,
        },
        "training_sample": b"x\x9c\x03\x00\x00\x00\x00\x01",
        "calibration": {
            "method": "isotonic",
            "reason": "isotonic: 2000 held-out rows, 600 of the rarer outcome",
            "rows": 2_000,
            "classes": ["False", "True"],
            "maps": {
                "True": {"xs": [0.1, 0.9], "ys": [0.2, 0.8], "slope": None, "intercept": None}
            },
            "ece_before": 0.08,
            "ece_after": 0.02,
        },
        **overrides,
    }


def dead_letter(**overrides: Any) -> dict[str, Any]:
    return {
        "source_topic": "features",
        "source_partition": 2,
        "source_offset": 1234,
        "source_key": b"evt-0001",
        "source_timestamp_ms": T0,
        "stage": "decode",
        "reason": "unknown_schema",
        "detail": "fingerprint 0011223344556677 is no published schema version",
        "model": None,
        "failed_at_ms": T0 + 5,
        "raw": b"\xc3\x01\x00\x11\x22\x33\x44\x55\x66\x77\x02",
        "headers": [
            {"key": "traceparent", "value": b"00-abc-def-01"},
            {"key": "empty", "value": None},
        ],
        **overrides,
    }


EXAMPLES: dict[str, Callable[..., dict[str, Any]]] = {
    "FeatureEvent": feature_event,
    "Prediction": prediction,
    "Label": label,
    "Outcome": outcome,
    "MetricSnapshot": metric_snapshot,
    "Alert": alert,
    "RetrainTrigger": retrain_trigger,
    "ModelVersion": model_version,
    "DeadLetter": dead_letter,
}
"""Short record name to its example builder; one entry per published record."""


def same(a: Any, b: Any) -> bool:
    """Deep equality that also requires equal types (``True``, ``1`` and ``1.0`` differ)
    and holds for NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
