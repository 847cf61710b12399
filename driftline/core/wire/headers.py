"""The Kafka headers Driftline writes next to every value, named in one place.

Headers let an operator (or kcat) see what a message is without decoding it. Every
header value is UTF-8 text:

=========================  ==============================================================
header                     value
=========================  ==============================================================
``content-type``           ``application/vnd.apache.avro+binary``: the value is Avro in
                           the single-object encoding (0xC3 0x01, fingerprint, body)
``driftline-schema``       full record name of the value, e.g. ``io.driftline.Label``
``driftline-event-time``   the record's event time, ms since the Unix epoch, in decimal
``driftline-trace-id``     32 lowercase hex digits (a W3C trace id) following one event
``driftline-reason``       on deadletter only: the reason code (``undecodable``, ...)
=========================  ==============================================================

Headers are informative: a reader trusts the value's fingerprint, never a header.

>>> hs = build("io.driftline.Label", 1_700_000_000_000, "0af7651916cd43dd8448eb211c80319c")
>>> hs[0]
('content-type', b'application/vnd.apache.avro+binary')
>>> parse(hs)[EVENT_TIME]
'1700000000000'
>>> len(new_trace_id())
32
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

__all__ = [
    "AVRO_SINGLE_OBJECT",
    "CONTENT_TYPE",
    "EVENT_TIME",
    "REASON",
    "SCHEMA",
    "TRACE_ID",
    "build",
    "new_trace_id",
    "parse",
]

CONTENT_TYPE = "content-type"
SCHEMA = "driftline-schema"
EVENT_TIME = "driftline-event-time"
TRACE_ID = "driftline-trace-id"
REASON = "driftline-reason"

AVRO_SINGLE_OBJECT = "application/vnd.apache.avro+binary"
"""The content type of every Driftline value (Avro single-object encoding)."""

_CONTENT_TYPE_VALUE = AVRO_SINGLE_OBJECT.encode()


def new_trace_id() -> str:
    """A fresh trace id: 32 random lowercase hex digits."""
    return uuid.uuid4().hex


def build(
    schema: str, event_time_ms: int | None, trace_id: str | None, reason: str | None = None
) -> list[tuple[str, bytes]]:
    """The headers of one value: content type, schema name and, when given, event time,
    trace id and dead-letter reason."""
    out = [(CONTENT_TYPE, _CONTENT_TYPE_VALUE), (SCHEMA, schema.encode())]
    if event_time_ms is not None:
        out.append((EVENT_TIME, str(int(event_time_ms)).encode()))
    if trace_id is not None:
        out.append((TRACE_ID, trace_id.encode()))
    if reason is not None:
        out.append((REASON, reason.encode()))
    return out


def parse(headers: Iterable[tuple[str, bytes | str | None]] | None) -> dict[str, str]:
    """Headers as a dict of text (the last of repeated names wins; null values are '').

    >>> parse([("driftline-schema", b"io.driftline.Label"), ("x", None)])
    {'driftline-schema': 'io.driftline.Label', 'x': ''}
    """
    out: dict[str, str] = {}
    for name, value in headers or ():
        if value is None:
            out[name] = ""
        elif isinstance(value, bytes):
            out[name] = value.decode("utf-8", errors="replace")
        else:
            out[name] = value
    return out


# Dead letters also carry their origin in Kafka Connect's DLQ header style
# (errors.deadletterqueue.context.headers.enable), so Connect-minded tools read them.
DLQ_TOPIC = "__connect.errors.topic"
DLQ_PARTITION = "__connect.errors.partition"
DLQ_OFFSET = "__connect.errors.offset"
DLQ_STAGE = "__connect.errors.stage"
DLQ_REASON = "__connect.errors.exception.class.name"
DLQ_MESSAGE = "__connect.errors.exception.message"

RawHeaders = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None
"""Headers as Kafka clients hand them back."""


def header_list(headers: RawHeaders) -> list[tuple[str, bytes | None]]:
    """Any client's headers as a list of (name, bytes) pairs."""
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]


def header_value(headers: RawHeaders, name: str) -> bytes | None:
    """The last value of header ``name`` as bytes, or None."""
    found: bytes | None = None
    for k, v in header_list(headers):
        if k == name:
            found = v
    return found


def for_confluent(headers: list[tuple[str, bytes]]) -> list[tuple[str, str | bytes | None]]:
    """The same headers, typed as confluent-kafka's ``produce`` takes them."""
    return list[tuple[str, str | bytes | None]](headers)
