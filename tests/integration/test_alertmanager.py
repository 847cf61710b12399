"""Incidents reach a real Alertmanager the way Prometheus users expect: a running worker
exports ``driftline_incident_firing``, a real Prometheus (Debian's binary) scrapes it and
evaluates the shipped rules (infra/prometheus/rules/incidents.yml), and a real
Alertmanager (Debian's prometheus-alertmanager, with infra/alertmanager/alertmanager.yml)
groups and notifies. A stream drifts, the worker crashes and restarts in the middle of
the drift, then the stream recovers: Alertmanager holds one alert group per incident on
the alerts topic, labelled for grouping, inhibiting and silencing; the restarted worker
rebuilds the open incidents from the topic and pages for none of them again; each is
resolved, and notified as resolved, after the recovery."""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import harness
from tests.integration.churn import example, send, worker_url
from tests.integration.observability import Alertmanager, Prometheus, webhook

LABELS = {"alertname", "model", "cause", "severity", "version"}


@pytest.fixture
def stack(
    pipeline, tmp_path: Path
) -> Iterator[tuple[Prometheus, Alertmanager, list[dict[str, Any]]]]:
    _, _, proc = pipeline
    with webhook() as (url, received), Alertmanager(tmp_path / "am", url) as am:
        target = worker_url(proc, "").removeprefix("http://")
        am_target = am.url.removeprefix("http://")
        with Prometheus(tmp_path / "prometheus", target, alertmanagers=[am_target]) as prom:
            yield prom, am, received


def incidents(s: Any, until: Any, timeout: float = 120) -> dict[str, list[dict[str, Any]]]:
    """The incident records on the alerts topic, by incident id, once ``until`` holds."""

    def grouped(got: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for a in got:
            if a.get("state") is not None:
                out.setdefault(a["incident_id"], []).append(a)
        return out

    got = harness.collect(s, "alerts", lambda g: until(grouped(g)), timeout=timeout)
    return grouped(got)


def test_a_drift_a_restart_and_the_recovery_reach_alertmanager(
    pipeline, stack, tmp_path: Path
) -> None:
    s, champion, proc = pipeline
    prom, am, received = stack
    rng = random.Random(21)
    send(s, [example(rng, i) for i in range(1_500)])
    prom.wait("the worker scraped", lambda: prom.query(
        'driftline_events_in_total{stage="score"} >= 1500'), 90)  # fmt: skip

    # drift: the label of plan=pro flips
    send(s, [example(rng, 1_500 + i, shift=0.01) for i in range(2_000)])
    opened = incidents(s, lambda g: {r[0]["kind"] for r in g.values()} >= {
        "performance_degradation", "concept_drift"})  # fmt: skip
    assert all(r[0]["state"] == "firing" for r in opened.values()), proc.tail()
    causes = {r[0]["kind"]: r[0] for r in opened.values()}
    assert len(causes) == len(opened)  # one incident per cause
    perf = causes["performance_degradation"]
    assert perf["segments"][0] == "all" and "plan=pro" in perf["segments"]

    def held() -> list[dict[str, Any]]:
        groups = [g for g in am.groups() if g["labels"].get("alertname") == "DriftlineIncident"]
        return groups if {g["labels"]["cause"] for g in groups} >= set(causes) else []

    groups = am.wait("a group per incident", held, 90)
    assert sorted(g["labels"]["cause"] for g in groups) == sorted(causes)  # one group each
    for g in groups:
        assert g["labels"] == {"alertname": "DriftlineIncident", "model": "churn",
                               "cause": g["labels"]["cause"]}  # fmt: skip
        record = causes[g["labels"]["cause"]]
        firing = [a for a in g["alerts"] if a["status"]["state"] == "active"]
        assert len(firing) == 1, g
        labels = firing[0]["labels"]
        assert set(labels) >= LABELS and "instance" not in labels
        assert labels["version"] == champion and labels["severity"] == record["severity"]
        assert firing[0]["annotations"]["runbook"] == f"docs/on-call.md#{labels['cause']}"

    def notified(status: str) -> set[str]:
        return {n["groupLabels"]["cause"] for n in received if n["status"] == status}

    am.wait("the firing notifications", lambda: notified("firing") >= set(causes))
    assert notified("firing") == set(causes)
    ids = set(opened)

    # the worker crashes and restarts (same web port) while the drift goes on
    before = incidents(s, lambda g: False, timeout=3)
    proc.stop(signal.SIGKILL)
    again = harness.Process(s, proc.args, tmp_path / "worker-again.log",
                            "driftline worker ready").start()  # fmt: skip
    try:
        assert f"incidents: {len(causes)} still open on {s.topic('alerts')}" in again.tail()
        send(s, [example(rng, 3_500 + i, shift=0.01) for i in range(1_000)])
        prom.wait("the restarted worker scraped", lambda: prom.query(
            'driftline_events_in_total{stage="monitor"} >= 1500'), 90)  # fmt: skip
        prom.wait("its gauge", lambda: prom.query("driftline_incident_firing == 1"), 30)
        after = incidents(s, lambda g: False, timeout=3)
        assert after == before, "no record published again for the incidents still open"
        assert not [n for n in received if n["status"] == "resolved"], "none resolved meanwhile"
        assert [a for a in am.alerts() if a["labels"].get("alertname") == "DriftlineIncident"]

        # recovery: the concept comes back; every incident resolves, once
        send(s, [example(rng, 4_500 + i) for i in range(3_000)])
        check_recovery(s, am, prom, received, ids, causes)
    finally:
        again.stop()


def check_recovery(s: Any, am: Alertmanager, prom: Prometheus, received: list[dict[str, Any]],
                   ids: set[str], causes: dict[str, Any]) -> None:  # fmt: skip
    def notified(status: str) -> set[str]:
        return {n["groupLabels"]["cause"] for n in received if n["status"] == status}

    closed = incidents(s, lambda g: all(
        any(r["state"] == "resolved" for r in g.get(i, [])) for i in ids), timeout=180)  # fmt: skip
    for i in ids:
        states = [r["state"] for r in closed[i]]
        assert states[-1] == "resolved" and states.count("resolved") == 1, closed[i]
        resolved = closed[i][-1]
        assert resolved["duration_ms"] == resolved["resolved_at_ms"] - resolved["opened_at_ms"]
        assert resolved["evidence"], resolved
    assert set(closed) == ids, "no new incident after the recovery"

    def all_resolved() -> bool:
        active = [a for a in am.alerts(active="true", silenced="true", inhibited="true")
                  if a["labels"].get("alertname") == "DriftlineIncident"]  # fmt: skip
        return not active and notified("resolved") >= set(causes)

    am.wait("every incident resolved in Alertmanager", all_resolved, 120)
    last = {}
    for n in received:
        last[n["groupKey"]] = n
    assert len(last) == len(causes)  # one group per incident, all along
    for n in last.values():
        assert n["status"] == "resolved" and all(a["status"] == "resolved" for a in n["alerts"])
    gauge = prom.query("driftline_incident_firing")
    assert gauge and set(gauge.values()) == {0.0}, gauge
