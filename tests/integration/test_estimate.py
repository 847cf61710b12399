"""Estimated performance through the real broker, before the labels come (issue 20).

A worker serves two classifiers trained on the same concept, ``P(y) = sigmoid(4 * x0)``
(x1 unused), each calibrated at training time (isotonic, 1,000 held-out rows). Their
features stream in while every label is held back:

* before any label is produced, the worker publishes each model's CBPE estimate (window
  ``estimate:1000``) on the metrics topic and exports it on its /metrics;
* ``drop``'s inputs then crowd the decision boundary (x0's spread 1 -> 0.25): its true
  accuracy falls from ~0.88 to ~0.62 and the ``estimated_performance_degradation`` alert
  fires from the estimate alone;
* ``handled``'s inputs move in a way the model handles (x0's spread 1 -> 2, the unused x1
  by +3): its accuracy rises, and no estimated-degradation alert fires;
* the labels then arrive: each closed chunk's estimate is checked against them
  (``estimate-check:1000``) and the estimator's error is published, small because the
  concept did not change.
"""

from __future__ import annotations

import json
import math
import random
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.kafka import admin
from driftline.settings import Settings
from tests.integration import harness
from tests.integration.churn import worker_url

MODELS = "".join(
    f"""
[models.{name}]
task = "classification"
factory = "logistic_regression"
positive_class = "True"
join_ttl_ms = 600000

[[models.{name}.features]]
name = "x0"
type = "number"

[[models.{name}.features]]
name = "x1"
type = "number"
"""
    for name in ("drop", "handled")
)
T0 = 1_700_000_000_000
KIND = "estimated_performance_degradation"


def event(
    model: str, rng: random.Random, i: int, spread: float = 1.0, shift: float = 0.0
) -> dict[str, Any]:
    x0, x1 = rng.gauss(0, spread), rng.gauss(shift, 1)
    return {
        "event_id": f"{model}-{i}",
        "model": model,
        "event_time_ms": T0 + i,
        "features": {"x0": x0, "x1": x1},
        "segment": {},
        "label": rng.random() < 1 / (1 + math.exp(-4 * x0)),
    }


def features(s: Settings, events: list[dict[str, Any]]) -> None:
    harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent", (
        {k: e[k] for k in ("event_id", "model", "event_time_ms", "features", "segment")}
        for e in events)))  # fmt: skip


def labels(s: Settings, events: list[dict[str, Any]]) -> None:
    harness.produce(s, "labels", harness.encoded("io.driftline.Label", (
        {"event_id": e["event_id"], "model": e["model"], "label": e["label"],
         "label_time_ms": e["event_time_ms"] + 5_000} for e in events)))  # fmt: skip


