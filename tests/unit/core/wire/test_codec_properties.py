"""Property tests: any fitting FeatureEvent round-trips; no bytes crash the decoder."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from driftline.core.errors import CodecError
from driftline.core.wire.codec import HEADER_SIZE, Codec
from tests.unit.core.examples import EXAMPLES, same

CODEC = Codec()
INT64 = st.integers(-(2**63), 2**63 - 1)
FEATURE_VALUES = st.one_of(st.none(), st.booleans(), INT64, st.floats(), st.text())

FEATURE_EVENTS = st.fixed_dictionaries(
    {
        "event_id": st.text(),
        "model": st.text(),
        "event_time_ms": INT64,
        "features": st.dictionaries(st.text(), FEATURE_VALUES),
    },
    optional={
        "segment": st.dictionaries(st.text(), st.text()),
        "source": st.one_of(st.none(), st.text()),
    },
)


@given(FEATURE_EVENTS)
@settings(max_examples=300)
def test_any_fitting_feature_event_round_trips(event: dict[str, Any]) -> None:
    data = CODEC.encode("FeatureEvent", event)
    decoded = CODEC.decode(data, expect="FeatureEvent")
    assert same(decoded.value, {"segment": {}, "source": None, **event})
    assert CODEC.encode("FeatureEvent", decoded.value) == data


def _decode_or_codec_error(data: bytes) -> None:
    try:
        decoded = CODEC.decode(data)
    except CodecError as err:
        assert isinstance(err.reason, str)
    else:
        assert isinstance(decoded.value, dict)


@given(st.binary(max_size=64))
@example(b"\xc3\x01")
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_codec_errors(data: bytes) -> None:
    _decode_or_codec_error(data)


HEADERS = [CODEC.encode(short, build())[:HEADER_SIZE] for short, build in EXAMPLES.items()]


@given(st.sampled_from(HEADERS), st.binary(max_size=256))
@settings(max_examples=1000)
def test_known_header_with_arbitrary_body_raises_only_codec_errors(
    header: bytes, body: bytes
) -> None:
    _decode_or_codec_error(header + body)


VALID = [CODEC.encode(short, build()) for short, build in EXAMPLES.items()]


@given(st.sampled_from(VALID), st.data())
@settings(max_examples=1000)
def test_mutated_messages_raise_only_codec_errors(valid: bytes, data: st.DataObject) -> None:
    body = bytearray(valid[HEADER_SIZE:])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        match data.draw(st.sampled_from(["flip", "insert", "delete"])):
            case "flip" if at < len(body):
                body[at] ^= data.draw(st.integers(1, 255))
            case "insert":
                body[at:at] = data.draw(st.binary(min_size=1, max_size=9))
            case _:
                del body[at : at + data.draw(st.integers(1, 9))]
    _decode_or_codec_error(valid[:HEADER_SIZE] + bytes(body))
