"""The SQL view of the registry, training runs, alerts and triggers (SQLAlchemy 2.x Core).

Tables (JSON values are stored as sorted-key JSON text, so any database takes them):

==============  ==========================================================================
versions        one row per model version: its current stage, metrics, gate, lineage
stage_history   one row per registry record (keyed by its partition and offset): the
                whole history of stage changes, which the compacted topic forgets
training_runs   one row per training run: from a version's lineage, or a failure alert
data_ranges     the Kafka offset ranges each version was trained on
alerts          every Alert; an incident's records share its ``incident_id`` (``state``
                firing or resolved; null for a notice)
triggers        every RetrainTrigger
source_offsets  the next offset to project per topic partition, written in the same
                transaction as the rows: projection is exactly once
alembic_version the Alembic revision of these tables (:data:`HEAD` once upgraded)
==============  ==========================================================================

The schema is upgraded by Alembic (migrations in ``consumers/migrations/versions``);
:func:`upgrade` runs them, and brings a view of Driftline 0.1 (a ``schema_version``
table, before Alembic) along. Any SQLAlchemy database works; SQLite (the default) and
PostgreSQL (``pip install 'driftline[postgres]'``, psycopg 3) are tested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from driftline.core.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD = "0003"
"""The Alembic revision this Driftline writes (the newest in ``migrations/versions``)."""
LEGACY_REVISION = "0001"
"""The revision equal to the tables of Driftline 0.1, which kept a ``schema_version``
table (version 1) instead of Alembic's."""

metadata = MetaData()


def _s(name: str, length: int = 255, **kw: Any) -> Column[Any]:
    return Column(name, String(length), **kw)


def _i(name: str, **kw: Any) -> Column[Any]:
    return Column(name, BigInteger, **kw)


def _j(name: str) -> Column[Any]:
    return Column(name, Text)


versions = Table(
    "versions", metadata,
    _s("model", primary_key=True), _s("version", primary_key=True), _s("stage"),
    _i("stage_changed_at_ms"), _s("stage_changed_by"), _j("stage_reason"),
    _i("created_at_ms"), _s("task"), _s("factory", 1000), _j("metrics"), _j("segment_metrics"),
    _j("feature_spec"), Column("gate_passed", Boolean), _j("gate"), _s("trigger_id"),
    _s("trigger_key", 1000), _s("training_run_id"), _s("champion_version"), _i("rows"),
    _s("code_version"), _i("seed"), _j("params"), _s("artifact_format"),
    _s("artifact_sha256", 64), _i("artifact_size_bytes"), _j("artifact_uri"),
    _i("registry_offset"),
)  # fmt: skip
stage_history = Table(
    "stage_history", metadata,
    Column("registry_partition", Integer, primary_key=True),
    _i("registry_offset", primary_key=True),
    _s("model"), _s("version"), _s("stage"), _s("previous_stage", nullable=True),
    _i("changed_at_ms"), _s("changed_by"), _j("reason"),
)  # fmt: skip
training_runs = Table(
    "training_runs", metadata,
    _s("run_id", primary_key=True), _s("model"), _s("version", nullable=True), _s("status"),
    _s("trigger_id", nullable=True), _s("trigger_key", 1000, nullable=True),
    Column("gate_passed", Boolean, nullable=True), _i("started_at_ms", nullable=True),
    _i("finished_at_ms", nullable=True), _s("host", nullable=True),
    _s("code_version", nullable=True), _i("rows", nullable=True), _i("holdout_rows", nullable=True),
    _j("step_ms"), _j("metrics"), _j("error"),
)  # fmt: skip
data_ranges = Table(
    "data_ranges", metadata,
    _s("model", primary_key=True), _s("version", primary_key=True), _s("topic", primary_key=True),
    Column("partition", Integer, primary_key=True), _i("start_offset"), _i("end_offset"),
)  # fmt: skip
ALERT_INCIDENT_COLUMNS = (  # Alert v2 (revision 0003 of the view)
    ("incident_key", String(1000)), ("incident_id", String(255)), ("state", String(255)),
    ("opened_at_ms", BigInteger()), ("resolved_at_ms", BigInteger()),
    ("duration_ms", BigInteger()), ("segments", Text()), ("versions", Text()),
)  # fmt: skip
alerts = Table(
    "alerts", metadata,
    _s("alert_id", primary_key=True), _s("model"), _s("version", nullable=True),
    _s("segment", nullable=True), _s("kind"), _s("severity"), _j("message"), _j("evidence"),
    _i("created_at_ms"),
    *(Column(name, kind, nullable=True) for name, kind in ALERT_INCIDENT_COLUMNS),
)  # fmt: skip
triggers = Table(
    "triggers", metadata,
    _s("trigger_id", primary_key=True), _s("model"), _s("idempotency_key", 1000), _j("reasons"),
    _j("evidence"), _i("window_start_ms", nullable=True), _i("window_end_ms", nullable=True),
    _i("last_n", nullable=True), _s("champion_version", nullable=True), _s("requested_by"),
    _i("created_at_ms"),
)  # fmt: skip
source_offsets = Table(
    "source_offsets", metadata,
    _s("topic", primary_key=True), Column("partition", Integer, primary_key=True),
    _i("next_offset"),
)  # fmt: skip

