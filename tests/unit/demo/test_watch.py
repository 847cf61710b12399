"""The demo's view of the loop: what the replay waits for (the worker's outcomes and the
trainer's online learner), read from the topics' records."""

from __future__ import annotations

import pytest

from driftline.demo.watch import Seen, Watcher
from driftline.settings import Settings


def seen(outcomes: int, learnt: int | None) -> Seen:
    return Seen(outcomes={i: ("v1", True) for i in range(outcomes)}, learnt=learnt)


@pytest.mark.parametrize(
    ("sent", "outcomes", "learnt", "behind"),
    [
        (2_000, 0, None, None),  # within the label delay and the lag
        (2_001, 0, None, "worker"),
        (5_000, 3_000, None, None),  # no learner: only the worker counts
        (5_000, 3_000, 1_500, None),
        (5_000, 3_000, 1_499, "learner"),
        (9_000, 3_000, 0, "worker"),  # the worker first
    ],
)
def test_the_replay_waits_for_what_trails(
    sent: int, outcomes: int, learnt: int | None, behind: str | None
) -> None:
    assert seen(outcomes, learnt).behind(sent, 500, 1_500) == behind


def test_a_checkpoint_says_how_far_the_learner_stands() -> None:
    w = Watcher(Settings())
    ranges = [{"topic": "o", "partition": p, "start_offset": 0, "end_offset": 100 * (p + 1)}
              for p in range(3)]  # fmt: skip
    record = {"model": "demo", "version": "online-1", "stage": "checkpoint",
              "stage_reason": "r", "lineage": {"data_ranges": ranges}}  # fmt: skip
    w._take("ModelVersion", record)
    assert w.seen.learnt == 600
    w._take("ModelVersion", {**record, "lineage": {"data_ranges": ranges[:1]}})  # older
    assert w.seen.learnt == 600
    w._take("ModelVersion", {**record, "stage": "challenger"})  # a stage: not a state
    assert w.seen.learnt == 600
