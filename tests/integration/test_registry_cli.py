"""The models commands, `driftline retrain` with a running trainer, and the SQL view
projected live and rebuilt from the topics, through the real broker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select

from driftline.cli import cli
from driftline.consumers import sqlview
from driftline.consumers.projector import Projector, rebuild
from driftline.consumers.registry_io import read_registry
from driftline.settings import Settings
from tests.integration.loop_helpers import (
    bootstrap_champion,
    loop_settings,
    models,
    produce_outcomes,
    publish_trigger,
    trainer,
    trigger,
)


@pytest.fixture
def s(settings: Settings, tmp_path: Path) -> Settings:
    return loop_settings(settings, tmp_path)


@pytest.fixture
def run(s: Settings, monkeypatch: pytest.MonkeyPatch):
    """Invoke `driftline ...` with the test's settings; fails on a non-zero exit."""
    for name in ("bootstrap_servers", "topic_prefix", "sql_url", "artifact_dir", "client_id"):
        monkeypatch.setenv(f"DRIFTLINE_{name.upper()}", str(getattr(s, name)))

    def invoke(*args: str, ok: bool = True) -> str:
        result = CliRunner().invoke(cli, list(args))
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    return invoke


def test_retrain_command_and_trainer_produce_a_champion(s: Settings, group_id: str, run) -> None:
    old = bootstrap_champion(s)
    churn = produce_outcomes(s, 500)
    t = trainer(s, group_id)
    answered = []
    worker = threading.Thread(target=lambda: answered.extend(t.run(1, idle_timeout_s=30)))
    worker.start()
    try:
        out = run("retrain", "churn", "--last-n", "400", "--by", "ana", "--wait", "30")
    finally:
        worker.join(60)
        t.close()
    assert "published trigger" in out
    (outcome,) = answered
    assert outcome.status == "champion"
    assert f"churn {outcome.version}: champion" in out
    shown = run("models", "show", "churn")
    assert f"churn {outcome.version}: champion" in shown
    assert f"compared with champion {old['version']}" in shown
    assert "signature valid" in shown
    used = sorted((e["event_time_ms"], p, off) for e, p, off in churn)[-400:]
    for p in {p for _, p, _ in used}:
        offs = [off for _, q, off in used if q == p]
        line = f"data: {s.topic('outcomes')} partition {p} offsets [{min(offs)}, {max(offs) + 1})"
        assert line in shown
    listed = run("models", "list", "churn")
    assert old["version"] in listed and "archived" in listed and "champion" in listed


def test_promote_approve_rollback_record_who_and_why(s: Settings, group_id: str, run) -> None:
    first = bootstrap_champion(s)
    produce_outcomes(s, 300)
    publish_trigger(s, trigger())
    t = trainer(s, group_id, models(promotion="manual"))
    try:
        (outcome,) = t.run(1, idle_timeout_s=30)
    finally:
        t.close()
    assert outcome.status == "challenger"
    new = outcome.version
    run("models", "approve", "churn", new, "--by", "maria", "--reason", "segments reviewed")
    reg = read_registry(s)
    assert reg.champion("churn")["version"] == new
    assert reg.champion("churn")["stage_changed_by"] == "maria"
    assert reg.get("churn", first["version"])["stage"] == "archived"

    out = run("models", "rollback", "churn", "--by", "ops", "--reason", "bad canary")
    assert f"churn {first['version']} -> champion (rollback: bad canary)" in out
    reg = read_registry(s)
    assert reg.champion("churn")["version"] == first["version"]
    assert reg.get("churn", new)["stage"] == "archived"

    refused = run("models", "approve", "churn", first["version"], "--reason", "x", ok=False)
    assert "only a candidate or challenger" in refused
    run("models", "promote", "churn", new, "--to", "challenger", "--reason", "shadow it")
    assert read_registry(s).challenger("churn")["version"] == new


