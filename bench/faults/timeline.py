"""What the outputs looked like around each fault: end-to-end latency and the longest
stop, from the harness's own clocks.

The producing loop records when it produced step ``i`` (the features of event ``i``,
and the first label of event ``i - LABEL_LAG``); the watcher records when each
read_committed prediction and outcome arrived, on which partition. So, with one clock:

- a prediction's end-to-end latency is its arrival minus its features' production;
  an outcome's, its arrival minus its first label's production;
- a fault's *window* runs from the fault to the next one (the last: to the end of
  production); its latencies are those of the events (labels) produced in it, shifted
  by :data:`LEAD_S`: an event produced just before a fault is still on its way when it
  hits, so it counts for that fault, not the one before;
- its *stop* is the longest time, within the window, that some partition of
  predictions or outcomes went without a new record: how long outputs stopped there.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

LEAD_S = 2.0
"""Events produced this long before a window's start count in it (their outputs were
still on the way; the baseline's p99 was 1.5-2.8 s on the loaded machine)."""

Arrival = tuple[float, str, int, int]
"""(monotonic arrival time, "predictions" or "outcomes", partition, event index)."""


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of non-empty sorted values.

    >>> quantile([1.0, 2.0, 3.0, 4.0], 0.5), quantile([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    k = max(0, min(len(sorted_values) - 1, -(-len(sorted_values) * q // 1) - 1))
    return sorted_values[int(k)]


@dataclass(frozen=True)
class Window:
    """The outputs of one window."""

    t0: float
    t1: float
    predictions: int
    p50: float | None  # seconds, predictions of events produced in the window
    p99: float | None
    max: float | None
    outcome_p50: float | None  # outcomes of labels produced in the window
    outcome_p99: float | None
    stop: float  # the longest time some partition went without a new record
    stop_where: str  # that partition


def window(arrivals: Sequence[Arrival], produced: Sequence[float], lag: int, t0: float,
           t1: float, known: Sequence[tuple[str, int]] = (), lead: float = 0.0
           ) -> Window:  # fmt: skip
    """The outputs of events produced in [t0 - lead, t1 - lead) (``produced[i]``: when
    step i was produced; an outcome's label is produced at step ``i + lag``), and the
    longest stop on any partition within [t0, t1) (a partition of ``known`` with no
    record in it stopped for the whole window)."""
    lat: dict[str, list[float]] = {"predictions": [], "outcomes": []}
    times: dict[tuple[str, int], list[float]] = {k: [] for k in known}
    for at, topic, part, i in arrivals:
        step = i if topic == "predictions" else i + lag
        if 0 <= step < len(produced) and t0 - lead <= produced[step] < t1 - lead:
            lat[topic].append(at - produced[step])
        if t0 <= at < t1:
            times.setdefault((topic, part), []).append(at)
    stop, where = 0.0, ""
    for (topic, part), ts in sorted(times.items()):
        ts.sort()
        gaps = [b - a for a, b in zip([t0, *ts], [*ts, t1], strict=True)]
        if max(gaps) > stop:
            stop, where = max(gaps), f"{topic}/{part}"
    p, o = sorted(lat["predictions"]), sorted(lat["outcomes"])
    return Window(t0, t1, len(p),
                  quantile(p, 0.5) if p else None, quantile(p, 0.99) if p else None,
                  p[-1] if p else None,
                  quantile(o, 0.5) if o else None, quantile(o, 0.99) if o else None,
                  stop, where)  # fmt: skip


def windows(arrivals: Sequence[Arrival], produced: Sequence[float], lag: int,
            starts: Sequence[float], end: float) -> list[Window]:  # fmt: skip
    """One :class:`Window` per start (sorted), each up to the next start or ``end``."""
    ordered = sorted(arrivals)
    known = sorted({(topic, part) for _, topic, part, _ in ordered})
    out = []
    for k, t0 in enumerate(starts):
        t1 = starts[k + 1] if k + 1 < len(starts) else end
        # arrivals that can matter: from t0 - LEAD_S on (earlier ones hold no event
        # produced after it, and are outside the stop's span)
        lo = bisect.bisect_left(ordered, (t0 - LEAD_S,))
        out.append(window(ordered[lo:], produced, lag, t0, t1, known, LEAD_S))
    return out
