"""The online challenger: test-then-train, checkpoints that resume without learning an
outcome twice, sampling, and its configuration."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.core.errors import ArtifactError, ConfigError
from driftline.core.lifecycle.online import OnlineLearner, is_online
from driftline.core.lifecycle.registry import Registry, record_key, restage
from driftline.core.model.artifact import deserialize, serialize, sha256_hex
from driftline.core.model.config import ModelConfig, ModelsConfig, OnlineConfig
from driftline.core.model.estimators import build
from driftline.core.watch.profile import ReferenceProfile
from tests.unit.core.examples import known

KEY = b"k"


def rows(n: int, start: int = 0, task: str = "classification"):
    for i in range(start, start + n):
        x: dict[str, Any] = {"x": (i * 7) % 10, "c": "a" if i % 3 else "b"}
        y = x["x"] > 4 if task == "classification" else 2.0 * x["x"] + 1
        yield {"event_id": f"e{i}", "model": "m", "features": x, "label": y,
               "event_time_ms": i, "segment": {}}  # fmt: skip


def canonical(estimator) -> str:
    """The digest of an estimator after one pickle round trip: pickle memoizes shared
    strings by identity, which a round trip changes without changing the state."""
    return sha256_hex(serialize(deserialize(serialize(estimator))))


def learner(factory: str = "hoeffding_tree", task: str = "classification", **kw) -> OnlineLearner:
    return OnlineLearner.start("m", task, OnlineConfig(factory=factory, **kw), number=1,
                               started_at_ms=0)  # fmt: skip


@pytest.mark.parametrize(
    ("factory", "task"),
    [("hoeffding_tree", "classification"), ("logistic_regression", "classification"),
     ("linear_regression", "regression")],
)  # fmt: skip
def test_a_resumed_learner_ends_where_one_that_never_stopped_ends(factory, task):
    """Learn 0..299 straight, or 0..149, checkpoint, resume, then 0..299 again (the first
    150 offered twice, as after a crash): the same state, byte for byte."""
    straight = learner(factory, task)
    for i, r in enumerate(rows(300, task=task)):
        assert straight.learn(r, ("o", i % 2, i // 2))
    first = learner(factory, task)
    for i, r in enumerate(rows(150, task=task)):
        first.learn(r, ("o", i % 2, i // 2))
    record = first.checkpoint(now_ms=1, key=KEY, feature_spec=[])
    resumed = OnlineLearner.resume(record, KEY, OnlineConfig(factory=factory))
    learnt = [resumed.learn(r, ("o", i % 2, i // 2)) for i, r in enumerate(rows(300, task=task))]
    assert learnt == [False] * 150 + [True] * 150
    assert resumed.learned == straight.learned == 300
    assert resumed.next_offsets == straight.next_offsets == {("o", 0): 150, ("o", 1): 150}
    assert canonical(resumed.estimator) == canonical(straight.estimator)


def test_it_predicts_before_it_learns():
    """Test-then-train: the very first outcome is scored by an empty model (no
    prediction), so it counts in no prequential score; later ones do."""
    lr = learner()
    lr.learn(next(rows(1)), ("o", 0, 0))
    assert lr.prequential == {}
    for i, r in enumerate(rows(500, start=1)):
        lr.learn(r, ("o", 0, i + 1))
    assert lr.prequential["accuracy"] > 0.9 and lr.prequential["count"] == 500


def test_checkpoint_cadence():
    lr = learner(checkpoint_every=10, checkpoint_min_ms=1_000, checkpoint_max_ms=5_000)
    for i, r in enumerate(rows(9)):
        lr.learn(r, ("o", 0, i))
    assert not lr.checkpoint_due(0)
    lr.learn(next(rows(1, 9)), ("o", 0, 9))
    assert lr.checkpoint_due(0)
    lr.checkpoint(100, KEY, [])
    for i, r in enumerate(rows(10, 10)):
        lr.learn(r, ("o", 0, 10 + i))
    assert not lr.checkpoint_due(1_099)  # enough rows, too soon
    assert lr.checkpoint_due(1_100)
    lr.checkpoint(1_100, KEY, [])
    assert not lr.checkpoint_due(10_000)  # nothing learnt since
    lr.learn(next(rows(1, 20)), ("o", 0, 20))
    assert not lr.checkpoint_due(6_099) and lr.checkpoint_due(6_100)  # max interval


@pytest.mark.parametrize(
    ("since", "waited", "serving", "due"),
    [
        (0, 10_000, True, False),  # nothing learnt: nothing to serve
        (1, 999, True, False),  # serving, too soon
        (1, 1_000, True, True),  # serving: by time, one row is enough
        (1, 1_000, False, False),  # a challenger waits for its count
        (9, 4_999, False, False),
        (10, 1_000, False, True),
        (1, 5_000, False, True),  # the max interval, either way
    ],
)
def test_a_serving_learner_checkpoints_by_time(
    since: int, waited: int, serving: bool, due: bool
) -> None:
    """While the learner is the champion, what it learnt serves every
    ``checkpoint_min_ms``; a challenger's checkpoints wait for ``checkpoint_every``."""
    lr = learner(checkpoint_every=10, checkpoint_min_ms=1_000, checkpoint_max_ms=5_000)
    for i, r in enumerate(rows(10)):
        lr.learn(r, ("o", 0, i))
    lr.checkpoint(100, KEY, [])
    for i, r in enumerate(rows(since, 10)):
        lr.learn(r, ("o", 0, 10 + i))
    assert lr.checkpoint_due(100 + waited, serving=serving) is due


