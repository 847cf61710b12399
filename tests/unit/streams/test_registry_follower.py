"""The worker's registry follower without a broker: records in, the lineup it serves out
(champion and every challenger; nothing for a retired model) and its version gauges."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.core.lifecycle.registry import Registry, retire, transition, unretire
from driftline.core.lifecycle.training import bootstrap, train
from driftline.core.model.config import GateConfig, ModelConfig
from driftline.core.wire.codec import default_codec
from driftline.settings import Settings
from driftline.streams import telemetry as m
from driftline.streams.registry import RegistryFollower

MODEL = "follow-me"
CFG = ModelConfig(MODEL, factory="logistic_regression", gate=GateConfig(min_segment_samples=10))


def rows(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(500):
        x = rng.random() * 10
        out.append({"features": {"x": x}, "label": x > 5, "event_time_ms": i})
    return out


@pytest.fixture
def follower() -> RegistryFollower:
    return RegistryFollower(Settings(), default_codec())


def feed(f: RegistryFollower, records: list[dict[str, Any]]) -> None:
    codec = default_codec()
    for r in records:
        f._apply(f"{r['model']}/{r['version']}".encode(), codec.encode("ModelVersion", r))
    f._reload()


def gauge(version: str, stage: str) -> float:
    return m.MODEL_VERSION_INFO.labels(MODEL, version, stage)._value.get()


def test_every_challenger_is_served_and_a_retired_model_is_not(follower: RegistryFollower) -> None:
    key = Settings().signing_key.get_secret_value().encode()
    _, records = bootstrap(rows(1), CFG, key=key, by="t", reason="r", now_ms=1, host="h")
    feed(follower, records)
    champion = records[-1]["version"]
    versions = [champion]
    reg = Registry.from_records(records)
    for i in range(4):  # four challengers with the default cap of 3: the first is archived
        run = train(rows(10 + i), CFG, key=key, now_ms=10 + i, host="h",
                    existing_versions=versions)  # fmt: skip
        versions.append(run.record["version"])
        reg.apply(run.record)
        out = transition(reg, MODEL, run.record["version"], "challenger", by="t", reason="r",
                         now_ms=20 + i)  # fmt: skip
        for r in out:
            reg.apply(r)
        feed(follower, [run.record, *out])
    served, challengers = follower.lineup(MODEL)
    assert served is not None and served.version == champion
    assert [c.version for c in challengers] == versions[2:]
    assert follower.versions(MODEL) == (served, challengers[-1])  # the newest, for one slot
    assert gauge(versions[1], "challenger") == 0 and gauge(versions[4], "challenger") == 1
    assert not follower.retired(MODEL)

    out = retire(reg, MODEL, by="t", reason="r", now_ms=50)
    for r in out:
        reg.apply(r)
    feed(follower, out)
    assert follower.retired(MODEL)
    assert follower.lineup(MODEL) == (None, ()) and follower.versions(MODEL) == (None, None)
    assert gauge(champion, "champion") == 0 and gauge(versions[4], "challenger") == 0

    out = unretire(reg, MODEL, by="t", reason="r", now_ms=60)
    feed(follower, out)
    served, challengers = follower.lineup(MODEL)
    assert served is not None and served.version == champion
    assert [c.version for c in challengers] == versions[2:]
    assert gauge(champion, "champion") == 1
