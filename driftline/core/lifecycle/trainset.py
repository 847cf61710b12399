"""Training data: Outcome dicts into a time-ordered pandas frame, and back into examples.

:func:`build_frame` takes Outcome dicts (optionally with the ``topic``, ``partition`` and
``offset`` they were read from) and returns one row per labelled event, columns
``event_id, event_time_ms, label, segment, topic, partition, offset`` and one
``feature.<name>`` column per feature (object dtype: values stay as Avro decoded them,
None when absent). Rows are sorted by event time, ties broken by topic, partition,
offset and event id, so the order never depends on how partitions interleaved while
reading; an event seen twice (the join delivers at least once) keeps its first copy;
rows without a label are dropped.

>>> frame = build_frame([
...     {"event_id": "b", "event_time_ms": 20, "label": True, "features": {"x": 2, "c": "u"},
...      "segment": {"region": "eu"}, "topic": "o", "partition": 0, "offset": 7},
...     {"event_id": "a", "event_time_ms": 10, "label": False, "features": {"x": 1},
...      "topic": "o", "partition": 1, "offset": 3},
...     {"event_id": "a", "event_time_ms": 10, "label": False, "features": {"x": 1},
...      "topic": "o", "partition": 1, "offset": 4},
... ])
>>> list(frame["event_id"]), list(frame.columns[-2:])
(['a', 'b'], ['feature.c', 'feature.x'])
>>> examples(window(frame, start_ms=15))
[{'features': {'c': 'u', 'x': 2}, 'label': True, 'segment': {'region': 'eu'}, 'event_time_ms': 20}]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = ["FEATURE_PREFIX", "META_COLUMNS", "build_frame", "examples", "window"]

FEATURE_PREFIX = "feature."
META_COLUMNS = ("event_id", "event_time_ms", "label", "segment", "topic", "partition", "offset")
_SORT = ["event_time_ms", "topic", "partition", "offset", "event_id"]


def build_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The training frame of Outcome-like dicts (see the module docstring).

    Missing ``event_time_ms`` and ``offset`` default to the row's position, a missing
    ``event_id`` to ``row-<position>``: a plain list of examples keeps its order.
    """
    meta: dict[str, list[Any]] = {c: [] for c in META_COLUMNS}
    feats: list[Mapping[str, Any]] = []
    for i, row in enumerate(rows):
        meta["event_id"].append(row.get("event_id") or f"row-{i}")
        meta["event_time_ms"].append(int(row.get("event_time_ms", i)))
        meta["label"].append(row.get("label"))
        meta["segment"].append(dict(row.get("segment") or {}))
        meta["topic"].append(row.get("topic") or "")
        meta["partition"].append(int(row.get("partition") or 0))
        meta["offset"].append(int(row.get("offset", i)))
        feats.append(row.get("features") or {})
    names = sorted({n for f in feats for n in f})
    columns: dict[str, Any] = {
        c: pd.Series(v, dtype=object if c in ("label", "segment") else None)
        for c, v in meta.items()
    }
    for n in names:
        columns[FEATURE_PREFIX + n] = pd.Series([f.get(n) for f in feats], dtype=object)
    frame = pd.DataFrame(columns)
    if frame.empty:
        return frame
    frame = frame[frame["label"].notna()]
    frame = frame.sort_values(_SORT, kind="stable")
    return frame.drop_duplicates(subset="event_id", keep="first").reset_index(drop=True)


def window(
    frame: pd.DataFrame,
    start_ms: int | None = None,
    end_ms: int | None = None,
    last_n: int | None = None,
) -> pd.DataFrame:
    """Rows with ``start_ms <= event_time_ms < end_ms``, then at most the last ``last_n``."""
    if frame.empty:
        return frame
    keep = pd.Series(True, index=frame.index)
    if start_ms is not None:
        keep &= frame["event_time_ms"] >= start_ms
    if end_ms is not None:
        keep &= frame["event_time_ms"] < end_ms
    out = frame[keep]
    if last_n is not None:
        out = out.tail(last_n)
    return out.reset_index(drop=True)


def feature_names(frame: pd.DataFrame) -> list[str]:
    """The features of the frame, sorted."""
    return [c[len(FEATURE_PREFIX) :] for c in frame.columns if c.startswith(FEATURE_PREFIX)]


def examples(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per row: ``features`` (non-null values, keys sorted), ``label``,
    ``segment`` and ``event_time_ms``: what learning and the gate take."""
    names = feature_names(frame)
    cols = [FEATURE_PREFIX + n for n in names]
    out = []
    values = frame[cols].itertuples(index=False, name=None) if cols else ((),) * len(frame)
    for vals, label, segment, t in zip(
        values, frame["label"], frame["segment"], frame["event_time_ms"], strict=True
    ):
        features = {n: v for n, v in zip(names, vals, strict=True) if v is not None}
        out.append(
            {"features": features, "label": label, "segment": segment, "event_time_ms": int(t)}
        )
    return out
