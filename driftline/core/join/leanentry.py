"""A prediction held in the join store, without what the store already knows.

A pending prediction used to be held as its Avro bytes (396 bytes with the join
header for a 10-feature model, 152 of them the feature names). The lean form keeps the
Prediction's fields as their Avro bytes, minus:

- ``event_id``: it is the Kafka key (which the envelope check made equal to the UTF-8
  event_id), and is part of the store key;
- the feature names: the ordered names, as Avro strings, are kept once per partition in
  a *names record* under ``NAMES_PREFIX + digest`` (8 bytes of BLAKE2b of the names'
  bytes), and the entry keeps the digest, one byte per value with its size, and the
  values (a prediction with a feature value of 256 bytes or more is held whole).

A names record is never deleted, so compaction keeps it; 0xFF never starts a UTF-8
event_id nor an entry key (:mod:`driftline.core.join.keys`), so its key cannot meet an
entry's. The rest is copied byte for byte, so the lean form turns back into the
Prediction's bytes (:meth:`LeanPredictions.prediction`, for an expired prediction's
dead letter) and, with a Label, into the Outcome's bytes (:meth:`LeanPredictions.outcome`)
with no Avro decode or encode of the features: for a canonical writer (fastavro, Java)
both are byte for byte what :class:`Codec` writes. The Prediction's ``challengers``
(Prediction v2) are copied into the Outcome's the same way; an Outcome always carries an
array there, empty when the Prediction had none.

Only a Prediction written with the current schema is held lean, and only when the
current Prediction, Label and Outcome have the field layout this module was written
for (:meth:`LeanPredictions.for_codec` returns None otherwise); any other prediction is
held whole. A lean form written by the previous release (entry format 2) holds a
Prediction v1, without ``challengers``: ``legacy=True`` reads it.

>>> from driftline.core.wire.codec import default_codec
>>> codec = default_codec()
>>> lean = LeanPredictions.for_codec(codec)
>>> p = {"event_id": "e-1", "model": "churn", "version": "v1", "event_time_ms": 1000,
...      "predicted_at_ms": 1005, "prediction": True, "scores": {"True": 0.9},
...      "features": {"age": 41, "plan": "pro"}, "segment": {"region": "eu"},
...      "latency_us": 7, "served_by": "driftline",
...      "challengers": [{"version": "v2", "prediction": False, "scores": {"True": 0.4}}]}
>>> raw = codec.encode("Prediction", p)
>>> packed = lean.pack(raw)
>>> len(packed.payload) < len(raw), lean.prediction(packed.payload, b"e-1", packed.names) == raw
(True, True)
>>> label = codec.encode("Label", {"event_id": "e-1", "model": "churn", "label": False,
...                                "label_time_ms": 4000})
>>> out = codec.decode(lean.outcome(packed.payload, b"e-1", packed.names, label)).value
>>> out["label_delay_ms"], out["features"], out["label"], out["challengers"][0]["version"]
(3000, {'age': 41, 'plan': 'pro'}, False, 'v2')
"""

from __future__ import annotations

import hashlib
from io import BytesIO
from typing import Any, NamedTuple, cast

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import to_parsing_canonical_form

from driftline.core.errors import CodecError
from driftline.core.wire.codec import HEADER_SIZE, MARKER, Codec

__all__ = ["NAMES_PREFIX", "LeanPredictions", "Packed", "is_names_key", "read_long", "zigzag"]

NAMES_PREFIX = b"\xffnames\x00"
"""Store keys of names records start with this (never a UTF-8 event_id's first byte)."""

_VALUE = ["null", "boolean", "long", "double", "string"]
_SCORES = {"type": "map", "values": "double"}
_FEATURES = {"type": "map", "values": _VALUE}
_SEGMENT = {"type": "map", "values": "string"}
_CHALLENGERS = ["null", {"type": "array", "items": {
    "type": "record", "name": "io.driftline.ChallengerPrediction", "fields": [
        {"name": "version", "type": "string"}, {"name": "prediction", "type": _VALUE},
        {"name": "scores", "type": _SCORES}]}}]  # fmt: skip