def test_bootstrap_command_from_a_csv(s: Settings, tmp_path: Path, run) -> None:
    path = tmp_path / "rows.csv"
    lines = ["amount,plan,region,churned"]
    lines += [f"{i % 10},{'pro' if i % 3 else 'basic'},eu,{str(i % 10 > 4).lower()}"
              for i in range(300)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    out = run("models", "bootstrap", "churn", str(path), "--label", "churned",
              "--segment", "region", "--factory", "hoeffding_tree", "--by", "ana")  # fmt: skip
    assert "-> champion (bootstrap: first version (rows.csv))" in out
    assert "task: classification (label 'churned': boolean labels)" in out
    champ = read_registry(s).champion("churn")
    assert (champ["task"], champ["factory"]) == ("classification", "hoeffding_tree")
    assert [f["name"] for f in champ["feature_spec"]] == ["amount", "plan"]
    amount, plan = champ["feature_spec"]
    assert (amount["type"], amount["min"], amount["max"]) == ("integer", -5.0, 14.0)  # 0-9 +- 4.5
    assert plan["categories"] == ["basic", "pro"]
    assert "region=eu" in champ["segment_metrics"]
    assert "has a champion already" in run("models", "bootstrap", "churn", str(path),
                                            "--label", "churned", ok=False)  # fmt: skip


def test_bootstrap_reads_a_float_label_as_regression_and_writes_its_config(
    s: Settings, tmp_path: Path, run
) -> None:
    """The trial: a float label silently became a classifier ("accuracy 0.0000")."""
    path = tmp_path / "approval.csv"
    lines = ["ordinal_date,gallup,approval"]
    lines += [f"{736_000 + i},{40 + (i * 7) % 11 / 2:.1f},{38 + (i * 13) % 17 / 3:.3f}"
              for i in range(300)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "models.toml"
    out = run("models", "bootstrap", "trump", str(path), "--label", "approval",
              "--write-config", str(config))  # fmt: skip
    assert "task: regression (label 'approval': numbers with a fraction)" in out
    assert "column 'ordinal_date' drifts by construction" in out
    champ = read_registry(s).champion("trump")
    assert (champ["task"], champ["factory"]) == ("regression", "linear_regression")
    assert "mae" in champ["metrics"] and "accuracy" not in champ["metrics"]
    assert 'exclude = ["ordinal_date"]' in config.read_text()
    assert "OK (1 model(s): trump)" in run("models", "check", str(config))


def test_sql_view_rebuilt_from_the_topics_equals_the_live_one(
    s: Settings, group_id: str, tmp_path: Path, run
) -> None:
    live = Projector(s)
    try:
        bootstrap_champion(s)
        live.catch_up()
        produce_outcomes(s, 300)
        publish_trigger(s, trigger())
        publish_trigger(s, trigger(model="nobody"))  # fails: a training_failed alert
        t = trainer(s, group_id)
        try:
            statuses = sorted(o.status for o in t.run(2, idle_timeout_s=30))
        finally:
            t.close()
        assert statuses == ["champion", "failed"]  # two models: two partitions, any order
        live.catch_up()
        run("models", "rollback", "churn", "--reason", "test")
        live.catch_up()
    finally:
        live.close()
    engine = create_engine(s.sql_url)
    view = sqlview.snapshot(engine)
    assert len(view["stage_history"]) == 7  # bootstrap 2, trigger 3, rollback 2
    assert {r.status for r in _runs(engine)} == {"succeeded", "failed"}
    assert len(view["triggers"]) == 2 and len(view["alerts"]) == 1
    assert len(view["data_ranges"]) == 3

    url = f"sqlite:///{tmp_path}/rebuilt.db"
    assert rebuild(s, url) == len(view["stage_history"]) + 3
    assert sqlview.snapshot(create_engine(url)) == view
    # rebuilding in place drops and replays: same view again
    rebuild(s)
    assert sqlview.snapshot(engine) == view


def _runs(engine):
    with engine.connect() as conn:
        return conn.execute(select(sqlview.training_runs)).all()
