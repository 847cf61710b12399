"""The worker end to end through the real broker: features and delayed labels in,
predictions, outcomes and dead letters out, with exact counts; the join's state on
either table store, and across a worker restart."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from driftline.core.join.leanentry import is_names_key
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.core.model.estimators import load_version
from driftline.core.wire.codec import default_codec
from driftline.streams.joinstore import OFFSET_KEY
from tests.integration import harness
from tests.integration.churn import MODELS, example, feature_event, label, send, start_pipeline

STORES = ["memory://", "rocksdb://"]


@pytest.mark.parametrize("pipeline", STORES, indirect=True)
def test_features_then_labels_give_exact_predictions_and_outcomes(pipeline) -> None:
    s, champion, proc = pipeline
    rng = random.Random(11)
    events = [example(rng, i) for i in range(500)]
    ids = {e["event_id"] for e in events}
    harness.produce(s, "features", harness.encoded(
        "io.driftline.FeatureEvent", [feature_event(e) for e in events]))  # fmt: skip

    preds = harness.collect(s, "predictions", lambda got: len(got) >= len(events))
    assert sorted(p["event_id"] for p in preds) == sorted(ids), proc.tail()
    assert {p["version"] for p in preds} == {champion}
    assert all(set(p["scores"]) == {"True", "False"} for p in preds)
    assert all(math.isclose(sum(p["scores"].values()), 1.0) for p in preds)

    harness.produce(s, "labels", harness.encoded("io.driftline.Label", map(label, events)))
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= len(events))
    time.sleep(2)  # a duplicate outcome would show up now
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) > len(events), timeout=3)
    assert len(outcomes) == len(events)
    assert {o["event_id"] for o in outcomes} == ids
    by_id = {e["event_id"]: e for e in events}
    assert all(o["label"] == by_id[o["event_id"]]["label"] for o in outcomes)
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

    def drift_alert(got: list) -> bool:
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


def rocksdb_tables(data_dir: Path) -> dict[int, tuple[int, int | None]]:
    """Per partition of the join store's RocksDB files under ``data_dir``: (entries held,
    the next changelog offset it would read). Read while no worker runs. Every partition
    that holds entries also holds the names record of their lean predictions."""
    found = {}
    for path in data_dir.rglob("join-*.db"):
        db = Rdict(str(path), options=Options(raw_mode=True))
        try:
            offset = db.get(OFFSET_KEY)
            keys = sum(1 for k, _ in db.items() if k != OFFSET_KEY and not is_names_key(k))
            assert keys == 0 or any(is_names_key(k) for k, _ in db.items()), path
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
    ids = {e["event_id"] for e in events}
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
            tables = rocksdb_tables(s.data_dir)
            assert sum(keys for keys, _ in tables.values()) == len(events)
            # each transaction ends with a commit marker: the store's next offset is the
            # end of the changelog or the marker just before it
            ends = harness.offsets(s, changelog)
            assert all(ends[p] - 1 <= int(offset or 0) <= ends[p]
                       for p, (_, offset) in tables.items()), (tables, ends)  # fmt: skip

        second.start()
        harness.produce(s, "labels", harness.encoded("io.driftline.Label", map(label, events)))
        outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= len(events))
        time.sleep(2)  # a duplicate outcome would show up now
        outcomes = harness.collect(s, "outcomes", lambda got: len(got) > len(events), timeout=3)
        assert sorted(o["event_id"] for o in outcomes) == sorted(ids), second.tail()
        dead = harness.collect(s, "deadletter", lambda got: False, timeout=3)
        assert dead == [], [(d["reason"], d["stage"]) for d in dead]
    finally:
        second.stop()
        first.stop()


def test_a_challengers_predictions_travel_with_the_champions_to_the_outcome(pipeline) -> None:
    """Issue 23: a challenger's predictions went to predictions.shadow, which nothing
    joins. The champion's Prediction now carries them and the join copies them into the
    Outcome, so a challenger is judged on the champion's labelled events."""
    s, champion, proc = pipeline
    config = ModelsConfig.load(s.models_file)["churn"]
    run, _ = bootstrap(
        [example(random.Random(99), i) for i in range(400)], config,
        key=s.signing_key.get_secret_value().encode(), by="test", reason="a challenger",
        now_ms=int(time.time() * 1000),
    )  # fmt: skip
    shadow = dict(run.record, stage="challenger", stage_reason="shadow it")
    assert shadow["version"] != champion
    harness.publish(s, "registry", "io.driftline.ModelVersion", [shadow],
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
    rng = random.Random(23)
    warm = [example(rng, i) for i in range(20)]
    deadline = time.monotonic() + 60
    while not harness.collect(s, "predictions.shadow", lambda got: len(got) > 0, timeout=2):
        assert time.monotonic() < deadline, proc.tail()  # the worker loads the challenger
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
    model = load_version(shadow, s.signing_key.get_secret_value().encode())
    by_id = {e["event_id"]: e for e in events}
    for p in mine:
        (c,) = p["challengers"]
        value, scores = model.predict_one(by_id[p["event_id"]]["features"])
        assert (c["version"], c["prediction"]) == (shadow["version"], value)
        assert c["scores"] == pytest.approx(scores)
        assert mine_out[p["event_id"]]["challengers"] == p["challengers"]
    shadows = harness.collect(s, "predictions.shadow", lambda got: False, timeout=2)
    assert {x["event_id"] for x in shadows} >= ids  # still written, one per event
