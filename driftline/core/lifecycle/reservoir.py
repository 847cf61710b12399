"""A version's training sample: a bounded, seeded reservoir sample of the rows it was
trained on, kept in its registry record (``ModelVersion.training_sample``, schema v2), so
that a later retrain of a small window can complete its training rows from earlier data.

The sample holds at most ``SAMPLE_ROWS`` (1,000) rows, drawn uniformly (reservoir
sampling, Algorithm R, with the model's seed: same rows and seed, same sample) from
everything the version learnt, earlier rows included: it carries older data forward, each
generation with a smaller share. It is stored as zlib-compressed JSON lines of
``{"f": features, "y": label, "s": segment, "t": event_time_ms}`` and capped at
``SAMPLE_MAX_BYTES`` (128 KiB) and at what is left of a registry record's budget
(``RECORD_BUDGET``, 900,000 bytes, under librdkafka's 1,000,000-byte message limit) once
the inline artifact and the reference profile are counted: over the cap, every other
row is dropped until it fits; with no room at all there is no sample.

>>> rows = [{"features": {"x": i, "c": "a"}, "label": i % 2 == 0, "segment": {},
...          "event_time_ms": i} for i in range(5_000)]
>>> kept = sample(rows, 1_000, seed=7)
>>> len(kept), kept == sorted(kept, key=lambda r: r["event_time_ms"])
(1000, True)
>>> blob = encode(kept)
>>> len(blob) < SAMPLE_MAX_BYTES, decode(blob) == kept
(True, True)
>>> len(decode(encode(kept, max_bytes=2_000)))  # halved until it fits
250
>>> encode(kept, max_bytes=10) is None
True
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "RECORD_BUDGET",
    "SAMPLE_MAX_BYTES",
    "SAMPLE_ROWS",
    "budget",
    "decode",
    "encode",
    "sample",
]

SAMPLE_ROWS = 1_000
SAMPLE_MAX_BYTES = 131_072
RECORD_BUDGET = 900_000
"""Bytes a registry record may take with its sample (librdkafka's message.max.bytes is
1,000,000; the rest is headroom for the record's other fields)."""
_OTHER_FIELDS = 32_768
"""Bytes reserved for the record's fields other than artifact, profile and sample."""


def sample(rows: Sequence[Mapping[str, Any]], k: int, seed: int) -> list[Mapping[str, Any]]:
    """At most ``k`` of ``rows``, uniformly (Algorithm R with ``random.Random(seed)``), in
    their original order."""
    if len(rows) <= k:
        return list(rows)
    rng = random.Random(seed)
    chosen = list(range(k))
    for i in range(k, len(rows)):
        j = rng.randrange(i + 1)
        if j < k:
            chosen[j] = i
    return [rows[i] for i in sorted(chosen)]


def _line(row: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            "f": row["features"],
            "y": row["label"],
            "s": row.get("segment") or {},
            "t": row.get("event_time_ms"),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def encode(rows: Sequence[Mapping[str, Any]], max_bytes: int = SAMPLE_MAX_BYTES) -> bytes | None:
    """The compressed sample of ``rows`` in at most ``max_bytes`` (every other row dropped
    until it fits); None without rows or room."""
    kept = list(rows)
    while kept:
        blob = zlib.compress("\n".join(map(_line, kept)).encode(), 9)
        if len(blob) <= max_bytes:
            return blob
        kept = kept[::2] if len(kept) > 1 else []
    return None


def decode(blob: bytes | None) -> list[dict[str, Any]]:
    """The rows of a sample (training examples: features, label, segment, event_time_ms)."""
    if not blob:
        return []
    out = []
    for line in zlib.decompress(blob).decode().splitlines():
        d = json.loads(line)
        out.append(
            {"features": d["f"], "label": d["y"], "segment": d["s"], "event_time_ms": d["t"]}
        )
    return out


def budget(artifact: Mapping[str, Any], reference_profile: str) -> int:
    """Bytes left for a sample in a record with this artifact and profile."""
    inline = artifact.get("inline") or b""
    room = RECORD_BUDGET - _OTHER_FIELDS - len(inline) - len(reference_profile.encode())
    return max(0, min(SAMPLE_MAX_BYTES, room))
