"""A real Prometheus (Debian's binary) scrapes a running worker's /metrics every second
and evaluates infra/prometheus/rules/driftline.yml plus a rule that must fire."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.procs import free_port
from tests.integration.churn import example, send, worker_url

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "rules" / "driftline.yml"
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


class Prometheus:
    """``prometheus`` on a free 127.0.0.1 port, its data and log under ``tmp``."""

    def __init__(self, tmp: Path, target: str) -> None:
        exe = shutil.which("prometheus")
        assert exe, "prometheus is missing: run infra/bootstrap.sh (Debian package prometheus)"
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        (tmp / "test_rules.yml").write_text(yaml.safe_dump(TEST_RULES))
        config = {
            # a scrape may not take longer than its interval: 2 s leaves room for a
            # worker sharing two busy cores with the rest of the suite
            "global": {"scrape_interval": "2s", "scrape_timeout": "2s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES), str(tmp / "test_rules.yml")],
            "scrape_configs": [
                {"job_name": "driftline-worker", "metrics_path": "/metrics",
                 "static_configs": [{"targets": [target]}]}
            ],
        }  # fmt: skip
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.args = [
            exe,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        self.wait("ready", lambda: self._get("/-/ready") is not None, 60)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return bytes(resp.read())
        except OSError:
            return None

    def api(self, path: str, **params: str) -> Any:
        body = self._get(f"/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert body is not None, f"prometheus did not answer {path}: {self.tail()}"
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> dict[str, float]:
        """Instant vector as {metric labels as text: value}."""
        result = self.api("query", query=expr)["result"]
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.tail()}")
            got = check()
            if got:
                return got
            time.sleep(0.5)
        raise AssertionError(f"prometheus: {what} not seen in {timeout} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def prometheus(pipeline, tmp_path: Path) -> Iterator[Prometheus]:
    _, _, proc = pipeline
    target = worker_url(proc, "").removeprefix("http://")
    with Prometheus(tmp_path / "prometheus", target) as prom:
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
    shipped = yaml.safe_load(RULES.read_text())["groups"]
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