def start(
    settings: Settings, tmp_path: Path
) -> tuple[Settings, dict[str, dict[str, Any]], harness.Process]:
    models_file = tmp_path / "models.toml"
    models_file.write_text(MODELS)
    s = settings.model_copy(
        update={"models_file": models_file, "monitor_interval_s": 1.0, "data_dir": tmp_path / "d"}
    )
    admin.apply(s)
    champions = {}
    loaded = ModelsConfig.load(models_file)
    for seed, name in enumerate(("drop", "handled")):
        config = loaded[name]
        rng = random.Random(seed)
        _, records = bootstrap(
            [event(name, rng, -10_000 + i) for i in range(5_000)], config,
            key=s.signing_key.get_secret_value().encode(), by="test", reason="estimate test",
            now_ms=int(time.time() * 1000),
        )  # fmt: skip
        harness.publish(s, "registry", "io.driftline.ModelVersion", records,
                        key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
        champions[name] = records[-1]
    return s, champions, harness.worker(s, tmp_path).start()


def metrics(
    s: Settings, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 90
) -> list[dict[str, Any]]:
    return harness.collect(s, "metrics", until, timeout=timeout)


def of(got: list[dict[str, Any]], model: str, window: str) -> list[dict[str, Any]]:
    return [m for m in got if m.get("model") == model and m.get("window") == window]


def status(proc: harness.Process) -> dict[str, Any]:
    with urllib.request.urlopen(worker_url(proc, "/status.json"), timeout=10) as resp:
        return dict(json.loads(resp.read()))


def no_label_yet(s: Settings) -> bool:
    return sum(harness.offsets(s, s.topic("labels")).values()) == 0


def test_estimates_come_before_the_labels_and_are_checked_when_they_do(
    settings: Settings, tmp_path: Path
) -> None:
    s, champions, proc = start(settings, tmp_path)
    try:
        for record in champions.values():
            assert record["calibration"]["method"] == "isotonic", record["calibration"]
            assert 0.85 <= record["metrics"]["accuracy"] <= 0.91
        rngs = {name: random.Random(10 + k) for k, name in enumerate(champions)}
        before = {m: [event(m, rngs[m], i) for i in range(1_000)] for m in champions}
        features(s, before["drop"] + before["handled"])

        # estimates before any label: on the metrics topic ...
        def estimated(got: list[dict[str, Any]]) -> bool:
            return all(any(x["count"] == 1_000 for x in of(got, m, "estimate:1000"))
                       for m in champions)  # fmt: skip

        got = metrics(s, estimated)
        assert estimated(got), proc.tail()
        assert no_label_yet(s)
        for m, record in champions.items():
            snap = next(x for x in of(got, m, "estimate:1000") if x["count"] == 1_000)
            est = snap["metrics"]
            assert snap["version"] == record["version"]
            assert est["estimated_accuracy_lower"] < est["estimated_accuracy"]
            assert est["estimated_accuracy"] < est["estimated_accuracy_upper"]
            assert abs(est["estimated_accuracy"] - record["metrics"]["accuracy"]) < 0.05
            assert {"estimated_f1", "estimated_roc_auc"} <= set(est)
            assert snap["baseline"]["accuracy"] == record["metrics"]["accuracy"]
            assert not of(got, m, "estimate-check:1000")  # nothing to check against yet
        # ... and in Prometheus, on the worker's /metrics
        with urllib.request.urlopen(worker_url(proc, "/metrics"), timeout=10) as resp:
            text = resp.read().decode()
        for m, record in champions.items():
            want = {f'model="{m}"', f'version="{record["version"]}"', 'segment="all"',
                    'window="estimate:1000"', 'metric="estimated_accuracy"'}  # fmt: skip
            exported = [
                line for line in text.splitlines() if line.startswith("driftline_model_metric{")
                and want <= set(line[line.index("{") + 1:line.index("}")].split(","))
            ]  # fmt: skip
            assert len(exported) == 1, text
            assert 0.8 < float(exported[0].rsplit(" ", 1)[1]) < 0.95
        # ... and on the status page's document: estimated, no label yet, importance
        doc = status(proc)
        for model in doc["models"]:
            (served,) = model["served"]
            assert served["estimate"]["estimated"] is not None, served
            assert served["estimate"]["realized"] is None and served["estimate"]["mae"] is None
            (version,) = model["versions"]
            assert version["calibration"] == "isotonic"
            assert [i["feature"] for i in version["importance"]] == ["x0", "x1"]

        # the inputs move, labels still held back
        after = {
            "drop": [event("drop", rngs["drop"], i, spread=0.25) for i in range(1_000, 2_500)],
            "handled": [event("handled", rngs["handled"], i, spread=2.0, shift=3.0)
                        for i in range(1_000, 2_500)],
        }  # fmt: skip
        features(s, after["drop"] + after["handled"])

        def moved(got: list[dict[str, Any]]) -> bool:  # both windows hold shifted events only
            last = {m: [x["metrics"]["estimated_accuracy"] for x in of(got, m, "estimate:1000")]
                    for m in champions}  # fmt: skip
            return bool(last["drop"]) and last["drop"][-1] < 0.7 and last["handled"][-1] > 0.91

        got = metrics(s, moved)
        assert moved(got), [(x["model"], x["count"], x["metrics"]["estimated_accuracy"])
                            for x in got if x["window"] == "estimate:1000"][-20:]  # fmt: skip
        time.sleep(3)  # a few more ticks judged on the moved windows
        alerts = harness.collect(s, "alerts", lambda g: False, timeout=5)
        fired = [a for a in alerts if a.get("kind") == KIND]
        assert no_label_yet(s)
        assert fired and {a["model"] for a in fired} == {"drop"}, fired
        assert all(a["state"] == "firing" for a in fired)  # opened (then maybe escalated)
        evidence = fired[0]["evidence"]
        assert evidence["upper"] < champions["drop"]["metrics"]["accuracy"] - 0.05
        assert not [a for a in alerts if a.get("kind") == "performance_degradation"]

        # the labels come: the estimator's error per closed chunk
        labels(s, before["drop"] + after["drop"] + before["handled"] + after["handled"])

        def checked(got: list[dict[str, Any]]) -> bool:
            full = [
                [x for x in of(got, m, "estimate-check:1000") if x["counts"]["labelled"] == 1_000]
                for m in champions
            ]
            return all(len(f) >= 2 for f in full)

        got = metrics(s, checked, timeout=120)
        assert checked(got), proc.tail()
        for m in champions:
            final: dict[int, dict[str, float]] = {}
            for x in of(got, m, "estimate-check:1000"):
                final[x["window_start_ms"]] = x["metrics"]  # last word on each chunk
            assert len(final) == 2, final.keys()  # 2 closed chunks of 1,000 (500 still open)
            for c in final.values():
                assert c["labelled_share"] == 1.0
                err = c["realized_accuracy"] - c["estimated_accuracy"]
                assert abs(c["estimation_error_accuracy"] - err) < 1e-9
                assert abs(err) < 0.06, c  # covariate shift only: the calibration holds
                assert c["estimation_mae_accuracy"] < 0.06
            shifted = final[max(final)]["realized_accuracy"]
            assert shifted < 0.72 if m == "drop" else shifted > 0.9
        for model in status(proc)["models"]:  # the estimator's error, on the status page
            assert model["served"][0]["estimate"]["mae"] is not None, model["served"]
    finally:
        proc.stop()
