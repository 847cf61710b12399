"""A real Prometheus (Debian's binary) scrapes a running worker's /metrics every second
and evaluates infra/prometheus/rules/*.yml plus a rule that must fire."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.churn import example, send, worker_url
from tests.integration.observability import RULES_DIR, Prometheus

TEST_RULES = {
    "groups": [
        {
            "name": "driftline-test",
            "rules": [
                {
                    "alert": "DriftlineTestEventsScored",
                    "expr": 'sum(driftline_events_in_total{stage="score"}) > 0',
                    "labels": {"severity": "info"},
                    "annotations": {"summary": "{{ $value }} events scored"},
                },
                {"record": "driftline:outcomes_joined:total",
                 "expr": 'sum(driftline_join_results_total{kind="joined"})'},
            ],
        }
    ]
}  # fmt: skip


@pytest.fixture
def prometheus(pipeline, tmp_path: Path) -> Iterator[Prometheus]:
    _, _, proc = pipeline
    target = worker_url(proc, "").removeprefix("http://")
    with Prometheus(tmp_path / "prometheus", target, TEST_RULES) as prom:
        yield prom


def test_prometheus_scrapes_the_worker_and_evaluates_the_rules(pipeline, prometheus) -> None:
    s, champion, _ = pipeline
    prom = prometheus
    events = [example(random.Random(2), i) for i in range(400)]
    send(s, events)

    targets = prom.wait("the worker target up", lambda: [
        t for t in prom.api("targets")["activeTargets"] if t["health"] == "up"])  # fmt: skip
    assert targets[0]["labels"]["job"] == "driftline-worker"
    assert prom.query('up{job="driftline-worker"}') == {
        json.dumps({"__name__": "up", "instance": targets[0]["labels"]["instance"],
                    "job": "driftline-worker"}, sort_keys=True): 1.0}  # fmt: skip

    def scored() -> bool:
        got = prom.query('driftline_events_in_total{stage="score"}')
        return bool(got) and max(got.values()) >= len(events)

    prom.wait("driftline_events_in_total{stage=score} >= 400", scored, 90)

    def joined() -> bool:
        got = prom.query("driftline:outcomes_joined:total")
        return bool(got) and max(got.values()) >= len(events)

    prom.wait("the recording rule over joined outcomes", joined, 90)

    def firing() -> list[dict[str, Any]]:
        return [a for a in prom.api("alerts")["alerts"]
                if a["labels"]["alertname"] == "DriftlineTestEventsScored"
                and a["state"] == "firing"]  # fmt: skip

    alert = prom.wait("the test alert firing", firing)[0]
    assert float(alert["value"]) >= len(events)

    # Every shipped rule was loaded and evaluated without error.
    groups = {g["name"]: g for g in prom.api("rules")["groups"]}
    shipped = [g for p in sorted(RULES_DIR.glob("*.yml")) for g in yaml.safe_load(
        p.read_text())["groups"]]  # fmt: skip
    assert {g["name"] for g in shipped} >= {"driftline", "driftline-incidents"}
    for group in shipped:
        loaded = groups[group["name"]]
        assert [r["name"] for r in loaded["rules"]] == [r["alert"] for r in group["rules"]]
        for rule in loaded["rules"]:
            assert rule["health"] == "ok", rule
            assert not rule["lastEvaluation"].startswith("0001"), rule  # evaluated

    # The rolling metric gauges, version info and consumer lag made it through too.
    accuracy = f'driftline_model_metric{{model="churn",version="{champion}",metric="accuracy"}}'
    prom.wait("rolling accuracy of the champion", lambda: prom.query(accuracy))
    info = prom.query("driftline_model_version_info == 1")
    assert [json.loads(k)["version"] for k in info] == [champion]
    lag = prom.wait("consumer lag", lambda: prom.query('driftline_consumer_lag{stage="score"}'))
    assert all(v >= 0 for v in lag.values())
