"""Issue 23.6 through the real broker: a challenger's rolling metrics beside the
champion's on the metrics topic, in Prometheus and on /status.json, and a restarted
worker's status page rebuilt from the metrics and alerts topics before any new outcome."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.procs import Process
from tests.integration import harness
from tests.integration.churn import example, send, worker_url

COUNT = "count:1000"


def status(
    proc: Process, ok: Callable[[dict[str, Any]], bool], timeout: float = 120
) -> dict[str, Any]:
    """/status.json once ``ok`` holds (the web server may not be up yet)."""
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(worker_url(proc, "/status.json"), timeout=10) as resp:
                doc = json.loads(resp.read())
            if ok(doc):
                return doc
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"status never matched: {json.dumps(doc)[:3000]}\n{proc.tail()}")


def served(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["version"]: s for m in doc["models"] for s in m["served"]}


def latest(snaps: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in sorted(snaps, key=lambda s: s["emitted_at_ms"]):
        out[(s["version"], s["segment"], s["window"])] = s
    return out


def test_challenger_metrics_are_published_shown_and_survive_a_restart(pipeline) -> None:
    s, champion, proc = pipeline
    config = ModelsConfig.load(s.models_file)["churn"]
    rows = random.Random(99)  # rows that differ from the champion's: another version
    run, _ = bootstrap(
        [example(rows, i) for i in range(500)], config,
        key=s.signing_key.get_secret_value().encode(), by="test", reason="a challenger",
        now_ms=int(time.time() * 1000), existing_versions=[champion],
    )  # fmt: skip
    shadow = dict(run.record, stage="challenger", stage_reason="shadow it")
    challenger = shadow["version"]
    harness.publish(s, "registry", "io.driftline.ModelVersion", [shadow],
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
    rng = random.Random(23)
    deadline = time.monotonic() + 60

    def loaded(got: list[Any]) -> bool:
        return any(x["version"] == challenger for x in got)

    while not loaded(harness.collect(s, "predictions.shadow", loaded, timeout=2)):
        assert time.monotonic() < deadline, proc.tail()  # the worker loads the challenger
        send(s, [example(rng, i) for i in range(10)], labels=False)

    send(s, [example(rng, 1_000 + i) for i in range(600)])
    both = {champion, challenger}

    def published(got: list[Any]) -> bool:
        keys = latest(got)
        return all((v, "all", COUNT) in keys and keys[(v, "all", COUNT)]["count"] >= 600
                   for v in both)  # fmt: skip

    snaps = latest(harness.collect(s, "metrics", published, timeout=90))
    assert published(list(snaps.values())), proc.tail()
    # the same label-based windows (estimates come from the served version's predictions)
    mine = {(seg, w) for v, seg, w in snaps if v == champion and not w.startswith("estimate")}
    theirs = {(seg, w) for v, seg, w in snaps if v == challenger}
    assert theirs == mine and {("plan=pro", COUNT), ("all", COUNT)} <= mine  # same windows
    champ_all, shadow_all = snaps[(champion, "all", COUNT)], snaps[(challenger, "all", COUNT)]
    assert set(shadow_all["metrics"]) == {k for k in champ_all["metrics"]
                                          if not k.startswith(("psi.", "ks."))}  # fmt: skip
    assert shadow_all["baseline"] == shadow["metrics"]  # its own validation metrics
    assert 0.5 <= shadow_all["metrics"]["accuracy"] <= 1
    alerts = harness.collect(s, "alerts", lambda got: False, timeout=2)
    assert challenger not in {a.get("version") for a in alerts}  # never judged

    def shown(doc: dict[str, Any]) -> bool:
        sv = served(doc)
        return all(v in sv and any(w["count"] >= 600 for w in sv[v]["windows"]) for v in both)

    doc = status(proc, shown)
    sv = served(doc)
    assert (sv[champion]["role"], sv[challenger]["role"]) == ("champion", "challenger")
    assert {seg["segment"] for seg in sv[challenger]["segments"]} == {"plan=basic", "plan=pro"}
    assert not sv[challenger]["restored"] and doc["restored"]["snapshots"] == 0
    with urllib.request.urlopen(worker_url(proc, "/metrics"), timeout=10) as resp:
        text = resp.read().decode()
    labels = f'metric="accuracy",model="churn",segment="all",version="{challenger}"'
    assert f'driftline_model_metric{{{labels},window="{COUNT}"}}' in text  # labels sorted

    # a restart: the last known state is back at once, marked restored, no new outcome
    outcomes = len(harness.collect(s, "outcomes", lambda got: False, timeout=2))
    assert proc.stop() == 0, proc.tail()
    before = latest(harness.collect(s, "metrics", lambda got: False, timeout=3))
    proc.start()

    def restored(doc: dict[str, Any]) -> bool:
        sv = served(doc)
        return all(v in sv and sv[v]["restored"] for v in both)

    doc = status(proc, restored, timeout=60)
    sv = served(doc)
    for v in both:
        count = next(w for w in sv[v]["windows"] if w["window"] == COUNT)
        last = before[(v, "all", COUNT)]
        assert count["restored"] and count["count"] == last["count"]
        assert count["metrics"]["accuracy"] == last["metrics"]["accuracy"]
        assert count["emitted_at_ms"] == last["emitted_at_ms"]
    assert {seg["segment"] for seg in sv[challenger]["segments"]} == {"plan=basic", "plan=pro"}
    assert doc["restored"]["snapshots"] >= len([k for k in before if k[0] in both])
    series = {sr["version"]: sr["points"] for m in doc["models"] for sr in m["history"]["series"]}
    assert set(series) >= both and all(series[v] for v in both)  # the chart, too
    if alerts:
        assert {a["alert_id"] for a in doc["alerts"]} <= {a["alert_id"] for a in alerts}
        assert doc["alerts"]
    assert len(harness.collect(s, "outcomes", lambda got: False, timeout=2)) == outcomes
