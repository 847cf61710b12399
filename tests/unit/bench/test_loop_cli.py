"""``python -m bench.loop``'s choice of runs, without running them."""

from __future__ import annotations

import pytest

from bench.loop.cli import FULL, QUICK, STATIONARY, parse, tasks


@pytest.mark.parametrize(
    ("argv", "drifting", "stationary", "events"),
    [
        ([], 2 * 2 * FULL["seeds"], 3, FULL["stationary"]),
        (["--quick"], 2 * 2 * QUICK["seeds"], 3, QUICK["stationary"]),
        (["--stationary-only"], 0, 3, FULL["stationary"]),
        (["--stationary-only", "--streams", "sea"], 0, len(STATIONARY["sea"]), 200_000),
        (["--no-stationary", "--delays", "500"], 2 * FULL["seeds"], 0, None),
    ],
)
def test_runs_chosen_by_the_command_line(
    argv: list[str], drifting: int, stationary: int, events: int | None
) -> None:
    todo = tasks(parse(argv))
    assert sum(not t.stationary for t in todo) == drifting
    still = [t for t in todo if t.stationary]
    assert len(still) == stationary
    assert all(t.events == events and t.delay == 500 for t in still)
    assert {(t.kind, t.concepts) for t in still} <= {
        (k, (c,)) for k, cs in STATIONARY.items() for c in cs
    }


def test_tick_and_retrain_settings_reach_every_run() -> None:
    todo = tasks(parse(["--stationary-only", "--tick-every", "500", "--set", "growth=1.5"]))
    assert todo and all(t.tick_every == 500 and t.retrain == (("growth", 1.5),) for t in todo)