_PREDICTION_V1 = [
    ("event_id", "string"), ("model", "string"), ("version", "string"),
    ("event_time_ms", "long"), ("predicted_at_ms", "long"), ("prediction", _VALUE),
    ("scores", _SCORES), ("features", _FEATURES), ("segment", _SEGMENT),
    ("latency_us", "long"), ("served_by", "string"),
]  # fmt: skip
_PREDICTION = [*_PREDICTION_V1, ("challengers", _CHALLENGERS)]
_LABEL = [("event_id", "string"), ("model", "string"), ("label", _VALUE),
          ("label_time_ms", "long")]  # fmt: skip
_OUTCOME = [
    ("event_id", "string"), ("model", "string"), ("version", "string"),
    ("event_time_ms", "long"), ("predicted_at_ms", "long"), ("label_time_ms", "long"),
    ("label_delay_ms", "long"), ("prediction", _VALUE), ("scores", _SCORES),
    ("label", _VALUE), ("features", _FEATURES), ("segment", _SEGMENT),
    ("challengers", _CHALLENGERS),
]  # fmt: skip
_NO_CHALLENGERS = b"\x02\x00"
"""An Outcome's ``challengers`` when its Prediction had none: an empty array (union
branch 1, then a block count of 0)."""
# The Prediction's fields that the lean form keeps as one run of bytes, read back for
# the monitor and for the model check: model .. scores, and segment.
_HEAD = parse_schema({"type": "record", "name": "LeanHead", "fields": [
    {"name": n, "type": t} for n, t in _PREDICTION[1:7]]}, named_schemas={})  # fmt: skip
_SEG = parse_schema(_SEGMENT, named_schemas={})
_CHAL = parse_schema(_CHALLENGERS, named_schemas={})


def is_names_key(key: bytes) -> bool:
    """True for the store key of a names record (not a join entry)."""
    return key.startswith(NAMES_PREFIX)


class Packed(NamedTuple):
    """A Prediction in lean form: the entry's payload, and its names record."""

    payload: bytes
    key: bytes
    """The names record's store key: ``NAMES_PREFIX`` + digest."""
    names: bytes
    """The names record's value: the feature names, in order, as Avro strings."""


def _canonical(layout: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(n, to_parsing_canonical_form(parse_schema(t, named_schemas={}))) for n, t in layout]


