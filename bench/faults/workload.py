"""The workload and its ground truth, the models, and the pipeline's set-up.

Three models. ``churn`` (a long join TTL) gets a label for every event, ``LABEL_LAG``
events behind its features; some events get one or two duplicate labels later still.
``twin`` scores every churn event too, under the same event_id (issue 23: one upstream
event scored by several models), and gets its own labels (other values and times) and
its own duplicates: each model must get every outcome, with its own label, and each
duplicate must be dead-lettered for its own model. ``expiring`` (a 5 s TTL) gets no
label for its predictions (each ends as an ``expired_prediction``) and some labels for
event ids that are never predicted (each ends as an ``orphan_label``). The churn and
twin TTL outlasts any run, so no pause or restart can turn a label late: the ground
truth does not depend on timing. ``churn`` also has an online challenger (the trainer's
live loop), which may be promoted on live evidence while the run goes on.

Results are counted per kind and model (``kind("outcome", "twin")`` is
``"outcome twin"``), then per event_id.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.core.wire.codec import default_codec
from driftline.core.wire.headers import build as build_headers
from driftline.core.wire.headers import for_confluent
from driftline.kafka import admin
from driftline.kafka.clients import producer_config
from driftline.settings import Settings

LABEL_LAG = 500  # the first label of event i is produced after the features of i + 500
DUP_LAGS = (700, 900)  # duplicate label k of event i: after the features of i + DUP_LAGS[k]
BASE_MS = 1_700_000_000_000

_FEATURES = """
[[models.{m}.features]]
name = "x1"
type = "number"
[[models.{m}.features]]
name = "x2"
type = "number"
[[models.{m}.features]]
name = "plan"
type = "category"
categories = ["basic", "pro"]
"""
MODELS = "".join(
    f'[models.{m}]\ntask = "classification"\nfactory = "logistic_regression"\n'
    f"join_ttl_ms = {ttl}\n[models.{m}.retrain]\nmin_rows = 100000000\n" + _FEATURES.format(m=m)
    for m, ttl in (("churn", 3_600_000), ("twin", 3_600_000), ("expiring", 5_000))
) + (
    # churn's online challenger (the trainer's live loop): learns every outcome, its state
    # checkpointed to the registry with the offsets it holds (bench/faults/learning.py)
    "[models.churn.online]\ncheckpoint_every = 200\ncheckpoint_max_ms = 5000\n"
)
TWIN_OF = {"churn": "twin"}
"""A model that scores every event of another one, under the same event_id."""
LABELLED = ("churn", "twin")


def kind(what: str, model: str | None) -> str:
    """A result kind of one model: ``kind("outcome", "twin") == "outcome twin"``."""
    return f"{what} {model}"


KINDS = tuple(
    kind(what, m)
    for what, models in (
        ("prediction", ("churn", "twin", "expiring")), ("outcome", LABELLED),
        ("duplicate_label", LABELLED), ("expired_prediction", ("expiring",)),
        ("orphan_label", ("expiring",)),
    )
    for m in models
)  # fmt: skip
SEEN = ("prediction", "outcome")
"""Kinds read from the predictions and outcomes topics; the others are dead letters."""


def event_id(i: int) -> str:
    return f"e{i:07d}"


def index_of(key: bytes | None) -> int:
    """The event index of a key (``e0000042`` -> 42); -1 for an orphan or other key."""
    return int(key[1:]) if key and key[:1] == b"e" and key[1:].isdigit() else -1


@dataclass
class Truth:
    """What the pipeline must publish, per kind and model: event_id -> how many records."""

    events: int
    model: list[str] = field(default_factory=list)  # model of event i (and its twin's)
    dups: dict[int, int] = field(default_factory=dict)  # churn event -> duplicate labels
    twin_dups: dict[int, int] = field(default_factory=dict)  # the same, for twin
    orphans: dict[int, str] = field(default_factory=dict)  # after event i: orphan label id

    def expected(self) -> dict[str, Counter[str]]:
        exp: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
        for i, m in enumerate(self.model):
            for scorer in (m, *([TWIN_OF[m]] if m in TWIN_OF else [])):
                exp[kind("prediction", scorer)][event_id(i)] = 1
                what = "outcome" if scorer in LABELLED else "expired_prediction"
                exp[kind(what, scorer)][event_id(i)] = 1
        for model, dups in (("churn", self.dups), ("twin", self.twin_dups)):
            for i, n in dups.items():
                exp[kind("duplicate_label", model)][event_id(i)] = n
        for oid in self.orphans.values():
            exp[kind("orphan_label", "expiring")][oid] = 1
        return exp


def make_truth(events: int, seed: int) -> Truth:
    rng = random.Random(seed)
    twins = random.Random(seed + 2)  # apart, so churn and expiring stay as they were
    t = Truth(events)
    for i in range(events):
        m = "expiring" if rng.random() < 0.2 else "churn"
        t.model.append(m)
        r = rng.random()
        if m == "churn" and r < 0.06:
            t.dups[i] = 2 if r < 0.01 else 1
        if rng.random() < 0.02:
            t.orphans[i] = f"o{i:07d}"
        r = twins.random()
        if m == "churn" and r < 0.06:
            t.twin_dups[i] = 2 if r < 0.01 else 1
    return t


def _features(rng: random.Random) -> dict[str, Any]:
    return {"x1": rng.gauss(0, 1), "x2": rng.gauss(0, 1), "plan": rng.choice(["basic", "pro"])}


def steps(t: Truth, seed: int) -> Iterator[list[tuple[str, bytes, bytes]]]:
    """One list of (topic, key, value) per step; step i < events produces the features
    of event i first. Steps go on past the last event until every label is out."""
    codec = default_codec()
    rng = random.Random(seed + 1)

    def label(j: int, model: str, k: int, eid: str | None = None) -> tuple[str, bytes, bytes]:
        eid = eid or event_id(j)
        x = {"event_id": eid, "model": model, "label": bool((j + k + (model == "twin")) % 3),
             "label_time_ms": label_time(j, model, k)}  # fmt: skip
        return "labels", eid.encode(), codec.encode("io.driftline.Label", x)

    for i in range(t.events + max(DUP_LAGS) + 1):
        out = []
        if i < t.events:
            f = _features(rng)
            m = t.model[i]
            for scorer in (m, *([TWIN_OF[m]] if m in TWIN_OF else [])):
                e = {"event_id": event_id(i), "model": scorer, "event_time_ms": BASE_MS + i,
                     "features": f, "segment": {"plan": f["plan"]}}  # fmt: skip
                out.append(("features", event_id(i).encode(),
                            codec.encode("io.driftline.FeatureEvent", e)))  # fmt: skip
            if i in t.orphans:
                out.append(label(i, "expiring", 0, t.orphans[i]))
        j = i - LABEL_LAG
        if 0 <= j < t.events and t.model[j] == "churn":
            out += [label(j, "churn", 0), label(j, "twin", 0)]
        for k, lag in enumerate(DUP_LAGS, start=1):
            j = i - lag
            if 0 <= j < t.events and t.dups.get(j, 0) >= k:
                out.append(label(j, "churn", k))
            if 0 <= j < t.events and t.twin_dups.get(j, 0) >= k:
                out.append(label(j, "twin", k))
        yield out


def label_time(i: int, model: str, k: int = 0) -> int:
    """label_time_ms of label k (0: the first) of ``model`` for event i; twin's differ
    from churn's, so an outcome shows which model's label it joined."""
    return BASE_MS + i + (7_000 if model == "twin" else 5_000) + k


def first_label_time(i: int, model: str = "churn") -> int:
    """label_time_ms of event i's first label of ``model``: its outcome must carry it."""
    return label_time(i, model)


