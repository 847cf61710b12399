"""What every throughput measurement shares: a broker, topics under a fresh prefix, a
10-feature churn model bootstrapped as champion, and pre-encoded records.

The model is realistic in shape: six numeric and four categorical features with
realistic names, a declared spec with bounds and category sets (so validation has work
to do), and a champion trained by :func:`driftline.core.lifecycle.training.bootstrap` with the
``logistic_regression`` or ``hoeffding_tree`` factory, then loaded the way a worker
loads it (:func:`driftline.core.model.estimators.load_version`: digest and signature checked).
"""

from __future__ import annotations

import math
import random
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.model.estimators import ServedModel, load_version
from driftline.core.wire.codec import Codec, default_codec
from driftline.core.wire.headers import build as record_headers
from driftline.core.wire.headers import for_confluent
from driftline.kafka import admin
from driftline.kafka.clients import admin_config, producer_config
from driftline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MODEL = "churn"
FACTORIES = ("logistic_regression", "hoeffding_tree")
T0 = 1_700_000_000_000

_CONTRACTS = ["month_to_month", "one_year", "two_year"]
_PAYMENTS = ["credit_card", "bank_transfer", "paypal", "invoice"]
_REGIONS = ["emea", "americas", "apac"]
_DEVICES = ["web", "ios", "android"]


def models_toml(factory: str, join_ttl_ms: int = 600_000) -> str:
    """The models file of the bench's churn model (10 features, declared spec)."""
    numbers = [
        ("tenure_months", "integer", 0, 240),
        ("monthly_charges", "number", 0, 500),
        ("total_charges", "number", 0, 100_000),
        ("support_calls_90d", "integer", 0, 100),
        ("avg_session_minutes", "number", 0, 600),
        ("days_since_last_login", "integer", 0, 3650),
    ]
    cats = [
        ("contract_type", _CONTRACTS),
        ("payment_method", _PAYMENTS),
        ("region", _REGIONS),
        ("device_type", _DEVICES),
    ]
    parts = [
        f'[models.{MODEL}]\ntask = "classification"\nfactory = "{factory}"\n'
        f"join_ttl_ms = {join_ttl_ms}\n\n[models.{MODEL}.gate]\nmin_segment_samples = 50\n"
        f"max_predict_us = 50000.0\n\n[models.{MODEL}.retrain]\ncooldown_ms = 86400000\n"
    ]
    for name, kind, lo, hi in numbers:
        parts.append(
            f'[[models.{MODEL}.features]]\nname = "{name}"\ntype = "{kind}"\n'
            f"min = {float(lo)}\nmax = {float(hi)}\n"
        )
    for name, values in cats:
        listed = ", ".join(f'"{v}"' for v in values)
        parts.append(
            f'[[models.{MODEL}.features]]\nname = "{name}"\ntype = "category"\n'
            f"categories = [{listed}]\n"
        )
    return "\n".join(parts)


def example(rng: random.Random, i: int) -> dict[str, Any]:
    """One labelled churn example: features, label, segment, event id and time."""
    tenure = rng.randint(0, 72)
    monthly = round(rng.uniform(18.0, 120.0), 2)
    contract = rng.choice(_CONTRACTS)
    calls = min(int(rng.expovariate(0.7)), 30)
    session = round(rng.gammavariate(2.0, 8.0), 2)
    idle = min(int(rng.expovariate(0.1)), 365)
    features = {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": round(tenure * monthly * rng.uniform(0.9, 1.1), 2),
        "support_calls_90d": calls,
        "avg_session_minutes": session,
        "days_since_last_login": idle,
        "contract_type": contract,
        "payment_method": rng.choice(_PAYMENTS),
        "region": rng.choice(_REGIONS),
        "device_type": rng.choice(_DEVICES),
    }
    z = (
        -1.0
        - 0.04 * tenure
        + 0.015 * monthly
        + 0.45 * calls
        + 0.03 * idle
        - 0.05 * session
        + (1.2 if contract == "month_to_month" else -0.6)
    )
    label = rng.random() < 1.0 / (1.0 + math.exp(-z))
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "features": features,
        "label": label,
        "segment": {"region": features["region"], "channel": features["device_type"]},
        "event_time_ms": T0 + i,
    }


def feature_event(e: dict[str, Any]) -> dict[str, Any]:
    """The FeatureEvent of an example."""
    return {
        "event_id": e["event_id"],
        "model": MODEL,
        "event_time_ms": e["event_time_ms"],
        "features": e["features"],
        "segment": e["segment"],
    }


def label_record(e: dict[str, Any], delay_ms: int = 60_000) -> dict[str, Any]:
    """The Label of an example."""
    return {
        "event_id": e["event_id"],
        "model": MODEL,
        "label": e["label"],
        "label_time_ms": e["event_time_ms"] + delay_ms,
    }