def _layout(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """A parsed record schema's fields as (name, canonical form of the type)."""
    return [(f["name"], to_parsing_canonical_form(f["type"])) for f in schema["fields"]]


def _long(buf: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag varint at ``pos`` and the position after it."""
    b = buf[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


read_long = _long
"""The Avro long (zig-zag varint) at a position, and the position after it."""

_SMALL = tuple(bytes([n << 1]) for n in range(64))


def zigzag(n: int) -> bytes:
    """``n`` as an Avro long (zig-zag varint).

    >>> [zigzag(n).hex() for n in (0, -1, 1, 63, 64, -65, 8191, 8192, 2**40, -(2**63))]
    ['00', '01', '02', '7e', '8001', '8101', 'fe7f', '808001', '808080808040', 'ffffffffffffffffff01']
    """  # noqa: E501
    if 0 <= n < 64:
        return _SMALL[n]
    u = (n << 1) ^ (n >> 63)
    if u < 0x80:
        return bytes((u,))
    if u < 0x4000:
        return bytes((u & 0x7F | 0x80, u >> 7))
    if u < 0x200000:
        return bytes((u & 0x7F | 0x80, u >> 7 & 0x7F | 0x80, u >> 14))
    if u < 0x10000000:
        return bytes((u & 0x7F | 0x80, u >> 7 & 0x7F | 0x80, u >> 14 & 0x7F | 0x80, u >> 21))
    out = bytearray()
    while u > 0x7F:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def _bytes_end(buf: bytes, pos: int) -> int:
    b = buf[pos]
    if b < 0x80:  # one byte of length (under 64): the common case, without a call
        n, pos = (b >> 1) ^ -(b & 1), pos + 1
    else:
        n, pos = _long(buf, pos)
    end = pos + n
    if n < 0 or end > len(buf):
        raise IndexError("string out of bounds")
    return end


def _value_end(buf: bytes, pos: int) -> int:
    """After one value of the union [null, boolean, long, double, string]."""
    tag, pos = _long(buf, pos)
    if tag == 0:
        return pos
    if tag == 1:
        return pos + 1
    if tag == 2:
        return _long(buf, pos)[1]
    if tag == 3:
        return pos + 8
    if tag == 4:
        return _bytes_end(buf, pos)
    raise IndexError(f"union branch {tag}")


def _map_end(buf: bytes, pos: int, fixed: int) -> int:
    """After a map whose values are ``fixed`` bytes (double: 8) or strings (0)."""
    while True:
        count, pos = _long(buf, pos)
        if count == 0:
            return pos
        if count < 0:  # a block with its byte size
            count = -count
            pos = _long(buf, pos)[1]
        for _ in range(count):
            pos = _bytes_end(buf, pos)
            pos = pos + fixed if fixed else _bytes_end(buf, pos)


def _split_features(buf: bytes, pos: int) -> tuple[bytes, list[bytes], int]:
    """The feature map at ``pos``: its names (Avro strings, in order), its values (Avro
    union values, in order), and the position after it."""
    names: list[bytes] = []
    values: list[bytes] = []
    while True:
        count, pos = _long(buf, pos)
        if count == 0:
            return b"".join(names), values, pos
        if count < 0:
            count = -count
            pos = _long(buf, pos)[1]
        for _ in range(count):
            end = _bytes_end(buf, pos)
            names.append(buf[pos:end])
            pos = end
            tag = buf[pos]  # the union branch, zig-zag: 0 null, 2 boolean, 4 long, ...
            if tag == 6:  # double
                end = pos + 9
            elif tag == 8:  # string
                end = _bytes_end(buf, pos + 1)
            elif tag == 4:  # long
                end = _long(buf, pos + 1)[1]
            else:
                end = _value_end(buf, pos)
            if end > len(buf):
                raise IndexError("value out of bounds")
            values.append(buf[pos:end])
            pos = end


def names_digest(names: bytes) -> bytes:
    """The 8-byte digest that names a names record."""
    return hashlib.blake2b(names, digest_size=8).digest()


def pack_parts(
    raw: bytes, head: int, head_end: int, names: bytes, values: list[bytes], seg: int,
    seg_end: int, digest: bytes | None = None,
) -> Packed | None:  # fmt: skip
    """The lean form of the Prediction ``raw`` split already: model .. scores at
    ``head:head_end``, the features' names and values, the segment at ``seg:seg_end``
    (``digest``: the names' digest, when known); None when a value is too large for the
    lean form (256 bytes or more)."""
    try:
        sizes = bytes(len(v) for v in values)
    except ValueError:  # a value of 256 bytes or more: held whole
        return None
    if digest is None:
        digest = names_digest(names)
    head_bytes = raw[head:head_end]
    payload = b"".join((
        zigzag(len(head_bytes)), head_bytes, digest, zigzag(len(sizes)), sizes,
        *values, zigzag(seg_end - seg), raw[seg:seg_end], raw[seg_end:],
    ))  # fmt: skip
    return Packed(payload, NAMES_PREFIX + digest, names)


def _challengers(tail: bytes) -> bytes:
    """The ``challengers`` bytes of a lean form's tail (latency_us, served_by,
    challengers)."""
    pos = 0
    while tail[pos] & 0x80:  # latency_us: skip its bytes
        pos += 1
    pos = _bytes_end(tail, pos + 1)  # served_by
    if pos >= len(tail):
        raise IndexError("lean prediction has no challengers")
    return tail[pos:]


def _pieces(buf: bytes, end_of: Any) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(buf):
        end = end_of(buf, pos)
        out.append(buf[pos:end])
        pos = end
    if pos != len(buf):
        raise IndexError("trailing bytes")
    return out


class LeanPredictions:
    """Packs current-version Predictions into the lean form and builds from it."""

    def __init__(self, codec: Codec) -> None:
        schemas = codec.schemas
        self.codec = codec
        self._prediction = MARKER + schemas.current("Prediction").fingerprint
        self._label = MARKER + schemas.current("Label").fingerprint
        self._outcome = MARKER + schemas.current("Outcome").fingerprint
        legacy = _canonical(_PREDICTION_V1)
        self._prediction_v1 = next(
            (MARKER + sv.fingerprint for sv in schemas.versions("Prediction")
             if _layout(sv.schema) == legacy), None,
        )  # fmt: skip
        """The header of a Prediction v1: what a legacy lean form turns back into."""
        self._names: dict[bytes, list[bytes]] = {}

    @classmethod
    def for_codec(cls, codec: Codec) -> LeanPredictions | None:
        """The lean form for ``codec``'s current schemas; None when their field layout is
        not the one the lean form knows (predictions are then held whole)."""
        s = codec.schemas
        for name, layout in (("Prediction", _PREDICTION), ("Label", _LABEL),
                             ("Outcome", _OUTCOME)):  # fmt: skip
            if _layout(s.current(name).schema) != _canonical(layout):
                return None
        return cls(codec)

    # -- packing --------------------------------------------------------------------------

    def pack(self, raw: bytes) -> Packed | None:
        """The lean form of a Prediction's bytes; None when they were not written with
        the current Prediction schema. ``raw`` must have passed :meth:`Codec.decode`."""
        if raw[:HEADER_SIZE] != self._prediction:
            return None
        try:
            pos = _bytes_end(raw, HEADER_SIZE)  # event_id: the key
            head = pos
            pos = _bytes_end(raw, _bytes_end(raw, pos))  # model, version
            pos = _long(raw, _long(raw, pos)[1])[1]  # event_time_ms, predicted_at_ms
            head_end = _map_end(raw, _value_end(raw, pos), 8)  # prediction, scores
            names, values, pos = _split_features(raw, head_end)
            seg = pos
            pos = _map_end(raw, pos, 0)
        except IndexError as exc:
            raise CodecError(f"Prediction bytes cannot be split: {exc}") from exc
        return pack_parts(raw, head, head_end, names, values, seg, pos)

    @property
    def prediction_header(self) -> bytes:
        """The single-object header of a current-version Prediction."""
        return self._prediction

    @staticmethod
    def names_key(payload: bytes) -> bytes:
        """The store key of the names record a lean payload refers to."""
        try:
            n, pos = _long(payload, 0)
            return NAMES_PREFIX + payload[pos + n : pos + n + 8]
        except IndexError as exc:
            raise CodecError(f"lean prediction: {exc}") from exc

    # -- building -------------------------------------------------------------------------

    def _parts(self, payload: bytes) -> tuple[bytes, bytes, int, bytes, bytes]:
        """head (model .. scores), the values' sizes, where the values start, segment,
        tail (latency_us, served_by and, but in a legacy form, challengers)."""
        try:
            n, pos = _long(payload, 0)
            head = payload[pos : pos + n]
            pos += n + 8
            n, pos = _long(payload, pos)
            sizes = payload[pos : pos + n]
            values = pos = pos + n
            pos += sum(sizes)
            n, pos = _long(payload, pos)
            segment = payload[pos : pos + n]
            if pos + n > len(payload):
                raise IndexError("lean prediction is truncated")
            return head, sizes, values, segment, payload[pos + n :]
        except IndexError as exc:
            raise CodecError(f"lean prediction: {exc}") from exc

    def _features(self, names: bytes, payload: bytes, sizes: bytes, pos: int) -> bytes:
        """The Avro feature map of ``names`` (a names record) and the values of sizes
        ``sizes`` at ``pos`` in ``payload``."""
        split = self._names.get(names)
        if split is None:
            try:
                split = _pieces(names, _bytes_end)
            except IndexError as exc:
                raise CodecError(f"lean prediction names: {exc}") from exc
            if len(self._names) >= 4_096:
                self._names.clear()
            self._names[names] = split
        if len(sizes) != len(split):
            raise CodecError(f"lean prediction: {len(sizes)} values for {len(split)} names")
        if not sizes:
            return b"\x00"
        out = [zigzag(len(sizes))]
        for name, size in zip(split, sizes, strict=True):
            out.append(name)
            out.append(payload[pos : pos + size])
            pos += size
        out.append(b"\x00")
        return b"".join(out)

    def prediction(self, payload: bytes, key: bytes, names: bytes, legacy: bool = False) -> bytes:
        """The Prediction's bytes again (``key``: its event_id, the Kafka key); with
        ``legacy``, of a lean form the previous release wrote (a Prediction v1)."""
        head, sizes, at, segment, tail = self._parts(payload)
        features = self._features(names, payload, sizes, at)
        marker = self._prediction
        if legacy:
            if self._prediction_v1 is None:
                raise CodecError("lean prediction of the previous release: no Prediction v1")
            marker = self._prediction_v1
        return b"".join((marker, zigzag(len(key)), key, head, features, segment, tail))

    def fields(self, payload: bytes, legacy: bool = False) -> dict[str, Any]:
        """model, version, event_time_ms, predicted_at_ms, prediction, scores, segment,
        challengers (None when there were none)."""
        head, _, _, segment, tail = self._parts(payload)
        try:
            chal = None if legacy else _challengers(tail)
        except IndexError as exc:
            raise CodecError(f"lean prediction: {exc}") from exc
        return self._fields(head, segment, chal)

    @staticmethod
    def _fields(head: bytes, segment: bytes, chal: bytes | None) -> dict[str, Any]:
        """The fields of :meth:`fields`; ``chal``: the challengers' bytes (None: v1)."""
        try:
            out = cast(dict[str, Any], schemaless_reader(BytesIO(head), _HEAD, None))
            out["segment"] = schemaless_reader(BytesIO(segment), _SEG, None)
            if chal is None or chal == b"\x00":
                out["challengers"] = None
            else:
                out["challengers"] = schemaless_reader(BytesIO(chal), _CHAL, None)
        except (EOFError, ValueError, IndexError, KeyError, TypeError) as exc:
            raise CodecError(f"lean prediction: {exc}") from exc
        return out

    def outcome(
        self, payload: bytes, key: bytes, names: bytes, label: bytes, legacy: bool = False
    ) -> bytes | None:
        """The Outcome's bytes of this prediction and ``label`` (a Label's bytes, checked
        by the caller); None when the label was not written with the current schema.
        ``legacy``: a lean form the previous release wrote (no challengers)."""
        joined = self.joined(payload, key, names, label, legacy)
        return None if joined is None else joined[0]

    def joined(
        self, payload: bytes, key: bytes, names: bytes, label: bytes, legacy: bool = False
    ) -> tuple[bytes, dict[str, Any]] | None:
        """:meth:`outcome` and :meth:`fields` at once (the payload is split once)."""
        if label[:HEADER_SIZE] != self._label:
            return None
        head, sizes, values, segment, tail = self._parts(payload)
        try:
            pos = _bytes_end(label, _bytes_end(label, HEADER_SIZE))  # event_id, model
            end = _value_end(label, pos)
            label_time = _long(label, end)[0]
            at = _bytes_end(head, _bytes_end(head, 0))  # model, version
            event_time, after = _long(head, at)
            predicted_at_end = _long(head, after)[1]
            chal = None if legacy else _challengers(tail)
        except IndexError as exc:
            raise CodecError(f"lean outcome: {exc}") from exc
        value = b"".join((
            self._outcome, zigzag(len(key)), key, head[:predicted_at_end],
            zigzag(label_time), zigzag(label_time - event_time), head[predicted_at_end:],
            label[pos:end], self._features(names, payload, sizes, values), segment,
            _NO_CHALLENGERS if chal is None or chal == b"\x00" else chal,
        ))  # fmt: skip
        return value, self._fields(head, segment, chal)
