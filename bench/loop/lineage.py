"""What a loop's registry records and served predictions say: promotions and rollbacks,
and how long each trigger took to serve its answer. The in-process loop and the Kafka
runs are read the same way.

A *promotion* is a champion record of a version that never was champion before (the
first champion, the bootstrap's, is not one); a *rollback* is a champion record of a
version that was champion earlier and is not the current one; a record repeating the
current champion counts as neither. A *challenger* is a version given a challenger record
(the gate passed it with promotion ``manual``, or found it better without proof and kept
it in shadow); *rejected*, a rejected record.

>>> recs = [{"version": v, "stage": s} for v, s in [("v1", "champion"), ("v2", "candidate"),
...         ("v2", "champion"), ("v1", "archived"), ("v2", "champion"), ("v1", "champion")]]
>>> stage_counts(recs)
{'promotions': 1, 'rollbacks': 1, 'challengers': 0, 'rejected': 0}
>>> stage_counts(recs + [{"version": "v3", "stage": "challenger"}])["challengers"]
1
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def stage_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Promotions, rollbacks, challengers (module docstring) and rejected candidates, in
    record order."""
    current: str | None = None
    past: set[str] = set()
    challengers: set[str] = set()
    promotions = rollbacks = rejected = 0
    for r in records:
        if r["stage"] == "rejected":
            rejected += 1
        if r["stage"] == "challenger":
            challengers.add(r["version"])
        if r["stage"] != "champion" or r["version"] == current:
            continue
        if current is not None:
            if r["version"] in past:
                rollbacks += 1
            else:
                promotions += 1
            past.add(current)
        current = r["version"]
    return {"promotions": promotions, "rollbacks": rollbacks, "challengers": len(challengers),
            "rejected": rejected}  # fmt: skip


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100); NaN for no values.

    >>> percentile([3, 1, 2, 10], 50), percentile([3, 1, 2, 10], 99), percentile([], 50)
    (2, 10, nan)
    """
    if not xs:
        return math.nan
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def trigger_to_serving(
    triggers: Mapping[str, int],
    champions: Iterable[Mapping[str, Any]],
    served: Sequence[tuple[int, int, str]],
) -> list[dict[str, Any]]:
    """For each promoted version whose lineage names a trigger: the seconds and the events
    from the trigger to the first event the version served.

    ``triggers``: trigger id -> created_at_ms (wall clock, as the monitor stamps it);
    ``champions``: the champion records; ``served``: (predicted_at_ms, event index,
    version) of every prediction. The trigger's position in the stream is the highest
    event index predicted at or before its creation.

    >>> served = [(1_000 + 10 * i, i, "v1" if i < 50 else "v2") for i in range(100)]
    >>> trigger_to_serving({"t1": 1_300}, [{"version": "v2", "lineage": {"trigger_id": "t1"}}],
    ...                    served)
    [{'version': 'v2', 'trigger_id': 't1', 'seconds': 0.2, 'events': 20}]
    """
    by_time = sorted(served)
    times = [t for t, _, _ in by_time]
    top, highest = [], -1  # highest event index predicted up to each position
    for _, i, _ in by_time:
        highest = max(highest, i)
        top.append(highest)
    first: dict[str, tuple[int, int]] = {}
    for t, i, v in sorted(served, key=lambda s: s[1]):
        first.setdefault(v, (i, t))
    out, seen = [], set()
    for rec in champions:
        tid = (rec.get("lineage") or {}).get("trigger_id")
        if (
            tid is None
            or tid not in triggers
            or rec["version"] not in first
            or rec["version"] in seen
        ):
            continue
        seen.add(rec["version"])
        created = triggers[tid]
        k = bisect.bisect_right(times, created)
        at = top[k - 1] if k else -1
        i, t = first[rec["version"]]
        out.append({"version": rec["version"], "trigger_id": tid,
                    "seconds": (t - created) / 1000, "events": i - at})  # fmt: skip
    return out


def first_served(served: Iterable[tuple[int, str]]) -> dict[str, int]:
    """The first event index each version served, from (event index, version) pairs in
    any order.

    >>> first_served([(12, "v2"), (10, "v1"), (11, "v2"), (13, "v1")])
    {'v1': 10, 'v2': 11}
    """
    first: dict[str, int] = {}
    for i, v in served:
        if v not in first or i < first[v]:
            first[v] = i
    return dict(sorted(first.items(), key=lambda x: x[1]))


def onset_delays(
    onsets: Sequence[int], alarms: Iterable[int], served_from: Iterable[int], width: int = 0
) -> list[dict[str, int | None]]:
    """For each drift onset ``d`` (a true change point, event index): the events from
    ``d`` to the first alarm that answers it, and to the first event served by a version
    first served after that alarm; None where there is none before the next onset.

    ``alarms``: the stream position (event index) at which each alarm fired;
    ``served_from``: the first event index each version served (:func:`first_served`).
    An alarm answers ``d`` when it fired in ``[d - width, n - width)``, ``n`` the next
    onset (a gradual change of sigmoid ``width`` is under way from ``d - width``); a
    serving counts before ``n`` only.

    >>> got = onset_delays([1_000, 2_000, 3_000], [500, 1_040, 1_090, 2_900], [0, 1_200])
    >>> [(x["onset"], x["alarm"], x["serving"]) for x in got]
    [(1000, 40, 200), (2000, 900, None), (3000, None, None)]
    """
    alarms, firsts = sorted(alarms), sorted(served_from)
    out: list[dict[str, int | None]] = []
    for k, d in enumerate(onsets):
        end = onsets[k + 1] if k + 1 < len(onsets) else math.inf
        a = next((a for a in alarms if d - width <= a < end - width), None)
        s = None if a is None else next((f for f in firsts if a < f < end), None)
        out.append({"onset": d, "alarm": None if a is None else a - d,
                    "serving": None if s is None else s - d})  # fmt: skip
    return out


def positions(served: Sequence[tuple[int, int, str]], at_ms: Iterable[int]) -> list[int]:
    """The stream position of each wall-clock time in ``at_ms``: the highest event index
    predicted at or before it (-1 before the first), as :func:`trigger_to_serving` places
    a trigger. ``served``: (predicted_at_ms, event index, version).

    >>> positions([(1_000, 0, "v1"), (1_010, 2, "v1"), (1_020, 1, "v1")], [999, 1_015, 1_020])
    [-1, 2, 2]
    """
    by_time = sorted(served)
    times = [t for t, _, _ in by_time]
    top, highest = [], -1
    for _, i, _ in by_time:
        highest = max(highest, i)
        top.append(highest)
    out = []
    for t in at_ms:
        k = bisect.bisect_right(times, t)
        out.append(top[k - 1] if k else -1)
    return out


def label_to_learnt(
    outcomes: Iterable[Mapping[str, Any]], checkpoints: Iterable[Mapping[str, Any]]
) -> dict[str, list[int]]:
    """How long each label took to reach the online learner's published state, in ms of
    wall clock: ``join`` from the label's send (``label_time_ms``) to its outcome's
    record on the outcomes topic (``_at``: partition, offset, Kafka timestamp); ``learnt``
    from the label's send to the first checkpoint whose offset ranges on that partition
    reach past the outcome (``stage_changed_at_ms``: when the live loop published it).
    ``loop``: from the outcome's record to that checkpoint (the live loop's share).
    Outcomes no checkpoint holds (after the last, or of another model) have neither.

    >>> outs = [{"label_time_ms": 1_000 + 10 * i, "_at": (0, i, 1_050 + 10 * i)}
    ...         for i in range(4)]
    >>> cps = [{"stage_changed_at_ms": 1_100, "lineage": {"data_ranges": [
    ...     {"partition": 0, "start_offset": 0, "end_offset": 2}]}},
    ...     {"stage_changed_at_ms": 1_300, "lineage": {"data_ranges": [
    ...     {"partition": 0, "start_offset": 0, "end_offset": 3}]}}]
    >>> label_to_learnt(outs, cps)
    {'join': [50, 50, 50, 50], 'learnt': [100, 90, 280], 'loop': [50, 40, 230]}
    """
    reach: dict[int, tuple[list[int], list[int]]] = {}  # partition -> (ends, times)
    for cp in sorted(checkpoints, key=lambda c: c["stage_changed_at_ms"]):
        for r in (cp.get("lineage") or {}).get("data_ranges") or []:
            ends, times = reach.setdefault(int(r["partition"]), ([], []))
            if not ends or r["end_offset"] > ends[-1]:  # the furthest it reached, by then
                ends.append(int(r["end_offset"]))
                times.append(int(cp["stage_changed_at_ms"]))
    join, learnt, loop = [], [], []
    for o in outcomes:
        p, offset, ts = o["_at"]
        sent = int(o["label_time_ms"])
        join.append(ts - sent)
        ends, times = reach.get(p, ([], []))
        k = bisect.bisect_right(ends, offset)  # the first reach beyond the offset
        if k < len(ends):
            learnt.append(times[k] - sent)
            loop.append(times[k] - ts)
    return {"join": join, "learnt": learnt, "loop": loop}
