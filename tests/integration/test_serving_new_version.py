"""The loop closed through the real broker: the worker scores with the champion, the
trainer answers a trigger with a better version, and the worker serves that version
(seen in the predictions' version field) within seconds."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from driftline.consumers.trainer import Outcome, Trainer
from driftline.core.lifecycle.registry import retire, unretire
from driftline.core.model.config import ModelsConfig
from driftline.kafka.helpers import Publisher
from driftline.kafka.registry_follower import read_registry
from tests.integration import harness
from tests.integration.churn import MODELS, example, label, send, start_pipeline
from tests.integration.loop_helpers import FAST_GROUP, publish_trigger, trigger


def has_all(ids: set[str]) -> Callable[[list[Any]], bool]:
    """Whether predictions collected so far hold every one of ``ids``."""
    return lambda got: ids <= {p["event_id"] for p in got}


def flipped(rng: random.Random, start: int, n: int) -> list[dict[str, Any]]:
    """Events whose concept flipped: every label inverted (the champion is now wrong)."""
    return [{**e, "label": not e["label"]} for e in (example(rng, start + i) for i in range(n))]


def test_worker_serves_the_retrained_champion(pipeline, group_id: str) -> None:
    s, old, proc = pipeline
    rng = random.Random(21)
    send(s, flipped(rng, 0, 600))
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= 600, timeout=90)
    assert len(outcomes) >= 600, proc.tail()
    assert {o["version"] for o in outcomes} == {old}

    publish_trigger(s, trigger(last_n=600))
    trainer = Trainer(
        s, ModelsConfig.load(s.models_file), group_id=group_id, consumer_overrides=FAST_GROUP
    )
    try:
        answers: list[Outcome] = []
        deadline = time.monotonic() + 60  # the monitor may publish triggers of its own too
        while not any(a.status == "champion" for a in answers) and time.monotonic() < deadline:
            answers += trainer.run(max_triggers=1, idle_timeout_s=10)
    finally:
        trainer.close()
    new = next(a.version for a in answers if a.status == "champion")
    promoted = time.monotonic()

    served_after = None
    probe = 0
    while served_after is None and time.monotonic() - promoted < 30:
        batch = flipped(rng, 10_000 + 20 * probe, 20)
        probe += 1
        send(s, batch, labels=False)
        ids = {e["event_id"] for e in batch}
        preds = harness.collect(s, "predictions", has_all(ids))
        versions = {p["version"] for p in preds if p["event_id"] in ids}
        if versions == {new}:
            served_after = time.monotonic() - promoted
    assert served_after is not None, proc.tail()
    assert served_after < 15
    last = [p for p in preds if p["event_id"] in ids]
    accuracy = sum(
        p["prediction"] == e["label"] for p in last for e in batch if e["event_id"] == p["event_id"]
    ) / len(batch)
    assert accuracy > 0.8  # the new version learned the flipped concept


def test_a_retired_model_is_dead_lettered_and_served_again_once_unretired(pipeline) -> None:
    s, champion, proc = pipeline
    rng = random.Random(5)
    reg = read_registry(s)
    _publish(s, retire(reg, "churn", by="test", reason="retired in a test", now_ms=_now()))

    def dead_reasons(batch: list[dict[str, Any]]) -> dict[str, str]:
        ids = {e["event_id"] for e in batch}
        got = harness.collect(s, "deadletter",
                              lambda got: ids <= {d["source_key"].decode() for d in got},
                              timeout=5)  # fmt: skip
        return {d["source_key"].decode(): d["reason"] for d in got if d["source_key"]}

    reasons: dict[str, str] = {}
    deadline, batch = time.monotonic() + 30, list[dict[str, Any]]()
    while time.monotonic() < deadline:  # the worker follows the registry within seconds
        batch = [example(rng, 20_000 + len(reasons) * 20 + i) for i in range(20)]
        send(s, batch, labels=False)
        reasons = dead_reasons(batch)
        if {reasons.get(e["event_id"]) for e in batch} == {"model_retired"}:
            break
    assert {reasons.get(e["event_id"]) for e in batch} == {"model_retired"}, proc.tail()
    dead = harness.collect(s, "deadletter", lambda got: False, timeout=2)
    detail = next(d["detail"] for d in dead if d["reason"] == "model_retired")
    assert "model 'churn' is retired" in detail and "unretire" in detail

    _publish(s, unretire(read_registry(s), "churn", by="test", reason="back", now_ms=_now()))
    deadline, served = time.monotonic() + 30, set[str]()
    while time.monotonic() < deadline and served != {champion}:
        batch = [example(rng, 40_000 + int(time.monotonic() * 1000) % 10_000 + i)
                 for i in range(20)]  # fmt: skip
        send(s, batch, labels=False)
        ids = {e["event_id"] for e in batch}
        preds = harness.collect(s, "predictions", has_all(ids), timeout=5)
        served = {p["version"] for p in preds if p["event_id"] in ids}
    assert served == {champion}, proc.tail()


def test_labels_of_a_retired_models_predictions_still_join(settings, tmp_path) -> None:
    """Predictions made before a model was retired are held in the join under their model
    and event_id; their labels, arriving once the worker knows the model is retired, are
    checked against the version retired from the champion slot (not refused as an
    unknown model): the right ones join, a wrongly typed one is a label_type_mismatch
    naming that version."""
    models = MODELS.replace("join_ttl_ms = 8000", "join_ttl_ms = 300000")  # outlives the wait
    s, champion, proc = start_pipeline(settings, tmp_path, models=models)
    try:
        rng = random.Random(11)
        events = [example(rng, i) for i in range(5)]
        ids = {e["event_id"] for e in events}
        send(s, events, labels=False)
        preds = harness.collect(s, "predictions",
                                lambda got: ids <= {p["event_id"] for p in got})  # fmt: skip
        assert {p["event_id"] for p in preds} == ids, proc.tail()
        _publish(s, retire(read_registry(s), "churn", by="test", reason="r", now_ms=_now()))
        deadline, reason = time.monotonic() + 30, None
        while reason != "model_retired":  # the worker follows the registry within seconds
            assert time.monotonic() < deadline, proc.tail()
            probe = example(rng, 1_000 + int(time.monotonic() * 1000) % 100_000)
            send(s, [probe], labels=False)
            reason = _dead_reason(s, probe["event_id"].encode())
        labels = [label(e) for e in events[:4]] + [{**label(events[4]), "label": 1}]
        harness.produce(s, "labels", harness.encoded("io.driftline.Label", labels))
        outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= 4)
        assert sorted(o["event_id"] for o in outcomes) == sorted(
            e["event_id"] for e in events[:4]), proc.tail()  # fmt: skip
        assert {o["version"] for o in outcomes} == {champion}
        dead = harness.collect(s, "deadletter", lambda got: any(
            d["reason"] == "label_type_mismatch" for d in got))  # fmt: skip
        (mismatch,) = [d for d in dead if d["reason"] == "label_type_mismatch"]
        assert mismatch["source_key"] == events[4]["event_id"].encode()
        assert f"{champion} predicts boolean classes (False, True)" in mismatch["detail"]
        assert not any(d["reason"] == "unknown_model" for d in dead), proc.tail()
    finally:
        proc.stop()


def _dead_reason(s, key: bytes) -> str | None:
    """The reason of the dead letter of the record with ``key`` (None: none within 5 s)."""

    def seen(got: list[dict[str, Any]]) -> bool:
        return any(d["source_key"] == key for d in got)

    dead = harness.collect(s, "deadletter", seen, timeout=5)
    return next((d["reason"] for d in dead if d["source_key"] == key), None)


def _now() -> int:
    return int(time.time() * 1000)


def _publish(s, records: list[dict[str, Any]]) -> None:
    pub = Publisher(s, "test")
    pub.send_versions(records)
    pub.close()
