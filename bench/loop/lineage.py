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
