"""Text for ``driftline tail`` and ``driftline status``: pure functions, no Kafka.

>>> topic_name("features", "driftline."), topic_name("my.topic", "driftline.")
('driftline.features', 'my.topic')
>>> jsonable({"raw": b"\\xc3\\x01\\x00", "name": b"eu", "x": float("nan")})
{'raw': '0xc30100', 'name': 'eu', 'x': 'nan'}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from driftline.cli.text import table, when
from driftline.core.wire.topics import declare

__all__ = [
    "DEAD_LETTER",
    "jsonable",
    "status_lines",
    "tail_line",
    "tail_record",
    "topic_name",
]

DEAD_LETTER = "io.driftline.DeadLetter"
SHORT_NAMES = tuple(t.name for t in declare("", 1, 1))
"""Driftline's topic names without the prefix (features, predictions, ...)."""
RAW_PREVIEW_BYTES = 256


def topic_name(name: str, prefix: str) -> str:
    """The full topic name: Driftline's short names get the prefix, others stay."""
    return prefix + name if name in SHORT_NAMES else name


def _bytes(data: bytes, limit: int | None = None) -> str:
    """Text when the bytes are printable UTF-8, else ``0x`` hex (cut at ``limit``)."""
    try:
        text = data.decode("utf-8")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    if limit is not None and len(data) > limit:
        return f"0x{data[:limit].hex()}... ({len(data)} bytes)"
    return "0x" + data.hex()


def jsonable(value: Any, limit: int | None = None) -> Any:
    """``value`` with bytes as text or hex, datetimes as ISO 8601, non-finite floats as
    strings: everything ``json.dumps`` writes as valid JSON."""
    if isinstance(value, bytes | bytearray):
        return _bytes(bytes(value), limit)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, limit) for v in value]
    return value


def tail_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    schema: str | None,
    value: Mapping[str, Any] | None,
    error: str | None = None,
    raw: bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
) -> dict[str, Any]:
    """One record as ``driftline tail`` prints it. Dead letters put their stage,
    reason and source first; their raw bytes are shown as text or hex (cut at 256
    bytes). A value that could not be decoded shows the error and a raw preview.

    >>> tail_record(topic="t.labels", partition=0, offset=7, timestamp_ms=0, key=b"e1",
    ...             schema=None, value=None, error="undecodable: no marker", raw=b"hi")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'topic': 't.labels', 'partition': 0, 'offset': 7, 'timestamp': '1970-01-01T00:00:00.000Z',
     'key': 'e1', 'error': 'undecodable: no marker', 'raw': 'hi'}
    """
    out: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": None if timestamp_ms is None else when(timestamp_ms),
        "key": None if key is None else _bytes(key, RAW_PREVIEW_BYTES),
    }
    if headers:
        out["headers"] = {k: None if v is None else _bytes(v, 64) for k, v in headers}
    if error is not None:
        out["error"] = error
        out["raw"] = None if raw is None else _bytes(raw, RAW_PREVIEW_BYTES)
        return out
    out["schema"] = schema
    if schema == DEAD_LETTER and value is not None:
        out["stage"] = value.get("stage")
        out["reason"] = value.get("reason")
        out["source"] = (
            f"{value.get('source_topic')}[{value.get('source_partition')}]"
            f"@{value.get('source_offset')}"
        )
    out["value"] = None if value is None else jsonable(value, RAW_PREVIEW_BYTES)
    return out


def tail_line(record: Mapping[str, Any]) -> str:
    """One JSON line."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


OFFSETS_NOTE = (
    "  (offsets, not records: a transactional topic (predictions, outcomes, ...) also"
    " spends one offset per partition on each transaction's commit marker)"
)


def status_lines(doc: Mapping[str, Any]) -> list[str]:
    """``driftline status`` as text, from its JSON document (``--json``): topics,
    consumer groups and their lag, models with versions and stages, last alerts."""
    out = [f"Topics ({doc.get('prefix', '')}*)"]
    rows: list[tuple[str, ...]] = [("TOPIC", "PARTITIONS", "RETAINED OFFSETS", "END OFFSETS")]
    for t in doc.get("topics", []):
        if not t.get("exists", True):
            rows.append((t["topic"], "missing", "-", "-"))
            continue
        rows.append((t["topic"], str(t["partitions"]), _count(t.get("retained_offsets")),
                     _count(t.get("end_offsets"))))  # fmt: skip
    out += table(rows, indent="  ")
    out.append(OFFSETS_NOTE)
    out += ["", "Consumer groups"]
    groups = doc.get("groups", [])
    if groups:
        rows = [("GROUP", "TOPIC", "PARTITIONS", "COMMITTED", "LAG (OFFSETS)")]
        rows += [(g["group"], g["topic"], str(g["partitions"]), _count(g.get("committed")),
                  _count(g.get("lag"))) for g in groups]  # fmt: skip
        out += table(rows, indent="  ")
    else:
        out.append("  (no group has committed offsets on these topics)")
    out += ["", "Models"]
    models = doc.get("models", [])
    if models:
        rows = [("MODEL", "VERSION", "STAGE", "CREATED (UTC)")]
        for m in models:
            for v in m["versions"]:
                rows.append((m["model"], v["version"], v["stage"], when(v.get("created_at_ms"))))
        out += table(rows, indent="  ")
    else:
        out.append("  (no model version on the registry topic)")
    out += ["", "Last alerts"]
    alerts = doc.get("alerts", [])
    if alerts:
        for a in alerts:
            version = a.get("version") or "-"
            state = f" ({a['state']})" if a.get("state") else ""  # an incident's record
            out.append(f"  {when(a.get('created_at_ms'))}  {a.get('severity', ''):<8} "
                       f"{a.get('model', '')} {version} {a.get('kind', '')}{state}: "
                       f"{a.get('message', '')}")  # fmt: skip
    else:
        out.append("  (none)")
    return out