Encoded = list[tuple[bytes, bytes]]
"""(key, value) pairs, ready to produce."""


def encode_all(name: str, records: Iterable[dict[str, Any]], codec: Codec | None = None) -> Encoded:
    """Single-object encode ``records`` (keyed by event_id) once, to produce many times."""
    c = codec or default_codec()
    return [(r["event_id"].encode(), c.encode(name, r)) for r in records]


def examples(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [example(rng, i) for i in range(n)]


# -- broker and topics ---------------------------------------------------------------


class Broker:
    """A broker of our own (infra/kafka/broker.sh in a temp dir), or one given."""

    def __init__(self, workdir: Path, bootstrap: str | None = None) -> None:
        self.dir = workdir / "broker"
        self.own = bootstrap is None
        self.bootstrap = bootstrap or ""

    def __enter__(self) -> Broker:
        if self.own:
            out = subprocess.run(
                ["bash", str(ROOT / "infra/kafka/broker.sh"), "up", "--port", "auto",
                 "--dir", str(self.dir)],
                check=True, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            self.bootstrap = out.stdout.strip().splitlines()[-1]
        return self

    @property
    def pid(self) -> int | None:
        """The broker's process id, when this bench started it (for its CPU time)."""
        pid_file = self.dir / "broker.pid"
        if not self.own or not pid_file.exists():
            return None
        return int(pid_file.read_text().strip())

    def __exit__(self, *exc: object) -> None:
        if self.own:
            subprocess.run(
                ["bash", str(ROOT / "infra/kafka/broker.sh"), "down", "--dir", str(self.dir),
                 "--purge"],
                check=False, capture_output=True, timeout=120,
            )  # fmt: skip


@dataclass
class Deployment:
    """Topics under one prefix, with the champion on its registry."""

    settings: Settings
    models_file: Path
    champion: ServedModel
    record: dict[str, Any]


_RUN = uuid.uuid4().hex[:6]


def fresh_settings(
    bootstrap: str, tag: str, workdir: Path, factory: str, replication_factor: int = 1
) -> Settings:
    """Settings for a fresh topic prefix, with the bench model's models file."""
    models_file = workdir / f"models-{factory}.toml"
    models_file.write_text(models_toml(factory))
    return Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"bench{_RUN}.{tag}.",
        client_id=f"bench-{tag}",
        models_file=models_file,
        monitor_interval_s=5.0,
        replication_factor=replication_factor,
    )


_TRAINED: dict[tuple[str, int], list[dict[str, Any]]] = {}


def trained_records(settings: Settings, factory: str, rows: int) -> list[dict[str, Any]]:
    """The bootstrap records (candidate, champion) of the bench model, trained once."""
    key = (factory, rows)
    if key not in _TRAINED:
        config = ModelsConfig.load(settings.models_file)[MODEL]
        _, records = bootstrap(
            examples(rows, seed=11), config,
            key=settings.signing_key.get_secret_value().encode(), by="bench",
            reason="throughput bench", now_ms=int(time.time() * 1000),
        )  # fmt: skip
        _TRAINED[key] = records
    return _TRAINED[key]


def deploy(bootstrap: str, tag: str, workdir: Path, factory: str, train_rows: int,
           replication_factor: int = 1) -> Deployment:  # fmt: skip
    """Topics applied under a fresh prefix (``replication_factor`` replicas); the champion
    published and loaded."""
    s = fresh_settings(bootstrap, tag, workdir, factory, replication_factor)
    admin.apply(s)
    records = trained_records(s, factory, train_rows)
    codec = default_codec()
    p = Producer(producer_config(s, "bench-registry"))
    for r in records:
        p.produce(
            s.topic("registry"),
            codec.encode("io.driftline.ModelVersion", r),
            f"{r['model']}/{r['version']}".encode(),
            headers=for_confluent(record_headers("io.driftline.ModelVersion", None, None)),
        )
    assert p.flush(30) == 0
    record = records[-1]
    champion = load_version(record, s.signing_key.get_secret_value().encode())
    return Deployment(s, s.models_file or Path(), champion, record)


def model_config(settings: Settings) -> ModelConfig:
    return ModelsConfig.load(settings.models_file)[MODEL]


def create_topic(settings: Settings, suffix: str) -> str:
    """An extra topic under the prefix (same partitions as the data topics)."""
    name = settings.topic(suffix)
    a = AdminClient(admin_config(settings))
    fut = a.create_topics([NewTopic(name, settings.data_partitions, 1)])[name]
    fut.result(timeout=30)
    return name


def produce_all(settings: Settings, topic: str, records: Encoded) -> None:
    """Produce pre-encoded records (all delivered on return)."""
    p = Producer(producer_config(settings, "bench-fill", **{"linger.ms": 20}))
    for i, (key, value) in enumerate(records):
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
        if i % 5_000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
