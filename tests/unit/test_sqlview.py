"""The SQL view's tables, projection rules and schema version (SQLite, no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text, update

from driftline.consumers import sqlview
from driftline.core.errors import ConfigError
from driftline.core.lifecycle.registry import restage
from tests.unit.core.examples import alert, model_version, retrain_trigger


@pytest.fixture
def engine(tmp_path: Path):
    eng = create_engine(f"sqlite:///{tmp_path}/view.db")
    assert sqlview.ensure_schema(eng) == sqlview.SCHEMA_VERSION
    yield eng
    eng.dispose()


def rows(engine, table) -> list:
    with engine.connect() as conn:
        return conn.execute(select(table)).all()


def test_a_version_fills_versions_history_runs_and_ranges(engine) -> None:
    rec = model_version(stage="candidate")
    champ = restage(
        rec, "champion", by="trainer", reason="gate passed", now_ms=rec["created_at_ms"]
    )
    with engine.begin() as conn:
        sqlview.project_version(conn, rec, 0, 10)
        sqlview.project_version(conn, champ, 0, 11)
        sqlview.project_version(conn, champ, 0, 11)  # a replay changes nothing
    (v,) = rows(engine, sqlview.versions)
    assert (v.stage, v.stage_changed_by, v.registry_offset) == ("champion", "trainer", 11)
    assert json.loads(v.metrics) == rec["metrics"]
    assert v.gate_passed is True and v.trigger_key == rec["lineage"]["trigger_key"]
    history = sorted(rows(engine, sqlview.stage_history), key=lambda r: r.registry_offset)
    assert [(h.previous_stage, h.stage) for h in history] == [
        (None, "candidate"),
        ("candidate", "champion"),
    ]
    (run,) = rows(engine, sqlview.training_runs)
    assert (run.run_id, run.status, run.rows, run.host) == ("run-0042", "succeeded", 99_800,
                                                            "trainer-0")  # fmt: skip
    assert json.loads(run.step_ms) == rec["lineage"]["step_ms"]
    ranges = sorted((r.partition, r.start_offset, r.end_offset)
                    for r in rows(engine, sqlview.data_ranges))  # fmt: skip
    assert ranges == [(0, 100, 50_100), (1, 0, 49_800)]


def test_alerts_triggers_and_failed_runs(engine) -> None:
    failed = alert(
        alert_id="a-2",
        kind="training_failed",
        evidence={"training_run_id": "run-9", "trigger_id": "t-9", "error": "ValueError: x"},
    )
    with engine.begin() as conn:
        sqlview.project_alert(conn, alert())
        sqlview.project_alert(conn, failed)
        sqlview.project_trigger(conn, retrain_trigger())
    assert {a.kind for a in rows(engine, sqlview.alerts)} == {"feature_drift", "training_failed"}
    (run,) = rows(engine, sqlview.training_runs)
    assert (run.run_id, run.status, run.error) == ("run-9", "failed", "ValueError: x")
    (trg,) = rows(engine, sqlview.triggers)
    assert json.loads(trg.reasons) == retrain_trigger()["reasons"]


def test_incident_records_keep_their_lifecycle(engine) -> None:
    opened = alert(alert_id="a-1")
    resolved = alert(alert_id="a-2", state="resolved", resolved_at_ms=opened["opened_at_ms"] + 90,
                     duration_ms=90, segments=["all", "plan=pro"])  # fmt: skip
    notice = alert(alert_id="a-3", kind="artifact_rejected", incident_key=None, incident_id=None,
                   state=None, opened_at_ms=None, segments=None, versions=None)  # fmt: skip
    with engine.begin() as conn:
        for a in (opened, resolved, notice):
            sqlview.project_alert(conn, a)
    got = {r.alert_id: r for r in rows(engine, sqlview.alerts)}
    assert got["a-1"].incident_id == got["a-2"].incident_id == opened["incident_id"]
    assert (got["a-1"].state, got["a-2"].state, got["a-3"].state) == ("firing", "resolved", None)
    assert got["a-2"].duration_ms == 90 and json.loads(got["a-2"].segments) == ["all", "plan=pro"]
    assert got["a-3"].segments is None and got["a-3"].incident_key is None


def test_a_view_of_schema_version_1_gets_the_incident_columns(tmp_path: Path) -> None:
    """A view written before Alert v2 (its alerts table without the incident columns)
    is migrated in place: old rows keep their values, with null incident fields."""
    eng = create_engine(f"sqlite:///{tmp_path}/old.db")
    sqlview.ensure_schema(eng)
    v1 = [c.name for c in sqlview.alerts.columns][:9]
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE alerts"))
        conn.execute(text("CREATE TABLE alerts (alert_id VARCHAR(255) PRIMARY KEY, model "
                          "VARCHAR(255), version VARCHAR(255), segment VARCHAR(255), kind "
                          "VARCHAR(255), severity VARCHAR(255), message TEXT, evidence TEXT, "
                          "created_at_ms BIGINT)"))  # fmt: skip
        conn.execute(text(f"INSERT INTO alerts ({', '.join(v1)}) VALUES ('old', 'churn', "
                          "'v1', NULL, 'concept_drift', 'warning', 'm', '{}', 5)"))  # fmt: skip
        conn.execute(sqlview.schema_version.delete())
        conn.execute(insert(sqlview.schema_version).values(version=1, applied_at_ms=0))
    assert sqlview.ensure_schema(eng) == 1  # found 1, migrated to 2
    with eng.begin() as conn:
        sqlview.project_alert(conn, alert(alert_id="new"))
    got = {r.alert_id: r for r in rows(eng, sqlview.alerts)}
    assert (got["old"].kind, got["old"].state, got["old"].incident_id) == ("concept_drift", None,
                                                                          None)  # fmt: skip
    assert got["new"].state == "firing"
    assert sqlview.ensure_schema(eng) == sqlview.SCHEMA_VERSION == 2
    eng.dispose()


def test_offsets_are_stored_with_the_rows(engine) -> None:
    with engine.begin() as conn:
        sqlview.write_offsets(conn, {("t.registry", 0): 5, ("t.alerts", 2): 7})
        sqlview.write_offsets(conn, {("t.registry", 0): 9})
    with engine.connect() as conn:
        assert sqlview.read_offsets(conn) == {("t.registry", 0): 9, ("t.alerts", 2): 7}


def test_schema_version_is_managed(engine) -> None:
    assert sqlview.ensure_schema(engine) == sqlview.SCHEMA_VERSION  # idempotent
    with engine.begin() as conn:
        conn.execute(update(sqlview.schema_version).values(version=sqlview.SCHEMA_VERSION + 1))
    with pytest.raises(ConfigError, match="newer than this Driftline"):
        sqlview.ensure_schema(engine)


def test_migrations_run_in_order(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = []
    monkeypatch.setattr(sqlview, "SCHEMA_VERSION", sqlview.SCHEMA_VERSION + 1)
    monkeypatch.setitem(sqlview.MIGRATIONS, sqlview.SCHEMA_VERSION - 1, lambda c: ran.append(1))
    assert sqlview.ensure_schema(engine) == sqlview.SCHEMA_VERSION - 1
    assert ran == [1]
    versions = [r.version for r in rows(engine, sqlview.schema_version)]
    assert sorted(versions) == [sqlview.SCHEMA_VERSION - 1, sqlview.SCHEMA_VERSION]


def test_snapshot_compares_whole_tables(engine, tmp_path: Path) -> None:
    other = create_engine(f"sqlite:///{tmp_path}/other.db")
    sqlview.ensure_schema(other)
    for eng in (engine, other):
        with eng.begin() as conn:
            sqlview.project_trigger(conn, retrain_trigger())
    assert sqlview.snapshot(engine) == sqlview.snapshot(other)
    with other.begin() as conn:
        conn.execute(
            insert(sqlview.alerts).values(
                **{**alert(segments=None, versions=None), "evidence": "{}"}
            )
        )
    assert sqlview.snapshot(engine) != sqlview.snapshot(other)
    other.dispose()
