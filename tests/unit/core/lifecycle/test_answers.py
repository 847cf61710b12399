"""The trainer's answers as data: config fallback, stage reasons, alerts (Avro-valid)."""

from __future__ import annotations

import pytest

from driftline.core.errors import ConfigError
from driftline.core.lifecycle.answers import alert, config_for, failure_alert, stage_reason
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.wire.codec import default_codec
from tests.unit.core.examples import model_version, retrain_trigger


def test_config_from_the_models_file_wins() -> None:
    cfg = ModelConfig("churn", factory="hoeffding_tree")
    assert config_for(ModelsConfig({"churn": cfg}), "churn", model_version()) is cfg


def test_config_follows_the_champion_when_the_file_lacks_the_model() -> None:
    champ = model_version(factory="logistic_regression")
    champ["lineage"]["params"] = {"lr": "0.05", "name": "plain", "grace": "100"}
    cfg = config_for(ModelsConfig(), "churn", champ)
    assert (cfg.task, cfg.factory, cfg.seed) == ("classification", "logistic_regression", 42)
    assert cfg.params == {"lr": 0.05, "name": "plain", "grace": 100}
    with pytest.raises(ConfigError, match="neither in the models file nor in the registry"):
        config_for(ModelsConfig(), "churn", None)


@pytest.mark.parametrize(
    ("stage", "reason"),
    [
        ("champion", "gate passed, promotion auto"),
        ("challenger", "gate passed, waiting for approval (promotion manual)"),
        ("rejected", "gate: failed improvement: ..."),
    ],
)
def test_stage_reason(stage: str, reason: str) -> None:
    assert stage_reason(stage, {"summary": "failed improvement: ..."}) == reason


def test_alerts_are_valid_alert_records() -> None:
    failed = failure_alert(
        retrain_trigger(), "run-1", ValueError("no rows"), seconds=1.23456, host="h", now_ms=9
    )
    assert failed["kind"] == "training_failed" and failed["severity"] == "critical"
    assert failed["evidence"]["error"] == "ValueError: no rows"
    assert failed["evidence"]["seconds"] == 1.235
    assert failed["message"].startswith("Training churn for trigger trg-0001 failed")
    info = alert("churn", "v2", "candidate_rejected", "info", "m", {"n": 1}, now_ms=1)
    for record in (failed, info):
        data = default_codec().encode("Alert", record)
        assert default_codec().decode(data, expect="Alert").value == record
    assert (
        failed["alert_id"]
        != failure_alert(retrain_trigger(), "run-1", ValueError(), seconds=0, host="h", now_ms=9)[
            "alert_id"
        ]
    )