def test_a_checkpoint_never_changes_the_stage_even_published_after_a_promotion():
    """The learner's first checkpoint enters the registry as a challenger; the
    promotion and a checkpoint built before it arrive in either order: the version is
    champion and serves the newest state."""
    lr = learner()
    for i, r in enumerate(rows(50)):
        lr.learn(r, ("o", 0, i))
    first = lr.checkpoint(10, KEY, [{"name": "x", "type": "integer"}])
    assert (first["stage"], first["version"], is_online(first["version"])) == (
        "checkpoint", "online-1", True)  # fmt: skip
    assert record_key(first) == "m/online-1@checkpoint"
    entered = restage(first, "challenger", by="trainer", reason="online learner", now_ms=10)
    assert record_key(entered) == "m/online-1"
    lr.learn(next(rows(1, 50)), ("o", 0, 50))
    later = lr.checkpoint(30, KEY, [])
    promoted = restage(entered, "champion", by="trainer", reason="better", now_ms=20)
    orders = ([entered, later, promoted], [entered, promoted, later], [later, entered, promoted])
    for order in orders:
        reg = Registry.from_records(order)
        got = reg.champion("m")
        assert got is not None and got["version"] == "online-1", order
        assert got["artifact"]["sha256"] == later["artifact"]["sha256"]
        assert got["lineage"]["rows"] == 51 and got["stage_reason"] == "better"
        assert [c.stage for c in reg.changes] == ["challenger", "champion"]
    older = Registry.from_records([entered, later, first])  # an older checkpoint comes late
    assert known(older.get("m", "online-1"))["lineage"]["rows"] == 51
    with pytest.raises(ArtifactError):
        OnlineLearner.resume(later, b"another key", OnlineConfig(factory="hoeffding_tree"))


def test_a_checkpoint_carries_a_reference_profile_of_what_it_learnt():
    lr = learner()
    for i, r in enumerate(rows(300)):
        lr.learn(r, ("o", 0, i))
    spec = [{"name": "x", "type": "integer"}, {"name": "c", "type": "category"}]
    record = lr.checkpoint(10, KEY, spec)
    profile = ReferenceProfile.from_json(record["reference_profile"])
    assert sorted(profile.features) == ["c", "x"] and profile.n == 299
    assert profile.prediction is not None


def test_a_large_checkpoint_goes_to_the_store_under_a_name_with_its_digest():
    lr = learner()
    for i, r in enumerate(rows(20)):
        lr.learn(r, ("o", 0, i))
    stored = {}

    def store(model, name, data):
        stored[name] = data
        return f"file:///tmp/{name}"

    record = lr.checkpoint(5, KEY, [], inline_max_bytes=10, store=store)
    (name,) = stored
    assert name.startswith("online-1-") and record["artifact"]["sha256"].startswith(name[9:])
    assert record["artifact"]["inline"] is None
    with pytest.raises(ConfigError, match="too large"):
        lr.checkpoint(6, KEY, [], inline_max_bytes=10)


def test_learn_fraction_learns_a_deterministic_sample_and_scores_every_outcome():
    a, b = learner(learn_fraction=0.3), learner(learn_fraction=0.3)
    for i, r in enumerate(rows(2_000)):
        a.learn(r, ("o", 0, i))
        b.learn(r, ("o", 0, i))
    assert 500 <= a.learned <= 700 and a.learned == b.learned
    assert a.prequential["count"] == 1_000  # the window, full: every outcome scored


TREE = {"grace_period": 50, "delta": 0.01, "epochs": 5}


