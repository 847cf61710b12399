"""Single-object encoding: round trips, every error with its reason code, evolution."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from driftline.core.errors import (
    CodecError,
    ConfigError,
    CorruptBodyError,
    NotSingleObjectError,
    SchemaMismatchError,
    UnknownSchemaError,
    WrongRecordError,
)
from driftline.core.wire import codec as codec_module
from driftline.core.wire.codec import HEADER_SIZE, MARKER, Codec, Decoded, decode, encode
from driftline.core.wire.schemas import Schemas, SchemaVersion
from tests.schema_compat import FIXTURES, packaged_schema_json, schema_dir_with
from tests.unit.core.examples import EXAMPLES, feature_event, label, same

CODEC = Codec()
RECORDS = sorted(EXAMPLES)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("short", RECORDS)
def test_every_record_round_trips(short: str) -> None:
    value = EXAMPLES[short]()
    data = CODEC.encode(short, value)
    assert data[:2] == MARKER
    assert data[2:HEADER_SIZE] == CODEC.schemas.current(short).fingerprint
    decoded = CODEC.decode(data)
    assert decoded == Decoded(f"io.driftline.{short}", value, CODEC.schemas.current(short).version)
    assert same(decoded.value, value)
    assert CODEC.decode(data, expect=short).value == value
    assert CODEC.decode(data, expect=f"io.driftline.{short}").value == value


@pytest.mark.parametrize("short", RECORDS)
def test_full_and_short_names_write_the_same_bytes(short: str) -> None:
    value = EXAMPLES[short]()
    assert CODEC.encode(f"io.driftline.{short}", value) == CODEC.encode(short, value)


def test_module_functions_use_the_packaged_schemas() -> None:
    data = encode("Label", label())
    assert data == CODEC.encode("Label", label())
    assert decode(data, expect="Label") == CODEC.decode(data)
    assert codec_module.default_codec() is codec_module.default_codec()


# (record, field left out, value it reads back as)
DEFAULTS: list[tuple[str, str, Any]] = [
    ("FeatureEvent", "segment", {}),
    ("FeatureEvent", "source", None),
    ("Prediction", "served_by", "driftline"),
    ("Prediction", "features", {}),
    ("Alert", "version", None),
    ("MetricSnapshot", "counts", {}),
    ("RetrainTrigger", "last_n", None),
    ("DeadLetter", "headers", []),
]


@pytest.mark.parametrize(("short", "field", "default"), DEFAULTS)
def test_fields_with_defaults_may_be_left_out(short: str, field: str, default: Any) -> None:
    value = EXAMPLES[short]()
    del value[field]
    assert CODEC.decode(CODEC.encode(short, value)).value == {**value, field: default}


FEATURE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    0.0,
    1.0,
    -2.5,
    1e308,
    float("inf"),
    float("-inf"),
    "",
    "EU",
    "naïve ☃ 𝄞",
]


@pytest.mark.parametrize("value", FEATURE_VALUES, ids=repr)
def test_feature_values_keep_value_and_type(value: Any) -> None:
    event = feature_event(features={"x": value})
    out = CODEC.decode(CODEC.encode("FeatureEvent", event)).value["features"]["x"]
    assert type(out) is type(value)
    assert out == value


def test_nan_feature_round_trips() -> None:
    event = feature_event(features={"x": math.nan})
    out = CODEC.decode(CODEC.encode("FeatureEvent", event)).value["features"]["x"]
    assert isinstance(out, float)
    assert math.isnan(out)


def test_int_beyond_64_bits_in_a_feature_becomes_a_double() -> None:
    # Documented fastavro behaviour: the union's double branch accepts the int.
    event = feature_event(features={"x": 2**64})
    out = CODEC.decode(CODEC.encode("FeatureEvent", event)).value["features"]["x"]
    assert out == float(2**64)
    assert isinstance(out, float)


# --- decode errors -------------------------------------------------------------------------

VALID = CODEC.encode("FeatureEvent", feature_event())
HEADER = VALID[:HEADER_SIZE]
LABEL_HEADER = CODEC.encode("Label", label())[:HEADER_SIZE]

# (case id, bytes, error, reason)
DECODE_ERRORS: list[tuple[str, bytes, type[CodecError], str]] = [
    ("empty", b"", NotSingleObjectError, "undecodable"),
    ("one byte", b"\xc3", NotSingleObjectError, "undecodable"),
    ("marker only", MARKER, NotSingleObjectError, "undecodable"),
    ("nine bytes", VALID[:9], NotSingleObjectError, "undecodable"),
    ("wrong marker", b"\xc3\x02" + VALID[2:], NotSingleObjectError, "undecodable"),
    ("swapped marker", b"\x01\xc3" + VALID[2:], NotSingleObjectError, "undecodable"),
    (
        "confluent framing",
        b"\x00\x00\x00\x00\x07" + VALID[10:],
        NotSingleObjectError,
        "undecodable",
    ),
    ("plain json", b'{"event_id": "e1"}', NotSingleObjectError, "undecodable"),
    ("unknown fingerprint", MARKER + bytes(8) + VALID[10:], UnknownSchemaError, "unknown_schema"),
    (
        "reversed fingerprint",
        MARKER + VALID[2:10][::-1] + VALID[10:],
        UnknownSchemaError,
        "unknown_schema",
    ),
    ("header only", HEADER, CorruptBodyError, "undecodable"),
    ("cut after 1 body byte", VALID[:11], CorruptBodyError, "undecodable"),
    ("cut in the middle", VALID[: len(VALID) // 2], CorruptBodyError, "undecodable"),
    ("last byte cut", VALID[:-1], CorruptBodyError, "undecodable"),
    ("one trailing byte", VALID + b"\x00", CorruptBodyError, "undecodable"),
    ("trailing garbage", VALID + b"garbage", CorruptBodyError, "undecodable"),
    ("two messages", VALID + VALID, CorruptBodyError, "undecodable"),
    # Label body: event_id "e", model "m", union index 9 (no such branch), label_time_ms 0.
    ("bad union index", LABEL_HEADER + b"\x02e\x02m\x12\x00", CorruptBodyError, "undecodable"),
    ("invalid utf-8", LABEL_HEADER + b"\x02\xff\x02m\x00\x00", CorruptBodyError, "undecodable"),
    ("negative length", LABEL_HEADER + b"\x03e\x02m\x00\x00", CorruptBodyError, "undecodable"),
    ("huge length", LABEL_HEADER + b"\xfe\xff\xff\xff\x0f", CorruptBodyError, "undecodable"),
]


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [case[1:] for case in DECODE_ERRORS],
    ids=[case[0] for case in DECODE_ERRORS],
)
def test_decode_errors(data: bytes, error: type[CodecError], reason: str) -> None:
    with pytest.raises(error) as info:
        CODEC.decode(data)
    assert type(info.value) is error
    assert info.value.reason == reason


@pytest.mark.parametrize("short", RECORDS)
def test_every_truncation_of_every_record_is_corrupt(short: str) -> None:
    data = CODEC.encode(short, EXAMPLES[short]())
    for cut in range(HEADER_SIZE, len(data)):
        with pytest.raises(CorruptBodyError):
            CODEC.decode(data[:cut])


def test_error_messages_name_the_record_and_version() -> None:
    with pytest.raises(
        CorruptBodyError, match=r"io\.driftline\.FeatureEvent v2: trailing bytes after the body: 1$"
    ):
        CODEC.decode(VALID + b"\x00")
    with pytest.raises(UnknownSchemaError, match="fingerprint 0000000000000000"):
        CODEC.decode(MARKER + bytes(8))


def test_expect_refuses_another_record_before_reading_the_body() -> None:
    data = CODEC.encode("Label", label())
    with pytest.raises(WrongRecordError, match=r"expected \S+FeatureEvent, got") as info:
        CODEC.decode(data + b"trailing garbage never read", expect="FeatureEvent")
    assert info.value.reason == "wrong_record"


def test_expect_of_an_unknown_record_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Nope"):
        CODEC.decode(VALID, expect="Nope")


# --- encode errors -------------------------------------------------------------------------


def _without(field: str) -> Callable[[dict[str, Any]], Any]:
    return lambda v: {k: x for k, x in v.items() if k != field}


def _with(**changes: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda v: {**v, **changes}


# (case id, record, change to its example, substrings of the message)
ENCODE_ERRORS: list[tuple[str, str, Callable[[dict[str, Any]], Any], tuple[str, ...]]] = [
    ("missing field", "FeatureEvent", _without("model"), ("FeatureEvent v2", "model")),
    ("missing nested field", "ModelVersion", lambda v: {**v, "artifact": {}}, ("format",)),
    ("wrong type", "FeatureEvent", _with(event_time_ms="yesterday"), ("event_time_ms",)),
    ("null in non-null", "Label", _with(event_id=None), ("Label v1", "event_id")),
    ("list as feature", "FeatureEvent", _with(features={"x": [1]}), ("features",)),
    ("dict as feature", "FeatureEvent", _with(features={"x": {"a": 1}}), ("features",)),
    ("bytes as string", "Label", _with(model=b"churn"), ("model",)),
    ("int in string map", "FeatureEvent", _with(segment={"region": 1}), ("segment",)),
    ("str as double", "MetricSnapshot", _with(metrics={"f1": "high"}), ("metrics",)),
    ("long too big", "Label", _with(label_time_ms=2**63), ("label_time_ms",)),
    ("extra field", "Label", _with(labell=True), ("labell",)),
    ("not a dict", "Label", lambda v: None, ("Label v1",)),
    ("surrogate", "Label", _with(model="\ud800"), ("Label v1",)),
]


@pytest.mark.parametrize(
    ("short", "change", "expected"),
    [case[1:] for case in ENCODE_ERRORS],
    ids=[case[0] for case in ENCODE_ERRORS],
)
def test_encode_errors(
    short: str, change: Callable[[dict[str, Any]], Any], expected: tuple[str, ...]
) -> None:
    with pytest.raises(SchemaMismatchError) as info:
        CODEC.encode(short, change(EXAMPLES[short]()))
    assert info.value.reason == "schema_mismatch"
    for part in expected:
        assert part in str(info.value)


def test_int_fields_are_not_range_checked() -> None:
    # Known fastavro gap: an Avro ``int`` (32-bit) field takes any 64-bit int, and
    # Python readers read it back; Java readers would not. Only partition numbers
    # are ``int`` in Driftline's schemas, so no costly validation is added for it.
    data = CODEC.encode("DeadLetter", EXAMPLES["DeadLetter"](source_partition=2**31))
    assert CODEC.decode(data).value["source_partition"] == 2**31


def test_encode_of_unknown_record() -> None:
    with pytest.raises(UnknownSchemaError) as info:
        CODEC.encode("Nope", {})
    assert info.value.reason == "unknown_schema"


# --- schema evolution ----------------------------------------------------------------------
# FeatureEvent v2 (published) adds the optional ``source``; the v3 fixture adds
# ``trace_id`` on top, for a version some readers have not been given yet.

V2 = "feature_event.v2.avsc"


def v1_event(**overrides: Any) -> dict[str, Any]:
    """A FeatureEvent as a v1 producer has it: no ``source``."""
    event = feature_event(**overrides)
    del event["source"]
    return event


@pytest.fixture
def v1_codec(tmp_path: Path) -> Codec:
    """A codec built before v2 was published: FeatureEvent is at v1."""
    return Codec(Schemas.from_dir(schema_dir_with(tmp_path, without={V2})))


@pytest.fixture
def v3_codec(tmp_path: Path) -> Codec:
    """A codec whose FeatureEvent is at v3 (adds nullable ``trace_id``, default null)."""
    fixture = (FIXTURES / "feature_event.v3.avsc").read_text()
    return Codec(Schemas.from_dir(schema_dir_with(tmp_path, {"feature_event.v3.avsc": fixture})))


def test_v1_bytes_read_into_v2_with_the_default(v1_codec: Codec) -> None:
    data = v1_codec.encode("FeatureEvent", v1_event())
    assert data[2:10] == Schemas.packaged().versions("FeatureEvent")[0].fingerprint
    assert CODEC.decode(data) == Decoded("io.driftline.FeatureEvent", feature_event(source=None), 1)
    assert CODEC.decode(data, expect="FeatureEvent").value["source"] is None


def test_v2_writes_v2_which_a_reader_without_the_v2_file_refuses(
    v1_codec: Codec,
) -> None:
    data = CODEC.encode("FeatureEvent", feature_event())
    assert data[2:10] == CODEC.schemas.current("FeatureEvent").fingerprint
    assert CODEC.decode(data) == Decoded("io.driftline.FeatureEvent", feature_event(), 2)
    # The new field has a default, so writers may leave it out (strict_allow_default).
    assert CODEC.decode(CODEC.encode("FeatureEvent", v1_event())).value["source"] is None
    # A reader built before v2 was published does not know its fingerprint: by design,
    # readers get the new schema file before writers use it.
    with pytest.raises(UnknownSchemaError):
        v1_codec.decode(data)


def test_v2_bodies_resolve_into_v1_by_dropping_the_new_field(v1_codec: Codec) -> None:
    # Forward compatibility, for readers that resolve with the writer's schema fetched
    # elsewhere (Java's BinaryMessageDecoder with a SchemaStore): v1 reads v2 data.
    v2 = CODEC.schemas.current("FeatureEvent")
    v1 = v1_codec.schemas.current("FeatureEvent")
    assert (v1.version, v2.version) == (1, 2)
    body = BytesIO(CODEC.encode("FeatureEvent", feature_event())[HEADER_SIZE:])
    assert schemaless_reader(body, v2.schema, v1.schema) == v1_event()


def test_v3_writes_v3_and_reads_older_versions(v3_codec: Codec, v1_codec: Codec) -> None:
    event = feature_event(trace_id="00-4bf92f3577b34da6-01")
    data = v3_codec.encode("FeatureEvent", event)
    assert data[2:10] == v3_codec.schemas.current("FeatureEvent").fingerprint != VALID[2:10]
    assert v3_codec.decode(data) == Decoded("io.driftline.FeatureEvent", event, 3)
    assert v3_codec.decode(VALID).value == {**feature_event(), "trace_id": None}
    old = v1_codec.encode("FeatureEvent", v1_event())
    assert v3_codec.decode(old).value == {**feature_event(source=None), "trace_id": None}
    with pytest.raises(UnknownSchemaError):  # readers at v2 do not know v3 yet
        CODEC.decode(data)


def test_other_records_are_unaffected_by_a_new_version(v3_codec: Codec) -> None:
    data = CODEC.encode("Label", label())
    assert v3_codec.encode("Label", label()) == data
    assert v3_codec.decode(data) == CODEC.decode(data)


def test_incompatible_published_versions_fail_as_schema_mismatch(tmp_path: Path) -> None:
    # check_schema_dir keeps such a directory from being published; if one is loaded
    # anyway, reading old bytes fails as a typed error, not a crash.
    v2 = packaged_schema_json("label.v1.avsc")
    v2["fields"][0]["type"] = "long"
    broken = Codec(Schemas.from_dir(schema_dir_with(tmp_path, {"label.v2.avsc": v2})))
    with pytest.raises(SchemaMismatchError, match="Label v1 cannot be read as v2"):
        broken.decode(CODEC.encode("Label", label()))


def test_a_short_name_two_namespaces_share_needs_the_full_name() -> None:
    ours = packaged_schema_json("label.v1.avsc")
    theirs = {**ours, "namespace": "com.example"}
    both = Codec(
        Schemas(SchemaVersion.parse("label.v1.avsc", json.dumps(s)) for s in (ours, theirs))
    )
    with pytest.raises(UnknownSchemaError):
        both.encode("Label", label())
    data = both.encode("com.example.Label", label())
    assert both.decode(data, expect="com.example.Label").name == "com.example.Label"
    with pytest.raises(ConfigError):  # ambiguous expect: no such record
        both.decode(data, expect="Label")


@pytest.mark.parametrize("writer_options", [{}, {"strict_allow_default": True}])
def test_fastavro_writers_accept_a_v2_event_without_the_new_field(
    writer_options: dict[str, bool],
) -> None:
    # What a producer using fastavro directly with feature_event.v2.avsc gets: the
    # default is written (only strict=True asks for every field).
    out = BytesIO()
    schema = CODEC.schemas.current("FeatureEvent")
    schemaless_writer(out, schema.schema, v1_event(), **writer_options)
    data = MARKER + schema.fingerprint + out.getvalue()
    assert data == CODEC.encode("FeatureEvent", feature_event(source=None))
    with pytest.raises(ValueError, match="source"):
        schemaless_writer(BytesIO(), schema.schema, v1_event(), strict=True)