# What `driftline report` and operators ask of a model: its alerts, triggers and stage
# changes in time order (revision 0002).
Index("ix_alerts_model_created", alerts.c.model, alerts.c.created_at_ms)
Index("ix_triggers_model_created", triggers.c.model, triggers.c.created_at_ms)
Index("ix_stage_history_model_version", stage_history.c.model, stage_history.c.version)

VIEW_TABLES = (versions, stage_history, training_runs, data_ranges, alerts, triggers)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def engine(url: str) -> Engine:
    """An engine for ``url``. ``postgresql://`` means psycopg 3 (SQLAlchemy's default
    driver for it is psycopg2); a driver that is not installed is one clear
    :class:`ConfigError`, naming the extra that brings it."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"sql_url {url!r} is not a SQLAlchemy URL: {exc}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(parsed)
    except (ModuleNotFoundError, NoSuchModuleError) as exc:
        extra = (
            " (pip install 'driftline[postgres]')"
            if parsed.get_backend_name() == "postgresql"
            else ""
        )
        raise ConfigError(
            f"sql_url {parsed.render_as_string(hide_password=True)}: its database driver "
            f"is not installed{extra}: {exc}"
        ) from exc


def _config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def revision(conn: Connection) -> str | None:
    """The view's revision: Alembic's, :data:`LEGACY_REVISION` for a view of Driftline
    0.1, None for an empty database."""
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None and inspect(conn).has_table("schema_version"):
        return LEGACY_REVISION
    return current


def upgrade(engine: Engine, to: str = "head") -> str | None:
    """Create the tables, or upgrade them to ``to`` (:data:`HEAD`), in one transaction;
    the revision found (None: a new view). A view written by a newer Driftline (a
    revision this one does not know) is a :class:`ConfigError`, and is left as it is."""
    with engine.begin() as conn:
        cfg = _config(conn)
        stamped = MigrationContext.configure(conn).get_current_revision()
        found = revision(conn)
        if found is not None:
            try:
                ScriptDirectory.from_config(cfg).get_revision(found)
            except (CommandError, RevisionError) as exc:
                raise ConfigError(
                    f"the SQL view has schema revision {found}, which this Driftline does "
                    f"not know (its newest is {HEAD}): upgrade Driftline, or rebuild the "
                    "view with `driftline projector --rebuild`"
                ) from exc
        if stamped is None and found == LEGACY_REVISION:
            command.stamp(cfg, LEGACY_REVISION)
        command.upgrade(cfg, to)
        return found


def ensure_schema(engine: Engine) -> str | None:
    """The view's tables at :data:`HEAD` (:func:`upgrade`); the revision found."""
    return upgrade(engine)


def drop_all(engine: Engine) -> None:
    """Drop the view's tables and its revision (and Driftline 0.1's ``schema_version``)."""
    metadata.drop_all(engine)
    with engine.begin() as conn:
        for name in ("alembic_version", "schema_version"):
            if inspect(conn).has_table(name):
                Table(name, MetaData(), autoload_with=conn).drop(conn)


def _upsert(conn: Connection, table: Table, row: Mapping[str, Any]) -> None:
    """Replace the row with ``row``'s primary key (portable across databases)."""
    where = [c == row[c.name] for c in table.primary_key.columns]
    conn.execute(delete(table).where(*where))
    conn.execute(insert(table).values(**row))


