"""The published schemas follow the policy, and the policy check catches breaking changes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftline.core.schemas import Schemas
from tests.schema_compat import (
    FIXTURES,
    PACKAGED,
    _doc_problems,
    check_schema_dir,
    packaged_schema_json,
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


def test_compatible_v2_fixture_passes(tmp_path: Path) -> None:
    fixture = (FIXTURES / "feature_event.v2.avsc").read_text()
    assert check_schema_dir(schema_dir_with(tmp_path, {"feature_event.v2.avsc": fixture})) == []


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


def drop_union_branch(s: dict[str, Any]) -> None:
    label = next(f for f in _fields(s) if f["name"] == "label")
    label["type"] = ["null", "boolean", "long", "double"]


def drop_namespace(s: dict[str, Any]) -> None:
    del s["namespace"]


def rename_record(s: dict[str, Any]) -> None:
    s["name"] = "Label2"


# (breaking change, file it is applied to, substrings the problem must contain)
BREAKING: list[tuple[Callable[[dict[str, Any]], None], str, tuple[str, ...]]] = [
    (
        add_field_without_default,
        "feature_event",
        ("FeatureEvent v2 cannot read v1 (backward incompatible)", "trace_id"),
    ),
    (add_field_without_doc, "alert", ("alert.v2.avsc", "field Alert.trace_id has no doc")),
    (change_string_to_long, "label", ("Label v2 cannot read v1 (backward", "/fields/0")),
    (change_string_to_long, "label", ("Label v1 cannot read v2 (forward",)),
    (
        remove_field_without_default,
        "prediction",
        ("Prediction v1 cannot read v2 (forward incompatible)", "latency_us"),
    ),
    (drop_union_branch, "outcome", ("Outcome v2 cannot read v1 (backward incompatible)",)),
    (drop_namespace, "metric_snapshot", ("record MetricSnapshot has no namespace",)),
    (rename_record, "label", ("does not load", "label.v2.avsc", "Label2")),
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
    v2 = copy.deepcopy(packaged_schema_json(f"{stem}.v1.avsc"))
    change(v2)
    problems = check_schema_dir(schema_dir_with(tmp_path, {f"{stem}.v2.avsc": v2}))
    assert any(all(e in p for e in expected) for p in problems), problems
