"""Passing a FeatureEvent's features and segment into a Prediction as Avro bytes: the
output equals Codec.encode's, decoding equals Codec.decode (values and errors alike),
and any other writer version falls back to the ordinary path."""

from __future__ import annotations

import math
from collections.abc import Mapping
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_writer

from driftline.core.errors import CodecError, SchemaMismatchError
from driftline.core.model.scoring import Scoring
from driftline.core.model.validation import Spec
from driftline.core.wire.codec import HEADER_SIZE, MARKER, Codec
from driftline.core.wire.passthrough import Passthrough
from tests.schema_compat import schemas_with_a_note
from tests.unit.core.examples import FEATURES, SEGMENT, feature_event, label, prediction, same

CODEC = Codec()
PASSED = ("features", "segment")
THROUGH = Passthrough.between(CODEC, "FeatureEvent", "Prediction", PASSED)


def _rest(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if k not in PASSED}


EVENTS: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("ten features of every type", dict(FEATURES), dict(SEGMENT)),
    ("no features, no segment", {}, {}),
    ("nulls only", {"a": None, "b": None}, {}),
    ("extreme numbers", {"i": -(2**63), "j": 2**63 - 1, "x": 1e308, "y": -0.0, "z": 5e-324}, {}),
    ("non-finite", {"nan": math.nan, "inf": math.inf, "ninf": -math.inf}, {"s": "x"}),
    ("unicode", {"städte": "Zürich 東京 🚀", "": ""}, {"région": "île-de-france"}),
    ("many features", {f"feature_{i:03d}": i * 0.5 for i in range(300)}, {"r": "eu"}),
    ("int beyond 64 bits", {"big": 2**70}, {}),
]


@pytest.mark.parametrize(("features", "segment"), [e[1:] for e in EVENTS],
                         ids=[e[0] for e in EVENTS])  # fmt: skip
def test_output_equals_encode_and_decode(features: dict[str, Any], segment: dict[str, str]) -> None:
    assert THROUGH is not None
    data = CODEC.encode("FeatureEvent", feature_event(features=features, segment=segment))
    decoded, raw = THROUGH.decode(data)
    expected = CODEC.decode(data, expect="FeatureEvent")
    assert raw is not None
    assert decoded.name == expected.name and decoded.writer_version == expected.writer_version
    assert same(decoded.value, expected.value)
    p = prediction(features=decoded.value["features"], segment=decoded.value["segment"])
    assert THROUGH.encode(_rest(p), raw) == CODEC.encode("Prediction", p)


def test_defaulted_target_fields_may_be_left_out() -> None:
    assert THROUGH is not None
    data = CODEC.encode("FeatureEvent", feature_event())
    decoded, raw = THROUGH.decode(data)
    assert raw is not None
    rest = _rest(prediction())
    del rest["served_by"]  # default "driftline"
    out = CODEC.decode(THROUGH.encode(rest, raw), expect="Prediction").value
    assert out["served_by"] == "driftline"
    assert same(out["features"], decoded.value["features"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"colour": "red"}, "unknown fields ['colour']"),
        ({"version": None}, "does not fit"),
        ({"features": {}}, "unknown fields ['features']"),
    ],
    ids=["unknown field", "wrong type", "a passed field"],
)
def test_encode_refuses_what_encode_refuses(change: dict[str, Any], words: str) -> None:
    assert THROUGH is not None
    _, raw = THROUGH.decode(CODEC.encode("FeatureEvent", feature_event()))
    assert raw is not None
    with pytest.raises(SchemaMismatchError, match=words.replace("[", r"\[").replace("]", r"\]")):
        THROUGH.encode({**_rest(prediction()), **change}, raw)
    rest = _rest(prediction())
    del rest["model"]
    with pytest.raises(SchemaMismatchError, match=r"missing \['model'\]"):
        THROUGH.encode(rest, raw)


def _bad_inputs() -> list[tuple[str, bytes]]:
    good = CODEC.encode("FeatureEvent", feature_event())
    out = [(f"truncated to {n}", good[:n]) for n in range(0, len(good), 7)]
    out += [
        ("trailing byte", good + b"\x00"),
        ("a label", CODEC.encode("Label", label())),
        ("no marker", b"\x00" * 20),
        ("unknown fingerprint", MARKER + bytes(8) + good[HEADER_SIZE:]),
        ("garbage body", good[:HEADER_SIZE] + b"\xff" * 40),
    ]
    return out


