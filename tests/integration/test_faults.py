"""The fault harness (bench/faults, issue 7) in its quick mode: SIGKILLs of each worker, a
burst of kills, a hard broker restart and a SIGSTOPped worker, on a broker the harness
starts (and kills) itself. Every output must be there exactly once, in order, for each
model: ``twin`` scores every event of ``churn`` under the same event_id (issue 23) and
must get every outcome with its own label, as churn does. The trainer runs with its live
loop (churn's online challenger) and is SIGKILLed once: no outcome may be learnt twice or
skipped by the online learner after its restart (bench/faults/learning.py)."""

from __future__ import annotations

from bench.faults.run import QUICK_EVENTS, QUICK_RATE, Options
from tests.integration.faultruns import assert_every_output_once, checked_run


def test_quick_fault_schedule_loses_and_duplicates_nothing() -> None:
    r, report = checked_run(Options(events=QUICK_EVENTS, rate=QUICK_RATE, quick=True))
    assert {f.kind for f in r.faults} == {"kill", "burst", "broker", "stop", "cont", "trainer"}, (
        report
    )
    assert r.unfired == [], report
    assert r.result is not None, report
    rows = {row.kind: row for row in r.result.rows}
    for what in ("prediction", "outcome", "duplicate_label"):
        assert rows[f"{what} twin"].expected > 0, report  # two models share every id
        assert rows[f"{what} twin"].expected == rows[f"{what} twin"].got, report
    assert rows["outcome twin"].expected == rows["outcome churn"].expected, report
    assert_every_output_once(r, report)
    learning = r.learning
    assert learning is not None and learning.checkpoints > 0, report
    assert (learning.twice, learning.skipped) == (0, 0), report
    assert learning.rows + learning.pending + learning.before == learning.outcomes, report


def test_a_broker_restart_alone_is_recovered_from() -> None:
    """A hard broker restart and no worker restart after it: the quick schedule's later
    SIGKILLs had hidden that every loop then hung for good in librdkafka's
    send_offsets_to_transaction (librdkafka #5456, #5511; driftline/kafka/txn.py, STUCK_S)."""
    r, report = checked_run(Options(events=9000, rate=QUICK_RATE, quick=True, only="broker"))
    assert [f.kind for f in r.faults] == ["broker"], report
    assert r.exits == [], report  # recovered inside the workers, not by restarting them
