"""The ``churn`` model the worker tests share: its configuration, a synthetic stream
(with an optional concept shift), the records to publish, and :func:`start_pipeline`
(topics applied, a bootstrapped champion on the registry, a worker running)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.kafka import admin
from driftline.settings import Settings
from tests.integration import harness

MODELS = """
[models.churn]
task = "classification"
factory = "logistic_regression"
join_ttl_ms = 8000

[models.churn.gate]
min_segment_samples = 20

[models.churn.retrain]
min_rows = 300
cooldown_ms = 600000

[[models.churn.features]]
name = "x1"
type = "number"
min = -100.0
max = 100.0

[[models.churn.features]]
name = "x2"
type = "number"

[[models.churn.features]]
name = "plan"
type = "category"
categories = ["basic", "pro"]
"""


def example(rng: random.Random, i: int, shift: float = 0.0) -> dict[str, Any]:
    x1, x2 = rng.gauss(shift, 1), rng.gauss(0, 1)
    plan = rng.choice(["basic", "pro"])
    return {
        "event_id": f"e{i}-{rng.getrandbits(32):08x}",
        "features": {"x1": x1, "x2": x2, "plan": plan},
        "label": (x1 + x2 > 0) != (plan == "pro" and shift > 0),
        "segment": {"plan": plan},
        "event_time_ms": 1_700_000_000_000 + i,
    }


def feature_event(e: dict[str, Any], model: str = "churn") -> dict[str, Any]:
    return {"event_id": e["event_id"], "model": model, "event_time_ms": e["event_time_ms"],
            "features": e["features"], "segment": e["segment"]}  # fmt: skip


def label(e: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": e["event_id"], "model": "churn", "label": e["label"],
            "label_time_ms": e["event_time_ms"] + 5_000}  # fmt: skip


def send(s: Settings, events: list[dict[str, Any]], labels: bool = True) -> None:
    """Produce ``events`` as features and, with ``labels``, their labels."""
    harness.produce(s, "features", harness.encoded(
        "io.driftline.FeatureEvent", map(feature_event, events)))  # fmt: skip
    if labels:
        harness.produce(s, "labels", harness.encoded("io.driftline.Label", map(label, events)))


def predictions_of(
    s: Settings, events: list[dict[str, Any]], champion: str, tail: Callable[[], str]
) -> list[dict[str, Any]]:
    """Send ``events`` as features; their predictions, checked: one per event, all by
    ``champion`` (``tail``: the worker's log, shown when not)."""
    send(s, events, labels=False)
    preds = harness.collect(s, "predictions", lambda got: len(got) >= len(events))
    assert sorted(p["event_id"] for p in preds) == sorted(e["event_id"] for e in events), tail()
    assert {p["version"] for p in preds} == {champion}
    return preds


def outcomes_of(
    s: Settings, events: list[dict[str, Any]], tail: Callable[[], str]
) -> list[dict[str, Any]]:
    """Send the labels of ``events`` (already predicted); their outcomes, checked: one per
    event (a duplicate would show up within the 2 s waited), each with its label."""
    harness.produce(s, "labels", harness.encoded("io.driftline.Label", map(label, events)))
    harness.collect(s, "outcomes", lambda got: len(got) >= len(events))
    time.sleep(2)  # a duplicate outcome would show up now
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) > len(events), timeout=3)
    assert sorted(o["event_id"] for o in outcomes) == sorted(e["event_id"] for e in events), tail()
    by_id = {e["event_id"]: e["label"] for e in events}
    assert all(o["label"] == by_id[o["event_id"]] for o in outcomes)
    return outcomes


def start_pipeline(
    settings: Settings, tmp_path: Path, models: str = MODELS, table_store: str = "memory://",
    role: str = "all",
) -> tuple[Settings, str, harness.Process]:  # fmt: skip
    """Topics, a bootstrapped churn champion on the registry, a started worker of
    ``role`` whose data directory is in ``tmp_path``: (settings, champion version, worker
    process). Stop the process when done."""
    models_file = tmp_path / "models.toml"
    models_file.write_text(models)
    s = settings.model_copy(update={
        "models_file": models_file, "monitor_interval_s": 1.0, "table_store": table_store,
        "data_dir": tmp_path / "worker-data",
    })  # fmt: skip
    admin.apply(s)
    config = ModelsConfig.load(models_file)["churn"]
    rng = random.Random(7)
    _, records = bootstrap(
        [example(rng, i) for i in range(600)], config,
        key=s.signing_key.get_secret_value().encode(), by="test", reason="pipeline test",
        now_ms=int(time.time() * 1000),
    )  # fmt: skip
    harness.publish(s, "registry", "io.driftline.ModelVersion", records,
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
    proc = harness.worker(s, tmp_path, role=role).start()
    return s, records[-1]["version"], proc


def worker_url(proc: harness.Process, path: str = "/") -> str:
    """URL of ``path`` on a worker's web server (its ``--web-port``)."""
    port = proc.args[proc.args.index("--web-port") + 1]
    return f"http://127.0.0.1:{port}{path}"