def setup(settings: Settings, run_dir: Path) -> Settings:
    """Topics, the models file, and a bootstrapped champion for both models."""
    models_file = run_dir / "models.toml"
    models_file.write_text(MODELS)
    s = settings.model_copy(update={"models_file": models_file, "monitor_interval_s": 2.0})
    admin.apply(s)
    codec = default_codec()
    failed: list[str] = []
    conf = producer_config(s, "faults-setup")

    def on_delivery(err: Any, _msg: Any) -> None:
        if err:
            failed.append(str(err))

    conf["on_delivery"] = on_delivery
    p = Producer(conf)
    rng = random.Random(7)
    headers = for_confluent(build_headers("io.driftline.ModelVersion", None, None))
    published = []
    for cfg in ModelsConfig.load(models_file):
        rows = []
        for i in range(600):
            f = _features(rng)
            rows.append({"event_id": f"b{i}", "features": f, "segment": {"plan": f["plan"]},
                         "label": f["x1"] + f["x2"] > 0, "event_time_ms": BASE_MS + i})  # fmt: skip
        _, records = bootstrap(
            rows, cfg, key=s.signing_key.get_secret_value().encode(), by="faults",
            reason="fault harness", now_ms=int(time.time() * 1000),
        )  # fmt: skip
        published += records
    # a record refused while the fresh topic's leader settles (seen at load 30: churn's
    # champion missing, every churn event dead-lettered no_champion) is sent again; the
    # registry ignores a repeat of a record
    for _ in range(3):
        failed.clear()
        for r in published:
            value = codec.encode("io.driftline.ModelVersion", r)
            key = f"{r['model']}/{r['version']}".encode()
            p.produce(s.topic("registry"), value, key, headers=headers)
        if p.flush(60) == 0 and not failed:
            return s
        time.sleep(2)
    raise RuntimeError(f"could not publish the champions: {failed[:3]}")
