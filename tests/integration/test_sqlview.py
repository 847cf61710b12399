"""The SQL view's tables, projection rules and Alembic migrations, each test on SQLite and
on a real PostgreSQL server (the ``sql_url`` fixture; no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, text

from driftline.consumers import sqlview
from driftline.core.errors import ConfigError
from driftline.core.lifecycle.registry import restage
from tests.fixtures.sqlview import v1
from tests.unit.core.examples import alert, model_version, retrain_trigger


@pytest.fixture
def engine(sql_url: str):
    eng = sqlview.engine(sql_url)
    assert sqlview.upgrade(eng) is None  # a new view
    yield eng
    eng.dispose()


def schema_diff(engine: Engine) -> list[Any]:
    """What differs between the database's tables and the code's (empty: the same)."""
    with engine.connect() as conn:
        diff: list[Any] = compare_metadata(MigrationContext.configure(conn), sqlview.metadata)
        return diff


def unchanged(engine: Engine) -> dict[str, list[Any]]:
    """Every row of the view's tables but ``alerts`` (whose columns a revision adds)."""
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(r) for r in conn.execute(select(t)).all()), key=repr)
            for t in sqlview.VIEW_TABLES
            if t.name != "alerts"
        }


def rows(engine, table) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table)).all())


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


def test_a_view_before_alert_v2_gets_the_incident_columns(sql_url: str) -> None:
    """A view at revision 0002 (its alerts table without the incident columns) is
    upgraded in place: old rows keep their values, with null incident fields."""
    eng = sqlview.engine(sql_url)
    try:
        assert sqlview.upgrade(eng, to="0002") is None  # a new view, up to 0002 only
        v1 = [c.name for c in sqlview.alerts.columns][:9]
        with eng.begin() as conn:
            conn.execute(text(f"INSERT INTO alerts ({', '.join(v1)}) VALUES ('old', 'churn', "
                              "'v1', NULL, 'concept_drift', 'warning', 'm', '{}', 5)"))  # fmt: skip
        assert sqlview.upgrade(eng) == "0002"
        with eng.begin() as conn:
            sqlview.project_alert(conn, alert(alert_id="new"))
        got = {r.alert_id: r for r in rows(eng, sqlview.alerts)}
        assert (got["old"].kind, got["old"].state, got["old"].incident_id) == (
            "concept_drift", None, None)  # fmt: skip
        assert got["new"].state == "firing"
        assert schema_diff(eng) == []
    finally:
        eng.dispose()


def test_offsets_are_stored_with_the_rows(engine) -> None:
    with engine.begin() as conn:
        sqlview.write_offsets(conn, {("t.registry", 0): 5, ("t.alerts", 2): 7})
        sqlview.write_offsets(conn, {("t.registry", 0): 9})
    with engine.connect() as conn:
        assert sqlview.read_offsets(conn) == {("t.registry", 0): 9, ("t.alerts", 2): 7}


def test_a_new_view_is_at_head_and_matches_the_code(engine) -> None:
    with engine.connect() as conn:
        assert sqlview.revision(conn) == sqlview.HEAD
    assert schema_diff(engine) == []
    assert sqlview.upgrade(engine) == sqlview.HEAD  # idempotent


def test_a_view_of_driftline_0_1_is_upgraded_with_its_rows(sql_url: str) -> None:
    eng = sqlview.engine(sql_url)
    try:
        v1.create_v1(eng)
        rec = model_version(stage="champion")
        with eng.begin() as conn:
            sqlview.project_version(conn, rec, 0, 3)
            sqlview.write_offsets(conn, {("t.registry", 0): 4})
        before = unchanged(eng)  # alerts: Driftline 0.1's table lacks Alert v2's columns
        assert sqlview.upgrade(eng) == sqlview.LEGACY_REVISION
        assert not inspect(eng).has_table("schema_version")
        with eng.connect() as conn:
            assert sqlview.revision(conn) == sqlview.HEAD
            assert sqlview.read_offsets(conn) == {("t.registry", 0): 4}
        assert unchanged(eng) == before
        assert schema_diff(eng) == []
        indexes = {i["name"] for i in inspect(eng).get_indexes("alerts")}
        assert "ix_alerts_model_created" in indexes
    finally:
        eng.dispose()


def test_every_revision_downgrades_and_upgrades_again(engine) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(sqlview._config(conn), "base")
    assert sqlview.upgrade(engine, "0001") is None
    with engine.connect() as conn:
        assert sqlview.revision(conn) == "0001"
    assert sqlview.upgrade(engine) == "0001"
    assert schema_diff(engine) == []


def test_a_view_of_a_newer_driftline_is_refused_and_left_alone(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="revision 9999, which this Driftline does not know"):
        sqlview.upgrade(engine)
    with engine.connect() as conn:
        assert sqlview.revision(conn) == "9999"


def test_rebuild_drops_every_table_and_the_revision(engine) -> None:
    sqlview.drop_all(engine)
    assert inspect(engine).get_table_names() == []
    assert sqlview.upgrade(engine) is None


def test_snapshot_compares_whole_tables(engine, tmp_path: Path) -> None:
    """Also across backends: a view on PostgreSQL reads back what one on SQLite does."""
    other = sqlview.engine(f"sqlite:///{tmp_path}/other.db")
    sqlview.upgrade(other)
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
