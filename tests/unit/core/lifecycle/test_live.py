"""LiveModel: what the trainer's live loop publishes for one model (the online learner's
checkpoints and entry, decisions on live evidence, manual promotion, the champion's drift)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.core.lifecycle import reservoir
from driftline.core.lifecycle.live import LiveModel, LiveOutput
from driftline.core.lifecycle.registry import CHECKPOINT, Registry, is_probation, restage
from driftline.core.model.config import LiveConfig, ModelConfig, OnlineConfig
from tests.unit.core.examples import known

FEATURES = [{"name": "x", "type": "number"}]


def champion(version: str = "v1") -> dict[str, Any]:
    return {"model": "m", "version": version, "stage": "champion", "task": "classification",
            "stage_changed_at_ms": 0, "stage_changed_by": "t", "stage_reason": "r",
            "created_at_ms": 0, "feature_spec": FEATURES, "lineage": {},
            "artifact": {"sha256": "a"}, "metrics": {}}  # fmt: skip


def config(promotion: str = "auto", online: bool = True, **live: Any) -> ModelConfig:
    return ModelConfig(
        "m", promotion=promotion,
        online=OnlineConfig(factory="hoeffding_tree", checkpoint_every=50, checkpoint_min_ms=0)
        if online else None,
        live=LiveConfig(**{"min_pairs": 30, **live}),
    )  # fmt: skip


def outcome(
    i: int, rng: random.Random, version: str, challengers: dict[str, float]
) -> dict[str, Any]:
    """Concept ``x > 0.5``; the champion right half the time, each challenger at its rate."""
    x = rng.random()
    label = x > 0.5
    right = {v: rng.random() < p for v, p in challengers.items()}
    return {"event_id": f"e{i}", "model": "m", "version": version, "event_time_ms": i,
            "features": {"x": x}, "label": label, "segment": {},
            "prediction": label if rng.random() < 0.5 else not label,
            "challengers": [{"version": v, "prediction": label if r else not label, "scores": {}}
                            for v, r in right.items()]}  # fmt: skip


def feed(live: LiveModel, reg: Registry, n: int, start: int, challengers: dict[str, float],
         seed: int = 1) -> list[LiveOutput]:  # fmt: skip
    """Feed ``n`` outcomes, stepping every 10 and applying what is published."""
    rng, published = random.Random(seed), list[LiveOutput]()
    version = known(reg.champion("m"))["version"]
    for i in range(start, start + n):
        live.on_outcome(outcome(i, rng, version, challengers), ("o", 0, i))
        if i % 10 == 9:
            out = live.step(reg, now_ms=i)
            for r in out.records:
                reg.apply(r)
            published.append(out)
            if out.records:
                live.on_registry(reg, now_ms=i)
            version = known(reg.champion("m"))["version"]
    return published


def test_the_learner_checkpoints_then_enters_once_as_challenger() -> None:
    reg = Registry.from_records([champion()])
    live = LiveModel(config(), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    outs = feed(live, reg, 200, 0, {})
    records = [r for o in outs for r in o.records]
    stages = [r["stage"] for r in records]
    assert stages.count("challenger") == 1 and stages[0] == CHECKPOINT
    assert stages.count(CHECKPOINT) == 4  # every 50 rows
    assert live.learner is not None and live.learner.learned == 200
    assert live.positions == {("o", 0): 200}
    assert [r["version"] for r in reg.challengers("m")] == ["online-1"]


def test_while_a_trigger_trains_only_checkpoints_are_published() -> None:
    reg = Registry.from_records([champion()])
    live = LiveModel(config(), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    rng = random.Random(2)
    for i in range(60):
        live.on_outcome(outcome(i, rng, "v1", {}), ("o", 0, i))
    out = live.step(reg, now_ms=60, decide=False)
    assert [r["stage"] for r in out.records] == [CHECKPOINT]  # no entry yet
    for i in range(60, 120):
        live.on_outcome(outcome(i, rng, "v1", {}), ("o", 0, i))
    out = live.step(reg, now_ms=120)
    assert [r["stage"] for r in out.records] == [CHECKPOINT, "challenger"]


@pytest.mark.parametrize(
    ("promotion", "champion_after", "alert"),
    [("auto", "v2", "live_promotion"), ("manual", "v1", "challenger_better")],
)
def test_a_better_challenger_is_promoted_or_reported(
    promotion: str, champion_after: str, alert: str
) -> None:
    reg = Registry.from_records([champion(), {**champion("v2"), "stage": "challenger"}])
    live = LiveModel(config(promotion, online=False), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    outs = feed(live, reg, 400, 0, {"v2": 0.95})
    alerts = [a["kind"] for o in outs for a in o.alerts]
    assert alerts[0] == alert
    assert known(reg.champion("m"))["version"] == champion_after
    if promotion == "auto":
        assert is_probation(reg.get("m", "v1"))  # the replaced champion stays in shadow


def test_a_challenger_no_better_is_not_promoted() -> None:
    reg = Registry.from_records([champion(), {**champion("v2"), "stage": "challenger"}])
    live = LiveModel(config(online=False), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    outs = feed(live, reg, 2_000, 0, {"v2": 0.5})
    assert known(reg.champion("m"))["version"] == "v1"
    assert not [a for o in outs for a in o.alerts]


def test_nothing_is_decided_when_live_promotion_is_off() -> None:
    reg = Registry.from_records([champion(), {**champion("v2"), "stage": "challenger"}])
    live = LiveModel(config(online=False, enabled=False), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    outs = feed(live, reg, 400, 0, {"v2": 0.95})
    assert known(reg.champion("m"))["version"] == "v1" and not any(o.alerts for o in outs)


def test_a_refused_decision_is_dropped_and_its_evidence_gathered_again() -> None:
    reg = Registry.from_records([champion(), {**champion("v2"), "stage": "challenger"}])
    live = LiveModel(config(online=False), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    rng = random.Random(5)
    decided = None
    for i in range(400):
        live.on_outcome(outcome(i, rng, "v1", {"v2": 0.95}), ("o", 0, i))
        decided = live.step(reg, now_ms=i)
        if decided.decision is not None:
            break
    assert decided is not None and decided.decision is not None
    live.refused()  # its records were not delivered: the registry still says v1
    assert live.promoter.tests["v2"].pairs == 0
    assert live.step(reg, now_ms=500).decision is None


@pytest.mark.parametrize(("stage", "due_at_min"), [("challenger", False), ("champion", True)])
def test_a_learner_that_serves_checkpoints_by_time(stage: str, due_at_min: bool) -> None:
    """Once the learner is the champion, what it learnt is published every
    ``checkpoint_min_ms`` (the scorer serves the newest checkpoint); as a challenger it
    waits for ``checkpoint_every`` rows."""
    cfg = ModelConfig("m", online=OnlineConfig(factory="hoeffding_tree", checkpoint_every=50,
                                               checkpoint_min_ms=100, checkpoint_max_ms=10_000),
                      live=LiveConfig(min_pairs=30))  # fmt: skip
    reg = Registry.from_records([champion()])
    live = LiveModel(cfg, key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    rng = random.Random(3)
    for i in range(50):
        live.on_outcome(outcome(i, rng, "v1", {}), ("o", 0, i))
    for r in live.step(reg, now_ms=1_000).records:  # the first checkpoint, its entry
        reg.apply(r)
    if stage == "champion":
        entered = reg.get("m", "online-1")
        assert entered is not None
        reg.apply(restage({**entered, "stage": "challenger"}, "champion", by="t", reason="r",
                          now_ms=1_001))  # fmt: skip
    live.on_registry(reg, now_ms=1_001)
    for i in range(50, 55):
        live.on_outcome(outcome(i, rng, "v1", {}), ("o", 0, i))
    assert not live.checkpoint_due(1_099)
    assert live.checkpoint_due(1_100) is due_at_min
    out = live.step(reg, now_ms=1_100, decide=False)
    assert [r["stage"] for r in out.records] == ([CHECKPOINT] if due_at_min else [])


def test_a_newer_state_of_its_own_learner_is_resumed_and_said_where_it_stands() -> None:
    """A learner resumed from a registry read short of its end (an older checkpoint of
    its version) takes the newer state once the registry holds it, and says where it
    stands (:meth:`take_resumed`), so the reader can read again what it has not learnt."""
    reg = Registry.from_records([champion()])
    first = LiveModel(config(), key=b"k", host="h", code="c")
    first.on_registry(reg, now_ms=0)
    outs = feed(first, reg, 200, 0, {})
    checkpoints = [r for o in outs for r in o.records if r["stage"] == CHECKPOINT]
    older = Registry.from_records([champion(), checkpoints[0], *[
        r for o in outs for r in o.records if r["stage"] == "challenger"]])  # fmt: skip
    restarted = LiveModel(config(), key=b"k", host="h", code="c")
    restarted.on_registry(older, now_ms=300)
    assert restarted.positions == {("o", 0): 50} and restarted.take_resumed() == {("o", 0): 50}
    assert restarted.take_resumed() == {}  # said once
    restarted.on_registry(reg, now_ms=301)  # the whole registry: the newest checkpoint
    assert restarted.learner is not None and restarted.learner.learned == 200
    assert restarted.take_resumed() == {("o", 0): 200}
    restarted.on_registry(reg, now_ms=302)  # nothing newer: kept, nothing to say
    assert restarted.take_resumed() == {}


def test_outcomes_read_again_feed_the_learner_alone() -> None:
    """An outcome read again for a resumed learner (``replay``) is learnt if the state
    lacks it, and neither counts again as live evidence nor feeds the drift detector."""
    reg = Registry.from_records([champion(), {**champion("v2"), "stage": "challenger"}])
    live = LiveModel(config(), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    rng = random.Random(5)
    rows = [outcome(i, rng, "v1", {"v2": 0.9}) for i in range(40)]
    for i, row in enumerate(rows):
        live.on_outcome(row, ("o", 0, i))
    pairs = live.promoter.tests["v2"].pairs
    assert live.learner is not None and pairs > 0
    live.learner.next_offsets[("o", 0)] = 30  # as if resumed at offset 30
    learned = live.learner.learned
    for i, row in enumerate(rows[20:], start=20):
        live.on_outcome(row, ("o", 0, i), replay=True)
    assert live.learner.learned == learned + 10  # 30..39 only
    assert live.promoter.tests["v2"].pairs == pairs


def sample_of(n: int) -> bytes | None:
    """A training sample (reservoir encoding) of ``n`` rows of the concept ``x > 0.5``."""
    rng = random.Random(3)
    rows = []
    for i in range(n):
        x = rng.random()
        rows.append({"features": {"x": x}, "label": x > 0.5, "segment": {}, "event_time_ms": i})
    return reservoir.encode(rows)


@pytest.mark.parametrize(("sample_rows", "expect"), [(400, (400, "v1")), (0, (0, None))])
def test_a_new_learner_starts_from_the_champions_training_sample(
    sample_rows: int, expect: tuple[int, str | None]
) -> None:
    """A new online learner first learns the champion's training sample (what the champion
    learnt: the learner does not start cold), then the outcomes; its checkpoints name the
    sample. Without one it starts empty, as before."""
    reg = Registry.from_records([{**champion(), "training_sample": sample_of(sample_rows)}])
    live = LiveModel(config(), key=b"k", host="h", code="c")
    live.on_registry(reg, now_ms=0)
    learner = known(live.learner)
    assert (learner.earlier_rows, learner.earlier_version) == expect
    assert learner.learned == 0 and live.positions == {}
    if sample_rows:  # it knows the concept before its first outcome
        served = learner._served
        assert [served.predict_one({"x": x})[0] for x in (0.1, 0.3, 0.7, 0.9)] == [
            False, False, True, True]  # fmt: skip
    outs = feed(live, reg, 60, 0, {})
    checkpoint = next(r for o in outs for r in o.records if r["stage"] == CHECKPOINT)
    assert checkpoint["lineage"]["rows"] == 50
    lineage = checkpoint["lineage"]
    assert (lineage["earlier_rows"], lineage["earlier_version"]) == expect


def test_a_resumed_learner_is_not_taught_the_sample_again() -> None:
    """Resuming from a checkpoint restores its state (which holds the sample) as it is."""
    reg = Registry.from_records([{**champion(), "training_sample": sample_of(200)}])
    first = LiveModel(config(), key=b"k", host="h", code="c")
    first.on_registry(reg, now_ms=0)
    feed(first, reg, 100, 0, {})
    restarted = LiveModel(config(), key=b"k", host="h", code="c")
    restarted.on_registry(reg, now_ms=200)
    learner, before = known(restarted.learner), known(first.learner)
    assert (learner.learned, learner.earlier_rows) == (before.learned, 200)
    assert learner.estimator.n_nodes == before.estimator.n_nodes
