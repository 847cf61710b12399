"""Shared set-up of the continuous-training integration tests: real broker, real clients."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from driftline.consumers.trainer import Outcome, Trainer
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import GateConfig, ModelConfig, ModelsConfig
from driftline.core.wire.codec import default_codec
from driftline.kafka import admin
from driftline.kafka.clients import consumer_config, producer_config
from driftline.kafka.helpers import Publisher
from driftline.settings import Settings
from tests.integration.harness import value_of
from tests.unit.core.examples import known

T0 = (int(time.time()) - 86_400) * 1_000
"""Event times start a day ago: outcomes carry their label time as Kafka timestamp, and a
timestamp older than the topic's retention (4 weeks) gets the record deleted at the
broker's next retention check, under the test's feet."""
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def loop_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings with topics applied and artifacts under ``tmp_path``."""
    s = settings.model_copy(
        update={"artifact_dir": tmp_path / "artifacts", "sql_url": f"sqlite:///{tmp_path}/v.db"}
    )
    admin.apply(s)
    return s


def models(promotion: str = "auto", min_rows: int = 100, **gate: Any) -> ModelsConfig:
    gate = {"min_segment_samples": 50, **gate}
    cfg = ModelConfig(
        "churn",
        factory="logistic_regression",
        promotion=promotion,
        gate=GateConfig(**gate),
        retrain={"min_rows": min_rows},
    )
    return ModelsConfig({"churn": cfg})


def outcome(
    i: int, rng: random.Random, model: str = "churn", noise: float = 0.1, version: str = "v0"
) -> dict[str, Any]:
    amount = rng.random() * 10
    label = (amount > 5) != (rng.random() < noise)
    t = T0 + i * 1_000
    return {
        "event_id": f"{model}-{uuid.uuid4().hex[:8]}-{i}",
        "model": model,
        "version": version,
        "event_time_ms": t,
        "predicted_at_ms": t + 5,
        "label_time_ms": t + 60_000,
        "label_delay_ms": 60_000,
        "prediction": amount > 5,
        "scores": {},
        "label": label,
        "features": {"amount": amount, "plan": rng.choice(["basic", "pro"])},
        "segment": {"region": "eu" if i % 2 else "us"},
    }


def produce_outcomes(
    settings: Settings, n: int, *, seed: int = 1, start: int = 0, model: str = "churn", **kw: Any
) -> list[tuple[dict[str, Any], int, int]]:
    """Produce ``n`` outcomes (Kafka timestamp = label time); (outcome, partition, offset)."""
    rng = random.Random(seed)
    producer = Producer(producer_config(settings, "test"))
    delivered: list[tuple[dict[str, Any], int, int]] = []
    rows = [outcome(start + i, rng, model, **kw) for i in range(n)]
    for row in rows:

        def done(err: Any, msg: Any, row: dict[str, Any] = row) -> None:
            assert err is None, err
            delivered.append((row, msg.partition(), msg.offset()))

        producer.produce(
            settings.topic("outcomes"),
            key=row["event_id"].encode(),
            value=default_codec().encode("Outcome", row),
            timestamp=row["label_time_ms"],
            on_delivery=done,
        )
    assert producer.flush(30) == 0
    return delivered


def trigger(model: str = "churn", **kw: Any) -> dict[str, Any]:
    tid = f"trg-{uuid.uuid4().hex[:8]}"
    return {
        "trigger_id": tid,
        "model": model,
        "idempotency_key": f"key-{tid}",
        "reasons": ["manual"],
        "evidence": {},
        "window_start_ms": None,
        "window_end_ms": None,
        "last_n": None,
        "champion_version": None,
        "requested_by": "test",
        "created_at_ms": T0,
        **kw,
    }


def publish_trigger(settings: Settings, trg: dict[str, Any]) -> None:
    pub = Publisher(settings, "test")
    pub.send("retrain", trg["model"], "RetrainTrigger", trg)
    pub.close()


def trainer(settings: Settings, group_id: str, config: ModelsConfig | None = None) -> Trainer:
    return Trainer(settings, config or models(), group_id=group_id, consumer_overrides=FAST_GROUP)


def answer_triggers(
    settings: Settings, group_id: str, config: ModelsConfig | None = None, triggers: int = 1
) -> list[Outcome]:
    """A trainer that answers ``triggers`` triggers (30 s idle at most), then is closed."""
    t = trainer(settings, group_id, config)
    try:
        return t.run(max_triggers=triggers, idle_timeout_s=30)
    finally:
        t.close()


def bootstrap_champion(
    settings: Settings, n: int = 600, seed: int = 7, noise: float = 1.0
) -> dict[str, Any]:
    """Publish a first champion; trained before the concept flipped (``noise=1``: every
    label inverted), so a version retrained on current outcomes beats it."""
    rng = random.Random(seed)
    rows = [outcome(i, rng, noise=noise) for i in range(n)]
    key = settings.signing_key.get_secret_value().encode()
    _, records = bootstrap(rows, models()["churn"], key=key, by="test", reason="t", now_ms=T0)
    pub = Publisher(settings, "test")
    pub.send_versions(records)
    pub.close()
    return records[-1]


def read_topic(settings: Settings, name: str, record: str) -> list[dict[str, Any]]:
    """Every record on a Driftline topic, in partition order."""
    consumer = Consumer(consumer_config(settings, "test-read", f"r-{uuid.uuid4().hex}"))
    topic = settings.topic(name)
    out = []
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for p in sorted(parts):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high == 0:
                continue
            consumer.assign([TopicPartition(topic, p, 0)])
            got = 0
            deadline = time.monotonic() + 10
            while got < high:
                assert time.monotonic() < deadline, f"{topic}[{p}] ended at {got} of {high}"
                for m in consumer.consume(500, 0.2):
                    got = known(m.offset()) + 1
                    out.append(default_codec().decode(value_of(m), expect=record).value)
    finally:
        consumer.close()
    return out
