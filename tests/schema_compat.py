"""Check a schema directory against Driftline's schema policy, with Apache ``avro``.

Lives in tests/ because the Apache ``avro`` package is a dev-only dependency.

Policy:

- every file loads with :meth:`driftline.core.wire.schemas.Schemas.from_dir`
  (``<record>.v<N>.avsc``, file name matching the record);
- every record (nested ones too) has a namespace and a doc, every field a doc;
- every pair of published versions of a record is compatible in both directions
  (full transitive compatibility): a reader of the newer version reads data of the
  older (backward) and a reader of the older reads data of the newer (forward).
  Checking every pair, not only current against each older one, equals having
  checked each version when it was published, since published files never change.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from importlib.resources import files
from itertools import combinations
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from driftline.core.errors import ConfigError
from driftline.core.wire.schemas import Schemas

FIXTURES = Path(__file__).parent / "fixtures" / "schemas"
PACKAGED = files("driftline") / "schemas"


def check_schema_dir(path: str | Path) -> list[str]:
    """Every way the schema directory breaks the policy; empty when it is fine."""
    try:
        schemas = Schemas.from_dir(path)
    except ConfigError as err:
        return [f"does not load: {err}"]
    problems: list[str] = []
    checker = ReaderWriterCompatibilityChecker()
    for name in schemas.names:
        parsed: dict[int, avro.schema.Schema] = {}
        for sv in schemas.versions(name):
            text = (Path(path) / sv.file_name).read_text(encoding="utf-8")
            problems += [f"{sv.file_name}: {p}" for p in _doc_problems(json.loads(text))]
            parsed[sv.version] = avro.schema.parse(text)
        for old, new in combinations(sorted(parsed), 2):
            for reader, writer, direction in ((new, old, "backward"), (old, new, "forward")):
                result = checker.get_compatibility(parsed[reader], parsed[writer])
                if result.compatibility is not SchemaCompatibilityType.compatible:
                    kinds = ", ".join(sorted({i.name for i in result.incompatibilities}))
                    why = "; ".join(sorted(result.messages))
                    at = ", ".join(sorted(result.locations - {"/"}) or ["/"])
                    problems.append(
                        f"{name} v{reader} cannot read v{writer} ({direction} incompatible):"
                        f" {kinds}: {why} (at {at})"
                    )
    return problems


def _doc_problems(schema: Any, where: str = "") -> Iterator[str]:
    """Records without namespace or doc, fields without doc, anywhere in ``schema``."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _doc_problems(branch, where)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            name = schema.get("name", "?")
            here = f"{where}{name}"
            if not schema.get("namespace") and "." not in name:
                yield f"record {here} has no namespace"
            if not schema.get("doc"):
                yield f"record {here} has no doc"
            for field in schema.get("fields", []):
                if not field.get("doc"):
                    yield f"field {here}.{field.get('name')} has no doc"
                yield from _doc_problems(field.get("type"), f"{here}.{field.get('name')}/")
        elif kind == "array":
            yield from _doc_problems(schema.get("items"), where)
        elif kind == "map":
            yield from _doc_problems(schema.get("values"), where)


def schema_dir_with(
    dest: Path,
    extra: Mapping[str, str | Mapping[str, Any]] = {},
    without: Collection[str] = (),
) -> Path:
    """A copy of the packaged schema directory in ``dest``, plus ``extra`` files and
    minus the files named in ``without``.

    ``extra`` maps file names to text or to a JSON schema; a fixture file is given
    as ``{"x.v2.avsc": (FIXTURES / "x.v2.avsc").read_text()}``. ``without`` gives the
    schemas of a process built before a version was published, e.g.
    ``without={"feature_event.v2.avsc"}`` for an old producer or consumer.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for entry in PACKAGED.iterdir():
        if entry.name.endswith(".avsc") and entry.name not in without:
            (dest / entry.name).write_bytes(entry.read_bytes())
    for file_name, content in extra.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (dest / file_name).write_text(text, encoding="utf-8")
    return dest


def packaged_schema_json(file_name: str) -> dict[str, Any]:
    """The JSON of one packaged schema file, to build variants from."""
    result: dict[str, Any] = json.loads((PACKAGED / file_name).read_text(encoding="utf-8"))
    return result


def next_version(stem: str) -> tuple[str, int, dict[str, Any]]:
    """The file name and number of the next version of record file ``stem`` (for example
    ``feature_event``), and a copy of its current published JSON to change into it."""
    current = max(
        (sv for sv in Schemas.packaged() if sv.file_name.startswith(f"{stem}.v")),
        key=lambda sv: sv.version,
    )
    new = current.version + 1
    return f"{stem}.v{new}.avsc", new, packaged_schema_json(current.file_name)


def schemas_with_a_note(dest: Path, stem: str) -> Schemas:
    """The packaged schemas plus a next version of record file ``stem`` that adds an
    optional ``note_for_test`` field at the end: the packaged current version of that
    record becomes an older one."""
    name, _, schema = next_version(stem)
    schema["fields"].append(
        {"name": "note_for_test", "type": ["null", "string"], "default": None, "doc": "test"}
    )
    return Schemas.from_dir(schema_dir_with(dest, {name: schema}))
