"""Avro single-object encoding of Driftline's records.

Every message value is ``0xC3 0x01`` + the writer schema's 8-byte CRC-64-AVRO
fingerprint (little-endian) + the Avro binary body, as the Avro specification's
single-object encoding says. Driftline always writes the *current* version of a
record; it reads any published version of any record (found by fingerprint) into
the current version of that record.

>>> codec = Codec()
>>> data = codec.encode("Label", {"event_id": "e-1", "model": "churn",
...                                "label": True, "label_time_ms": 1_700_000_000_000})
>>> data[:2].hex(), data[2:10] == codec.schemas.current("Label").fingerprint
('c301', True)
>>> decoded = codec.decode(data, expect="Label")
>>> decoded.name, decoded.writer_version, decoded.value["label"]
('io.driftline.Label', 1, True)
>>> from driftline.core.errors import CodecError
>>> try:
...     codec.decode(data[:-1])
... except CodecError as err:
...     print(type(err).__name__, err.reason)
CorruptBodyError undecodable

Failures raise a :class:`~driftline.core.errors.CodecError` subclass whose
``reason`` is the dead-letter reason code:

=====================  ==================  ==========================================
error                  reason              when
=====================  ==================  ==========================================
NotSingleObjectError   ``undecodable``     no 0xC3 0x01 marker, or under 10 bytes
UnknownSchemaError     ``unknown_schema``  fingerprint of no published version (a
                                           reader must get new schema files first)
WrongRecordError       ``wrong_record``    ``decode(expect=...)`` got another record
CorruptBodyError       ``undecodable``     truncated or invalid body, bytes left over
SchemaMismatchError    ``schema_mismatch`` ``encode`` of a dict that does not fit
=====================  ==================  ==========================================

Integers beyond 64 bits in a union with ``double`` (feature values) are written
as doubles by fastavro, as the union's first branch that accepts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from functools import cache
from io import BytesIO
from typing import Any, NamedTuple, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.validation import ValidationError as _FastavroValidationError
from fastavro.validation import validate

from driftline.core.errors import (
    CodecError,
    ConfigError,
    CorruptBodyError,
    NotSingleObjectError,
    SchemaMismatchError,
    UnknownSchemaError,
    WrongRecordError,
)
from driftline.core.wire.schemas import Schemas, SchemaVersion

__all__ = ["HEADER_SIZE", "MARKER", "Codec", "Decoded", "decode", "default_codec", "encode"]

MARKER = b"\xc3\x01"
"""The two bytes every single-object encoded value starts with."""
HEADER_SIZE = 10
"""Marker plus 8-byte fingerprint."""

# What fastavro raises on a dict that does not fit (its ValidationError is no ValueError).
WRITE_ERRORS = (
    ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError,
    _FastavroValidationError,
)  # fmt: skip
# What fastavro raises on bytes that are not a valid body. Fuzzing 300k mutated messages
# raised only EOFError, UnicodeDecodeError and IndexError; the rest are defensive.
READ_ERRORS = (EOFError, ValueError, IndexError, KeyError, OverflowError, TypeError, MemoryError)


class Decoded(NamedTuple):
    """A decoded value: the record's full name, its fields (in the current version),
    and the writer's version (the latest one, if versions share a fingerprint)."""

    name: str
    value: dict[str, Any]
    writer_version: int


class _Reader(NamedTuple):
    writer: SchemaVersion
    writer_schema: Any
    reader_schema: Any  # None when the writer is the current version: no resolution needed


