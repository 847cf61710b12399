"""The worker end to end through the real broker: features and delayed labels in,
predictions, outcomes and dead letters out, with exact counts; the join's state on
either table store, and across a worker restart."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, cast

import pytest
from rocksdict import Options, Rdict

from driftline.core.join.leanentry import is_names_key
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.model.estimators import load_version
from driftline.core.wire.codec import default_codec
from driftline.kafka.registry_follower import read_registry
from driftline.streams.joinstore import OFFSET_KEY
from tests.integration import harness
from tests.integration.churn import (
    MODELS,
    example,
    feature_event,
    label,
    outcomes_of,
    predictions_of,
    send,
    start_pipeline,
)
from tests.unit.core.examples import known

STORES = ["memory://", "rocksdb://"]


@pytest.mark.parametrize("pipeline", STORES, indirect=True)
def test_features_then_labels_give_exact_predictions_and_outcomes(pipeline) -> None:
    s, champion, proc = pipeline
    rng = random.Random(11)
    events = [example(rng, i) for i in range(500)]
    preds = predictions_of(s, events, champion, proc.tail)
    assert all(set(p["scores"]) == {"True", "False"} for p in preds)
    assert all(math.isclose(sum(p["scores"].values()), 1.0) for p in preds)

    outcomes = outcomes_of(s, events, proc.tail)
    assert all(o["label_delay_ms"] == 5_000 for o in outcomes)


BAD = [
    # (what, key, value builder, expected reason)
    ("random bytes", b"b1", lambda c: b"\x00\x01garbage", "undecodable"),
    ("empty value", b"b2", lambda c: b"", "undecodable"),
    ("unknown fingerprint", b"b3", lambda c: b"\xc3\x01" + b"\xff" * 8 + b"\x00", "unknown_schema"),
    ("a label on the features topic", b"b4", lambda c: c.encode(
        "io.driftline.Label", {"event_id": "b4", "model": "churn", "label": True,
                               "label_time_ms": 1}), "wrong_record"),
    ("missing feature", b"b5", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b5", "model": "churn", "event_time_ms": 1,
        "features": {"x1": 1.0, "plan": "pro"}}), "missing_feature"),
    ("type mismatch", b"b6", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b6", "model": "churn", "event_time_ms": 1,
        "features": {"x1": "one", "x2": 1.0, "plan": "pro"}}), "type_mismatch"),
    ("NaN", b"b7", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b7", "model": "churn", "event_time_ms": 1,
        "features": {"x1": float("nan"), "x2": 1.0, "plan": "pro"}}), "non_finite"),
    ("out of range", b"b8", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b8", "model": "churn", "event_time_ms": 1,
        "features": {"x1": 1e9, "x2": 1.0, "plan": "pro"}}), "out_of_range"),
    ("unseen category", b"b9", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b9", "model": "churn", "event_time_ms": 1,
        "features": {"x1": 1.0, "x2": 1.0, "plan": "gold"}}), "unseen_category"),
    ("unexpected feature", b"b10", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b10", "model": "churn", "event_time_ms": 1,
        "features": {"x1": 1.0, "x2": 1.0, "plan": "pro", "x9": 2}}), "unexpected_feature"),
    ("unknown model", b"b11", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b11", "model": "nope", "event_time_ms": 1,
        "features": {"x1": 1.0}}), "unknown_model"),
    ("key differs from event_id", b"other", lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b12", "model": "churn", "event_time_ms": 1,
        "features": {"x1": 1.0, "x2": 1.0, "plan": "pro"}}), "key_mismatch"),
    ("missing key", None, lambda c: c.encode("io.driftline.FeatureEvent", {
        "event_id": "b13", "model": "churn", "event_time_ms": 1,
        "features": {"x1": 1.0, "x2": 1.0, "plan": "pro"}}), "missing_key"),
]  # fmt: skip


def test_every_bad_event_is_dead_lettered_with_its_reason(pipeline) -> None:
    s, _, proc = pipeline
    codec = default_codec()
    good = [example(random.Random(3), i) for i in range(20)]
    records = [(key, build(codec)) for _, key, build, _ in BAD]
    records += list(harness.encoded("io.driftline.FeatureEvent", map(feature_event, good)))
    harness.produce(s, "features", records)

    dead = harness.collect(s, "deadletter", lambda got: len(got) >= len(BAD), decode=False)
    preds = harness.collect(s, "predictions", lambda got: len(got) >= len(good))
    assert len(preds) == len(good), proc.tail()
    assert len(dead) == len(BAD), proc.tail()
    decoded = [default_codec().decode(m.value()).value for m in dead]
    by_key = {d["source_key"]: d for d in decoded}
    assert len(by_key) == len(BAD)
    for what, key, build, reason in BAD:
        d = by_key[key]
        assert d["reason"] == reason, (what, d)
        assert d["source_topic"] == s.topic("features")
        assert d["raw"] == build(codec), what
        assert d["stage"] in ("decode", "validate")
    for msg, d in zip(dead, decoded, strict=True):
        headers = dict(msg.headers())
        assert headers["__connect.errors.exception.class.name"] == d["reason"].encode()
        assert headers["__connect.errors.offset"] == str(d["source_offset"]).encode()


def test_induced_drift_raises_an_alert_and_exactly_one_retrain_trigger(pipeline) -> None:
    s, champion, proc = pipeline
    rng = random.Random(5)
    before = [example(rng, i) for i in range(2_000)]
    after = [example(rng, 2_000 + i, shift=0.01) for i in range(2_000)]  # pro flips
    for batch in (before, after):
        harness.produce(s, "features", harness.encoded(
            "io.driftline.FeatureEvent", map(feature_event, batch)))  # fmt: skip
        harness.produce(s, "labels", harness.encoded("io.driftline.Label", map(label, batch)))

    def drift_alert(got: list[Any]) -> bool:
        return any(a["kind"] == "concept_drift" for a in got)

    alerts = harness.collect(s, "alerts", drift_alert, timeout=120)
    assert drift_alert(alerts), proc.tail()
    drift = next(a for a in alerts if a["kind"] == "concept_drift")
    assert drift["model"] == "churn" and drift["version"] == champion
    assert drift["message"] and drift["evidence"]

    triggers = harness.collect(s, "retrain", lambda got: len(got) >= 1, timeout=60)
    time.sleep(5)  # further drift signals and ticks must not add a second trigger
    triggers = harness.collect(s, "retrain", lambda got: len(got) > 1, timeout=5)
    assert len(triggers) == 1, triggers
    t = triggers[0]
    assert t["model"] == "churn" and t["champion_version"] == champion
    assert set(t["reasons"]) & {"concept_drift", "performance_degradation", "feature_drift"}
    assert t["idempotency_key"]

    snaps = harness.collect(s, "metrics", lambda got: len(got) > 0, timeout=10)
    assert any(m["version"] == champion and "accuracy" in m["metrics"] for m in snaps)

    # an operator reads the same from the worker's log: what it serves, each alert
    log = proc.log.read_text()
    assert f"registry: serving churn champion {champion} (registry offset " in log
    assert f"incident firing: churn {champion} concept_drift " in log


def rocksdb_tables(data_dir: Path) -> dict[int, tuple[int, int | None]]:
    """Per partition of the join store's RocksDB files under ``data_dir``: (entries held,
    the next changelog offset it would read). Read while no worker runs. Every partition
    that holds entries also holds the names record of their lean predictions."""
    found = {}
    for path in data_dir.rglob("join-*.db"):
        db = Rdict(str(path), options=Options(raw_mode=True))
        try:
            offset = db.get(OFFSET_KEY)
            names = [cast(bytes, k) for k, _ in db.items()]  # raw_mode: every key is bytes
            keys = sum(1 for k in names if k != OFFSET_KEY and not is_names_key(k))
            assert keys == 0 or any(is_names_key(k) for k in names), path
        finally:
            db.close()
        partition = int(path.name.removeprefix("join-").removesuffix(".db"))
        found[partition] = (keys, None if offset is None else int(offset))
    return found


@pytest.mark.parametrize("store", STORES)
def test_join_state_survives_a_worker_restart(settings, tmp_path, store) -> None:
    """Predictions joined by one worker, labels by the next: one outcome per event.

    The first worker commits every prediction it read before it stops, so the second
    can only join from the state it recovered (memory://: the changelog; rocksdb://:
    its files on disk plus the changelog after the offset they saved)."""
    models = MODELS.replace("join_ttl_ms = 8000", "join_ttl_ms = 300000")  # outlives a restart
    s, _, first = start_pipeline(settings, tmp_path, models=models, table_store=store)
    app_id = f"{s.topic_prefix}worker".replace(".", "-")
    group = f"{app_id}-join"
    changelog = f"{app_id}-join-changelog"
    events = [example(random.Random(17), i) for i in range(300)]
    args = first.args.copy()  # the same worker (app id, group), on a fresh port and log
    args[args.index("--web-port") + 1] = str(harness.free_port())
    second = harness.Process(s, args, tmp_path / "worker-2.log", first.ready)
    try:
        harness.produce(s, "features", harness.encoded(
            "io.driftline.FeatureEvent", map(feature_event, events)))  # fmt: skip
        preds = harness.collect(s, "predictions", lambda got: len(got) >= len(events))
        assert len(preds) == len(events), first.tail()
        predictions = s.topic("predictions")

        def held() -> bool:  # one changelog entry per event
            return sum(harness.offsets(s, changelog).values()) >= len(events)

        def committed() -> bool:  # the join read every prediction
            return harness.consumed_all(s, predictions, group)

        deadline = time.monotonic() + 60
        while not (held() and committed()):
            assert time.monotonic() < deadline, first.tail()
            time.sleep(0.5)
        first.stop()
        assert committed()
        if store == "rocksdb://":  # the state is on disk, up to the changelog's last record
            tables = rocksdb_tables(known(s.data_dir))
            assert sum(keys for keys, _ in tables.values()) == len(events)
            # each transaction ends with a commit marker: the store's next offset is the
            # end of the changelog or the marker just before it
            ends = harness.offsets(s, changelog)
            assert all(ends[p] - 1 <= int(offset or 0) <= ends[p]
                       for p, (_, offset) in tables.items()), (tables, ends)  # fmt: skip

        second.start()
        outcomes_of(s, events, second.tail)
        dead = harness.collect(s, "deadletter", lambda got: False, timeout=3)
        assert dead == [], [(d["reason"], d["stage"]) for d in dead]
    finally:
        second.stop()
        first.stop()


def test_every_challengers_predictions_travel_with_the_champions_to_the_outcome(pipeline) -> None:
    """Issue 23: a challenger's predictions went to predictions.shadow, which nothing
    joins. The champion's Prediction now carries them and the join copies them into the
    Outcome, so a challenger is judged on the champion's labelled events; with several
    challengers (the registry holds up to DRIFTLINE_MAX_CHALLENGERS), every one of them,
    oldest first."""
    s, champion, proc = pipeline
    config = ModelsConfig.load(s.models_file)["churn"]
    shadows: list[dict[str, Any]] = []
    for seed in (99, 98):
        rows = random.Random(seed)  # rows that differ, 100 held out (the gate's minimum)
        run, _ = bootstrap(
            [example(rows, i) for i in range(500)], config,
            key=s.signing_key.get_secret_value().encode(), by="test", reason="a challenger",
            now_ms=int(time.time() * 1000),
            existing_versions=[champion, *(r["version"] for r in shadows)],
        )  # fmt: skip
        shadows.append(dict(run.record, stage="challenger", stage_reason="shadow it"))
    versions = [r["version"] for r in shadows]
    assert champion not in versions and len(set(versions)) == 2
    harness.publish(s, "registry", "io.driftline.ModelVersion", shadows,
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
    rng = random.Random(23)
    warm = [example(rng, i) for i in range(20)]
    deadline = time.monotonic() + 60

    def both(got: list[Any]) -> bool:
        return {x["version"] for x in got} >= set(versions)

    while not both(harness.collect(s, "predictions.shadow", both, timeout=2)):
        assert time.monotonic() < deadline, proc.tail()  # the worker loads the challengers
        send(s, warm, labels=False)
    before = len(harness.collect(s, "predictions", lambda got: False, timeout=2))
    events = [example(rng, 1_000 + i) for i in range(100)]
    ids = {e["event_id"] for e in events}
    send(s, events)
    preds = harness.collect(s, "predictions", lambda got: len(got) >= before + len(events))
    mine = [p for p in preds if p["event_id"] in ids]
    assert len(mine) == len(events), proc.tail()
    outcomes = harness.collect(s, "outcomes", lambda got: len({o["event_id"] for o in got} & ids)
                               >= len(events))  # fmt: skip
    mine_out = {o["event_id"]: o for o in outcomes if o["event_id"] in ids}
    assert set(mine_out) == ids, proc.tail()
    key = s.signing_key.get_secret_value().encode()
    models = [load_version(r, key) for r in shadows]
    by_id = {e["event_id"]: e for e in events}
    for p in mine:
        assert [c["version"] for c in p["challengers"]] == versions
        for c, model in zip(p["challengers"], models, strict=True):
            value, scores = model.predict_one(by_id[p["event_id"]]["features"])
            assert c["prediction"] == value
            assert c["scores"] == pytest.approx(scores)
        assert mine_out[p["event_id"]]["challengers"] == p["challengers"]
    written = harness.collect(s, "predictions.shadow", lambda got: False, timeout=2)
    for version in versions:  # still written, one per event and challenger
        assert {x["event_id"] for x in written if x["version"] == version} >= ids


def _dead(s, reason: str, n: int, timeout: float = 60) -> list[dict[str, Any]]:
    def enough(got: list[Any]) -> bool:
        count: int = sum(d["reason"] == reason for d in got)
        return count >= n

    return [d for d in harness.collect(s, "deadletter", enough, timeout) if d["reason"] == reason]


def test_labels_are_checked_against_the_champion_and_a_new_task_is_followed(pipeline) -> None:
    """The trial: a boolean model joined ``1`` and ``"True"`` labels (the string counted
    as a wrong prediction), and a model re-bootstrapped as a regressor was monitored as
    a classifier until the worker restarted."""
    s, champion, proc = pipeline
    rng = random.Random(23)
    events = [example(rng, i) for i in range(3)]
    harness.produce(s, "features", harness.encoded(
        "io.driftline.FeatureEvent", map(feature_event, events)))  # fmt: skip
    labels = [{**label(e), "label": value} for e, value in zip(events, [1, "True", True],
                                                               strict=True)]  # fmt: skip
    harness.produce(s, "labels", harness.encoded("io.driftline.Label", labels))
    dead = _dead(s, "label_type_mismatch", 2)
    assert sorted(d["source_key"] for d in dead) == sorted(
        e["event_id"].encode() for e in events[:2]), proc.tail()  # fmt: skip
    assert all(d["stage"] == "join" for d in dead)
    # each names its model and the labels record it was (topic, offset, timestamp)
    assert all(d["model"] == "churn" for d in dead)
    assert all(d["source_topic"] == s.topic("labels") for d in dead)
    assert all(d["source_offset"] >= 0 and d["source_timestamp_ms"] for d in dead)
    sent = [v for _, v in harness.encoded("io.driftline.Label", labels[:2])]
    assert sorted(d["raw"] for d in dead) == sorted(sent)
    details = sorted(d["detail"] for d in dead)
    assert "label 'True' (string): churn " in details[0]
    assert "label 1 (integer): churn " in details[1]
    assert all(f"{champion} predicts boolean classes (False, True)" in d for d in details)
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= 1)
    assert [o["event_id"] for o in outcomes] == [events[2]["event_id"]]

    # the same model re-bootstrapped as a regressor, the worker running on (its models
    # file still says classification): labels and metrics follow the registry's champion
    old = known(read_registry(s).champion("churn"))
    config = ModelConfig("churn", task="regression", factory="linear_regression",
                         features=ModelsConfig.load(s.models_file)["churn"].features)  # fmt: skip
    # a label the features explain: a first version must beat the mean (the gate's baseline)
    rows = [{**e, "label": 10 * (e["features"]["x1"] + e["features"]["x2"]) + 25}
            for e in (example(rng, i) for i in range(600))]  # fmt: skip
    _, records = bootstrap(rows, config, key=s.signing_key.get_secret_value().encode(),
                           by="test", reason="now a regressor", now_ms=int(time.time() * 1000),
                           current=[old], existing_versions=[old["version"]])  # fmt: skip
    new = records[-1]["version"]
    harness.publish(s, "registry", "io.driftline.ModelVersion", records,
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
    deadline = time.monotonic() + 60
    served: list[dict[str, Any]] = []
    while not any(p["version"] == new for p in served):  # the scorer swaps within seconds
        assert time.monotonic() < deadline, proc.tail()
        probe = example(rng, 10_000 + len(served))
        harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent",
                                                       [feature_event(probe)]))  # fmt: skip
        time.sleep(0.5)
        served = harness.collect(s, "predictions", lambda got: False, timeout=2)
    batch = [example(rng, 20_000 + i) for i in range(300)]
    harness.produce(s, "features", harness.encoded(
        "io.driftline.FeatureEvent", map(feature_event, batch)))  # fmt: skip
    preds = harness.collect(s, "predictions", lambda got: sum(
        p["version"] == new for p in got) >= len(batch))  # fmt: skip
    assert sum(p["version"] == new for p in preds) >= len(batch)
    regression_labels = [{**label(e), "label": float(i % 50)} for i, e in enumerate(batch)]
    regression_labels[0]["label"] = True  # a classifier's label, for the regressor
    harness.produce(s, "labels", harness.encoded("io.driftline.Label", regression_labels))
    dead = _dead(s, "label_type_mismatch", 3)
    (mine,) = [d for d in dead if d["source_key"] == batch[0]["event_id"].encode()]
    assert f"label True (boolean): churn {new} is a regression model" in mine["detail"]

    def mae_of_new(got: list[Any]) -> bool:
        return any(m["version"] == new and "mae" in m["metrics"] for m in got)

    snaps = harness.collect(s, "metrics", mae_of_new, timeout=60)
    assert mae_of_new(snaps), proc.tail()
    assert not any(m["version"] == new and "accuracy" in m["metrics"] for m in snaps)
    assert proc.running()


def test_sighup_reloads_the_models_file_and_refuses_a_broken_one(pipeline) -> None:
    """A broken file is refused with a config_rejected alert and the worker runs on with
    its last good configuration; a good one is applied without a restart."""
    s, _, proc = pipeline
    assert s.models_file is not None
    s.models_file.write_text(MODELS.replace("min_rows = 300", "min_rws = 300"))
    alerts = harness.refused_models_file(s, proc)
    rejected = [a for a in alerts if a["kind"] == "config_rejected"]
    assert rejected, proc.tail()
    alert = rejected[0]
    assert alert["model"] == "churn" and alert["evidence"]["process"] == "worker"
    assert "models.churn.retrain.min_rws (line 11): unknown key" in alert["message"]
    assert proc.running()
    assert "refused models file" in proc.tail()

    # the last good file is in force (TTL 8 s); a good one with a 1 s TTL is applied
    s.models_file.write_text(MODELS.replace("join_ttl_ms = 8000", "join_ttl_ms = 1000"))
    harness.reloaded_models_file(proc)
    assert "changed: churn" in proc.tail()
    lonely = example(random.Random(29), 0)  # a prediction whose label never comes
    harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent",
                                                   [feature_event(lonely)]))  # fmt: skip
    (expired,) = _dead(s, "expired_prediction", 1, timeout=30)
    (pred,) = [p for p in harness.collect(s, "predictions", lambda got: len(got) >= 1)
               if p["event_id"] == lonely["event_id"]]  # fmt: skip
    assert expired["failed_at_ms"] - pred["predicted_at_ms"] < 7_000  # 1 s, not 8 s
    assert proc.running()
