"""The one-pass Prediction reader against the codec and the lean form it replaces."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.core.errors import CodecError
from driftline.core.join.leanentry import LeanPredictions, zigzag
from driftline.core.join.onepass import OnePass
from driftline.core.wire.codec import default_codec

CODEC = default_codec()
_LEAN = LeanPredictions.for_codec(CODEC)
assert _LEAN is not None  # the current Prediction schema packs lean
LEAN: LeanPredictions = _LEAN
assert LEAN is not None

BASE: dict[str, Any] = {
    "event_id": "e-1", "model": "churn", "version": "v1", "event_time_ms": 1_000,
    "predicted_at_ms": 1_005, "prediction": True, "scores": {"True": 0.9, "False": 0.1},
    "features": {"age": 41, "plan": "pro"}, "segment": {"region": "eu"},
    "latency_us": 7, "served_by": "driftline", "challengers": None,
}  # fmt: skip


def prediction(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


CASES = {
    "base": prediction(),
    "every value type": prediction(
        features={
            "n": None,
            "b": False,
            "t": True,
            "l": -(2**40),
            "d": -1.5e300,
            "s": "ünïcode",
            "zero": 0,
            "nan": float("inf"),
            "empty": "",
        }
    ),
    "no features": prediction(features={}),
    "no segment, no scores": prediction(segment={}, scores={}),
    "prediction null": prediction(prediction=None),
    "prediction string": prediction(prediction="gold"),
    "prediction long": prediction(prediction=-3),
    "prediction double": prediction(prediction=2.25, scores={}),
    "negative times": prediction(event_time_ms=-5, predicted_at_ms=-1, latency_us=0),
    "big times": prediction(event_time_ms=2**62, predicted_at_ms=2**62 + 1),
    "long strings": prediction(event_id="x" * 200, model="m" * 100, version="v" * 300),
    "a large value": prediction(features={"blob": "z" * 300, "a": 1}),
    "many features": prediction(features={f"f{i:03d}": i * 0.5 for i in range(200)}),
    "challengers": prediction(
        challengers=[
            {"version": "v2", "prediction": False, "scores": {"True": 0.4}},
            {"version": "v3", "prediction": None, "scores": {}},
        ]
    ),
    "empty challengers": prediction(challengers=[]),
}


@pytest.mark.parametrize("record", CASES.values(), ids=CASES.keys())
def test_reads_what_the_codec_reads_and_packs_what_pack_packs(record: dict[str, Any]) -> None:
    raw = CODEC.encode("Prediction", record)
    got = OnePass(LEAN).read(raw)
    assert got is not None
    value, packed = got
    expected = CODEC.decode(raw).value
    assert value == expected
    assert list(value) == list(expected)  # the same field order
    assert packed == LEAN.pack(raw)


def test_repeated_names_use_the_cache() -> None:
    reader = OnePass(LEAN)
    raws = [CODEC.encode("Prediction", prediction(features={"age": i, "plan": "p"}))
            for i in range(3)]  # fmt: skip
    values = [reader.read(r) for r in raws]
    assert [v[0]["features"]["age"] for v in values if v is not None] == [0, 1, 2]
    assert len(reader._names) == 1


def test_reads_maps_written_in_blocks_with_their_size() -> None:
    """A map may be written as blocks of a negative count followed by their byte size."""
    raw = CODEC.encode("Prediction", prediction())
    entries = b"\x06age\x04\x52\x08plan\x08\x06pro"
    assert b"\x04" + entries + b"\x00" in raw
    blocked = raw.replace(b"\x04" + entries + b"\x00",
                          b"\x03" + zigzag(len(entries)) + entries + b"\x00")  # fmt: skip
    got = OnePass(LEAN).read(blocked)
    assert got is not None
    assert got[0] == CODEC.decode(blocked).value
    assert got[1] == LEAN.pack(blocked)


RAW = CODEC.encode("Prediction", prediction())
MALFORMED = {
    "truncated": RAW[:-3],
    "one byte short": RAW[:-1],
    "trailing byte": RAW + b"\x00",
    "header only": RAW[:10],
    "bad union branch": RAW.replace(b"\x06age\x04", b"\x06age\x0c", 1),
    "bad utf-8 in a feature name": RAW.replace(b"age", b"\xff\xfeg", 1),
    "bad challengers branch": RAW[:-1] + b"\x04",
    "a label": CODEC.encode(
        "Label", {"event_id": "e", "model": "m", "label": True, "label_time_ms": 1}
    ),
    "empty": b"",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_leaves_what_it_cannot_read_to_the_codec(raw: bytes) -> None:
    got = OnePass(LEAN).read(raw)
    assert got is None
    try:
        decoded = CODEC.decode(raw)
    except CodecError:
        return  # the general path dead-letters it with the codec's reason
    assert decoded.name != "io.driftline.Prediction" or raw != RAW
