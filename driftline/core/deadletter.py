"""Dead-letter records: what failed, where it came from, why, and the original bytes.

The record (schemas/dead_letter.v1.avsc) and its headers say the same things, so an
operator can filter a dead-letter topic by reason without decoding Avro.

>>> rec, hdrs = dead_letter(
...     Origin("driftline.features", 2, 41, b"e1", 1700000000000, []),
...     stage="validate", reason="missing_feature", detail="feature 'age' is missing",
...     raw=b"...", model="churn", now_ms=1700000000001)
>>> rec["reason"], dict(hdrs)["__connect.errors.offset"]
('missing_feature', b'41')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftline.core import headers as h

MAX_DETAIL_CHARS = 2_000
MAX_HEADER_BYTES = 1_000


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
    """The DeadLetter dict and its headers for a message that failed at ``stage``."""
    detail = detail if len(detail) <= MAX_DETAIL_CHARS else detail[: MAX_DETAIL_CHARS - 3] + "..."
    record = {
        "source_topic": origin.topic,
        "source_partition": origin.partition,
        "source_offset": origin.offset,
        "source_key": origin.key,
        "source_timestamp_ms": origin.timestamp_ms,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "model": model,
        "failed_at_ms": now_ms,
        "raw": raw if raw is not None else b"",
        "headers": [{"key": k, "value": v} for k, v in origin.headers],
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


def _utf8_prefix(text: str, limit: int) -> bytes:
    """The UTF-8 of ``text``, cut to at most ``limit`` bytes on a character boundary."""
    data = text.encode("utf-8", "replace")[:limit]
    return data.decode("utf-8", "ignore").encode()
