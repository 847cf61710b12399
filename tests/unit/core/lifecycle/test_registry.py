"""Registry state and stage rules."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.core.errors import StageError
from driftline.core.lifecycle.registry import (
    ALLOWED,
    STAGES,
    Registry,
    approve,
    is_probation,
    promote,
    registry_key,
    restage,
    retire,
    rollback,
    transition,
    unretire,
)
from tests.unit.core.examples import known, model_version


def version(
    v: str, stage: str, at: int, *, passed: bool | None = True, **kw: Any
) -> dict[str, Any]:
    gate = None if passed is None else {**model_version()["gate"], "passed": passed}
    lineage = {**model_version()["lineage"], "trigger_id": f"trg-{v}", "trigger_key": f"key-{v}"}
    return model_version(
        version=v,
        stage=stage,
        stage_changed_at_ms=at,
        created_at_ms=at,
        gate=gate,
        lineage=lineage,
        **kw,
    )


def publish(reg: Registry, records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    for r in records:
        reg.apply(r)
    return [(r["version"], r["stage"]) for r in records]


@pytest.fixture
def reg() -> Registry:
    """v1 champion (bootstrap), v2 candidate that passed, v3 candidate that failed."""
    return Registry.from_records(
        [
            version("v1", "champion", 1, passed=None),
            version("v2", "candidate", 2),
            version("v3", "candidate", 3, passed=False),
        ]
    )


def test_registry_key() -> None:
    assert registry_key("churn", "v4") == "churn/v4"


def test_apply_tracks_slots_versions_and_triggers(reg: Registry) -> None:
    assert known(reg.champion("churn"))["version"] == "v1"
    assert reg.challenger("churn") is None
    assert [r["version"] for r in reg.versions("churn")] == ["v1", "v2", "v3"]
    assert known(reg.get("churn", "v2"))["stage"] == "candidate"
    assert reg.get("churn", "nope") is None
    assert known(reg.answered("key-v2"))["version"] == "v2"
    assert known(reg.answered("trg-v3"))["version"] == "v3"
    assert reg.answered("key-unknown") is None
    assert reg.models() == ["churn"]
    assert reg.champion("other") is None


def test_apply_returns_the_change_and_ignores_an_exact_repeat(reg: Registry) -> None:
    rec = restage(known(reg.get("churn", "v2")), "challenger", by="ana", reason="shadow", now_ms=10)
    change = reg.apply(rec)
    assert change is not None
    assert (change.previous, change.stage, change.by, change.reason) == (
        "candidate",
        "challenger",
        "ana",
        "shadow",
    )
    assert reg.apply(rec) is None
    assert known(reg.challenger("churn"))["version"] == "v2"
    assert reg.changes[-1] == change


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(StageError, match="unknown stage"):
        Registry().apply(version("v1", "live", 1))


def test_promote_with_probation_keeps_the_old_champion_in_shadow_first(reg: Registry) -> None:
    out = promote(
        reg, "churn", "v2", by="trainer", reason="gate passed", now_ms=20, replaced="probation"
    )
    assert publish(reg, out) == [("v1", "challenger"), ("v2", "champion")]
    assert out[0]["stage_reason"] == "probation: replaced by v2: gate passed"
    assert is_probation(reg.get("churn", "v1")) and not is_probation(reg.get("churn", "v2"))
    assert known(reg.previous_champion("churn"))["version"] == "v1"  # the first rollback target
    assert all(r["stage_changed_at_ms"] == 20 and r["stage_changed_by"] == "trainer" for r in out)
    assert known(reg.champion("churn"))["version"] == "v2"
    # everything but the stage fields is the version as published
    assert {k: v for k, v in out[1].items() if "stage" not in k} == {
        k: v for k, v in version("v2", "candidate", 2).items() if "stage" not in k
    }
    assert (out[0]["previous_stage"], out[1]["previous_stage"]) == ("champion", "candidate")


@pytest.mark.parametrize(
    ("cap", "added", "archived", "left"),
    [
        (3, ["v4", "v5"], [], ["v2", "v4", "v5"]),
        (3, ["v4", "v5", "v6"], ["v2"], ["v4", "v5", "v6"]),
        (1, ["v4"], ["v2"], ["v4"]),
        (2, ["v4", "v5", "v6"], ["v2", "v4"], ["v5", "v6"]),
    ],
)
def test_challengers_up_to_the_cap_the_oldest_archived_past_it(
    reg: Registry, cap: int, added: list[str], archived: list[str], left: list[str]
) -> None:
    kw: dict[str, Any] = {"by": "a", "reason": "r", "max_challengers": cap}
    publish(reg, transition(reg, "churn", "v2", "challenger", now_ms=5, **kw))
    gone = []
    for i, v in enumerate(added):
        reg.apply(version(v, "candidate", 6 + i))
        out = transition(reg, "churn", v, "challenger", now_ms=10 + i, **kw)
        assert out[-1]["version"] == v and out[-1]["stage"] == "challenger"
        for r in out[:-1]:
            assert r["stage"] == "archived"
            assert r["stage_reason"].startswith(
                f"the oldest of {cap} challengers, archived for {v}"
            )
            gone.append(r["version"])
        publish(reg, out)
    assert gone == archived
    assert [r["version"] for r in reg.challengers("churn")] == left
    assert known(reg.challenger("churn"))["version"] == left[-1]  # the newest
    # a challenger promoted leaves the challengers; the champion is archived
    out = promote(reg, "churn", left[0], by="a", reason="r", now_ms=50)
    assert publish(reg, out) == [("v1", "archived"), (left[0], "champion")]
    assert [r["version"] for r in reg.challengers("churn")] == left[1:]


@pytest.mark.parametrize(
    ("cap", "expected_archived"),
    [(3, []), (2, ["v4"]), (1, ["v4", "online-1"])],
)
def test_a_probation_past_the_cap_archives_the_oldest_batch_challenger_first(
    reg: Registry, cap: int, expected_archived: list[str]
) -> None:
    """online-1 is the oldest challenger, but online learners leave last."""
    for i, v in enumerate(["online-1", "v4"]):
        reg.apply(version(v, "candidate", 6 + i))
        publish(reg, transition(reg, "churn", v, "challenger", by="a", reason="r", now_ms=10 + i))
    reg.apply(version("v5", "candidate", 9))
    out = transition(reg, "churn", "v5", "champion", by="a", reason="r", now_ms=20,
                     max_challengers=cap, replaced="probation")  # fmt: skip
    archived = [r["version"] for r in out if r["stage"] == "archived"]
    assert archived == expected_archived
    publish(reg, out)
    assert known(reg.champion("churn"))["version"] == "v5" and is_probation(reg.get("churn", "v1"))


@pytest.mark.parametrize(
    ("replaced", "stage", "prefix"),
    [("probation", "challenger", "probation: "), ("archived", "archived", ""),
     ("challenger", "challenger", "")],
)  # fmt: skip
def test_what_becomes_of_the_replaced_champion(
    reg: Registry, replaced: str, stage: str, prefix: str
) -> None:
    out = transition(reg, "churn", "v2", "champion", by="a", reason="r", now_ms=20,
                     replaced=replaced)  # fmt: skip
    assert (out[0]["version"], out[0]["stage"]) == ("v1", stage)
    assert out[0]["stage_reason"] == f"{prefix}replaced by v2: r"
    with pytest.raises(StageError, match="replaced must be"):
        transition(reg, "churn", "v2", "champion", by="a", reason="r", now_ms=20,
                   replaced="gone")  # fmt: skip


def test_max_challengers_must_be_positive(reg: Registry) -> None:
    with pytest.raises(StageError, match="max_challengers"):
        transition(reg, "churn", "v2", "challenger", by="a", reason="r", now_ms=1,
                   max_challengers=0)  # fmt: skip


def test_retire_hides_the_model_and_unretire_restores_its_slots(reg: Registry) -> None:
    publish(reg, transition(reg, "churn", "v2", "challenger", by="a", reason="r", now_ms=5))
    reg.apply(version("other-v1", "champion", 1, model="other"))
    out = retire(reg, "churn", by="ops", reason="test model", now_ms=20)
    assert publish(reg, out) == [("v2", "retired"), ("v1", "retired")]
    assert all(r["stage_reason"] == "model retired: test model" for r in out)
    assert reg.retired("churn") and not reg.retired("other")
    assert reg.models() == ["other"] and reg.models(retired=True) == ["churn", "other"]
    assert reg.champion("churn") is None and reg.challengers("churn") == []
    # what labels are checked against
    assert known(reg.retired_champion("churn"))["version"] == "v1"
    assert reg.retired_champion("other") is None
    assert len(reg.versions("churn")) == 3  # every version stays
    with pytest.raises(StageError, match="retired already"):
        retire(reg, "churn", by="ops", reason="again", now_ms=21)
    with pytest.raises(StageError, match="is retired: `driftline models unretire churn` first"):
        promote(reg, "churn", "v3", by="ops", reason="r", now_ms=22, force=False)
    with pytest.raises(StageError, match="not retired"):
        unretire(reg, "other", by="ops", reason="r", now_ms=23)
    out = unretire(reg, "churn", by="ops", reason="needed again", now_ms=30)
    assert publish(reg, out) == [("v2", "challenger"), ("v1", "champion")]
    assert out[-1]["stage_reason"] == "model unretired: needed again"
    assert not reg.retired("churn") and reg.models() == ["churn", "other"]
    assert known(reg.champion("churn"))["version"] == "v1"
    assert reg.retired_champion("churn") is None


def test_retire_a_model_with_no_slot_holder_and_a_v1_record() -> None:
    reg = Registry.from_records([version("v1", "archived", 1), version("v2", "rejected", 2)])
    out = retire(reg, "churn", by="ops", reason="r", now_ms=5)
    assert [(r["version"], r["stage"], r["previous_stage"]) for r in out] == [
        ("v2", "retired", "rejected")
    ]
    publish(reg, out)
    assert reg.retired("churn")
    back = unretire(reg, "churn", by="o", reason="r", now_ms=6)
    assert [(r["version"], r["stage"]) for r in back] == [("v2", "archived")]
    # a version retired by an older writer carries no previous stage: archived
    old = Registry.from_records([version("v1", "retired", 1)])
    assert unretire(old, "churn", by="o", reason="r", now_ms=2)[0]["stage"] == "archived"
    with pytest.raises(StageError, match="no model"):
        retire(Registry(), "churn", by="o", reason="r", now_ms=1)


def test_approve_records_who_and_why(reg: Registry) -> None:
    out = approve(reg, "churn", "v2", by="maria", reason="reviewed the segments", now_ms=30)
    assert publish(reg, out) == [("v1", "archived"), ("v2", "champion")]
    assert out[1]["stage_changed_by"] == "maria"
    assert out[1]["stage_reason"] == "approved: reviewed the segments"


@pytest.mark.parametrize(
    ("v", "message"),
    [("v3", "did not pass its gate"), ("v1", "only a candidate or challenger"), ("v9", "no ver")],
)
def test_approve_refuses(reg: Registry, v: str, message: str) -> None:
    with pytest.raises(StageError, match=message):
        approve(reg, "churn", v, by="maria", reason="x", now_ms=30)


def test_rollback_republishes_the_previous_champion(reg: Registry) -> None:
    publish(reg, promote(reg, "churn", "v2", by="trainer", reason="gate", now_ms=20))
    out = rollback(reg, "churn", by="ops", reason="v2 misbehaves", now_ms=40)
    assert publish(reg, out) == [("v2", "archived"), ("v1", "champion")]
    assert out[1]["stage_reason"] == "rollback: v2 misbehaves"
    assert known(reg.champion("churn"))["version"] == "v1"
    # rolling back again goes to v2, the champion before v1's return
    out = rollback(reg, "churn", by="ops", reason="undo", now_ms=50)
    assert publish(reg, out) == [("v1", "archived"), ("v2", "champion")]


def test_rollback_to_a_named_version_and_without_history() -> None:
    # as after compaction: only the last record per key remains
    reg = Registry.from_records(
        [
            version("v1", "archived", 1, passed=None),
            version("v2", "archived", 2, passed=False),
            version("v3", "champion", 3),
        ]
    )
    out = rollback(reg, "churn", by="ops", reason="r", now_ms=9)
    assert [(r["version"], r["stage"]) for r in out] == [("v3", "archived"), ("v1", "champion")]
    out = rollback(reg, "churn", "v2", by="ops", reason="r", now_ms=9)
    assert out[-1]["version"] == "v2"
    with pytest.raises(StageError, match="no earlier champion"):
        rollback(
            Registry.from_records([version("v1", "champion", 1)]),
            "churn",
            by="o",
            reason="r",
            now_ms=1,
        )


@pytest.mark.parametrize("start", STAGES)
@pytest.mark.parametrize("target", STAGES)
def test_transition_table(start: str, target: str) -> None:
    reg = Registry.from_records([version("v1", start, 1)])
    kw: dict[str, Any] = {"by": "ana", "reason": "why", "now_ms": 2}
    if start == target or target not in ALLOWED[start]:
        with pytest.raises(StageError):
            transition(reg, "churn", "v1", target, **kw)
    else:
        assert transition(reg, "churn", "v1", target, **kw)[-1]["stage"] == target
    if start != target:
        assert transition(reg, "churn", "v1", target, force=True, **kw)[-1]["stage"] == target


def test_rejected_needs_force() -> None:
    reg = Registry.from_records([version("v1", "rejected", 1, passed=False)])
    with pytest.raises(StageError, match="use force"):
        promote(reg, "churn", "v1", by="a", reason="r", now_ms=2)
    assert promote(reg, "churn", "v1", by="a", reason="r", now_ms=2, force=True)


@pytest.mark.parametrize(("by", "reason"), [("", "why"), ("ana", "")])
def test_a_stage_change_needs_who_and_why(reg: Registry, by: str, reason: str) -> None:
    with pytest.raises(StageError, match="who"):
        promote(reg, "churn", "v2", by=by, reason=reason, now_ms=1)


def test_tombstone_forgets_a_version(reg: Registry) -> None:
    reg.delete("churn", "v1")
    assert reg.champion("churn") is None
    assert reg.get("churn", "v1") is None


def test_previous_champions_are_every_rollback_target_best_first(reg: Registry) -> None:
    # v1 -> v2 -> v4 were champions in turn (v4: say a refused artifact); v3 failed its gate
    publish(reg, promote(reg, "churn", "v2", by="trainer", reason="gate", now_ms=20))
    reg.apply(version("v4", "candidate", 4))
    publish(reg, promote(reg, "churn", "v4", by="trainer", reason="gate", now_ms=40))
    reg.apply(version("v5", "archived", 5))  # never champion, passed its gate
    assert [r["version"] for r in reg.previous_champions("churn")] == ["v2", "v1", "v5"]
    assert reg.previous_champion("churn") == next(reg.previous_champions("churn"))
    assert list(Registry().previous_champions("churn")) == []
