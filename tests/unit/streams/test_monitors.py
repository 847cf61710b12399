"""The monitor's glue (streams/monitors.py): what it hands each ModelMonitor from a
committed join batch and a committed scorer batch, what it exports, and the log line of
each alert."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import faust
import pytest

from driftline.core.join.joiner import LABEL, PREDICTION, Joiner, Step
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.watch.monitor import Emit
from driftline.core.watch.rates import ALL_VERSIONS
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import Origin
from driftline.streams import monitors as glue
from driftline.streams import telemetry
from driftline.streams.incidents import IncidentGauge
from tests.unit.core.examples import T0, label, prediction
from tests.unit.core.join import joinsteps

CODEC = default_codec()
TTL = 5_000


def joined_steps() -> tuple[list[Step], list[Step], list[Step]]:
    """Steps of the real joiner, whose entries are keyed by model and event_id: model
    ``other`` holds a label for ``c``; churn's predictions of ``a``, ``b`` and ``c`` are
    held at T0 (``other``'s label is not theirs), and other's prediction of ``c`` joins its
    own label at once; churn's ``a`` joins at T0 + 1 s, ``b`` expires at T0 + 6 s."""
    joiner = Joiner(CODEC, {"churn": "classification", "other": "classification"}.get,
                    lambda m: TTL, "t.predictions", "t.labels")  # fmt: skip
    store: dict[bytes, bytes] = {}

    def apply(s: Step) -> Step:
        joinsteps.apply(store, s)
        return s

    def step(topic: str, value: dict[str, Any], now: int) -> Step:
        key = value["event_id"].encode()
        name = PREDICTION if topic == "predictions" else LABEL
        origin = Origin(f"t.{topic}", 0, 0, key, None, [])
        return apply(joiner.on_message(origin, CODEC.encode(name, value), now, store.get))

    step("labels", label(event_id="c", model="other"), T0 - 10)
    first = [step("predictions", prediction(event_id=e, version="v1"), T0) for e in "abc"]
    first.append(step("predictions", prediction(event_id="c", model="other", version="v7"), T0))
    second = [step("labels", label(event_id="a"), T0 + 1_000)]
    (b_key,) = [k for k in store if k.endswith(b"b")]
    third = [apply(joiner.on_expire(0, b_key, store[b_key], T0 + 6_000, store.get))]
    assert [s.kinds for s in first] == [[], [], [], ["joined"]]
    assert [s.settled for s in first] == [None, None, None, ("v7", T0)]  # arrived joined
    assert second[0].settled == ("v1", T0) == third[0].settled
    assert third[0].outputs[0].record["model"] == "churn"  # type: ignore[index]
    return first, second, third


def installed(monitors: glue.Monitors, sent: list[tuple[str, bytes]]) -> glue.Observe:
    app = faust.App("test-monitors", broker="kafka://127.0.0.1:1", web_enabled=False)
    return glue.install(app, CODEC, monitors, lambda n: f"t.{n}", 5.0,
                        lambda topic, key, value, headers: sent.append((topic, value)))  # fmt: skip


def test_a_join_batch_feeds_the_expiry_rate_at_arrival() -> None:
    monitors = glue.Monitors(ModelsConfig({"churn": ModelConfig("churn", join_ttl_ms=TTL)}))
    sent: list[tuple[str, bytes]] = []
    observe = installed(monitors, sent)
    first, second, third = joined_steps()
    asyncio.run(observe(first, T0))
    mon = monitors.by_model["churn"]
    ((_, bucket),) = mon.expiry.pending.items()
    assert bucket.units == Counter({"v1": 3})  # another model's label does not join them
    ((_, other),) = monitors.by_model["other"].expiry.pending.items()
    assert (other.units, other.joined) == (Counter({"v7": 1}), 1)  # its own label did
    asyncio.run(observe(second, T0 + 1_000))
    asyncio.run(observe(third, T0 + 6_000))
    assert (bucket.joined, bucket.hits) == (1, Counter({"v1": 1}))
    emits = mon.tick(T0 + 60_000)
    (snap,) = [e.value for e in emits if e.value.get("window") == "arrived:settled"]
    assert (snap["count"], snap["counts"]["hits"], snap["version"]) == (2, 1, ALL_VERSIONS)


def test_a_scorer_batch_feeds_the_skew_rate_of_every_model() -> None:
    monitors = glue.Monitors(ModelsConfig())
    monitors.get("quiet")
    dead: list[dict[str, Any]] = [
        {"model": "churn", "reason": "type_mismatch"},
        {"model": None, "reason": "undecodable"},
    ]
    monitors.on_scorer_batch(T0, Counter({("churn", "v1"): 9}), dead)
    monitors.on_scorer_batch(T0 + 20_000, Counter(), [])
    monitors.sync_versions(T0 + 20_000)
    churn, quiet = monitors.by_model["churn"], monitors.by_model["quiet"]
    assert quiet.skew.watermark == churn.skew.watermark == T0 + 20_000
    window = churn.skew.judge(T0 + 20_000)
    assert window is not None
    assert (window.total, window.hits, window.reasons) == (10, 1, (("type_mismatch", 1),))
    assert quiet.skew.judge(T0 + 20_000) is None  # no event of its own


def test_rate_snapshots_are_exported_and_kept_apart_from_versions() -> None:
    recent = glue.Recent()
    snap = {"model": "m", "version": ALL_VERSIONS, "segment": "all",
            "window": "arrived:settled", "emitted_at_ms": T0,
            "metrics": {"expired_label_rate": 0.25}, "baseline": {}}  # fmt: skip
    recent.add(Emit("metrics", "m", snap))
    glue.export(Emit("metrics", "m", snap))
    assert recent.history == {}  # "all" is no version of the model
    assert recent.snapshots[("m", ALL_VERSIONS, "all", "arrived:settled")] is snap
    gauge = telemetry.MODEL_METRIC.labels("m", ALL_VERSIONS, "all", "arrived:settled",
                                          "expired_label_rate")  # fmt: skip
    assert gauge._value.get() == 0.25


def test_each_alert_raised_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    monitors = glue.Monitors(ModelsConfig({"churn": ModelConfig("churn", join_ttl_ms=TTL)}))
    sent: list[tuple[str, bytes]] = []
    observe = installed(monitors, sent)
    first, _, _ = joined_steps()
    alert: dict[str, Any] = {"alert_id": "a1", "model": "churn", "version": None, "segment": None,
             "kind": "expired_label_rate", "severity": "critical", "message": "50.0% ...",
             "evidence": {}, "created_at_ms": T0}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="driftline.streams.monitors"):
        asyncio.run(observe(first, T0))
        glue.log_alert(alert)
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline.streams.monitors"]
    assert lines == ["alert: churn - expired_label_rate critical: 50.0% ..."]


