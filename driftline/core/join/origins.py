"""Where a held record came from, kept in its join entry so that its dead letter names it.

A prediction or label that the join holds may be dead-lettered long after it was read
(an expired prediction, an orphan label), by the expiry sweep, when only its entry is
left. So a held entry keeps the record's offset, Kafka timestamp and headers; its
partition is the entry's own, and its topic follows from the state (a held prediction
came from the predictions topic, a held label from the labels topic).

The block is compact: every number is an Avro long (zig-zag varint); the offset; the
header count and whether there is a timestamp (``count << 1 | has``); the timestamp
minus the record's own time (event time of a prediction, label time of a label:
usually a few ms); then per header one byte, ``name << 3 | kind``, where ``name`` is 1
to 4 for Driftline's own header names (:mod:`driftline.core.wire.headers`) or 0 for a
name written out after the byte, and ``kind`` says how the value follows:

====  ====================================================================
kind  value
====  ====================================================================
0     null
1     its bytes (a length, then the bytes)
2     one of Driftline's constant values (content type, schema names): its index
3     the record's own time in decimal (``driftline-event-time``): nothing
4     lowercase hex (``driftline-trace-id``): the decoded bytes, with a length
====  ====================================================================

Every form reads back to the very bytes it was given. The four headers Driftline's
scorer and client library write (163 bytes of names and values) take 25 bytes with the
offset and the count:

>>> from driftline.core.wire.headers import build
>>> hs = build("io.driftline.Label", 1_700_000_005_000, "0af7651916cd43dd8448eb211c80319c")
>>> sum(len(k) + len(v) for k, v in hs), len(pack(41, None, hs, 1_700_000_005_000))
(163, 25)
>>> block = pack(41, 1_700_000_005_012, hs + [("x-app", None)], 1_700_000_005_000)
>>> unpack(block, 1_700_000_005_000) == (41, 1_700_000_005_012, hs + [("x-app", None)])
True
"""

from __future__ import annotations

from collections.abc import Sequence

from driftline.core.errors import CodecError
from driftline.core.join.leanentry import read_long, zigzag
from driftline.core.wire import headers as h

__all__ = ["pack", "unpack"]

Headers = list[tuple[str, bytes | None]]

_NAMES = ("", h.CONTENT_TYPE, h.SCHEMA, h.EVENT_TIME, h.TRACE_ID)
_NAME_CODE = {name: code for code, name in enumerate(_NAMES) if name}
_EVENT_TIME = _NAME_CODE[h.EVENT_TIME]
_TRACE_ID = _NAME_CODE[h.TRACE_ID]
_VALUES = (
    h.AVRO_SINGLE_OBJECT.encode(),
    b"io.driftline.Prediction",
    b"io.driftline.Label",
    b"io.driftline.FeatureEvent",
)
_VALUE_CODE = {value: code for code, value in enumerate(_VALUES)}
_BYTE = tuple(bytes([n]) for n in range(256))
_NULL, _LITERAL, _KNOWN, _TIME, _HEX = range(5)


def _hex(value: bytes) -> bytes | None:
    """The bytes of lowercase hex ``value``, when they give ``value`` back exactly."""
    try:
        raw = bytes.fromhex(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return raw if raw.hex().encode() == value else None


def _known() -> dict[tuple[str, bytes], bytes]:
    """Every (name, value) pair of a known name and a constant value, encoded."""
    return {(name, value): _BYTE[code << 3 | _KNOWN] + _BYTE[i]
            for code, name in enumerate(_NAMES) if code
            for i, value in enumerate(_VALUES)}  # fmt: skip


_PAIRS = _known()
_TIME_BYTE = _BYTE[_EVENT_TIME << 3 | _TIME]
_HEX_BYTE = _BYTE[_TRACE_ID << 3 | _HEX]


def pack(offset: int, timestamp_ms: int | None, headers: Sequence[tuple[str, bytes | None]],
         time_ms: int) -> bytes:  # fmt: skip
    """The origin block of a record read at ``offset`` with ``timestamp_ms`` (None: the
    broker gave none) and ``headers``; ``time_ms`` is the record's own time."""
    if timestamp_ms is None:
        out = [zigzag(offset), zigzag(len(headers) << 1)]
    else:
        out = [zigzag(offset), zigzag(len(headers) << 1 | 1), zigzag(timestamp_ms - time_ms)]
    for pair in headers:
        known = _PAIRS.get(pair)  # type: ignore[arg-type]  # a None value is not in it
        if known is not None:
            out.append(known)
            continue
        name, value = pair
        if name == h.EVENT_TIME and value == str(time_ms).encode():
            out.append(_TIME_BYTE)
            continue
        if name == h.TRACE_ID and value is not None and (raw := _hex(value)) is not None:
            out += (_HEX_BYTE, zigzag(len(raw)), raw)
            continue
        code = _NAME_CODE.get(name, 0)
        known_value = None if value is None else _VALUE_CODE.get(value)
        if value is None:
            out.append(_BYTE[code << 3 | _NULL])
        elif known_value is not None:
            out.append(_BYTE[code << 3 | _KNOWN])
        else:
            out.append(_BYTE[code << 3 | _LITERAL])
        if not code:
            encoded = name.encode("utf-8", "surrogateescape")
            out += (zigzag(len(encoded)), encoded)
        if known_value is not None:
            out.append(_BYTE[known_value])
        elif value is not None:
            out += (zigzag(len(value)), value)
    return b"".join(out)


def _bytes(block: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = read_long(block, pos)
    end = pos + n
    if n < 0 or end > len(block):
        raise IndexError("bytes out of bounds")
    return block[pos:end], end


def unpack(block: bytes, time_ms: int) -> tuple[int, int | None, Headers]:
    """(offset, timestamp_ms, headers) of an origin block :func:`pack` wrote for a record
    whose own time is ``time_ms``. CodecError when the block is damaged."""
    try:
        offset, pos = read_long(block, 0)
        count, pos = read_long(block, pos)
        timestamp = None
        if count & 1:
            delta, pos = read_long(block, pos)
            timestamp = time_ms + delta
        headers: Headers = []
        for _ in range(count >> 1):
            byte = block[pos]
            pos += 1
            code, kind = byte >> 3, byte & 7
            if code:
                if code >= len(_NAMES):
                    raise IndexError(f"header name code {code}")
                name = _NAMES[code]
            else:
                raw_name, pos = _bytes(block, pos)
                name = raw_name.decode("utf-8", "surrogateescape")
            value: bytes | None
            if kind == _NULL:
                value = None
            elif kind == _KNOWN:
                value = _VALUES[block[pos]]
                pos += 1
            elif kind == _TIME:
                value = str(time_ms).encode()
            elif kind == _HEX:
                raw, pos = _bytes(block, pos)
                value = raw.hex().encode()
            elif kind == _LITERAL:
                value, pos = _bytes(block, pos)
            else:
                raise IndexError(f"header value kind {kind}")
            headers.append((name, value))
        if pos != len(block):
            raise IndexError(f"{len(block) - pos} bytes after the headers")
    except IndexError as exc:
        raise CodecError(f"join entry origin: {exc}") from exc
    return offset, timestamp, headers