class Codec:
    """Encode and decode Driftline records; build once per process and share.

    ``schemas`` defaults to the schemas shipped with Driftline.
    """

    def __init__(self, schemas: Schemas | None = None) -> None:
        self.schemas = schemas if schemas is not None else Schemas.packaged()
        self._writers: dict[str, tuple[bytes, SchemaVersion]] = {}
        self._readers: dict[bytes, _Reader] = {}
        for sv in self.schemas:
            current = self.schemas.current(sv.name)
            if sv is current:
                self._writers[sv.name] = (MARKER + sv.fingerprint, sv)
            # A version whose parsing form equals the current one's needs no resolution.
            same = sv.fingerprint == current.fingerprint
            self._readers[sv.fingerprint] = _Reader(
                current if same else sv, sv.schema, None if same else current.schema
            )
        for short in {sv.short_name for sv in self.schemas}:
            with suppress(UnknownSchemaError):  # a short name two namespaces share
                self._writers[short] = self._writers[self.schemas.full_name(short)]

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Write ``record`` with the current version of record ``name`` (full or short).

        Fields with defaults may be left out; fields the schema lacks are refused.
        """
        try:
            header, sv = self._writers[name]
        except KeyError:
            raise UnknownSchemaError(f"no published record named {name!r}") from None
        out = BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, sv.schema, record, strict_allow_default=True)
        except WRITE_ERRORS as exc:
            raise SchemaMismatchError(mismatch(sv, record, exc)) from exc
        return out.getvalue()

    def decode(self, data: bytes, expect: str | None = None) -> Decoded:
        """Read single-object bytes into the current version of their record.

        ``expect`` (a full or short record name) refuses any other record with
        WrongRecordError before the body is read.
        """
        if len(data) < HEADER_SIZE or data[:2] != MARKER:
            raise NotSingleObjectError(_not_single_object(data))
        reader = self._readers.get(data[2:HEADER_SIZE])
        if reader is None:
            fp = data[2:HEADER_SIZE].hex()
            raise UnknownSchemaError(f"fingerprint {fp} is no published schema version")
        sv = reader.writer
        if expect is not None:
            expected = self._writers.get(expect)  # also resolves short names
            if expected is None or expected[1].name != sv.name:
                self._wrong_record(sv, expect)
        body = BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            value = schemaless_reader(body, reader.writer_schema, reader.reader_schema)
        except (*READ_ERRORS, SchemaResolutionError) as exc:
            raise read_failure(self, sv, exc) from exc
        left = len(data) - body.tell()
        if left:
            raise CorruptBodyError(
                f"{sv.name} v{sv.version}: trailing bytes after the body: {left}"
            )
        return Decoded(sv.name, cast(dict[str, Any], value), sv.version)

    def _wrong_record(self, sv: SchemaVersion, expect: str) -> None:
        try:
            expected = self.schemas.full_name(expect)
        except UnknownSchemaError:
            raise ConfigError(f"decode(expect={expect!r}): no such record") from None
        raise WrongRecordError(f"expected {expected}, got {sv.name} v{sv.version}")


@cache
def default_codec() -> Codec:
    """The process-wide codec over the packaged schemas, built on first use."""
    return Codec()


def encode(name: str, record: Mapping[str, Any]) -> bytes:
    """:meth:`Codec.encode` with the default codec."""
    return default_codec().encode(name, record)


def decode(data: bytes, expect: str | None = None) -> Decoded:
    """:meth:`Codec.decode` with the default codec."""
    return default_codec().decode(data, expect)


def _not_single_object(data: bytes) -> str:
    if data[:2] != MARKER[: len(data[:2])]:
        return f"no single-object marker c301: starts with {data[:2].hex()}"
    return f"{len(data)} bytes, shorter than the {HEADER_SIZE}-byte single-object header"


def read_failure(codec: Codec, sv: SchemaVersion, exc: BaseException) -> CodecError:
    """The CodecError for a body of ``sv`` that fastavro could not read (``exc``)."""
    if isinstance(exc, SchemaResolutionError):
        current = codec.schemas.current(sv.name).version
        return SchemaMismatchError(f"{sv.name} v{sv.version} cannot be read as v{current}: {exc}")
    what = "truncated" if isinstance(exc, EOFError) else "malformed"
    return CorruptBodyError(
        f"{sv.name} v{sv.version}: body is {what} ({type(exc).__name__}: {exc})"
    )


def mismatch(sv: SchemaVersion, record: object, exc: BaseException) -> str:
    """Say which record and fields do not fit; runs fastavro's slow validator."""
    msg = f"{sv.name} v{sv.version}: record does not fit ({type(exc).__name__}: {exc})"
    try:
        validate(record, sv.schema, raise_errors=True, strict=True)
    except _FastavroValidationError as err:
        fields = sorted({e.field for e in err.errors if e.field})
        if fields:
            msg += f"; bad fields: {', '.join(fields)}"
    except Exception:  # the validator is only a help for the message
        pass
    return msg
