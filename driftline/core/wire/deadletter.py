"""Dead-letter records: what failed, where it came from, why, and the original bytes.

The record (schemas/dead_letter.v1.avsc) and its headers say the same things, so an
operator can filter a dead-letter topic by reason without decoding Avro.

A dead letter must itself fit in a Kafka message, yet it carries the refused message
(key, value and headers) plus its own fields: a value close to the broker's limit would
make a dead letter over it, which no producer can send. So a source key over
:data:`MAX_KEY_BYTES` is cut to that prefix (a Driftline key is at most 1,024 bytes),
and the source key, headers and raw bytes together are kept within
:data:`MAX_SOURCE_BYTES`: beyond it the source headers are left out of the record first
(when they take more than half of it), then ``raw`` is cut to a prefix. ``detail``
then starts by saying what was cut, with the full sizes and the sha256 of ``raw``.

>>> rec, hdrs = dead_letter(
...     Origin("driftline.features", 2, 41, b"e1", 1700000000000, []),
...     stage="validate", reason="missing_feature", detail="feature 'age' is missing",
...     raw=b"...", model="churn", now_ms=1700000000001)
>>> rec["reason"], dict(hdrs)["__connect.errors.offset"]
('missing_feature', b'41')
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from driftline.core.wire import headers as h

MAX_DETAIL_CHARS = 2_000
MAX_HEADER_BYTES = 1_000
MAX_KEY_BYTES = 4_096
"""The longest source key a dead letter carries (it is also the dead letter's key)."""
MAX_SOURCE_BYTES = 980_000
"""Source key (counted twice: it is also the dead letter's Kafka key), source headers
and raw bytes of one dead letter together, at most. With the detail (at most 2,000
characters, 8,000 bytes), its own headers (about 1,300 bytes) and the other fields the
dead letter stays under librdkafka's default ``message.max.bytes`` (1,000,000), which
is also Faust's ``max_request_size``, and so under the broker's (1,048,588)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message was read from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None
    headers: list[tuple[str, bytes | None]]


def dead_letter(
    origin: Origin,
    *,
    stage: str,
    reason: str,
    detail: str,
    raw: bytes | None,
    model: str | None,
    now_ms: int,
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The DeadLetter dict and its headers for a message that failed at ``stage``.

    Publish it keyed by its ``source_key``: the source key, cut when it is longer than
    :data:`MAX_KEY_BYTES`."""
    raw, key, source_headers, note = _fit(raw if raw is not None else b"", origin)
    if note:
        keep = MAX_DETAIL_CHARS - len(note) - 2
        detail = f"{note}: {detail if len(detail) <= keep else detail[: keep - 3] + '...'}"
    detail = detail if len(detail) <= MAX_DETAIL_CHARS else detail[: MAX_DETAIL_CHARS - 3] + "..."
    record = {
        "source_topic": origin.topic,
        "source_partition": origin.partition,
        "source_offset": origin.offset,
        "source_key": key,
        "source_timestamp_ms": origin.timestamp_ms,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "model": model,
        "failed_at_ms": now_ms,
        "raw": raw,
        "headers": [{"key": k, "value": v} for k, v in source_headers],
    }
    hdrs = [
        *h.build("io.driftline.DeadLetter", now_ms, None, reason),
        (h.DLQ_TOPIC, origin.topic.encode()),
        (h.DLQ_PARTITION, str(origin.partition).encode()),
        (h.DLQ_OFFSET, str(origin.offset).encode()),
        (h.DLQ_STAGE, stage.encode()),
        (h.DLQ_REASON, reason.encode()),
        (h.DLQ_MESSAGE, _utf8_prefix(detail, MAX_HEADER_BYTES)),
    ]
    return record, hdrs


def _fit(
    raw: bytes, origin: Origin
) -> tuple[bytes, bytes | None, list[tuple[str, bytes | None]], str]:
    """Raw bytes, key and source headers cut to fit a dead letter (see the module
    docstring), and a note saying what was cut ('' when nothing was).

    >>> raw, key, hdrs, note = _fit(b"y" * 990_000, Origin("t", 0, 7, b"k", None, [("h", b"xy")]))
    >>> len(raw), key, hdrs, note[:52]
    (979995, b'k', [('h', b'xy')], 'raw cut to the first 979995 of 990000 bytes (sha256 ')
    >>> _fit(b"y" * 400_000, Origin("t", 0, 7, b"k", None, [("h", b"x" * 600_000)]))[2:]
    ([], 'source headers left out (600001 bytes)')
    >>> _fit(b"", Origin("t", 0, 7, b"k" * 5_000, None, []))[3]
    'key cut to the first 4096 of 5000 bytes'
    """
    notes = []
    key = origin.key
    if key is not None and len(key) > MAX_KEY_BYTES:
        notes.append(f"key cut to the first {MAX_KEY_BYTES} of {len(key)} bytes")
        key = key[:MAX_KEY_BYTES]
    key_bytes = 2 * len(key or b"")
    headers = origin.headers
    header_bytes = sum(len(k.encode("utf-8", "replace")) + len(v or b"") for k, v in headers)
    if key_bytes + header_bytes + len(raw) > MAX_SOURCE_BYTES:
        if key_bytes + header_bytes > MAX_SOURCE_BYTES // 2:
            notes.append(f"source headers left out ({header_bytes} bytes)")
            headers, header_bytes = [], 0
        room = MAX_SOURCE_BYTES - key_bytes - header_bytes
        if len(raw) > room:
            digest = hashlib.sha256(raw).hexdigest()
            notes.append(f"raw cut to the first {room} of {len(raw)} bytes (sha256 {digest})")
            raw = raw[:room]
    return raw, key, headers, "; ".join(notes)


_CUT = re.compile(
    r"key cut to the first \d+ of \d+ bytes|source headers left out \(\d+ bytes\)"
    r"|raw cut to the first \d+ of \d+ bytes \(sha256 [0-9a-f]{64}\)"
)


def replay_refusal(record: dict[str, Any]) -> str | None:
    """Why the dead letter ``record`` cannot be replayed exactly (its source key,
    headers or raw bytes were cut to fit it), or None when it can: its ``raw`` bytes,
    ``source_key`` and ``headers`` are then the refused record's, unchanged.

    >>> rec, _ = dead_letter(Origin("t", 0, 7, b"k", None, []), stage="join",
    ...     reason="orphan_label", detail="no prediction", raw=b"x", model=None, now_ms=0)
    >>> replay_refusal(rec) is None
    True
    >>> rec, _ = dead_letter(Origin("t", 0, 7, b"k" * 5_000, None, []), stage="decode",
    ...     reason="undecodable", detail="raw cut: said by the bytes", raw=b"x", model=None,
    ...     now_ms=0)
    >>> replay_refusal(rec)
    'key cut to the first 4096 of 5000 bytes'
    """
    if not record.get("source_topic"):
        return "no source topic"
    detail = str(record.get("detail", ""))
    if ": " in detail:  # what _fit cut is said first, before ": "
        notes = detail.split(": ", 1)[0].split("; ")
        cut = [n for n in notes if _CUT.fullmatch(n)]
        if cut:
            return "; ".join(cut)
    return None


def _utf8_prefix(text: str, limit: int) -> bytes:
    """The UTF-8 of ``text``, cut to at most ``limit`` bytes on a character boundary."""
    data = text.encode("utf-8", "replace")[:limit]
    return data.decode("utf-8", "ignore").encode()
