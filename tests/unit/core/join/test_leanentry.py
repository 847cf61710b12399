"""The lean form of a held prediction: it gives back the Prediction's and the Outcome's
exact bytes, and the joiner uses it only where it is safe."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.errors import CodecError
from driftline.core.join.joiner import LABEL, OUTCOME, PREDICTION, Joiner
from driftline.core.join.keys import entry_key
from driftline.core.join.leanentry import NAMES_PREFIX, LeanPredictions, is_names_key, zigzag
from driftline.core.join.rules import JoinEntry, build_outcome
from driftline.core.wire.codec import Codec, default_codec
from driftline.core.wire.deadletter import Origin
from driftline.core.wire.schemas import Schemas
from tests.schema_compat import schemas_with_a_note
from tests.unit.core.examples import label, prediction, same

CODEC = default_codec()
PREVIOUS = Codec(
    Schemas(
        sv
        for sv in Schemas.packaged()
        if sv.short_name not in ("Prediction", "Outcome") or sv.version == 1
    )
)
"""The codec of the previous release: Prediction v1 and Outcome v1."""
LEAN = LeanPredictions.for_codec(CODEC)
NOW = 1_700_000_000_000

values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True), st.text(max_size=20),
)  # fmt: skip
names = st.text(min_size=1, max_size=24)
challengers = st.one_of(st.none(), st.lists(st.fixed_dictionaries({
    "version": st.text(max_size=12), "prediction": values,
    "scores": st.dictionaries(names, st.floats(allow_nan=False), max_size=3),
}), max_size=3))  # fmt: skip


def lean() -> LeanPredictions:
    assert LEAN is not None
    return LEAN


@settings(max_examples=300, deadline=None)
@given(
    features=st.dictionaries(names, values, max_size=40),
    segment=st.dictionaries(names, st.text(max_size=10), max_size=4),
    scores=st.dictionaries(names, st.floats(allow_nan=False), max_size=4),
    predicted=values,
    event_id=st.text(min_size=1, max_size=64),
    label_value=values,
    label_time=st.integers(-(2**40), 2**40),
    others=challengers,
)
def test_the_lean_form_gives_back_the_exact_bytes(
    features: dict[str, Any], segment: dict[str, str], scores: dict[str, float],
    predicted: Any, event_id: str, label_value: Any, label_time: int,
    others: list[dict[str, Any]] | None,
) -> None:  # fmt: skip
    p = prediction(event_id=event_id, features=features, segment=segment, scores=scores,
                   prediction=predicted, challengers=others)  # fmt: skip
    raw = CODEC.encode(PREDICTION, p)
    key = event_id.encode()
    packed = lean().pack(raw)
    assert packed is not None
    assert packed.key.startswith(NAMES_PREFIX) and lean().names_key(packed.payload) == packed.key
    assert lean().prediction(packed.payload, key, packed.names) == raw
    lab = label(event_id=event_id, label=label_value, label_time_ms=label_time)
    want = CODEC.encode(OUTCOME, build_outcome(p, lab))
    assert lean().outcome(packed.payload, key, packed.names, CODEC.encode(LABEL, lab)) == want
    assert same(CODEC.decode(want).value["challengers"], others or [])
    fields = lean().fields(packed.payload)
    assert same(fields, {k: p[k] for k in fields})
    assert set(fields) == {"model", "version", "event_time_ms", "predicted_at_ms",
                           "prediction", "scores", "segment", "challengers"}  # fmt: skip
    spliced = lean().joined(packed.payload, key, packed.names, CODEC.encode(LABEL, lab))
    assert spliced is not None and spliced[0] == want and same(spliced[1], fields)


def legacy_lean(p: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """A Prediction v1 (``p`` without challengers) as the previous release held it lean:
    its bytes, the lean payload and the names record. The lean form of v1 is that of v2
    less the challengers' null byte at its end; that it gives the v1 bytes back exactly
    (below) is what proves it the previous release's form."""
    v1 = {k: v for k, v in p.items() if k != "challengers"}
    raw = PREVIOUS.encode(PREDICTION, v1)
    packed = lean().pack(CODEC.encode(PREDICTION, {**v1, "challengers": None}))
    assert packed is not None and packed.payload.endswith(b"\x00")
    return raw, packed.payload[:-1], packed.names


def test_a_lean_form_of_the_previous_release_reads_back_a_prediction_v1() -> None:
    p = prediction()
    raw, payload, names = legacy_lean(p)
    key = p["event_id"].encode()
    assert raw[2:10] == CODEC.schemas.versions("Prediction")[0].fingerprint
    assert lean().prediction(payload, key, names, legacy=True) == raw
    lab = label()
    outcome = lean().outcome(payload, key, names, CODEC.encode(LABEL, lab), legacy=True)
    assert outcome == CODEC.encode(OUTCOME, build_outcome(PREVIOUS.decode(raw).value, lab))
    fields = lean().fields(payload, legacy=True)
    assert fields["challengers"] is None and fields["model"] == "churn"


