"""The status page's memory rebuilt from the topics after a restart (streams/monitors.py
``Recent.restore``, streams/restore.py ``restore``): the newest snapshot per key, marked
until a fresh one comes, never over what this worker emitted itself; the newest alerts and
triggers, one per id."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.core.watch.monitor import Emit
from driftline.streams.monitors import Recent
from driftline.streams.restore import Tail, restore
from driftline.streams.statuspage import render

T0 = 1_700_000_000_000


def snap(version: str, t: int, acc: float, segment: str = "all", window: str = "count:100"):
    return {"model": "churn", "version": version, "segment": segment, "window": window,
            "window_start_ms": T0, "window_end_ms": T0 + t, "emitted_at_ms": T0 + t,
            "count": 100, "metrics": {"accuracy": acc}, "baseline": {}, "counts": {}}  # fmt: skip


def shuffled(items: list[Any], seed: int = 3) -> list[Any]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


TOPIC = [snap(v, t, t / 100, seg, w) for t in range(1, 6) for v in ("v1", "v2")
         for seg in ("all", "plan=pro") for w in ("count:100", "time:60s")]  # fmt: skip
"""Five ticks of a champion and a challenger, two segments, two windows."""

Case = tuple[
    str,
    list[dict[str, Any]],
    list[dict[str, Any]],
    dict[tuple[str, str, str], float],
    set[tuple[str, str, str, str]],
    dict[str, list[int]],
]
CASES: list[Case] = [
    # name, emitted before the restore, read back, accuracy per key after, keys marked,
    # charted points per version (ms after T0)
    ("empty memory: the newest of each key", [], TOPIC,
     {("v1", "all", "count:100"): 0.05, ("v2", "plan=pro", "time:60s"): 0.05},
     {("churn", v, s, w) for v in ("v1", "v2") for s in ("all", "plan=pro")
      for w in ("count:100", "time:60s")},
     {"v1": [1, 2, 3, 4, 5], "v2": [1, 2, 3, 4, 5]}),
    # the worker published its fresh snapshot at 3: the topic holds it too
    ("a key emitted since start-up is not overwritten", [snap("v1", 3, 0.9)], TOPIC,
     {("v1", "all", "count:100"): 0.9, ("v2", "all", "count:100"): 0.05},
     {("churn", v, s, w) for v in ("v1", "v2") for s in ("all", "plan=pro")
      for w in ("count:100", "time:60s")} - {("churn", "v1", "all", "count:100")},
     {"v1": [1, 2, 3], "v2": [1, 2, 3, 4, 5]}),
    ("nothing on the topic", [snap("v1", 3, 0.9)], [],
     {("v1", "all", "count:100"): 0.9}, set(), {"v1": [3]}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "before", "topic", "expect", "marked", "charted"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_restore_keeps_the_newest_and_marks_it(
    name: str,
    before: list[dict[str, Any]],
    topic: list[dict[str, Any]],
    expect: dict[tuple[str, str, str], float],
    marked: set[tuple[str, str, str, str]],
    charted: dict[str, list[int]],
) -> None:
    r = Recent()
    for v in before:
        r.add(Emit("metrics", "churn", v))
    assert r.restore(shuffled(topic), at_ms=T0 + 10) == len(marked)
    assert r.restored == marked and r.restored_at_ms == T0 + 10
    for (version, seg, window), acc in expect.items():
        assert r.snapshots[("churn", version, seg, window)]["metrics"]["accuracy"] == acc
    # charted points in time order, one per tick
    assert {v: [t - T0 for t, _ in h] for (_, v), h in r.history.items()} == charted
    for key in list(marked):  # a fresh snapshot lifts the mark of its key only
        r.add(Emit("metrics", "churn", snap(key[1], 9, 0.7, key[2], key[3])))
        assert key not in r.restored
        marked.discard(key)
        assert r.restored == marked


def test_restore_keeps_the_newest_alerts_and_triggers_once() -> None:
    r = Recent(keep=3)
    r.add(Emit("alerts", "churn", {"alert_id": "fresh", "created_at_ms": T0 + 50}))
    old = [{"alert_id": f"a{i}", "created_at_ms": T0 + i} for i in range(5)]
    r.restore([], alerts=shuffled([*old, old[4]]), triggers=[
        {"trigger_id": "t1", "created_at_ms": T0 + 1}], at_ms=T0)  # fmt: skip
    assert [a["alert_id"] for a in r.alerts] == ["a3", "a4", "fresh"]
    assert [t["trigger_id"] for t in r.triggers] == ["t1"]
    r.add(Emit("alerts", "churn", {"alert_id": "next", "created_at_ms": T0 + 60}))
    assert [a["alert_id"] for a in r.alerts] == ["a4", "fresh", "next"]  # still bounded


def test_restore_keeps_the_versions_emitted_last() -> None:
    r = Recent(versions_per_model=2)
    r.restore([snap("v1", 1, 0.5), snap("v2", 5, 0.5), snap("v3", 3, 0.5)])
    assert sorted(r.history) == [("churn", "v2"), ("churn", "v3")]
    assert {k[1] for k in r.snapshots} == {"v2", "v3"} and {k[1] for k in r.restored} == {
        "v2",
        "v3",
    }


def test_restore_from_tails_and_the_page_says_so() -> None:
    r = Recent()
    tails = {"metrics": Tail([snap("v1", 1, 0.5)], skipped=2),
             "alerts": Tail([{"alert_id": "a", "created_at_ms": T0}])}  # fmt: skip
    assert restore(r, tails, at_ms=T0 + 5) == 1
    assert len(r.alerts) == 1 and not r.triggers
    doc: dict[str, Any] = {"generated_at_ms": T0, "models": [{"model": "churn", "served": [
        {"version": "v1", "role": "champion", "restored": True, "segments": [], "drift": {},
         "windows": [{"window": "count:100", "count": 100, "metrics": {"accuracy": 0.5},
                      "restored": True}]}]}],
        "alerts": [], "triggers": [], "restored": {"at_ms": T0 + 5, "snapshots": 1}}  # fmt: skip
    page = render(doc)
    assert "(last known, restored at start-up)" in page
    assert "1 snapshots restored from the metrics topic" in page
    doc["models"][0]["served"][0]["restored"] = False
    doc["restored"] = {"at_ms": T0 + 5, "snapshots": 0}
    page = render(doc)
    assert "restored" not in page
