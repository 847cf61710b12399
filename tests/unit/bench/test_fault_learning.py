"""The fault harness's check of the online learner (bench/faults/learning.py) without a
broker: a checkpoint's rows against the committed outcomes inside its offset ranges."""

from __future__ import annotations

from typing import Any

import pytest

from bench.faults.learning import Learning, counted

OFFSETS = {("o", 0): [0, 2, 3, 5, 7], ("o", 1): [1, 4]}


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        ([], 0),
        ([{"topic": "o", "partition": 0, "start_offset": 0, "end_offset": 8}], 5),
        ([{"topic": "o", "partition": 0, "start_offset": 2, "end_offset": 6}], 3),
        ([{"topic": "o", "partition": 0, "start_offset": 3, "end_offset": 3}], 0),
        ([{"topic": "o", "partition": 0, "start_offset": 3, "end_offset": 8},
          {"topic": "o", "partition": 1, "start_offset": 0, "end_offset": 4}], 4),
        ([{"topic": "o", "partition": 2, "start_offset": 0, "end_offset": 9}], 0),
    ],
)  # fmt: skip
def test_outcomes_inside_a_checkpoints_ranges(ranges: list[dict[str, Any]], expected: int) -> None:
    assert counted(OFFSETS, ranges) == expected


@pytest.mark.parametrize(
    ("learning", "problems"),
    [
        (Learning(checkpoints=4, learners=["online-1"], rows=10, outcomes=10), []),
        (Learning(), ["online learner of churn: no checkpoint was published"]),
        (Learning(checkpoints=4, twice=2, bad=["online-1 at 7: 12 rows, 10 outcomes in its "
                                                "ranges"]),
         ["online learner of churn: 2 outcomes learnt twice, 0 skipped (online-1 at 7: 12 "
          "rows, 10 outcomes in its ranges)"]),
        (Learning(checkpoints=4, skipped=1, bad=["x"]),
         ["online learner of churn: 0 outcomes learnt twice, 1 skipped (x)"]),
    ],
)  # fmt: skip
def test_the_verdict_names_outcomes_learnt_twice_or_skipped(
    learning: Learning, problems: list[str]
) -> None:
    assert learning.problems() == problems


def test_the_report_line_says_what_the_last_checkpoint_holds() -> None:
    line = Learning(checkpoints=19, learners=["online-1"], rows=11923, outcomes=11923).line()
    assert line == (
        "online learner (churn, online-1): 19 checkpoints, the last holds 11923 rows of 11923 "
        "outcomes (0 before it started, 0 after its last checkpoint); learnt twice 0, skipped 0"
    )
