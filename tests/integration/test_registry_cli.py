"""The models commands, `driftline retrain` with a running trainer, and the SQL view
projected live and rebuilt from the topics, through the real broker."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select

from driftline.cli import cli
from driftline.consumers import sqlview
from driftline.consumers.projector import Projector, rebuild
from driftline.core.lifecycle.training import train
from driftline.core.lifecycle.trainset import build_frame, examples
from driftline.kafka.helpers import Publisher
from driftline.kafka.registry_follower import read_registry
from driftline.settings import Settings
from tests.integration.loop_helpers import (
    T0,
    answer_triggers,
    bootstrap_champion,
    models,
    outcome,
    produce_outcomes,
    publish_trigger,
    trainer,
    trigger,
)
from tests.unit.core.examples import known


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
    churn = produce_outcomes(s, 600)
    t = trainer(s, group_id)
    answered = []
    worker = threading.Thread(target=lambda: answered.extend(t.run(1, idle_timeout_s=30)))
    worker.start()
    try:
        out = run("retrain", "churn", "--last-n", "500", "--by", "ana", "--wait", "30")
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
    used = sorted((e["event_time_ms"], p, off) for e, p, off in churn)[-500:]
    for p in {p for _, p, _ in used}:
        offs = [off for _, q, off in used if q == p]
        line = f"data: {s.topic('outcomes')} partition {p} offsets [{min(offs)}, {max(offs) + 1})"
        assert line in shown
    listed = run("models", "list", "churn")
    assert old["version"] in listed and "archived" in listed and "champion" in listed


def test_promote_approve_rollback_record_who_and_why(s: Settings, group_id: str, run) -> None:
    first = bootstrap_champion(s)
    produce_outcomes(s, 600)
    publish_trigger(s, trigger())
    (outcome,) = answer_triggers(s, group_id, models(promotion="manual"))
    assert outcome.status == "challenger"
    new = known(outcome.version)
    run("models", "approve", "churn", new, "--by", "maria", "--reason", "segments reviewed")
    reg = read_registry(s)
    assert known(reg.champion("churn"))["version"] == new
    assert known(reg.champion("churn"))["stage_changed_by"] == "maria"
    assert known(reg.get("churn", first["version"]))["stage"] == "archived"

    out = run("models", "rollback", "churn", "--by", "ops", "--reason", "bad canary")
    assert f"churn {first['version']} -> champion (rollback: bad canary)" in out
    reg = read_registry(s)
    assert known(reg.champion("churn"))["version"] == first["version"]
    assert known(reg.get("churn", new))["stage"] == "archived"

    refused = run("models", "approve", "churn", first["version"], "--reason", "x", ok=False)
    assert "only a candidate or challenger" in refused
    run("models", "promote", "churn", new, "--to", "challenger", "--reason", "shadow it")
    assert known(read_registry(s).challenger("churn"))["version"] == new


def test_bootstrap_command_from_a_csv(s: Settings, tmp_path: Path, run) -> None:
    path = tmp_path / "rows.csv"
    lines = ["amount,plan,region,churned"]
    lines += [f"{i % 10},{'pro' if i % 3 else 'basic'},eu,{str(i % 10 > 4).lower()}"
              for i in range(600)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    out = run("models", "bootstrap", "churn", str(path), "--label", "churned",
              "--segment", "region", "--factory", "hoeffding_tree", "--by", "ana")  # fmt: skip
    assert "-> champion (bootstrap: first version (rows.csv))" in out
    assert "task: classification (label 'churned': boolean labels)" in out
    champ = known(read_registry(s).champion("churn"))
    assert (champ["task"], champ["factory"]) == ("classification", "hoeffding_tree")
    # a --segment column is a feature and a segment attribute, as driftline produce sends it
    assert [f["name"] for f in champ["feature_spec"]] == ["amount", "plan", "region"]
    amount, plan, region = champ["feature_spec"]
    assert region["categories"] == ["eu"]
    assert (amount["type"], amount["min"], amount["max"]) == ("integer", -5.0, 14.0)  # 0-9 +- 4.5
    assert plan["categories"] == ["basic", "pro"]
    assert "region=eu" in champ["segment_metrics"]
    assert "has a champion already" in run("models", "bootstrap", "churn", str(path),
                                            "--label", "churned", ok=False)  # fmt: skip


def test_bootstrap_reads_a_float_label_as_regression_and_writes_its_config(
    s: Settings, tmp_path: Path, run
) -> None:
    """The trial: a float label silently became a classifier ("accuracy 0.0000"). Read as
    a regression; its config written with the drifting column flagged. Trained on that
    column too, the linear model extrapolates it on the newest (held-out) rows and loses
    to the mean: the gate's trivial baseline refuses it. Without the column it serves."""
    path = tmp_path / "approval.csv"
    lines = ["ordinal_date,gallup,approval"]  # 500 rows: 100 held out, the gate's minimum
    lines += [f"{736_000 + i},{40 + (i * 7) % 11 / 2:.1f},"
              f"{3 * (40 + (i * 7) % 11 / 2) - 80 + (i * 13) % 17 / 30:.3f}"
              for i in range(500)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "models.toml"
    result = CliRunner().invoke(cli, ["models", "bootstrap", "trump", str(path), "--label",
                                      "approval", "--write-config", str(config)])  # fmt: skip
    assert "task: regression (label 'approval': numbers with a fraction)" in result.output
    assert "column 'ordinal_date' drifts by construction" in result.output
    assert 'exclude = ["ordinal_date"]' in config.read_text()
    assert "OK (1 model(s): trump)" in run("models", "check", str(config))
    assert result.exit_code != 0 and "failed the gate" in str(result.exception)
    assert "vs mean baseline" in str(result.exception)
    assert read_registry(s).champion("trump") is None

    dropped = tmp_path / "approval-no-date.csv"
    dropped.write_text("".join(line.split(",", 1)[1] + "\n" for line in lines))
    out = run("models", "bootstrap", "trump", str(dropped), "--label", "approval")
    assert "task: regression" in out and "vs mean baseline" in out
    champ = known(read_registry(s).champion("trump"))
    assert (champ["task"], champ["factory"]) == ("regression", "linear_regression")
    assert "mae" in champ["metrics"] and "accuracy" not in champ["metrics"]


@pytest.fixture
def on_postgres(s: Settings, postgres_db: str) -> Settings:
    """``s`` with its SQL view in a database of its own on the session's PostgreSQL."""
    return s.model_copy(update={"sql_url": postgres_db})


def test_sql_view_rebuilt_from_the_topics_equals_the_live_one(
    on_postgres: Settings, group_id: str, tmp_path: Path, run
) -> None:
    """The live view on PostgreSQL; rebuilt from the topics into SQLite, then in place:
    the same rows each time."""
    s = on_postgres
    live = Projector(s)
    try:
        bootstrap_champion(s)
        live.catch_up()
        produce_outcomes(s, 600)
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
    engine = sqlview.engine(s.sql_url)
    assert engine.dialect.name == "postgresql"
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
    engine.dispose()


def _runs(engine):
    with engine.connect() as conn:
        return conn.execute(select(sqlview.training_runs)).all()


def _candidates(s: Settings, n: int) -> list[str]:
    """Publish ``n`` trained candidates of churn (passed their gate); their versions."""
    rng = random.Random(3)
    key = s.signing_key.get_secret_value().encode()
    out: list[str] = []
    pub = Publisher(s, "test")
    for i in range(n):
        rows = [outcome(i * 1_000 + j, rng) for j in range(500)]
        run = train(examples(build_frame(rows)), models()["churn"], key=key, now_ms=T0 + i,
                    existing_versions=out, code="t", host="t")  # fmt: skip
        pub.send_versions([run.record])
        out.append(run.record["version"])
    pub.close()
    return out


def test_several_challengers_up_to_the_cap_then_the_oldest_is_archived(
    s: Settings, monkeypatch: pytest.MonkeyPatch, run
) -> None:
    monkeypatch.setenv("DRIFTLINE_MAX_CHALLENGERS", "3")
    bootstrap_champion(s)
    versions = _candidates(s, 4)
    for v in versions[:3]:
        run("models", "promote", "churn", v, "--to", "challenger", "--reason", "shadow it")
    reg = read_registry(s)
    assert [r["version"] for r in reg.challengers("churn")] == versions[:3]
    out = run("models", "promote", "churn", versions[3], "--to", "challenger", "--reason", "4th")
    assert f"churn {versions[0]} -> archived (the oldest of 3 challengers, archived for" in out
    reg = read_registry(s)
    assert [r["version"] for r in reg.challengers("churn")] == versions[1:]
    assert known(reg.get("churn", versions[0]))["stage"] == "archived"


def test_retire_hides_a_model_and_unretire_brings_it_back(s: Settings, run) -> None:
    champ = bootstrap_champion(s)
    (challenger,) = _candidates(s, 1)
    run("models", "promote", "churn", challenger, "--to", "challenger", "--reason", "shadow")
    out = run("models", "retire", "churn", "--by", "ops", "--reason", "test model")
    assert f"churn {challenger} -> retired (model retired: test model)" in out
    assert f"churn {champ['version']} -> retired (model retired: test model)" in out
    assert "churn" not in run("models", "list")
    listed = run("models", "list", "--all")
    assert champ["version"] in listed and "retired" in listed
    reg = read_registry(s)
    assert reg.retired("churn") and reg.models() == [] and len(reg.versions("churn")) == 2
    assert "retired already" in run("models", "retire", "churn", "--reason", "x", ok=False)
    refused = run("models", "promote", "churn", challenger, "--reason", "x", ok=False)
    assert "is retired" in refused
    out = run("models", "unretire", "churn", "--by", "ops", "--reason", "needed again")
    assert f"churn {champ['version']} -> champion (model unretired: needed again)" in out
    reg = read_registry(s)
    assert not reg.retired("churn")
    assert known(reg.champion("churn"))["version"] == champ["version"]
    assert [r["version"] for r in reg.challengers("churn")] == [challenger]
    assert "not retired" in run("models", "unretire", "churn", "--reason", "x", ok=False)
