"""Exactly-once learning of the online challenger, checked from the topics.

The trainer's live loop learns every committed outcome of ``churn`` into an online
learner and publishes its state as checkpoint records on the registry topic, each with
the outcome offsets its state holds (``lineage.data_ranges``: per partition, from the
first offset it learnt to the next one to learn) and the rows it has learnt
(``lineage.rows``; ``learn_fraction`` 1: every outcome). So for every checkpoint, the
rows it has learnt must equal the committed outcomes of its model inside its ranges: more
means an outcome was learnt twice into the state (a restarted trainer that did not skip
what its checkpoint held), fewer that one was skipped. Outcomes past the last checkpoint
are learnt but not yet published (reported, not an error).

>>> ranges = [{"topic": "o", "partition": 0, "start_offset": 2, "end_offset": 6}]
>>> counted({("o", 0): [0, 2, 3, 5, 7]}, ranges)
3
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.faults.verify import scan
from driftline.settings import Settings

LEARNER_MODEL = "churn"
"""The model whose online learner the harness configures (workload.MODELS)."""


def counted(
    offsets: Mapping[tuple[str, int], Sequence[int]], ranges: Sequence[Mapping[str, Any]]
) -> int:
    """Outcome offsets (sorted, per topic and partition) inside ``ranges``."""
    n = 0
    for r in ranges:
        offs = offsets.get((r["topic"], r["partition"]), [])
        n += bisect.bisect_left(offs, r["end_offset"]) - bisect.bisect_left(offs, r["start_offset"])
    return n


@dataclass
class Learning:
    """What the online learners' checkpoints hold against the outcomes topic."""

    checkpoints: int = 0
    learners: list[str] = field(default_factory=list)  # online versions, in order
    rows: int = 0  # the last checkpoint's rows learnt
    outcomes: int = 0  # committed outcomes of the model on the topic
    before: int = 0  # of them, before the learner's first offsets (it started at the end)
    pending: int = 0  # after the last checkpoint's end offsets: learnt, not yet published
    twice: int = 0  # most rows over the outcomes in its ranges, over every checkpoint
    skipped: int = 0  # most outcomes in its ranges not learnt, over every checkpoint
    bad: list[str] = field(default_factory=list)  # the first checkpoints that disagree

    def problems(self) -> list[str]:
        out = []
        if self.checkpoints == 0:
            out.append(f"online learner of {LEARNER_MODEL}: no checkpoint was published")
        if self.twice or self.skipped:
            out.append(f"online learner of {LEARNER_MODEL}: {self.twice} outcomes learnt twice, "
                       f"{self.skipped} skipped ({'; '.join(self.bad)})")  # fmt: skip
        return out

    def line(self) -> str:
        return (f"online learner ({LEARNER_MODEL}, {', '.join(self.learners) or '-'}): "
                f"{self.checkpoints} checkpoints, the last holds {self.rows} rows of "
                f"{self.outcomes} outcomes ({self.before} before it started, {self.pending} "
                f"after its last checkpoint); learnt twice {self.twice}, skipped "
                f"{self.skipped}")  # fmt: skip


def _read(s: Settings, topics: Sequence[str]) -> list[tuple[str, int, int, dict[str, Any]]]:
    """Every committed record of ``topics`` as (topic, partition, offset, value)."""
    return [(topic, partition, offset, value)
            for topic, partition, offset, _, value
            in scan(s, topics, "read_committed", "faults-learning")]  # fmt: skip


def check(s: Settings, model: str = LEARNER_MODEL) -> Learning:
    """Every checkpoint of ``model``'s online learners against the committed outcomes."""
    records = _read(s, ("registry", "outcomes"))
    offsets: dict[tuple[str, int], list[int]] = {}
    checkpoints = []
    for topic, part, off, v in sorted(records, key=lambda r: (r[0], r[1], r[2])):
        if v.get("model") != model:
            continue
        if topic == s.topic("outcomes"):
            offsets.setdefault((topic, part), []).append(off)
        elif v.get("stage") == "checkpoint":
            checkpoints.append(v)
    got = Learning(outcomes=sum(len(o) for o in offsets.values()))
    got.checkpoints = len(checkpoints)
    for c in checkpoints:
        if c["version"] not in got.learners:
            got.learners.append(c["version"])
        ranges = c["lineage"]["data_ranges"]
        rows, inside = int(c["lineage"]["rows"]), counted(offsets, ranges)
        if rows != inside and len(got.bad) < 3:
            got.bad.append(f"{c['version']} at {c['stage_changed_at_ms']}: {rows} rows, "
                           f"{inside} outcomes in its ranges")  # fmt: skip
        got.twice = max(got.twice, rows - inside)
        got.skipped = max(got.skipped, inside - rows)
    if checkpoints:
        last = checkpoints[-1]
        ranges = last["lineage"]["data_ranges"]
        got.rows = int(last["lineage"]["rows"])
        first = {(r["topic"], r["partition"]): r["start_offset"] for r in ranges}
        end = {(r["topic"], r["partition"]): r["end_offset"] for r in ranges}
        for tp, offs in offsets.items():
            got.before += bisect.bisect_left(offs, first.get(tp, 0))
            got.pending += len(offs) - bisect.bisect_left(offs, end.get(tp, 0))
    return got