@pytest.mark.parametrize(("what", "data"), _bad_inputs(), ids=[b[0] for b in _bad_inputs()])
def test_decode_errors_are_those_of_decode(what: str, data: bytes) -> None:
    assert THROUGH is not None
    with pytest.raises(CodecError) as want:
        CODEC.decode(data, expect="FeatureEvent")
    with pytest.raises(CodecError) as got:
        THROUGH.decode(data)
    assert type(got.value) is type(want.value)
    assert got.value.reason == want.value.reason


@pytest.fixture(scope="module")
def newer(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    """Schemas with a FeatureEvent version after the packaged current one, which adds a
    field after ``segment``: the packaged current becomes an older version."""
    return Codec(schemas_with_a_note(tmp_path_factory.mktemp("s"), "feature_event"))


def test_a_field_after_the_passed_ones_is_read_and_the_bytes_still_pass(newer: Codec) -> None:
    through = Passthrough.between(newer, "FeatureEvent", "Prediction", PASSED)
    assert through is not None
    data = newer.encode("FeatureEvent", feature_event(note_for_test="hello"))
    decoded, raw = through.decode(data)
    assert raw is not None and decoded.value["note_for_test"] == "hello"
    assert same(decoded.value, newer.decode(data).value)
    p = prediction(features=decoded.value["features"], segment=decoded.value["segment"])
    assert through.encode(_rest(p), raw) == newer.encode("Prediction", p)


def test_an_older_writer_version_falls_back_to_decode(newer: Codec) -> None:
    through = Passthrough.between(newer, "FeatureEvent", "Prediction", PASSED)
    assert through is not None
    older = CODEC.encode("FeatureEvent", feature_event())  # the packaged current version
    decoded, raw = through.decode(older)
    assert raw is None
    assert decoded == newer.decode(older, expect="FeatureEvent")
    assert decoded.value["note_for_test"] is None


@pytest.mark.parametrize(
    ("source", "target", "fields"),
    [
        ("FeatureEvent", "Prediction", ("segment", "features")),  # order differs
        ("FeatureEvent", "Prediction", ("features", "nothing")),
        ("FeatureEvent", "Prediction", ("event_id", "features")),  # not adjacent in target
        ("FeatureEvent", "Label", ("event_id", "model")),  # adjacent, same types: fine
        ("Prediction", "Label", ("model", "version")),
    ],
)
def test_between_needs_adjacent_fields_of_the_same_plain_types(
    source: str, target: str, fields: tuple[str, ...]
) -> None:
    through = Passthrough.between(CODEC, source, target, fields)
    assert (through is not None) == (target == "Label" and source == "FeatureEvent")


def test_a_canonical_writer_elsewhere_gives_the_same_bytes() -> None:
    """Bytes written by fastavro directly (as any client library would) pass as well."""
    assert THROUGH is not None
    sv = CODEC.schemas.current("FeatureEvent")
    out = BytesIO()
    out.write(MARKER + sv.fingerprint)
    schemaless_writer(out, sv.schema, feature_event())
    decoded, raw = THROUGH.decode(out.getvalue())
    assert raw is not None
    p = prediction(features=decoded.value["features"], segment=decoded.value["segment"])
    assert THROUGH.encode(_rest(p), raw) == CODEC.encode("Prediction", p)


class _Stub:
    """A served version that always predicts True (the Servable protocol)."""

    name, version, spec = "churn", "v7", Spec((), allow_extra=True)

    def predict_one(self, features: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        return True, {"True": 0.75, "False": 0.25}


@pytest.mark.parametrize(("features", "segment"), [e[1:] for e in EVENTS],
                         ids=[e[0] for e in EVENTS])  # fmt: skip
def test_scoring_with_and_without_the_passthrough_agree(
    features: dict[str, Any], segment: dict[str, str]
) -> None:
    served = (_Stub(), _Stub())
    data = CODEC.encode("FeatureEvent", feature_event(features=features, segment=segment))
    outs = []
    for passthrough in (True, False):
        scoring = Scoring(CODEC, lambda m: served, lambda m: True, passthrough=passthrough)
        s = scoring.score(data, b"evt-0001", 1_700_000_000_123)
        assert s.shadow is not None
        outs.append([CODEC.decode(p, expect="Prediction").value for p in (s.prediction, s.shadow)])
    for with_, without in zip(*outs, strict=True):
        with_.pop("latency_us"), without.pop("latency_us")
        assert same(with_, without)
        assert same(with_["features"], CODEC.decode(data).value["features"])
