"""Promotion on live paired evidence: the sequential test's bound, its power, segment
vetoes, probation and rollback, and when the evidence restarts."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.core.errors import ConfigError, StageError
from driftline.core.lifecycle.promotion import (
    PROBATION,
    Decision,
    PairedTest,
    Promoter,
    decision_records,
    is_probation,
    outcome_pairs,
)
from driftline.core.lifecycle.registry import Registry
from driftline.core.model.config import LiveConfig
from tests.unit.core.examples import known


def outcome(champion_right: bool, challengers: dict[str, bool], segment=None, version="v1"):
    return {
        "version": version,
        "prediction": bool(champion_right),
        "label": True,
        "segment": segment or {},
        "challengers": [
            {"version": v, "prediction": right, "scores": {}} for v, right in challengers.items()
        ],
    }


def test_a_challenger_no_better_is_promoted_at_most_alpha_of_the_time_checking_every_outcome():
    """Both models right 80% of the time, independently; the test looks after every
    outcome for 3,000 outcomes: false promotions stay under alpha (Ville's bound)."""
    config = LiveConfig(alpha=0.05, min_pairs=1)
    rng = random.Random(7)
    runs, promoted = 200, 0
    for _ in range(runs):
        test = PairedTest(config)
        for _ in range(3_000):
            test.add(rng.random() < 0.8, rng.random() < 0.8)
            if test.verdict() == "challenger":
                promoted += 1
                break
    assert promoted / runs <= 0.05, promoted


@pytest.mark.parametrize(
    ("champion", "challenger", "within"),
    [(0.5, 0.8, 150), (0.7, 0.85, 600), (0.85, 0.9, 5_000)],
)
def test_a_better_challenger_is_found(champion, challenger, within):
    rng = random.Random(3)
    test = PairedTest(LiveConfig(alpha=0.05, min_pairs=1))
    for _ in range(within):
        test.add(rng.random() < champion, rng.random() < challenger)
        if test.verdict() is not None:
            break
    assert test.verdict() == "challenger", test.evidence()


def test_a_worse_challenger_makes_the_champion_the_verdict():
    test = PairedTest(LiveConfig(min_pairs=1))
    for i in range(100):
        test.add(champion_won=True, challenger_won=i % 3 == 0)
    assert test.verdict() == "champion"


def test_no_verdict_before_min_pairs_and_on_ties():
    test = PairedTest(LiveConfig(min_pairs=50))
    for _ in range(49):
        test.add(False, True)
    assert test.verdict() is None
    test.add(False, True)
    assert test.verdict() == "challenger"
    tie = PairedTest(LiveConfig(min_pairs=1))
    for _ in range(1_000):
        tie.add(True, True)
        tie.add(False, False)
    assert tie.verdict() is None and tie.b == tie.c == 0


def test_a_large_segment_where_the_champion_is_better_vetoes_the_promotion():
    config = LiveConfig(min_pairs=10, min_segment_pairs=30)
    test = PairedTest(config)
    for _ in range(300):  # eu: challenger always better
        test.add(False, True, ["region=eu"])
    for _ in range(60):  # us: champion always better
        test.add(True, False, ["region=us"])
    assert test.verdict() == "challenger"
    assert test.worse_segments() == ["region=us"]
    small = PairedTest(config)
    for _ in range(300):
        small.add(False, True, ["region=eu"])
    for _ in range(20):  # too few discordant pairs to veto
        small.add(True, False, ["region=us"])
    assert small.worse_segments() == []


@pytest.mark.parametrize(
    ("task", "champion", "challenger", "label", "expected"),
    [
        ("classification", "a", "b", "b", (False, True, 1.0)),
        ("classification", "a", "a", "a", (False, False, 0.0)),
        ("classification", 1, "1", 1, (False, False, 0.0)),  # compared as str, like metrics
        ("regression", 1.0, 3.0, 2.0, (False, False, 0.0)),
        ("regression", 1.0, 2.5, 2.0, (False, True, 0.5)),
        ("regression", 2.0, 0.0, 2.0, (True, False, -2.0)),
    ],
)
def test_outcome_pairs(task, champion, challenger, label, expected):
    o = {"version": "v1", "prediction": champion, "label": label,
         "challengers": [{"version": "v2", "prediction": challenger, "scores": {}}]}  # fmt: skip
    assert outcome_pairs(o, task) == [("v2", *expected)]


def test_an_abstaining_model_makes_no_pair():
    o = {"version": "v1", "prediction": None, "label": True,
         "challengers": [{"version": "v2", "prediction": True, "scores": {}}]}  # fmt: skip
    assert outcome_pairs(o, "classification") == []
    o = {"version": "v1", "prediction": True, "label": True,
         "challengers": [{"version": "v2", "prediction": None, "scores": {}}]}  # fmt: skip
    assert outcome_pairs(o, "classification") == []
    bare = {"version": "v1", "prediction": True, "label": True}
    assert outcome_pairs(bare, "classification") == []


def feed(p: Promoter, n: int, champion_right, challengers, version="v1", segment=None):
    for i in range(n):
        p.on_outcome(outcome(champion_right(i), {v: f(i) for v, f in challengers.items()},
                             segment, version))  # fmt: skip


def test_promotion_then_probation_then_rollback():
    p = Promoter("m", "classification", LiveConfig(min_pairs=20, probation_pairs=500))
    p.on_registry("v1", ["v2"])
    feed(p, 100, lambda i: i % 2 == 0, {"v2": lambda i: True})
    d = known(p.decide())
    assert (d.action, d.version, d.replaces) == ("promote", "v2", "v1")
    assert d.evidence["challenger_won"] == 50 and d.evidence["champion_won"] == 0
    assert "promoted on live evidence" in d.reason
    p.on_registry("v2", ["v1"], probation="v1")
    # the new champion turns out worse than the one it replaced
    feed(p, 100, lambda i: i % 3 == 0, {"v1": lambda i: True}, version="v2")
    d = known(p.decide())
    assert (d.action, d.version, d.replaces) == ("rollback", "v1", "v2")
    assert "rollback" in d.reason


def test_probation_ends_when_the_new_champion_holds():
    p = Promoter("m", "classification", LiveConfig(min_pairs=20, probation_pairs=300))
    p.on_registry("v2", ["v1"], probation="v1")
    feed(p, 299, lambda i: True, {"v1": lambda i: i % 2 == 0}, version="v2")
    assert p.decide() is None
    feed(p, 1, lambda i: True, {"v1": lambda i: True}, version="v2")
    d = known(p.decide())
    assert (d.action, d.version) == ("end_probation", "v1")


def test_outcomes_of_another_version_are_no_evidence():
    p = Promoter("m", "classification", LiveConfig(min_pairs=5))
    p.on_registry("v1", ["v2"])
    feed(p, 200, lambda i: False, {"v2": lambda i: True}, version="v0")  # old champion's
    assert p.decide() is None and p.tests["v2"].pairs == 0


def test_the_evidence_restarts_on_an_alarm_on_a_new_champion_and_when_stale():
    config = LiveConfig(min_pairs=5, max_pairs=100)
    p = Promoter("m", "classification", config)
    p.on_registry("v1", ["v2", "v3"])
    feed(p, 40, lambda i: i % 2 == 0, {"v2": lambda i: i % 2 == 1, "v3": lambda i: True})
    assert p.tests["v2"].pairs == 40
    p.on_alarm()
    assert p.tests["v2"].pairs == 0 and p.restarts == 1
    feed(p, 100, lambda i: i % 2 == 0, {"v2": lambda i: i % 2 == 1, "v3": lambda i: i % 2 == 0})
    assert p.tests["v2"].stale
    assert p.decide() is None and p.tests["v2"].pairs == 0 and p.restarts == 2
    p.on_registry("v3", ["v2"])
    assert p.tests["v2"].pairs == 0


def test_the_strongest_of_several_better_challengers_is_promoted_once():
    p = Promoter("m", "classification", LiveConfig(min_pairs=10))
    p.on_registry("v1", ["v2", "v3"])
    feed(p, 200, lambda i: i % 2 == 0, {"v2": lambda i: i % 4 != 0, "v3": lambda i: True})
    d = known(p.decide())
    assert d.version == "v3"
    assert p.decide() is None  # until the registry shows it


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"min_pairs": 0}, "min_pairs"),
        ({"probation_pairs": 0}, "probation_pairs"),
    ],
)
def test_live_config_is_checked(kw, message):
    with pytest.raises(ConfigError, match=message):
        LiveConfig(**kw)


