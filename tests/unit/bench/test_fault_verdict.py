"""The fault harness's verdict (bench/faults/run.py, Run.problems) without a broker: every
way a run can fail gives a line that says what went wrong, and the report ends with it."""

from __future__ import annotations

import pytest

from bench.faults.learning import Learning
from bench.faults.report import render
from bench.faults.run import LAST_AT, LAST_SCHEDULED, Fault, Options, Run, schedule
from bench.faults.verify import Result, Row
from bench.faults.watch import Probe


def passed_run() -> Run:
    o = Options(events=1000, quick=True)
    faults = schedule(o)
    for k, f in enumerate(faults):
        f.t, f.probe = 10.0 * k, Probe(0.0, 0, 0, recovered_s=3.0)
    rows = [Row("prediction", 1000, 1000), Row("outcome", 800, 800)]
    learning = Learning(checkpoints=9, learners=["online-1"], rows=800, outcomes=800)
    return Run(o, faults=faults, result=Result(rows), learning=learning, complete=True,
               seconds=60.0)  # fmt: skip


def test_a_clean_run_passes() -> None:
    r = passed_run()
    assert r.problems() == []
    assert r.ok
    assert render(r).splitlines()[-1] == "RESULT: PASS"


def test_each_failure_is_named() -> None:
    r = passed_run()
    r.unfired = [r.faults.pop()]
    assert r.faults[1].probe is not None
    r.faults[1].probe.recovered_s = None
    r.complete = False
    assert r.result is not None
    r.result.rows[1] = Row("outcome", 800, 799, lost=2, duplicated=1, lost_keys=["e7", "e9"])
    r.result.order_violations = ["outcomes/0 offset 5: label time 2 before 1"]
    assert r.learning is not None
    r.learning.twice, r.learning.bad = 3, ["online-1 at 5: 803 rows, 800 outcomes in its ranges"]
    problems = r.problems()
    assert problems == [
        f"{r.unfired[0].name()} did not fire: the earlier faults had not recovered by 92% "
        "of the events",
        f"{r.faults[1].name()} at 10.0 s did not recover",
        "not every expected result arrived within 120 s of the last event",
        "outcome: 799 of 800, 2 lost, 1 duplicated, 0 unexpected (lost: e7 e9)",
        "1 order violations",
        "online learner of churn: 3 outcomes learnt twice, 0 skipped (online-1 at 5: 803 "
        "rows, 800 outcomes in its ranges)",
    ]
    assert not r.ok
    lines = render(r).splitlines()
    assert lines[-1].startswith("RESULT: FAIL (logs: ")
    assert lines[-1 - len(problems) : -1] == [f"problem: {p}" for p in problems]


def test_no_verification_is_a_failure() -> None:
    r = passed_run()
    r.result = None
    assert r.problems() == ["no verification: the run stopped before it"]


def test_an_online_learner_unchecked_or_never_checkpointed_is_a_failure() -> None:
    r = passed_run()
    r.learning = None
    assert r.problems() == ["no check of the online learner: the run stopped before it"]
    r.learning = Learning()
    assert r.problems() == ["online learner of churn: no checkpoint was published"]


def test_a_retried_broker_restart_is_a_note_not_a_failure() -> None:
    r = passed_run()
    r.notes.append("broker restart try 1: broker.sh up failed with exit code 1")
    assert r.ok
    assert "note: broker restart try 1: broker.sh up failed with exit code 1" in render(r)


def test_the_quick_schedule_fires_the_stop_first_and_every_kind() -> None:
    faults = schedule(Options(events=1000, quick=True))
    assert faults[0].kind == "stop"
    assert {f.kind for f in faults} == {"stop", "kill", "burst", "broker", "trainer"}
    assert [f.at for f in faults if f.kind == "trainer"] == [0.3]  # beside the others
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    assert faults[0].at == 0.2 and faults[-1].at == LAST_SCHEDULED
    # room for the last fault's waits (8 s quick) before faults stop firing
    assert (LAST_AT - LAST_SCHEDULED) * 100 > 8 + 5
    assert Fault(0.5, "kill", 1).name() == "SIGKILL w1"
    assert Fault(0.3, "trainer").name() == "SIGKILL trainer"


def test_only_one_fault_of_a_kind() -> None:
    for kind in ("kill", "burst", "broker", "stop", "trainer"):
        faults = schedule(Options(events=1000, quick=True, only=kind))
        assert [(f.kind, f.at) for f in faults] == [(kind, 0.3)]
    assert schedule(Options(quick=True, only="stop"))[0].seconds == 12.0
    with pytest.raises(ValueError, match="unknown fault kind 'reboot'"):
        schedule(Options(only="reboot"))
