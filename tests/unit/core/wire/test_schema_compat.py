"""The published schemas follow the policy, and the policy check catches breaking changes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftline.core.wire.schemas import Schemas
from tests.schema_compat import (
    FIXTURES,
    PACKAGED,
    _doc_problems,
    check_schema_dir,
    next_version,
    schema_dir_with,
)
from tests.unit.core.examples import EXAMPLES

PACKAGED_DIR = Path(str(PACKAGED))
FILES = sorted(p.name for p in PACKAGED_DIR.glob("*.avsc"))


def test_every_record_is_published() -> None:
    assert {n.rpartition(".")[2] for n in Schemas.packaged().names} == set(EXAMPLES)


def test_published_schemas_have_no_problems() -> None:
    assert check_schema_dir(PACKAGED_DIR) == []


@pytest.mark.parametrize("file_name", FILES)
def test_records_have_namespace_and_docs(file_name: str) -> None:
    schema = json.loads((PACKAGED_DIR / file_name).read_text())
    assert schema["namespace"] == "io.driftline"
    assert list(_doc_problems(schema)) == []


def test_compatible_v3_fixture_passes(tmp_path: Path) -> None:
    fixture = (FIXTURES / "feature_event.v3.avsc").read_text()
    assert check_schema_dir(schema_dir_with(tmp_path, {"feature_event.v3.avsc": fixture})) == []


def test_feature_event_v2_reads_v1_and_v1_reads_v2() -> None:
    # The published v2 (adds the optional ``source``) passed the same check in both
    # directions; shown here on its own so a failing v2 names itself.
    assert not [p for p in check_schema_dir(PACKAGED_DIR) if "FeatureEvent" in p]
    assert [sv.version for sv in Schemas.packaged().versions("FeatureEvent")] == [1, 2]


INCIDENT_FIELDS = ("incident_key", "incident_id", "state", "opened_at_ms", "resolved_at_ms",
                   "duration_ms", "segments", "versions")  # fmt: skip


def test_alert_v2_reads_v1_and_v1_reads_v2() -> None:
    """Alert v2 (incidents) passed the policy check both ways; and the bytes agree: an
    incident written as v2 reads into v1 (an alert handler built before, given the v2
    file) with every v1 field, through fastavro and Apache avro alike, and a v1 alert
    reads into v2 as a notice (incident fields null)."""
    import io

    import avro.io
    import avro.schema
    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    assert not [p for p in check_schema_dir(PACKAGED_DIR) if "Alert" in p]
    v1, v2 = Schemas.packaged().versions("Alert")
    assert (v1.version, v2.version) == (1, 2)
    incident = EXAMPLES["Alert"](state="resolved", resolved_at_ms=5, duration_ms=5)
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(v2.schema), incident)
    body = out.getvalue()
    old = schemaless_reader(io.BytesIO(body), parse_schema(v2.schema), parse_schema(v1.schema))
    assert isinstance(old, dict)
    assert old == {k: v for k, v in incident.items() if k not in INCIDENT_FIELDS}
    apache = avro.io.DatumReader(
        avro.schema.parse(json.dumps(v2.schema)), avro.schema.parse(json.dumps(v1.schema))
    ).read(avro.io.BinaryDecoder(io.BytesIO(body)))
    assert apache == old

    out = io.BytesIO()
    schemaless_writer(out, parse_schema(v1.schema), old)
    new = schemaless_reader(io.BytesIO(out.getvalue()), parse_schema(v1.schema),
                            parse_schema(v2.schema))  # fmt: skip
    assert new == {**old, **dict.fromkeys(INCIDENT_FIELDS)}


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = schema["fields"]
    return fields


def add_field_without_default(s: dict[str, Any]) -> None:
    _fields(s).append({"name": "trace_id", "type": "string", "doc": "New, no default."})


def add_field_without_doc(s: dict[str, Any]) -> None:
    _fields(s).append({"name": "trace_id", "type": ["null", "string"], "default": None})


def change_string_to_long(s: dict[str, Any]) -> None:
    _fields(s)[0]["type"] = "long"


def remove_field_without_default(s: dict[str, Any]) -> None:
    s["fields"] = [f for f in _fields(s) if f["name"] != "latency_us"]


def remove_event_time(s: dict[str, Any]) -> None:
    s["fields"] = [f for f in _fields(s) if f["name"] != "event_time_ms"]


def change_source_to_long(s: dict[str, Any]) -> None:
    source = next(f for f in _fields(s) if f["name"] == "source")
    source["type"] = ["null", "long"]


def change_event_time_to_string(s: dict[str, Any]) -> None:
    event_time = next(f for f in _fields(s) if f["name"] == "event_time_ms")
    event_time["type"] = "string"


def drop_union_branch(s: dict[str, Any]) -> None:
    label = next(f for f in _fields(s) if f["name"] == "label")
    label["type"] = ["null", "boolean", "long", "double"]


def drop_namespace(s: dict[str, Any]) -> None:
    del s["namespace"]


def rename_record(s: dict[str, Any]) -> None:
    s["name"] = "Label2"


# (breaking change, file it is applied to, substrings the problem must contain). The
# change is applied to the current published version and saved as the next one;
# {new} and {cur} stand for their numbers.
BREAKING: list[tuple[Callable[[dict[str, Any]], None], str, tuple[str, ...]]] = [
    (
        add_field_without_default,
        "feature_event",
        ("FeatureEvent v{new} cannot read v{cur} (backward incompatible)", "trace_id"),
    ),
    (
        remove_event_time,
        "feature_event",
        ("FeatureEvent v{cur} cannot read v{new} (forward incompatible)", "event_time_ms"),
    ),
    (
        remove_event_time,
        "feature_event",
        ("FeatureEvent v1 cannot read v{new} (forward incompatible)", "event_time_ms"),
    ),
    (change_source_to_long, "feature_event", ("FeatureEvent v{new} cannot read v{cur} (backward",)),
    (change_source_to_long, "feature_event", ("FeatureEvent v{cur} cannot read v{new} (forward",)),
    (
        change_event_time_to_string,
        "feature_event",
        ("FeatureEvent v{new} cannot read v1 (backward", "/fields/2"),
    ),
    (add_field_without_doc, "alert", ("alert.v{new}.avsc", "field Alert.trace_id has no doc")),
    (change_string_to_long, "label", ("Label v{new} cannot read v{cur} (backward", "/fields/0")),
    (change_string_to_long, "label", ("Label v{cur} cannot read v{new} (forward",)),
    (
        remove_field_without_default,
        "prediction",
        ("Prediction v{cur} cannot read v{new} (forward incompatible)", "latency_us"),
    ),
    (drop_union_branch, "outcome", ("Outcome v{new} cannot read v{cur} (backward incompatible)",)),
    (drop_namespace, "metric_snapshot", ("record MetricSnapshot has no namespace",)),
    (rename_record, "label", ("does not load", "label.v{new}.avsc", "Label2")),
]


@pytest.mark.parametrize(
    ("change", "stem", "expected"),
    BREAKING,
    ids=[f"{stem}-{change.__name__}" for change, stem, _ in BREAKING],
)
def test_breaking_change_is_caught(
    tmp_path: Path,
    change: Callable[[dict[str, Any]], None],
    stem: str,
    expected: tuple[str, ...],
) -> None:
    file_name, new, schema = next_version(stem)
    changed = copy.deepcopy(schema)
    change(changed)
    problems = check_schema_dir(schema_dir_with(tmp_path, {file_name: changed}))
    wanted = [e.format(new=new, cur=new - 1) for e in expected]
    assert any(all(e in p for e in wanted) for p in problems), problems
