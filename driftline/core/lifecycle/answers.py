"""How the trainer answers a retrain trigger, as data: the config it trains with, the
stage reason it records, and the alerts it raises. Pure; the consumer publishes them.

>>> stage_reason("champion", {"summary": "passed: ..."})
'gate passed, promotion auto'
>>> a = alert("churn", None, "training_failed", "critical", "Training failed.", {"k": 1}, now_ms=5)
>>> a["kind"], a["severity"], a["evidence"], a["created_at_ms"]
('training_failed', 'critical', {'k': 1}, 5)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from driftline.core.errors import ConfigError
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.watch.incidents import NOTICE_FIELDS

__all__ = ["alert", "config_for", "failure_alert", "stage_reason"]


def config_for(models: ModelsConfig, model: str, champion: Mapping[str, Any] | None) -> ModelConfig:
    """The models file's config of ``model``; else one that retrains like its champion
    (task, factory, parameters and seed from the champion's record)."""
    cfg = models.get(model)
    if cfg is not None:
        return cfg
    if champion is None:
        raise ConfigError(f"model {model} is neither in the models file nor in the registry")
    lineage = champion["lineage"]
    return ModelConfig(
        model,
        task=champion["task"],
        factory=champion["factory"],
        params={k: _param(v) for k, v in lineage["params"].items()},
        seed=int(lineage["seed"]),
    )


def _param(text: str) -> Any:
    """A lineage parameter back as the models file gave it (JSON, else the string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def stage_reason(stage: str, verdict: Mapping[str, Any]) -> str:
    """Why the trainer moved a gated candidate to ``stage``."""
    if stage == "champion":
        return "gate passed, promotion auto"
    if stage == "challenger":
        return "gate passed, waiting for approval (promotion manual)"
    return f"gate: {verdict['summary']}"


def alert(
    model: str,
    version: str | None,
    kind: str,
    severity: str,
    message: str,
    evidence: Mapping[str, Any],
    *,
    now_ms: int,
) -> dict[str, Any]:
    """An Alert record: a notice (no incident, ``state`` null)."""
    return {
        "alert_id": str(uuid.uuid4()),
        "model": model,
        "version": version,
        "segment": None,
        "kind": kind,
        "severity": severity,
        "message": message,
        "evidence": dict(evidence),
        "created_at_ms": now_ms,
        **NOTICE_FIELDS,
    }


def failure_alert(
    trigger: Mapping[str, Any],
    run_id: str,
    error: BaseException,
    *,
    seconds: float,
    host: str,
    now_ms: int,
) -> dict[str, Any]:
    """The ``training_failed`` Alert answering a trigger whose run raised ``error``."""
    evidence = {
        "trigger_id": trigger["trigger_id"],
        "idempotency_key": trigger["idempotency_key"],
        "training_run_id": run_id,
        "error": f"{type(error).__name__}: {error}"[:1000],
        "seconds": round(seconds, 3),
        "host": host,
    }
    message = f"Training {trigger['model']} for trigger {trigger['trigger_id']} failed: {error}"
    return alert(
        trigger["model"], None, "training_failed", "critical", message[:500], evidence,
        now_ms=now_ms,
    )  # fmt: skip