def version(v: str, stage: str, reason: str = "r") -> dict[str, Any]:
    return {"model": "m", "version": v, "stage": stage, "stage_changed_at_ms": 1,
            "stage_changed_by": "t", "stage_reason": reason, "created_at_ms": 1,
            "lineage": {}, "artifact": {"sha256": v}}  # fmt: skip


def test_decisions_become_registry_records_and_probation_survives_in_the_record():
    reg = Registry.from_records([version("v1", "champion"), version("v2", "challenger")])
    d = Decision("promote", "m", "v2", "v1", "better", {})
    records = decision_records(reg, d, by="trainer", now_ms=5)
    assert [(r["version"], r["stage"]) for r in records] == [("v1", "challenger"),
                                                             ("v2", "champion")]  # fmt: skip
    for r in records:
        reg.apply(r)
    assert known(reg.champion("m"))["version"] == "v2" and is_probation(reg.get("m", "v1"))
    assert not is_probation(reg.get("m", "v2"))
    with pytest.raises(StageError, match="no longer v1"):  # a decision made on an old state
        decision_records(reg, d, by="trainer", now_ms=6)
    back = decision_records(reg, Decision("rollback", "m", "v1", "v2", "worse", {}),
                            by="trainer", now_ms=7)  # fmt: skip
    assert [(r["version"], r["stage"]) for r in back] == [("v2", "archived"), ("v1", "champion")]
    assert back[0]["stage_reason"] == "replaced by v1: rollback: worse"
    assert back[1]["stage_reason"] == "rollback: worse"


