"""The join store's keys (model and event_id) and the origin block a held entry keeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.core.errors import CodecError
from driftline.core.join import origins
from driftline.core.join.keys import ENTRY_PREFIX, entry_key, is_legacy_key, split_key
from driftline.core.join.leanentry import NAMES_PREFIX
from driftline.core.wire import headers as h

T = 1_700_000_000_000
event_ids = st.text(min_size=1, max_size=256).map(str.encode)


@given(st.text(max_size=300), event_ids)
def test_a_key_splits_back_into_its_model_and_event_id(model: str, event_id: bytes) -> None:
    key = entry_key(model, event_id)
    assert key.startswith(ENTRY_PREFIX) and split_key(key) == (model, event_id)
    assert not is_legacy_key(key)


@given(st.text(max_size=40), event_ids, st.text(max_size=40), event_ids)
def test_no_model_name_forges_another_models_key(m1: str, e1: bytes, m2: str, e2: bytes) -> None:
    assert (entry_key(m1, e1) == entry_key(m2, e2)) == ((m1, e1) == (m2, e2))


@pytest.mark.parametrize(
    ("model", "event_id"),
    [("a", b"bc"), ("ab", b"c"), ("a\x00b", b"c"), ("", b"x"), ("é" * 70, b"e-1")],
)
def test_tricky_names_round_trip(model: str, event_id: bytes) -> None:
    assert split_key(entry_key(model, event_id)) == (model, event_id)


@given(event_ids)
def test_a_utf8_event_id_is_never_mistaken_for_a_key_of_this_release(event_id: bytes) -> None:
    assert is_legacy_key(event_id) and split_key(event_id) == (None, event_id)


@pytest.mark.parametrize("key", [ENTRY_PREFIX, ENTRY_PREFIX + b"\x0aab", ENTRY_PREFIX + b"\x80"])
def test_a_damaged_key_is_a_codec_error(key: bytes) -> None:
    with pytest.raises(CodecError):
        split_key(key)


def test_names_records_are_neither_entries_nor_legacy_keys() -> None:
    assert not is_legacy_key(NAMES_PREFIX + bytes(8))


TRACE = b"0af7651916cd43dd8448eb211c80319c"
# (name, headers, the block's size at offset 41, timestamp T + 12, record time T)
HEADERS: list[tuple[str, list[tuple[str, bytes | None]], int]] = [
    ("none", [], 3),
    ("Driftline's four", [*h.build("io.driftline.Prediction", T, TRACE.decode())], 26),
    ("an event time that is not the record's", [(h.EVENT_TIME, str(T + 1).encode())], 18),
    ("a trace id in upper case, kept as it is", [(h.TRACE_ID, TRACE.upper())], 37),
    ("a trace id that is not hex", [(h.TRACE_ID, b"not-hex")], 12),
    ("an odd number of hex digits", [(h.TRACE_ID, b"abc")], 8),
    ("a schema name of another record", [(h.SCHEMA, b"com.example.Thing")], 22),
    ("a null value", [("x-app", None)], 10),
    ("repeated names, in order", [("a", b"1"), ("a", b"2"), ("b", b"")], 17),
    ("a name that is not Driftline's, with a known value",
     [("content-type2", h.AVRO_SINGLE_OBJECT.encode())], 19),
    ("binary values", [("bin", bytes(range(256)))], 266),
]  # fmt: skip


@pytest.mark.parametrize(("hdrs", "size"), [c[1:] for c in HEADERS], ids=[c[0] for c in HEADERS])
def test_an_origin_block_gives_back_every_header_exactly(
    hdrs: list[tuple[str, bytes | None]], size: int
) -> None:
    block = origins.pack(41, T + 12, hdrs, T)
    assert origins.unpack(block, T) == (41, T + 12, hdrs)
    assert len(block) == size


@given(
    st.integers(-1, 2**62), st.one_of(st.none(), st.integers(-(2**50), 2**50)),
    st.lists(st.tuples(
        st.sampled_from([h.CONTENT_TYPE, h.SCHEMA, h.EVENT_TIME, h.TRACE_ID, "x", ""]) | st.text(),
        st.one_of(st.none(), st.binary(max_size=40), st.sampled_from(
            [b"io.driftline.Label", str(T).encode(), TRACE, b"00", b"0A"])),
    ), max_size=8),
)  # fmt: skip
def test_origin_blocks_round_trip(
    offset: int, timestamp: int | None, hdrs: list[tuple[str, bytes | None]]
) -> None:
    assert origins.unpack(origins.pack(offset, timestamp, hdrs, T), T) == (offset, timestamp, hdrs)


@pytest.mark.parametrize("cut", [1, 2, 5, 10])
def test_a_damaged_origin_block_is_a_codec_error(cut: int) -> None:
    block = origins.pack(41, T, [("x-app", b"shop"), (h.TRACE_ID, TRACE)], T)
    with pytest.raises(CodecError):
        origins.unpack(block[:-cut], T)
    with pytest.raises(CodecError):
        origins.unpack(block + b"\x00", T)
