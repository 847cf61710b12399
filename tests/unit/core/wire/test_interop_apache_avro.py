"""Driftline's codec against an independent implementation: the Apache ``avro`` package.

Apache avro 1.12 for Python has fingerprints but no single-object helpers, so the
framing (0xC3 0x01 + 8-byte little-endian CRC-64-AVRO fingerprint + body) is built
and parsed here by hand, as the Avro specification describes it.

Two quirks of Apache avro 1.12.2 for Python, pinned down here:

- Its union writer takes the *last* branch that accepts a value, and a Python bool
  or int is accepted by ``double``: in ``["null", "boolean", "long", "double",
  "string"]`` (feature maps, labels, predictions) it writes ``True`` and ``3`` as
  the doubles ``1.0`` and ``3.0``. Java and fastavro take the first matching branch.
  ``as_apache_writes`` models this; a producer using that package loses int and
  bool feature types.
- It writes logical types as ``{"type":"long"}`` in the parsing canonical form where
  the spec (and Java, and fastavro) write ``"long"``, so its fingerprints of schemas
  with logical types differ. Driftline's schemas have none today.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest

from driftline.core.wire.codec import HEADER_SIZE, MARKER, Codec
from tests.schema_compat import PACKAGED
from tests.unit.core.examples import EXAMPLES, same

CODEC = Codec()
RECORDS = sorted(EXAMPLES)


@cache
def apache_schema(short: str) -> avro.schema.Schema:
    file_name = CODEC.schemas.current(short).file_name
    return avro.schema.parse((Path(str(PACKAGED)) / file_name).read_text())


def apache_encode(short: str, value: dict[str, Any]) -> bytes:
    schema = apache_schema(short)
    out = io.BytesIO()
    out.write(MARKER + schema.fingerprint("CRC-64-AVRO"))
    avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(out))
    return out.getvalue()


def as_apache_writes(schema: avro.schema.Schema, datum: Any) -> Any:
    """``datum`` as Apache avro writes it: last matching union branch, ints as doubles."""
    if isinstance(schema, avro.schema.UnionSchema):
        branch = [b for b in schema.schemas if avro.io.validate(b, datum)][-1]
        return as_apache_writes(branch, datum)
    if isinstance(schema, avro.schema.RecordSchema):
        return {f.name: as_apache_writes(f.type, datum[f.name]) for f in schema.fields}
    if isinstance(schema, avro.schema.MapSchema):
        return {k: as_apache_writes(schema.values, v) for k, v in datum.items()}
    if isinstance(schema, avro.schema.ArraySchema):
        return [as_apache_writes(schema.items, v) for v in datum]
    if schema.type in ("float", "double"):
        return float(datum)
    return datum


def apache_decode(short: str, data: bytes) -> Any:
    schema = apache_schema(short)
    assert data[:2] == MARKER
    assert data[2:HEADER_SIZE] == schema.fingerprint("CRC-64-AVRO")
    body = io.BytesIO(data[HEADER_SIZE:])
    value = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(body))
    assert body.read() == b"", "Apache avro left bytes unread"
    return value


@pytest.mark.parametrize("short", RECORDS)
def test_fingerprints_and_canonical_forms_match_apache(short: str) -> None:
    ours = CODEC.schemas.current(short)
    theirs = apache_schema(short)
    assert ours.canonical_form == theirs.canonical_form
    assert ours.fingerprint == theirs.fingerprint("CRC-64-AVRO")


@pytest.mark.parametrize("short", RECORDS)
def test_apache_bytes_decode_with_driftline(short: str) -> None:
    value = EXAMPLES[short]()
    decoded = CODEC.decode(apache_encode(short, value), expect=short)
    assert decoded.name == f"io.driftline.{short}"
    assert decoded.writer_version == CODEC.schemas.current(short).version
    assert same(decoded.value, as_apache_writes(apache_schema(short), value))


@pytest.mark.parametrize("short", RECORDS)
def test_driftline_bytes_decode_with_apache(short: str) -> None:
    value = EXAMPLES[short]()
    assert same(apache_decode(short, CODEC.encode(short, value)), value)


@pytest.mark.parametrize("short", RECORDS)
def test_both_write_the_same_bytes_for_the_same_union_branches(short: str) -> None:
    value = as_apache_writes(apache_schema(short), EXAMPLES[short]())
    assert CODEC.encode(short, value) == apache_encode(short, value)


@pytest.mark.parametrize(
    ("value", "apache_reads"),
    [(True, 1.0), (False, 0.0), (3, 3.0), (2.5, 2.5), (None, None), ("x", "x")],
    ids=repr,
)
def test_apache_writes_bools_and_ints_in_unions_as_doubles(value: Any, apache_reads: Any) -> None:
    data = apache_encode("Label", EXAMPLES["Label"](label=value))
    assert same(CODEC.decode(data).value["label"], apache_reads)
    # Driftline keeps the type, and Apache reads it back with the type.
    ours = CODEC.encode("Label", EXAMPLES["Label"](label=value))
    assert same(apache_decode("Label", ours)["label"], value)


# --- FeatureEvent v1 and v2 across implementations ------------------------------------------


def _apache_file(file_name: str) -> avro.schema.Schema:
    return avro.schema.parse((Path(str(PACKAGED)) / file_name).read_text())


def test_apache_v1_writer_is_read_by_driftline_into_v2() -> None:
    # An old producer using Apache avro and feature_event.v1.avsc.
    v1 = _apache_file("feature_event.v1.avsc")
    event = {k: v for k, v in EXAMPLES["FeatureEvent"]().items() if k != "source"}
    out = io.BytesIO()
    out.write(MARKER + v1.fingerprint("CRC-64-AVRO"))
    avro.io.DatumWriter(v1).write(event, avro.io.BinaryEncoder(out))
    decoded = CODEC.decode(out.getvalue(), expect="FeatureEvent")
    assert decoded.writer_version == 1
    assert same(decoded.value, {**as_apache_writes(v1, event), "source": None})


@pytest.mark.parametrize("reader_file", ["feature_event.v1.avsc", "feature_event.v2.avsc"])
def test_apache_resolves_driftline_v2_bytes_with_a_v1_or_v2_reader(reader_file: str) -> None:
    # An old consumer (v1 reader) and a new one, given the writer's schema (v2).
    writer = _apache_file("feature_event.v2.avsc")
    data = CODEC.encode("FeatureEvent", EXAMPLES["FeatureEvent"]())
    assert data[2:HEADER_SIZE] == writer.fingerprint("CRC-64-AVRO")
    reader = _apache_file(reader_file)
    value = avro.io.DatumReader(writer, reader).read(
        avro.io.BinaryDecoder(io.BytesIO(data[HEADER_SIZE:]))
    )
    expected = EXAMPLES["FeatureEvent"]()
    if reader_file.endswith("v1.avsc"):
        del expected["source"]
    assert same(value, expected)