def test_a_ten_feature_prediction_loses_its_id_and_names() -> None:
    raw = CODEC.encode(PREDICTION, prediction())
    packed = lean().pack(raw)
    assert packed is not None
    names = sum(len(zigzag(len(n.encode()))) + len(n.encode()) for n in prediction()["features"])
    assert len(packed.names) == names
    key = prediction()["event_id"].encode()
    # minus header, id and names; plus the digest, a size byte per value and four length
    # prefixes; the map's own count and end bytes are not kept
    sizes = len(prediction()["features"])
    assert len(packed.payload) <= len(raw) - 10 - 1 - len(key) - names + 8 + sizes + 4


def test_a_map_written_in_sized_blocks_reads_back_the_same() -> None:
    """Avro allows a map in several blocks, with byte sizes (negative counts); the lean
    form writes one block, which decodes to the same values."""
    p = prediction(features={"a": 1.5, "b": "x", "c": None})
    raw = CODEC.encode(PREDICTION, p)
    one = b"\x02a" + b"\x06" + b"\x00\x00\x00\x00\x00\x00\xf8?"  # "a": double 1.5
    two = b"\x02b" + b"\x08\x02x" + b"\x02c" + b"\x00"  # "b": "x", "c": null
    blocks = zigzag(-1) + zigzag(len(one)) + one + zigzag(-2) + zigzag(len(two)) + two + b"\x00"
    single = zigzag(3) + one + two + b"\x00"
    assert single in raw
    multi = raw.replace(single, blocks)
    assert CODEC.decode(multi).value == CODEC.decode(raw).value
    packed = lean().pack(multi)
    assert packed is not None
    assert lean().prediction(packed.payload, b"evt-0001", packed.names) == raw


def _avro_string(text: str) -> bytes:
    return zigzag(len(text.encode())) + text.encode()


def test_fields_read_scores_and_segment_written_in_sized_blocks() -> None:
    """The monitor's fields are read from the lean form's bytes as they came: a writer
    may split the scores and segment maps into blocks with byte sizes."""
    p = prediction(scores={"True": 0.75, "False": 0.25}, segment={"region": "eu", "plan": "pro"})
    raw = CODEC.encode(PREDICTION, p)
    multi = raw
    for items in (
        [_avro_string(k) + struct.pack("<d", v) for k, v in p["scores"].items()],
        [_avro_string(k) + _avro_string(v) for k, v in p["segment"].items()],
    ):
        single = zigzag(len(items)) + b"".join(items) + b"\x00"
        assert single in multi
        blocks = b"".join(zigzag(-1) + zigzag(len(i)) + i for i in items) + b"\x00"
        multi = multi.replace(single, blocks)
    assert multi != raw and CODEC.decode(multi).value == CODEC.decode(raw).value
    packed = lean().pack(multi)
    assert packed is not None
    fields = lean().fields(packed.payload)
    assert fields["scores"] == p["scores"] and fields["segment"] == p["segment"]
    assert same(fields, {k: p[k] for k in fields})


def test_fields_of_a_damaged_head_are_a_codec_error() -> None:
    packed = lean().pack(CODEC.encode(PREDICTION, prediction(model="churn")))
    assert packed is not None
    n = packed.payload[0] >> 1  # the head's length (one byte here), then the head
    bad_utf8 = packed.payload.replace(b"\x0achurn", b"\x0a\xffhurn", 1)
    assert bad_utf8 != packed.payload
    cut = zigzag(n - 3) + packed.payload[1 : 1 + n - 3] + packed.payload[1 + n :]
    for payload in (bad_utf8, cut):
        with pytest.raises(CodecError):
            lean().fields(payload)


def test_bytes_of_another_schema_are_not_packed_and_other_labels_fall_back() -> None:
    assert lean().pack(CODEC.encode(LABEL, label())) is None
    packed = lean().pack(CODEC.encode(PREDICTION, prediction()))
    assert packed is not None
    not_a_label = CODEC.encode(PREDICTION, prediction())
    assert lean().outcome(packed.payload, b"evt-0001", packed.names, not_a_label) is None


def test_a_truncated_payload_is_a_codec_error() -> None:
    packed = lean().pack(CODEC.encode(PREDICTION, prediction()))
    assert packed is not None
    with pytest.raises(CodecError):
        lean().prediction(packed.payload[:30], b"evt-0001", packed.names)
    with pytest.raises(CodecError):
        lean().prediction(packed.payload, b"evt-0001", packed.names[:-3])