def test_an_online_champion_rolled_back_stays_a_challenger_and_probation_ends_archived():
    reg = Registry.from_records([
        version("online-1", "champion"), version("v1", "challenger", PROBATION + "replaced"),
    ])  # fmt: skip
    back = decision_records(reg, Decision("rollback", "m", "v1", "online-1", "worse", {}),
                            by="t", now_ms=2)  # fmt: skip
    assert back[0]["stage"] == "challenger" and not is_probation(back[0])
    end = decision_records(reg, Decision("end_probation", "m", "v1", None, "held", {}),
                           by="t", now_ms=3)  # fmt: skip
    assert [(r["version"], r["stage"]) for r in end] == [("v1", "archived")]
    reg.apply(end[0])
    with pytest.raises(StageError, match="not on probation"):
        decision_records(reg, Decision("end_probation", "m", "v1", None, "held", {}),
                         by="t", now_ms=4)  # fmt: skip


def test_a_decision_is_awaited_until_the_registry_shows_it_or_it_is_dropped():
    p = Promoter("m", "classification", LiveConfig(min_pairs=10))
    p.on_registry("v1", ["v2"])
    feed(p, 60, lambda i: False, {"v2": lambda i: True})
    assert known(p.decide()).version == "v2"
    p.on_registry("v1", ["v2"])  # an unrelated record (a checkpoint): still awaited
    assert p.decide() is None
    p.drop()  # its records were refused: the evidence starts again
    assert p.tests["v2"].pairs == 0 and p.decide() is None
    feed(p, 60, lambda i: False, {"v2": lambda i: True})
    assert known(p.decide()).version == "v2"
    p.on_registry("v2", ["v1"], probation="v1")
    assert p.tests == {"v1": p.tests["v1"]} and p.tests["v1"].pairs == 0
