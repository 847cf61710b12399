"""The worker's registry follower without a broker: records in, the lineup it serves out
(champion and every challenger, a tuple; nothing for a retired model), its version gauges
and its log of challenger changes."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, cast

import pytest

from driftline.core.lifecycle.registry import Registry, retire, transition, unretire
from driftline.core.lifecycle.training import bootstrap, train
from driftline.core.model.config import GateConfig, ModelConfig
from driftline.core.model.estimators import ServedModel
from driftline.core.wire.codec import default_codec
from driftline.settings import Settings
from driftline.streams import telemetry as m
from driftline.streams.lineups import Lineups

MODEL = "follow-me"
CFG = ModelConfig(MODEL, factory="logistic_regression", gate=GateConfig(min_segment_samples=10))
SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="t.", data_partitions=3)


def rows(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(500):
        x = rng.random() * 10
        out.append({"features": {"x": x}, "label": x > 5, "event_time_ms": i})
    return out


@pytest.fixture
def follower() -> Lineups:
    return Lineups(Settings(), default_codec())


def feed(f: Lineups, records: list[dict[str, Any]]) -> None:
    codec = default_codec()
    for r in records:
        f.follower.apply(f"{r['model']}/{r['version']}".encode(), codec.encode("ModelVersion", r))
    f._reload()


def gauge(version: str, stage: str) -> float:
    value: float = m.MODEL_VERSION_INFO.labels(MODEL, version, stage)._value.get()
    return value


def test_every_challenger_is_served_and_a_retired_model_is_not(follower: Lineups) -> None:
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
    assert [c.version for c in challengers] == versions[2:]  # every one, oldest first
    assert gauge(versions[1], "challenger") == 0 and gauge(versions[4], "challenger") == 1
    assert not follower.retired(MODEL)

    out = retire(reg, MODEL, by="t", reason="r", now_ms=50)
    for r in out:
        reg.apply(r)
    feed(follower, out)
    assert follower.retired(MODEL)
    assert follower.lineup(MODEL) == (None, ())
    assert gauge(champion, "champion") == 0 and gauge(versions[4], "challenger") == 0

    out = unretire(reg, MODEL, by="t", reason="r", now_ms=60)
    feed(follower, out)
    served, challengers = follower.lineup(MODEL)
    assert served is not None and served.version == champion
    assert [c.version for c in challengers] == versions[2:]
    assert gauge(champion, "champion") == 1


@dataclass(frozen=True)
class Loaded:
    version: str


def loaded(version: str) -> ServedModel:
    """A fake ServedModel: the lineup only keeps what ``_load`` gives it."""
    return cast(ServedModel, Loaded(version))


def record(version: str, stage: str) -> dict[str, Any]:
    return {"model": "churn", "version": version, "stage": stage, "gate": None,
            "stage_changed_at_ms": 1, "stage_changed_by": "t", "stage_reason": "r",
            "created_at_ms": int(version[1:])}  # fmt: skip


@pytest.mark.parametrize(
    ("records", "challengers"),
    [
        ([record("v1", "champion")], ()),
        ([record("v1", "champion"), record("v2", "challenger")], ("v2",)),
        ([record("v1", "champion"), record("v2", "challenger"),
          record("v3", "challenger")], ("v2", "v3")),
    ],
)  # fmt: skip
def test_lineup_gives_the_champion_and_a_tuple_of_challengers(
    records: list[dict[str, Any]], challengers: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    follower = Lineups(SETTINGS, default_codec())
    follower.registry = Registry.from_records(records)
    monkeypatch.setattr(follower, "_load", lambda r: None if r is None else loaded(r["version"]))
    follower._reload()
    champion, served = follower.lineup("churn")
    assert champion == loaded("v1")
    assert tuple(c.version for c in served) == challengers
    assert follower.lineup("other") == (None, ())
    follower.follower.close()


def test_challenger_changes_are_logged_with_every_challenger(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once caught up, the follower logs what it serves (every challenger) and then, per
    change of the challengers, one line with the set before and after and the registry
    offset of the record that made it (the newest one added, else the newest one gone),
    followed by one line per challenger added or dropped."""
    follower = Lineups(SETTINGS, default_codec())
    monkeypatch.setattr(follower, "_load", lambda r: None if r is None else loaded(r["version"]))
    follower.follower.offsets = {("churn", "v1"): 3, ("churn", "v2"): 7, ("churn", "v3"): 9}
    champion = record("v1", "champion")
    states = [
        [champion, record("v2", "challenger")],
        [champion, record("v2", "challenger"), record("v3", "challenger")],
        [champion, record("v2", "challenger"), record("v3", "challenger")],  # no change
        [champion],
    ]
    try:
        follower.registry = Registry.from_records([champion, record("v3", "challenger")])
        follower._reload()  # catching up: nothing logged
        with caplog.at_level(logging.INFO, logger="driftline.streams.registry"):
            follower.ready.set()
            follower.announce()
            follower.registry = Registry.from_records([champion])
            follower._reload()
            for records in states:
                follower.registry = Registry.from_records(records)
                follower._reload()
    finally:
        follower.follower.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "driftline.streams.registry"]
    assert lines == [
        "registry: serving churn champion v1, challenger v3 (registry offset 3)",
        "registry: churn challenger v3 -> none (registry offset 9)",
        # each registry here is rebuilt without the dropped version: "gone"
        "registry: churn challenger v3 dropped, now gone; 0 in shadow (registry offset 9)",
        "registry: churn challenger none -> v2 (registry offset 7)",
        "registry: churn challenger v2 added; 1 in shadow (registry offset 7)",
        "registry: churn challengers v2 -> v2, v3 (registry offset 9)",
        "registry: churn challenger v3 added; 2 in shadow (registry offset 9)",
        "registry: churn challengers v2, v3 -> none (registry offset 9)",
        "registry: churn challenger v2 dropped, now gone; 0 in shadow (registry offset 7)",
        "registry: churn challenger v3 dropped, now gone; 0 in shadow (registry offset 9)",
    ]


def importance(version: str) -> dict[str, float]:
    """The ``driftline_feature_importance`` series of one version, by feature."""
    return {
        sample.labels["feature"]: sample.value
        for metric in m.FEATURE_IMPORTANCE.collect()
        for sample in metric.samples
        if sample.labels["model"] == MODEL and sample.labels["version"] == version
    }


def test_each_served_versions_importance_is_a_gauge_until_it_stops_being_served(
    follower: Lineups,
) -> None:
    key = Settings().signing_key.get_secret_value().encode()
    _, records = bootstrap(rows(2), CFG, key=key, by="t", reason="r", now_ms=1, host="h")
    feed(follower, records)
    champion = records[-1]
    expected = champion["lineage"]["importance"]
    assert expected, "a bootstrapped version records its importance"
    assert importance(champion["version"]) == {f: v["mean"] for f, v in expected.items()}
    assert importance(champion["version"])["x"] > 0  # the label is x > 5: x matters

    reg = Registry.from_records(records)
    out = retire(reg, MODEL, by="t", reason="r", now_ms=50)
    feed(follower, out)
    assert importance(champion["version"]) == {}
