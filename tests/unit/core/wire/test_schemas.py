"""Loading schema directories: names, versions, fingerprints, bad directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driftline.core.errors import ConfigError, UnknownSchemaError
from driftline.core.wire.schemas import Schemas, SchemaVersion, crc64_avro
from tests.schema_compat import FIXTURES, packaged_schema_json, schema_dir_with
from tests.unit.core.examples import EXAMPLES

# Test vectors of the Avro spec (Java's schema-tests.txt): the fingerprint as a signed
# 64-bit integer; the single-object header carries it little-endian.
SPEC_FINGERPRINTS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"float"', 5583340709985441680),
    ('"double"', -8181574048448539266),
    ('"bytes"', 5746618253357095269),
    ('"string"', -8142146995180207161),
]


@pytest.mark.parametrize(("canonical", "expected"), SPEC_FINGERPRINTS)
def test_crc64_avro_matches_spec_vectors_little_endian(canonical: str, expected: int) -> None:
    assert crc64_avro(canonical) == expected.to_bytes(8, "little", signed=True)


def test_logical_types_do_not_change_the_canonical_form() -> None:
    # Spec: canonical form keeps only the primitive name. (Apache avro 1.12.2 for
    # Python writes {"type":"long"} here and so fingerprints such schemas differently.)
    def record(t: Any) -> str:
        schema = {
            "type": "record",
            "name": "R",
            "namespace": "n",
            "fields": [{"name": "t", "type": t}],
        }
        return json.dumps(schema)

    logical = SchemaVersion.parse(
        "r.v1.avsc", record({"type": "long", "logicalType": "timestamp-millis"})
    )
    plain = SchemaVersion.parse("r.v1.avsc", record("long"))
    assert logical.canonical_form == plain.canonical_form
    assert logical.fingerprint == plain.fingerprint


def test_packaged_schemas_load_once() -> None:
    schemas = Schemas.packaged()
    assert Schemas.packaged() is schemas
    assert len(schemas.names) == len(EXAMPLES) == 9
    published = {(sv.short_name, sv.version) for sv in schemas}
    later = {("FeatureEvent", 2), ("Prediction", 2), ("Outcome", 2), ("ModelVersion", 2)}
    assert published == {(n, 1) for n in EXAMPLES} | later


@pytest.mark.parametrize("short", sorted(EXAMPLES))
def test_lookup_by_short_and_full_name_and_fingerprint(short: str) -> None:
    schemas = Schemas.packaged()
    sv = schemas.current(short)
    assert sv.short_name == short
    assert sv.name == f"io.driftline.{short}"
    assert schemas.current(sv.name) is sv
    assert schemas.versions(short)[-1] is sv
    assert schemas.by_fingerprint(sv.fingerprint) is sv
    assert len(sv.fingerprint) == 8


def test_unknown_name_and_fingerprint() -> None:
    schemas = Schemas.packaged()
    with pytest.raises(UnknownSchemaError) as info:
        schemas.current("Nope")
    assert info.value.reason == "unknown_schema"
    assert schemas.by_fingerprint(bytes(8)) is None


def test_versions_are_ordered_and_highest_is_current(tmp_path: Path) -> None:
    fixture = (FIXTURES / "feature_event.v3.avsc").read_text()
    schemas = Schemas.from_dir(schema_dir_with(tmp_path, {"feature_event.v3.avsc": fixture}))
    assert [sv.version for sv in schemas.versions("FeatureEvent")] == [1, 2, 3]
    assert schemas.current("FeatureEvent").version == 3
    v1, v2, v3 = schemas.versions("FeatureEvent")
    assert len({v1.fingerprint, v2.fingerprint, v3.fingerprint}) == 3
    assert schemas.by_fingerprint(v1.fingerprint) is v1
    assert schemas.by_fingerprint(v2.fingerprint) is v2


def test_feature_event_v2_is_published_with_the_optional_source() -> None:
    schemas = Schemas.packaged()
    v1, v2 = schemas.versions("FeatureEvent")
    assert (v1.file_name, v2.file_name) == ("feature_event.v1.avsc", "feature_event.v2.avsc")
    assert schemas.current("FeatureEvent") is v2
    added = [
        f for f in v2.schema["fields"] if f["name"] not in {g["name"] for g in v1.schema["fields"]}
    ]
    assert [(f["name"], f["type"], f["default"]) for f in added] == [
        ("source", ["null", "string"], None)
    ]


def test_versions_differing_only_in_docs_share_a_fingerprint(tmp_path: Path) -> None:
    v2 = packaged_schema_json("label.v1.avsc")
    v2["doc"] = "Reworded."
    v2["fields"][0]["doc"] = "Reworded too."
    schemas = Schemas.from_dir(schema_dir_with(tmp_path, {"label.v2.avsc": v2}))
    v1, current = schemas.versions("Label")
    assert v1.fingerprint == current.fingerprint
    assert schemas.by_fingerprint(v1.fingerprint) is current


BAD_FILES: list[tuple[str, str, str]] = [
    ("label.avsc", "{}", "named <record>.v<N>.avsc"),
    ("label.v0.avsc", "{}", "named <record>.v<N>.avsc"),
    ("Label.v2.avsc", "{}", "named <record>.v<N>.avsc"),
    ("label.v2.avsc", "{not json", "not a valid Avro schema"),
    ("label.v2.avsc", '{"type": "record", "name": "L", "fields": [{"name": "x"}]}', "not a valid"),
    ("label.v2.avsc", '"string"', "top-level schema must be a record"),
    ("label.v2.avsc", json.dumps(packaged_schema_json("alert.v1.avsc")), "does not match"),
]


@pytest.mark.parametrize(("file_name", "text", "message"), BAD_FILES)
def test_bad_schema_file_is_a_config_error(
    tmp_path: Path, file_name: str, text: str, message: str
) -> None:
    directory = schema_dir_with(tmp_path, {file_name: text})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Schemas.from_dir(directory)


def test_missing_or_empty_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Schemas.from_dir(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no schemas"):
        Schemas.from_dir(tmp_path)


def test_version_published_twice_is_a_config_error() -> None:
    text = json.dumps(packaged_schema_json("label.v1.avsc"))
    sv = SchemaVersion.parse("label.v1.avsc", text)
    with pytest.raises(ConfigError, match="published twice"):
        Schemas([sv, SchemaVersion.parse("label.v1.avsc", text)])