def project_version(conn: Connection, rec: Mapping[str, Any], partition: int, offset: int) -> None:
    """A ModelVersion record read at ``partition``/``offset`` of the registry topic:
    versions, stage_history, training_runs, data_ranges. A replayed record is skipped."""
    lin, art, gate = rec["lineage"], rec["artifact"], rec.get("gate")
    model, version = rec["model"], rec["version"]
    seen = conn.execute(
        select(stage_history.c.registry_offset).where(
            stage_history.c.registry_partition == partition,
            stage_history.c.registry_offset == offset,
        )
    ).first()
    if seen is not None:  # this very record was projected already: a replay
        return
    prev = conn.execute(
        select(versions.c.stage).where(versions.c.model == model, versions.c.version == version)
    ).scalar()
    _upsert(conn, stage_history, {
        "registry_partition": partition, "registry_offset": offset, "model": model,
        "version": version, "stage": rec["stage"], "previous_stage": prev,
        "changed_at_ms": rec["stage_changed_at_ms"], "changed_by": rec["stage_changed_by"],
        "reason": rec["stage_reason"],
    })  # fmt: skip
    _upsert(conn, versions, {
        "model": model, "version": version, "stage": rec["stage"],
        "stage_changed_at_ms": rec["stage_changed_at_ms"],
        "stage_changed_by": rec["stage_changed_by"], "stage_reason": rec["stage_reason"],
        "created_at_ms": rec["created_at_ms"], "task": rec["task"], "factory": rec["factory"],
        "metrics": dumps(rec["metrics"]), "segment_metrics": dumps(rec["segment_metrics"]),
        "feature_spec": dumps(rec["feature_spec"]),
        "gate_passed": None if gate is None else gate["passed"], "gate": dumps(gate),
        "trigger_id": lin["trigger_id"], "trigger_key": lin.get("trigger_key"),
        "training_run_id": lin["training_run_id"], "champion_version": lin["champion_version"],
        "rows": lin["rows"], "code_version": lin["code_version"], "seed": lin["seed"],
        "params": dumps(lin["params"]), "artifact_format": art["format"],
        "artifact_sha256": art["sha256"], "artifact_size_bytes": art["size_bytes"],
        "artifact_uri": art.get("uri"), "registry_offset": offset,
    })  # fmt: skip
    _upsert(conn, training_runs, {
        "run_id": lin["training_run_id"], "model": model, "version": version,
        "status": "succeeded", "trigger_id": lin["trigger_id"],
        "trigger_key": lin.get("trigger_key"),
        "gate_passed": None if gate is None else gate["passed"],
        "started_at_ms": lin.get("started_at_ms"), "finished_at_ms": lin.get("finished_at_ms"),
        "host": lin.get("host"), "code_version": lin["code_version"], "rows": lin["rows"],
        "holdout_rows": lin.get("holdout_rows"), "step_ms": dumps(lin.get("step_ms") or {}),
        "metrics": dumps(rec["metrics"]), "error": None,
    })  # fmt: skip
    conn.execute(delete(data_ranges).where(
        data_ranges.c.model == model, data_ranges.c.version == version))  # fmt: skip
    for r in lin["data_ranges"]:
        conn.execute(insert(data_ranges).values(model=model, version=version, **r))


def project_alert(conn: Connection, a: Mapping[str, Any]) -> None:
    """An Alert; a ``training_failed`` one is also a failed training run."""
    row = {**a, "evidence": dumps(a["evidence"])}
    for name in ("segments", "versions"):
        row[name] = None if a.get(name) is None else dumps(a[name])
    _upsert(conn, alerts, row)
    ev = a["evidence"]
    if a["kind"] == "training_failed" and ev.get("training_run_id"):
        _upsert(conn, training_runs, {
            "run_id": ev["training_run_id"], "model": a["model"], "version": None,
            "status": "failed", "trigger_id": ev.get("trigger_id"),
            "trigger_key": ev.get("idempotency_key"), "gate_passed": None,
            "started_at_ms": None, "finished_at_ms": a["created_at_ms"], "host": ev.get("host"),
            "code_version": None, "rows": None, "holdout_rows": None, "step_ms": "{}",
            "metrics": "{}", "error": ev.get("error"),
        })  # fmt: skip


def project_trigger(conn: Connection, t: Mapping[str, Any]) -> None:
    _upsert(conn, triggers, {**t, "reasons": dumps(t["reasons"]), "evidence": dumps(t["evidence"])})


def read_offsets(conn: Connection) -> dict[tuple[str, int], int]:
    rows = conn.execute(select(source_offsets)).all()
    return {(r.topic, r.partition): r.next_offset for r in rows}


def write_offsets(conn: Connection, offsets: Mapping[tuple[str, int], int]) -> None:
    for (topic, partition), nxt in offsets.items():
        _upsert(conn, source_offsets, {"topic": topic, "partition": partition, "next_offset": nxt})


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view table, sorted: two equal snapshots are equal views."""
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(r) for r in conn.execute(select(t)).all()), key=repr)
            for t in VIEW_TABLES
        }
