"""Copy fields from one record into another as Avro bytes, without re-encoding them.

A Prediction repeats its FeatureEvent's ``features`` and ``segment`` unchanged, and
re-encoding the feature map (a union per value, which fastavro resolves value by value)
was about two thirds of the cost of encoding a Prediction. Avro's binary encoding of a
value depends only on its type, so when the fields have the same types in both records
and sit next to each other in both, their bytes can be copied: the source is read in
three parts (fields before, the passed fields, fields after) to learn where the passed
bytes are, and the target is written around them. The output is byte for byte what
:meth:`Codec.encode` writes for a source written by a canonical Avro writer (fastavro,
Java, ...); from any other valid writer it decodes to the same values.

Only a source written with the current version of its record is split; any other
version is decoded (and resolved) as :meth:`Codec.decode` does, and the caller encodes
as usual.

>>> from driftline.core.wire.codec import default_codec
>>> codec = default_codec()
>>> through = Passthrough.between(codec, "FeatureEvent", "Prediction", ("features", "segment"))
>>> event = {"event_id": "e-1", "model": "churn", "event_time_ms": 1,
...          "features": {"age": 41, "plan": "pro"}, "segment": {"region": "eu"}}
>>> data = codec.encode("FeatureEvent", event)
>>> decoded, raw = through.decode(data)
>>> decoded == codec.decode(data), raw is not None
(True, True)
>>> prediction = {"event_id": "e-1", "model": "churn", "version": "v1", "event_time_ms": 1,
...               "predicted_at_ms": 2, "prediction": True, "scores": {"True": 0.9},
...               "latency_us": 5, "served_by": "driftline"}
>>> data = through.encode(prediction, raw)
>>> data == codec.encode("Prediction", {**prediction, "features": event["features"],
...                                     "segment": event["segment"]})
True
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from driftline.core.errors import ConfigError, CorruptBodyError, SchemaMismatchError
from driftline.core.wire.codec import (
    HEADER_SIZE,
    MARKER,
    READ_ERRORS,
    WRITE_ERRORS,
    Codec,
    Decoded,
    mismatch,
    read_failure,
)

__all__ = ["Passthrough"]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _plain(t: Any) -> bool:
    """True for a type built of primitives, arrays, maps and unions only (no named
    types, whose bytes could mean different things in two records)."""
    if isinstance(t, str):
        return t in _PRIMITIVES
    if isinstance(t, list):
        return all(_plain(b) for b in t)
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "array":
            return _plain(t["items"])
        if kind == "map":
            return _plain(t["values"])
        return kind in _PRIMITIVES and "logicalType" not in t
    return False


def _read(body: BytesIO, schema: Any) -> dict[str, Any]:
    return cast(dict[str, Any], schemaless_reader(body, schema, None))


def _part(name: str, fields: list[dict[str, Any]]) -> Any:
    if not fields:
        return None
    return parse_schema({"type": "record", "name": name, "fields": fields}, named_schemas={})


def _span(fields: list[dict[str, Any]], names: tuple[str, ...], record: str) -> int:
    have = [f["name"] for f in fields]
    if not names or names[0] not in have:
        raise ConfigError(f"{record} has no field {names[0] if names else '(none)'}")
    i = have.index(names[0])
    if tuple(have[i : i + len(names)]) != names:
        raise ConfigError(f"{record}: fields {list(names)} are not adjacent in this order")
    return i


class Passthrough:
    """Fields ``fields`` of record ``source``, copied as bytes into record ``target``."""

    def __init__(self, codec: Codec, source: str, target: str, fields: tuple[str, ...]) -> None:
        src = codec.schemas.current(source)
        dst = codec.schemas.current(target)
        sf, df = src.schema["fields"], dst.schema["fields"]
        i, j, n = _span(sf, fields, src.name), _span(df, fields, dst.name), len(fields)
        for a, b in zip(sf[i : i + n], df[j : j + n], strict=True):
            if not _plain(a["type"]) or to_parsing_canonical_form(
                a["type"]
            ) != to_parsing_canonical_form(b["type"]):
                raise ConfigError(f"field {a['name']}: types differ or are not plain")
        self.codec = codec
        self.source, self.target, self.fields = src, dst, fields
        self._reads = (_part("Head", sf[:i]), _part("Middle", sf[i : i + n]),
                       _part("Tail", sf[i + n :]))  # fmt: skip
        self._header = MARKER + dst.fingerprint
        self._head, self._tail = _part("Head", df[:j]), _part("Tail", df[j + n :])
        rest = df[:j] + df[j + n :]
        self._allowed = frozenset(f["name"] for f in rest)
        self._required = frozenset(f["name"] for f in rest if "default" not in f)

    @classmethod
    def between(
        cls, codec: Codec, source: str, target: str, fields: tuple[str, ...]
    ) -> Passthrough | None:
        """The passthrough, or None when the current schemas do not allow one."""
        try:
            return cls(codec, source, target, fields)
        except ConfigError:
            return None

    def decode(self, data: bytes) -> tuple[Decoded, bytes | None]:
        """``codec.decode(data, expect=source)`` and the passed fields' bytes (None when
        ``data`` was written with another version than the current one)."""
        sv = self.source
        if data[2:HEADER_SIZE] != sv.fingerprint or data[:2] != MARKER:
            return self.codec.decode(data, expect=sv.name), None
        head, middle, tail = self._reads
        body = BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            value: dict[str, Any] = {} if head is None else _read(body, head)
            start = body.tell()
            value.update(_read(body, middle))
            end = body.tell()
            if tail is not None:
                value.update(_read(body, tail))
        except READ_ERRORS as exc:
            raise read_failure(self.codec, sv, exc) from exc
        left = len(data) - body.tell()
        if left:
            raise CorruptBodyError(
                f"{sv.name} v{sv.version}: trailing bytes after the body: {left}"
            )
        return Decoded(sv.name, value, sv.version), data[start:end]

    def encode(self, record: Mapping[str, Any], raw: bytes) -> bytes:
        """The target record: ``record`` (every field but the passed ones, which must be
        absent) around ``raw``, bytes :meth:`decode` returned. Fields are checked as
        :meth:`Codec.encode` checks them: unknown ones are refused, only fields with
        defaults may be left out."""
        keys = record.keys()
        if not self._required <= keys <= self._allowed:
            raise SchemaMismatchError(self._refusal(record))
        out = BytesIO()
        out.write(self._header)
        try:
            if self._head is not None:
                schemaless_writer(out, self._head, record)
            out.write(raw)
            if self._tail is not None:
                schemaless_writer(out, self._tail, record)
        except WRITE_ERRORS as exc:
            raise SchemaMismatchError(mismatch(self.target, record, exc)) from exc
        return out.getvalue()

    def _refusal(self, record: Mapping[str, Any]) -> str:
        dst = self.target.name
        unknown = sorted(set(record) - self._allowed)
        missing = sorted(self._required - set(record))
        return f"{dst} v{self.target.version}: unknown fields {unknown}, missing {missing}"