@pytest.fixture(scope="module")
def newer(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    """A Prediction version after the packaged one, with one more field."""
    return Codec(schemas_with_a_note(tmp_path_factory.mktemp("s"), "prediction"))


def test_another_field_layout_holds_predictions_whole(newer: Codec) -> None:
    assert LeanPredictions.for_codec(newer) is None
    joiner = Joiner(newer, lambda m: "classification", lambda m: 1_000, "p", "l")
    raw = newer.encode(PREDICTION, prediction())
    nothing: dict[bytes, bytes] = {}
    step = joiner.on_message(origin(), raw, NOW, nothing.get)
    assert step.entry is not None and JoinEntry.from_bytes(step.entry).payload == raw
    assert step.extra == []


# -- the joiner ----------------------------------------------------------------------------


def origin(key: bytes = b"evt-0001") -> Origin:
    return Origin("p", 0, 0, key, None, [])


def joiner() -> Joiner:
    return Joiner(CODEC, lambda m: "classification", lambda m: 1_000, "p", "l")


def put(store: dict[bytes, bytes], extra: list[tuple[bytes, bytes | None]]) -> None:
    for k, v in extra:
        if v is None:
            store.pop(k, None)
        else:
            store[k] = v


def hold(j: Joiner, store: dict[bytes, bytes], key: bytes, **kw: Any) -> JoinEntry:
    raw = CODEC.encode(PREDICTION, prediction(event_id=key.decode(), **kw))
    step = j.on_message(origin(key), raw, NOW, store.get)
    put(store, step.extra)
    assert step.entry is not None and step.key == entry_key("churn", key)
    store[step.key] = step.entry
    return JoinEntry.from_bytes(step.entry)


def test_one_names_record_per_list_of_names() -> None:
    j, store = joiner(), dict[bytes, bytes]()
    assert hold(j, store, b"a").lean and hold(j, store, b"b").lean
    other = hold(j, store, b"c", features={"x": 1.0})
    assert other.lean
    used = {LeanPredictions.names_key(JoinEntry.from_bytes(store[entry_key("churn", k)]).payload)
            for k in (b"a", b"b")}  # fmt: skip
    assert len(used) == 1
    records = {k for k in store if is_names_key(k)}
    assert records == used | {LeanPredictions.names_key(other.payload)}


def test_a_digest_whose_record_differs_holds_the_prediction_whole() -> None:
    j, store = joiner(), dict[bytes, bytes]()
    packed = lean().pack(CODEC.encode(PREDICTION, prediction()))
    assert packed is not None
    store[packed.key] = b"\x02z"  # another list of names under the same digest
    entry = hold(j, store, b"evt-0001")
    assert not entry.lean and store[packed.key] == b"\x02z"


def test_past_max_names_new_lists_are_held_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Joiner, "MAX_NAMES", 1)
    j, store = joiner(), dict[bytes, bytes]()
    assert hold(j, store, b"a").lean
    assert not hold(j, store, b"b", features={"x": 1.0}).lean
    assert hold(j, store, b"c").lean  # a list it already knows


def test_an_expired_lean_prediction_is_dead_lettered_with_its_own_bytes() -> None:
    j, store = joiner(), dict[bytes, bytes]()
    raw = CODEC.encode(PREDICTION, prediction(features={"n": math.inf, "s": "é"}))
    step = j.on_message(origin(), raw, NOW, store.get)
    put(store, step.extra)
    assert step.entry is not None and JoinEntry.from_bytes(step.entry).lean
    assert step.key is not None
    fresh = joiner()  # a restarted worker: names come from the store, not from memory
    expired = fresh.on_expire(0, step.key, step.entry, NOW + 1_000, store.get)
    (dead,) = [o.record for o in expired.outputs]
    assert dead is not None and dead["reason"] == "expired_prediction"
    assert dead["raw"] == raw and dead["model"] == "churn"


def test_a_lean_prediction_without_its_names_record_is_an_internal_error() -> None:
    j, store = joiner(), dict[bytes, bytes]()
    entry = hold(j, store, b"evt-0001")
    fresh = joiner()
    lab = CODEC.encode(LABEL, label())
    with pytest.raises(CodecError, match="no names record"):
        fresh.on_message(
            origin(), lab, NOW, {entry_key("churn", b"evt-0001"): entry.to_bytes()}.get
        )


def test_a_feature_value_of_256_bytes_or_more_is_held_whole() -> None:
    # tag (1 byte) + length (2 bytes from 64 chars on) + the chars
    assert lean().pack(CODEC.encode(PREDICTION, prediction(features={"s": "x" * 252}))) is not None
    assert lean().pack(CODEC.encode(PREDICTION, prediction(features={"s": "x" * 253}))) is None
    j, store = joiner(), dict[bytes, bytes]()
    entry = hold(j, store, b"evt-0001", features={"note": "y" * 300})
    assert not entry.lean and store == {entry_key("churn", b"evt-0001"): entry.to_bytes()}
