"""Incidents: judgements in, incident records out, as tables of ticks.

A tick is a string of ``scope:verdict`` words: ``bad`` (an alert, warning), ``BAD`` (an
alert, critical), ``ok`` (a healthy check), ``hold`` (a check, recovering); other
causes than performance degradation as ``cause@scope:verdict``. What a table expects is
the records published, as ``state`` (``+`` escalated), per tick."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.core.watch.incidents import (
    CAUSES,
    Check,
    Incidents,
    incident_key,
    open_incidents,
)
from driftline.core.wire.codec import default_codec

PERF = "performance_degradation"
CODEC = default_codec()


def judgements(tick: str) -> tuple[list[dict[str, Any]], list[Check]]:
    alerts, checks = [], []
    for word in tick.split():
        where, verdict = word.rsplit(":", 1)
        cause, _, scope = where.rpartition("@")
        cause = cause or PERF
        if verdict in ("bad", "BAD"):
            severity = "critical" if verdict == "BAD" else "warning"
            alerts.append({
                "alert_id": f"a-{scope}", "model": "churn", "version": "v1",
                "segment": scope, "kind": cause, "severity": severity,
                "message": f"{cause} on {scope}", "evidence": {"value": 0.5},
                "created_at_ms": 0,
            })  # fmt: skip
        else:
            checks.append(Check(cause, scope, verdict == "ok", "v2", f"{scope} fine",
                                {"value": 0.9}))  # fmt: skip
    return alerts, checks


def run(ticks: list[str], inc: Incidents | None = None, t0: int = 0) -> list[list[dict[str, Any]]]:
    inc = inc or Incidents("churn")
    out = []
    for i, tick in enumerate(ticks):
        alerts, checks = judgements(tick)
        alerts = [{**a, "created_at_ms": t0 + i * 1_000} for a in alerts]
        out.append(inc.observe(t0 + i * 1_000, alerts, checks))
    return out


def states(records: list[list[dict[str, Any]]]) -> list[str]:
    """Per tick: the states published, joined ('' when nothing)."""
    got = []
    for tick in records:
        words = []
        for r in tick:
            escalated = r["state"] == "firing" and r["opened_at_ms"] != r["created_at_ms"]
            words.append("+" if escalated else r["state"])
        got.append(" ".join(words))
    return got


# (name, ticks, expected states per tick)
LIFECYCLES = [
    (
        "a drifting stream that recovers: one incident, resolved",
        ["all:ok", "all:bad", "all:BAD", "all:BAD", "all:hold", "all:ok", "all:ok", "all:ok",
         "all:ok"],
        ["", "firing", "+", "", "", "", "", "resolved", ""],
    ),
    (
        "flapping around the threshold: bad and recovering, one incident, still firing",
        ["all:bad", "all:hold", "all:bad", "all:hold", "all:bad", "all:hold", "all:hold"],
        ["firing", "", "", "", "", "", ""],
    ),
    (
        "flapping across the clearing threshold: an alert resets the healthy count",
        ["all:bad", "all:ok", "all:ok", "all:bad", "all:ok", "all:ok", "all:bad", "all:ok"],
        ["firing", "", "", "", "", "", "", ""],
    ),
    (
        "recovering judgements neither count nor reset",
        ["all:bad", "all:ok", "all:hold", "all:ok", "all:hold", "all:ok"],
        ["firing", "", "", "", "", "resolved"],
    ),
    (
        "segments folded into the all incident: resolved once all is healthy and no segment "
        "alerted for as long",
        ["all:BAD a:bad b:bad", "all:BAD a:BAD b:bad", "all:ok a:ok b:bad",
         "all:ok a:ok b:hold", "all:ok a:ok b:hold", "all:ok b:ok"],
        ["firing", "", "", "", "", "resolved"],
    ),
    (
        "a segment alone raises its own incident while all is healthy",
        ["all:ok a:bad", "all:ok a:bad", "all:ok a:ok", "all:ok a:ok", "all:ok a:ok"],
        ["firing", "", "", "", "resolved"],
    ),
    (
        "all degrading later joins the segment's incident",
        ["all:ok a:bad", "all:BAD a:bad", "all:ok a:ok", "all:ok a:ok", "all:ok a:ok"],
        ["firing", "+", "", "", "resolved"],
    ),
    (
        "a segment no longer judged does not hold the incident open",
        ["all:bad a:bad", "all:ok", "all:ok", "all:ok"],
        ["firing", "", "", "resolved"],
    ),
    (
        "nor does a segment still recovering, once all is healthy",
        ["all:bad a:bad", "all:ok a:hold", "all:ok a:hold", "all:ok a:hold", "all:ok a:ok"],
        ["firing", "", "", "resolved", ""],
    ),
    (
        "a segment's own incident needs that segment healthy",
        ["all:ok a:bad", "all:ok a:hold", "all:ok a:hold", "all:ok a:ok", "all:ok a:ok",
         "all:ok a:ok"],
        ["firing", "", "", "", "", "resolved"],
    ),
    (
        "a segment's own incident, the segment no longer judged",
        ["all:ok a:bad", "all:ok", "all:ok", "all:ok"],
        ["firing", "", "", "resolved"],
    ),
    (
        "two causes, two incidents, each with its own lifecycle",
        ["all:bad concept_drift@all:bad", "all:ok concept_drift@all:hold", "all:ok",
         "all:ok concept_drift@all:ok", "concept_drift@all:ok", "concept_drift@all:ok"],
        ["firing firing", "", "", "resolved", "", "resolved"],
    ),
    (
        "recovered, then a new drift: a new incident",
        ["all:bad", "all:ok", "all:ok", "all:ok", "all:bad"],
        ["firing", "", "", "resolved", "firing"],
    ),
    (
        "checks without an open incident publish nothing",
        ["all:ok a:hold", "all:hold", "concept_drift@all:ok"],
        ["", "", ""],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ticks", "want"), [r[1:] for r in LIFECYCLES], ids=[r[0] for r in LIFECYCLES]
)
def test_lifecycle(ticks: list[str], want: list[str]) -> None:
    records = run(ticks)
    assert states(records) == want
    flat = [r for tick in records for r in tick]
    for r in flat:  # every record is an Alert v2 as published
        assert CODEC.decode(CODEC.encode("Alert", r)).value == r
        assert r["incident_key"] == incident_key("churn", r["kind"])
    for cause in {r["kind"] for r in flat}:
        mine = [r for r in flat if r["kind"] == cause]
        opened = [r for r in mine if r["state"] == "firing" and r["opened_at_ms"] == r[
            "created_at_ms"]]  # fmt: skip
        assert len({r["incident_id"] for r in mine}) == len(opened)  # one id per incident


def test_resolved_says_how_long_and_why() -> None:
    ticks = ["all:BAD a:bad", "all:BAD a:bad b:bad", "all:ok a:ok b:ok", "all:ok a:ok b:ok",
             "all:ok a:ok b:ok"]  # fmt: skip
    records = run(ticks, t0=10_000)
    (firing,) = records[0]
    (resolved,) = records[-1]
    assert firing["state"] == "firing" and firing["segments"] == ["all", "a"]
    assert firing["message"] == "performance_degradation on all"  # the alert's own
    assert resolved["incident_id"] == firing["incident_id"]
    assert (resolved["opened_at_ms"], resolved["resolved_at_ms"]) == (10_000, 14_000)
    assert resolved["duration_ms"] == 4_000
    assert resolved["segments"] == ["all", "a", "b"]
    assert resolved["versions"] == ["v1"] and resolved["version"] == "v2"
    assert resolved["severity"] == "critical"
    assert resolved["message"].startswith("Resolved after 4 s: all fine (segments a, b too)")
    assert "5 alerts folded" in resolved["message"]
    assert resolved["evidence"] == {"value": 0.9, "alerts": 5, "healthy_checks": 3}


def test_folded_alerts_are_counted_not_published() -> None:
    inc = Incidents("churn")
    run(["all:bad a:bad b:bad", "all:bad a:bad", "all:bad"], inc)
    (open_,) = inc.open.values()
    assert (open_.alerts, inc.folded) == (6, 5)


def test_notices_pass_through_with_no_state() -> None:
    inc = Incidents("churn")
    notice: dict[str, Any] = {"alert_id": "n1", "model": "churn", "version": "v1", "segment": None,
              "kind": "artifact_rejected", "severity": "critical", "message": "m",
              "evidence": {}, "created_at_ms": 5}  # fmt: skip
    (out,) = inc.observe(5, [notice, notice])[:1]
    assert out["state"] is None and out["incident_key"] is None
    assert len(inc.observe(6, [notice, notice])) == 2  # each one is published
    assert inc.open == {}


# -- a restart in the middle ------------------------------------------------------------------

RESTARTS = [
    # (name, ticks before the restart, ticks after it, states after it)
    ("still firing: no page again, resolves later", ["all:bad a:bad"],
     ["all:bad", "all:ok a:ok", "all:ok a:ok", "all:ok a:ok"], ["", "", "", "resolved"]),
    ("escalated after the restart: published again", ["all:bad"],
     ["all:BAD", "all:BAD"], ["+", ""]),
    ("escalated before it: not again", ["all:bad", "all:BAD"], ["all:BAD"], [""]),
    ("resolved before it: a new drift is a new incident", ["all:bad", "all:ok", "all:ok",
     "all:ok"], ["all:bad"], ["firing"]),
    ("an open segment waits for its evidence", ["all:ok a:bad"],
     ["all:ok a:hold", "all:ok a:ok", "all:ok a:ok", "all:ok a:ok"], ["", "", "", "resolved"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("before", "after", "want"), [r[1:] for r in RESTARTS], ids=[r[0] for r in RESTARTS]
)
def test_a_restart_in_the_middle(before: list[str], after: list[str], want: list[str]) -> None:
    published = [r for tick in run(before) for r in tick]
    topic = [CODEC.decode(CODEC.encode("Alert", r)).value for r in published]
    restarted = Incidents("churn")
    for record in open_incidents(topic).get("churn", []):
        restarted.restore(record)
    records = run(after, restarted, t0=len(before) * 1_000)
    assert states(records) == want
    ids = {r["incident_id"] for r in published if r["state"] == "firing"}
    for tick in records:
        for r in tick:
            if r["state"] == "resolved" or r["opened_at_ms"] != r["created_at_ms"]:
                assert r["incident_id"] in ids  # the same incident, carried on


FOLDS = [
    # (name, records as (kind, state, incident id), open after them)
    ("nothing", [], []),
    ("one firing", [(PERF, "firing", "i1")], [(PERF, "i1")]),
    ("firing then resolved", [(PERF, "firing", "i1"), (PERF, "resolved", "i1")], []),
    ("escalated: the newest record", [(PERF, "firing", "i1"), (PERF, "firing", "i1")],
     [(PERF, "i1")]),
    ("a stale resolved of another incident", [(PERF, "firing", "i2"), (PERF, "resolved", "i1")],
     [(PERF, "i2")]),
    ("notices and v1 alerts are no incidents", [("artifact_rejected", None, None),
     (PERF, None, None)], []),
    ("two causes", [(PERF, "firing", "i1"), ("skew_rate", "firing", "i2"),
     (PERF, "resolved", "i1")], [("skew_rate", "i2")]),
]  # fmt: skip


@pytest.mark.parametrize(("records", "want"), [r[1:] for r in FOLDS], ids=[r[0] for r in FOLDS])
def test_open_incidents_folds_the_topic(
    records: list[tuple[str, str | None, str | None]], want: list[tuple[str, str]]
) -> None:
    topic = [
        {"model": "churn", "kind": kind, "state": state, "incident_id": iid,
         "severity": "warning", "created_at_ms": n}
        for n, (kind, state, iid) in enumerate(records)
    ]  # fmt: skip
    got = open_incidents(topic)
    assert sorted((r["kind"], r["incident_id"]) for r in got.get("churn", [])) == sorted(want)
    assert set(got) <= {"churn"}


def test_every_cause_is_a_kind_the_rules_raise() -> None:
    import inspect

    from driftline.core.watch import alerts

    source = inspect.getsource(alerts)
    assert all(f'"{cause}"' in source or cause == "concept_drift" for cause in CAUSES)


def test_clear_checks_must_be_positive() -> None:
    with pytest.raises(ValueError, match="clear_checks"):
        Incidents("churn", clear_checks=0)
