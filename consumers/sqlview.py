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
schema_version  the version of these tables (:data:`SCHEMA_VERSION`)
==============  ==========================================================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    text,
)

from driftline.core.errors import ConfigError

SCHEMA_VERSION = 2
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
"""``n -> migrate(conn)`` brings tables from version n to n + 1."""

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
ALERT_INCIDENT_COLUMNS = (  # Alert v2 (schema version 2 of the view)
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
schema_version = Table(
    "schema_version", metadata, Column("version", Integer, primary_key=True), _i("applied_at_ms")
)

VIEW_TABLES = (versions, stage_history, training_runs, data_ranges, alerts, triggers)


def _alert_incident_columns(conn: Connection) -> None:
    """1 -> 2: the incident columns of Alert v2 on ``alerts`` (null on older rows)."""
    for name, kind in ALERT_INCIDENT_COLUMNS:
        conn.execute(text(f"ALTER TABLE alerts ADD COLUMN {name} {kind.compile(conn.dialect)}"))


MIGRATIONS[1] = _alert_incident_columns


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def ensure_schema(engine: Engine) -> int:
    """Create the tables, or migrate them to :data:`SCHEMA_VERSION`; the version found."""
    with engine.begin() as conn:
        if not inspect(conn).has_table("schema_version"):
            metadata.create_all(conn)
            conn.execute(
                insert(schema_version).values(version=SCHEMA_VERSION, applied_at_ms=_now())
            )
            return SCHEMA_VERSION
        found = conn.execute(select(schema_version.c.version)).scalars().all()
        current = max(found, default=0)
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"the SQL view has schema version {current}, newer than this Driftline's "
                f"{SCHEMA_VERSION}: upgrade Driftline or rebuild the view"
            )
        for v in range(current, SCHEMA_VERSION):
            MIGRATIONS[v](conn)
            conn.execute(insert(schema_version).values(version=v + 1, applied_at_ms=_now()))
        return current


def drop_all(engine: Engine) -> None:
    metadata.drop_all(engine)


def _now() -> int:
    return int(time.time() * 1000)


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
