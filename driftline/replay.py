"""Rows of a CSV or Parquet file as feature events and labels, for ``driftline produce``.

Pure (pandas only, no Kafka). Columns are read by name:

* ``event_id``: the event's id (generated when absent; labels need it);
* ``event_time_ms`` / ``label_time_ms``: when the event happened / the truth was
  known (now when absent);
* the label column (``label`` by default): the ground truth;
* ``segment.<name>`` columns: the segment attribute ``<name>`` (as a string), not a
  feature; columns named with ``--segment`` are features *and* segment attributes;
* every other column is a feature, typed as pandas read it: integers, floats,
  booleans, strings; a missing cell is null.

>>> import pandas as pd
>>> frame = pd.DataFrame({"event_id": ["a", "b"], "age": [41, 7], "plan": ["pro", None],
...                       "segment.region": ["eu", "us"], "label": [True, False]})
>>> cols = plan(list(frame.columns), "features", segments=("plan",))
>>> cols.features, cols.segments
(('age', 'plan'), (('region', 'segment.region'), ('plan', 'plan')))
>>> next(feature_events(frame, cols))
{'event_id': 'a', 'event_time_ms': None, 'features': {'age': 41, 'plan': 'pro'}, 'segment': {'region': 'eu', 'plan': 'pro'}}
>>> [r["label"] for r in labels(frame, plan(list(frame.columns), "labels"))]
[True, False]
"""  # noqa: E501

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.core.errors import ConfigError

__all__ = ["Columns", "Pacer", "cell", "feature_events", "labels", "plan", "read_frame"]

EVENT_ID = "event_id"
EVENT_TIME = "event_time_ms"
LABEL_TIME = "label_time_ms"
SEGMENT_PREFIX = "segment."
TOPICS = ("features", "labels")


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file as a frame."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    raise ConfigError(f"{path}: not a .csv or .parquet file")


def cell(value: Any) -> bool | int | float | str | None:
    """A cell as Avro carries a feature: null, bool, int, float or str.

    >>> import numpy as np
    >>> [cell(v) for v in (np.int64(3), np.float32(0.5), np.bool_(True), float("nan"), None)]
    [3, 0.5, True, None, None]
    >>> cell(pd.Timestamp("2024-01-01")), cell("x")
    ('2024-01-01 00:00:00', 'x')
    """
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        f = float(value)
        return None if math.isnan(f) else f
    return str(value)


@dataclass(frozen=True)
class Columns:
    """Which column plays which part."""

    topic: str
    event_id: str | None
    time: str | None
    label: str | None
    segments: tuple[tuple[str, str], ...]
    """(attribute, column) pairs."""
    features: tuple[str, ...]


def plan(
    columns: Sequence[str],
    topic: str,
    *,
    label: str = "label",
    segments: Sequence[str] = (),
    with_labels: bool = False,
    id_column: str = EVENT_ID,
    drop: Sequence[str] = (),
    time_column: str | None = None,
) -> Columns:
    """Assign ``columns`` for ``topic`` (features or labels); raises ConfigError when
    a needed column is missing. ``id_column`` holds the event id and ``time_column`` the
    event (label) time in epoch ms, default ``event_time_ms`` (``label_time_ms``), none
    of them a feature; ``drop`` columns are ignored. ``driftline produce`` and
    ``driftline models bootstrap`` read a file by these rules."""
    if topic not in TOPICS:
        raise ConfigError(f"can replay only to {' or '.join(TOPICS)}, not {topic!r}")
    names = [str(c) for c in columns]
    missing = [s for s in segments if s not in names]
    if missing:
        raise ConfigError(f"no segment column {', '.join(missing)} (columns: {', '.join(names)})")
    unknown = [d for d in drop if d not in names]
    if unknown:
        raise ConfigError(f"no column {', '.join(unknown)} to drop (columns: {', '.join(names)})")
    names = [n for n in names if n not in drop]
    if time_column is not None and time_column not in names:
        raise ConfigError(f"no time column {time_column!r} (columns: {', '.join(names)})")
    needs_label = topic == "labels" or with_labels
    if needs_label and label not in names:
        raise ConfigError(f"no label column {label!r} (columns: {', '.join(names)})")
    if topic == "labels" and id_column not in names:
        raise ConfigError(f"labels need an {id_column!r} column to join their events")
    time_col = time_column or (EVENT_TIME if topic == "features" else LABEL_TIME)
    only = [(n.removeprefix(SEGMENT_PREFIX), n) for n in names if n.startswith(SEGMENT_PREFIX)]
    reserved = {id_column, EVENT_TIME, LABEL_TIME, time_col, label, *(c for _, c in only)}
    features = tuple(n for n in names if n not in reserved)
    if topic == "features" and not features:
        raise ConfigError("no feature column left once id, time, label and segments are taken")
    return Columns(
        topic=topic,
        event_id=id_column if id_column in names else None,
        time=time_col if time_col in names else None,
        label=label if needs_label else None,
        segments=(*only, *((s, s) for s in segments)),
        features=features,
    )


def _rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    names = [str(c) for c in frame.columns]
    for values in frame.itertuples(index=False, name=None):
        yield dict(zip(names, values, strict=True))


def _time(value: Any) -> int | None:
    v = cell(value)
    return None if v is None else int(v)


def feature_events(frame: pd.DataFrame, cols: Columns) -> Iterator[dict[str, Any]]:
    """Per row: keyword arguments of ``Producer.send_features`` (event_id, event time,
    features, segment), plus ``label`` when the plan has a label column."""
    for row in _rows(frame):
        out: dict[str, Any] = {
            "event_id": None if cols.event_id is None else str(row[cols.event_id]),
            "event_time_ms": None if cols.time is None else _time(row[cols.time]),
            "features": {f: cell(row[f]) for f in cols.features},
            "segment": {a: str(v) for a, c in cols.segments if (v := cell(row[c])) is not None},
        }
        if cols.label is not None:
            out["label"] = cell(row[cols.label])
        yield out


def labels(frame: pd.DataFrame, cols: Columns) -> Iterator[dict[str, Any]]:
    """Per row: keyword arguments of ``Producer.send_label``."""
    assert cols.event_id is not None and cols.label is not None
    for row in _rows(frame):
        yield {
            "event_id": str(row[cols.event_id]),
            "label": cell(row[cols.label]),
            "label_time_ms": None if cols.time is None else _time(row[cols.time]),
        }


class Pacer:
    """Keeps a loop at ``rate`` iterations per second (no limit when rate is None).

    >>> t = [0.0]
    >>> slept = []
    >>> p = Pacer(10, clock=lambda: t[0], sleep=slept.append)
    >>> for _ in range(3):
    ...     p.tick()
    >>> slept
    [0.1, 0.2]
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.start: float | None = None
        self.n = 0

    def tick(self) -> None:
        """Call once per item: sleeps until the item is due."""
        if self.rate is None:
            return
        if self.start is None:
            self.start = self.clock()
        due = self.start + self.n / self.rate
        self.n += 1
        ahead = due - self.clock()
        if ahead > 0:
            self.sleep(round(ahead, 6))