def test_incident_records_log_their_state(caplog: pytest.LogCaptureFixture) -> None:
    base = {"model": "churn", "version": "v1", "kind": "skew_rate", "severity": "warning",
            "message": "m"}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="driftline.streams.monitors"):
        glue.log_alert({**base, "state": "firing"})
        glue.log_alert({**base, "state": "resolved"})
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline.streams.monitors"]
    assert lines == ["incident firing: churn v1 skew_rate warning: m",
                     "incident resolved: churn v1 skew_rate warning: m"]  # fmt: skip


def gauge_value(*labels: str) -> float | None:
    for metric in telemetry.INCIDENT_FIRING.collect():
        for s in metric.samples:
            if tuple(s.labels[k] for k in ("model", "cause", "severity", "version")) == labels:
                return float(s.value)
    return None


def test_the_incident_gauge_follows_the_lifecycle() -> None:
    """1 while firing (version: the one it opened on), 0 once resolved, then removed; an
    escalation moves the incident to its new severity."""
    g = IncidentGauge(keep_s=60)
    fire = {"incident_key": "gm/concept_drift", "model": "gm", "kind": "concept_drift",
            "severity": "warning", "state": "firing", "version": "v2",
            "versions": ["v1", "v2"]}  # fmt: skip
    g.update(fire, now_s=0)
    assert gauge_value("gm", "concept_drift", "warning", "v1") == 1
    g.update({**fire, "severity": "critical"}, now_s=10)
    assert gauge_value("gm", "concept_drift", "warning", "v1") == 0
    assert gauge_value("gm", "concept_drift", "critical", "v1") == 1
    g.update({**fire, "severity": "critical", "state": "resolved"}, now_s=20)
    assert gauge_value("gm", "concept_drift", "critical", "v1") == 0
    notice = {"incident_key": None, "model": "gm", "kind": "artifact_rejected",
              "severity": "critical", "state": None}  # fmt: skip
    g.update(notice, now_s=65)  # a notice: no series of its own
    g.prune(now_s=75)
    assert gauge_value("gm", "concept_drift", "warning", "v1") is None  # 65 s at 0: gone
    assert gauge_value("gm", "concept_drift", "critical", "v1") == 0  # 55 s at 0: kept
    g.prune(now_s=81)
    assert gauge_value("gm", "concept_drift", "critical", "v1") is None
    assert gauge_value("gm", "artifact_rejected", "critical", "") is None


def test_restored_incidents_reach_each_monitor() -> None:
    monitors = glue.Monitors(ModelsConfig({}))
    record = {"model": "m2", "kind": "skew_rate", "state": "firing", "incident_id": "i9",
              "severity": "critical", "created_at_ms": 5, "opened_at_ms": 3,
              "segments": ["all"], "versions": ["v7"], "version": "v7"}  # fmt: skip
    assert monitors.restore({"m2": [record]}) == [record]
    (inc,) = monitors.by_model["m2"].incidents.open.values()
    assert (inc.incident_id, inc.opened_at_ms, inc.severity, inc.versions) == (
        "i9", 3, "critical", ["v7"])  # fmt: skip
