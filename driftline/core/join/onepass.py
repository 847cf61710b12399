"""A current-version Prediction read once: its dict (for the envelope check, the join
rules and the monitor) and its lean form (for the join store) from one walk of its bytes.

The join used to decode every Prediction with :meth:`Codec.decode` (fastavro, ~15 µs for
the bench's 10 features) and then walk the same bytes again in Python to pack its lean
form (:meth:`LeanPredictions.pack`, ~12 µs). :func:`read` walks them once: each field is read
where the walk finds it, the feature values' bytes kept for the lean form, and the
feature names decoded once per names record (cached); fastavro reads only a non-null
``challengers`` array. Its dict equals what ``Codec.decode``
returns, field for field and in the same order (``tests/unit/core/join/test_onepass.py``
compares both on a table of predictions, malformed ones included).

Anything it does not read the way ``Codec.decode`` would (another schema version, a
malformed body, a value of an unknown union branch) gives None: the caller then takes
the general path, which decodes or dead-letters it with the codec's own reason.

>>> from driftline.core.wire.codec import default_codec
>>> codec = default_codec()
>>> lean = LeanPredictions.for_codec(codec)
>>> p = {"event_id": "e-1", "model": "churn", "version": "v1", "event_time_ms": 1000,
...      "predicted_at_ms": 1005, "prediction": True, "scores": {"True": 0.9},
...      "features": {"age": 41, "plan": "pro", "spend": 2.5, "vip": False, "x": None},
...      "segment": {"region": "eu"}, "latency_us": 7, "served_by": "driftline",
...      "challengers": None}
>>> raw = codec.encode("Prediction", p)
>>> reader = OnePass(lean)
>>> record, packed = reader.read(raw)
>>> record == codec.decode(raw).value, packed == lean.pack(raw)
(True, True)
>>> reader.read(raw[:-3]) is None  # truncated: the codec says why
True
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader

from driftline.core.join.leanentry import (
    _CHALLENGERS,
    LeanPredictions,
    Packed,
    _bytes_end,
    _long,
    _pieces,
    names_digest,
    pack_parts,
)
from driftline.core.wire.codec import HEADER_SIZE

__all__ = ["OnePass"]

_CHAL = parse_schema(_CHALLENGERS, named_schemas={})
_DOUBLE = struct.Struct("<d").unpack_from
_MAX_NAMES = 4_096


def _str(buf: bytes, pos: int) -> tuple[str, int]:
    """The Avro string at ``pos`` and the position after it."""
    n, pos = _long(buf, pos)
    end = pos + n
    if n < 0 or end > len(buf):
        raise IndexError("string out of bounds")
    return buf[pos:end].decode(), end


def _value_at(buf: bytes, pos: int) -> tuple[Any, int]:
    """One value of the union [null, boolean, long, double, string] at ``pos``, as
    fastavro reads it (a boolean is any byte but 0), and the position after it."""
    tag = buf[pos]
    if tag == 6:
        return _DOUBLE(buf, pos + 1)[0], pos + 9
    if tag == 8:
        return _str(buf, pos + 1)
    if tag == 4:
        return _long(buf, pos + 1)
    if tag == 2:
        return buf[pos + 1] != 0, pos + 2
    if tag == 0:
        return None, pos + 1
    raise IndexError(f"union branch {tag}")


def _map(buf: bytes, pos: int, doubles: bool) -> tuple[dict[str, Any], int]:
    """The Avro map of doubles (else of strings) at ``pos``, and the position after it."""
    out: dict[str, Any] = {}
    while True:
        count, pos = _long(buf, pos)
        if count == 0:
            return out, pos
        if count < 0:  # a block with its byte size
            count = -count
            pos = _long(buf, pos)[1]
        for _ in range(count):
            key, pos = _str(buf, pos)
            if doubles:
                out[key] = _DOUBLE(buf, pos)[0]
                pos += 8
            else:
                out[key], pos = _str(buf, pos)


def _features(buf: bytes, pos: int) -> tuple[bytes, list[bytes], list[Any], int]:
    """The feature map at ``pos``: its names (Avro strings, in order), its values' bytes
    and their Python values, and the position after it."""
    names: list[bytes] = []
    raws: list[bytes] = []
    values: list[Any] = []
    while True:
        count, pos = _long(buf, pos)
        if count == 0:
            return b"".join(names), raws, values, pos
        if count < 0:
            count = -count
            pos = _long(buf, pos)[1]
        for _ in range(count):
            end = _bytes_end(buf, pos)
            names.append(buf[pos:end])
            value, pos = _value_at(buf, end)
            raws.append(buf[end:pos])
            values.append(value)


class OnePass:
    """Reads current-version Predictions in one walk (see the module docstring)."""

    def __init__(self, lean: LeanPredictions) -> None:
        self.lean = lean
        self._header = lean.prediction_header
        self._names: dict[bytes, tuple[tuple[str, ...], bytes]] = {}

    def _names_of(self, names: bytes) -> tuple[tuple[str, ...], bytes]:
        """A names record's names, decoded, and its digest (cached)."""
        got = self._names.get(names)
        if got is None:
            split = tuple(p[_long(p, 0)[1] :].decode() for p in _pieces(names, _bytes_end))
            if len(self._names) >= _MAX_NAMES:
                self._names.clear()
            got = self._names[names] = (split, names_digest(names))
        return got

    def read(self, raw: bytes) -> tuple[dict[str, Any], Packed | None] | None:
        """The Prediction ``raw`` as ``Codec.decode`` reads it, and its lean form (None
        when it is held whole: a feature value of 256 bytes or more); None when ``raw``
        is not a well-formed Prediction of the current version."""
        if raw[:HEADER_SIZE] != self._header:
            return None
        try:
            event_id, head = _str(raw, HEADER_SIZE)  # model .. scores follow
            model, pos = _str(raw, head)
            version, pos = _str(raw, pos)
            event_time, pos = _long(raw, pos)
            predicted_at, pos = _long(raw, pos)
            prediction, pos = _value_at(raw, pos)
            scores, head_end = _map(raw, pos, True)
            names, values, decoded, seg = _features(raw, head_end)
            segment, seg_end = _map(raw, seg, False)
            latency, pos = _long(raw, seg_end)
            served_by, pos = _str(raw, pos)
            if raw[pos] == 0:  # challengers: null
                challengers, pos = None, pos + 1
            elif raw[pos] == 2:
                body = BytesIO(raw)
                body.seek(pos)
                challengers = schemaless_reader(body, _CHAL, None)
                pos = body.tell()
            else:
                return None
            if pos != len(raw):
                return None  # trailing bytes: the codec refuses them
            keys, digest = self._names_of(names)
            features = dict(zip(keys, decoded, strict=True))
        except (IndexError, ValueError, EOFError, KeyError, TypeError, struct.error):
            return None  # UnicodeDecodeError is a ValueError
        out = {
            "event_id": event_id, "model": model, "version": version,
            "event_time_ms": event_time, "predicted_at_ms": predicted_at,
            "prediction": prediction, "scores": scores, "features": features,
            "segment": segment, "latency_us": latency, "served_by": served_by,
            "challengers": challengers,
        }  # fmt: skip
        return out, pack_parts(raw, head, head_end, names, values, seg, seg_end, digest)