@pytest.mark.parametrize(
    ("factory", "params", "online", "expected"),
    [
        # a Hoeffding tree's adaptive twin splits as the served tree does (no epochs)
        ("hoeffding_tree", TREE, {},
         ("hoeffding_adaptive_tree", {"grace_period": 50, "delta": 0.01})),
        ("hoeffding_adaptive_tree", {"grace_period": 80}, {},
         ("hoeffding_adaptive_tree", {"grace_period": 80})),
        # a linear model's parameters mean nothing to a tree: the tree's defaults
        ("logistic_regression", {"lr": 0.1}, {}, ("hoeffding_adaptive_tree", {})),
        # what the section says wins
        ("hoeffding_tree", TREE, {"params": {"grace_period": 300}},
         ("hoeffding_adaptive_tree", {"grace_period": 300})),
        ("hoeffding_tree", TREE, {"factory": "logistic_regression"}, ("logistic_regression", {})),
    ],
)  # fmt: skip
def test_the_default_online_learner_takes_the_trees_split_settings(
    factory: str, params: dict[str, Any], online: dict[str, Any], expected: tuple[str, Any]
) -> None:
    cfg = ModelConfig("m", factory=factory, params=params, online=OnlineConfig(**online))
    learner_cfg = known(cfg.online)
    assert (learner_cfg.factory, dict(learner_cfg.params)) == expected
    build(learner_cfg.factory, learner_cfg.params, learner_cfg.seed)  # the factory takes them


def test_an_outcome_without_label_is_not_learnt():
    lr = learner()
    assert not lr.learn({"event_id": "e", "features": {"x": 1}, "label": None}, ("o", 0, 0))
    assert lr.learned == 0


def test_the_online_section_of_the_models_file():
    cfg = ModelsConfig.from_toml(
        '[models.m]\ntask = "classification"\n[models.m.online]\nlearn_fraction = 0.5\n'
        "[models.m.live]\nalpha = 0.01\n"
    )["m"]
    assert cfg.online is not None and cfg.online.factory == "hoeffding_adaptive_tree"
    assert cfg.online.learn_fraction == 0.5 and cfg.live.alpha == 0.01
    assert known(ModelConfig("r", task="regression", online=OnlineConfig()).online).factory == (
        "linear_regression")  # fmt: skip
    assert ModelConfig("m").online is None
    with pytest.raises(ConfigError, match="online"):
        ModelsConfig.from_toml("[models.m]\n[models.m.online]\nlearn_fraction = 0\n")
    with pytest.raises(ConfigError, match=r"models.m.online.factoryy .*did you mean factory"):
        ModelsConfig.from_toml('[models.m]\n[models.m.online]\nfactoryy = "x"\n')


@pytest.mark.parametrize(
    ("task", "earlier", "version", "seeded"),
    [
        ("classification", list(rows(60)), "v1", 60),
        ("regression", list(rows(60, task="regression")), "v1", 60),
        # a row without a label teaches nothing: skipped, not counted
        ("classification", [*rows(10), {"features": {"x": 1}, "label": None}], "v1", 10),
        ("classification", [], "v1", 0),  # nothing to learn: no earlier version named
    ],
)  # fmt: skip
def test_a_learner_started_from_earlier_rows_learns_them_first_and_names_them(
    task: str, earlier: list[dict[str, Any]], version: str, seeded: int
) -> None:
    """Earlier rows (the champion's training sample) are learnt before any outcome: not
    outcomes (no offsets, ``learned`` stays 0, no checkpoint due), named in the
    checkpoint's lineage, and kept there across a resume."""
    factory = "hoeffding_tree" if task == "classification" else "linear_regression"
    config = OnlineConfig(factory=factory, checkpoint_every=5)
    started = OnlineLearner.start(
        "m", task, config, number=1, started_at_ms=0,
        earlier=list(reversed(earlier)), earlier_version=version,
    )  # fmt: skip
    assert started.learned == 0 and started.next_offsets == {}
    assert not started.checkpoint_due(now_ms=10_000)
    same = build(factory, {}, config.seed)  # the rows in event-time order, then nothing else
    for r in earlier:
        if r["label"] is not None:
            same.learn_one(r["features"], r["label"])
    assert canonical(started.estimator) == canonical(same)
    for i, r in enumerate(rows(5, start=100, task=task)):
        assert started.learn(r, ("o", 0, i))
    lineage = started.checkpoint(now_ms=1, key=KEY, feature_spec=[])["lineage"]
    assert lineage["rows"] == 5
    assert lineage["earlier_rows"] == seeded
    assert lineage["earlier_version"] == (version if seeded else None)
    resumed = OnlineLearner.resume(started.checkpoint(now_ms=2, key=KEY, feature_spec=[]),
                                   KEY, config)  # fmt: skip
    assert (resumed.earlier_rows, resumed.earlier_version) == (seeded, lineage["earlier_version"])
