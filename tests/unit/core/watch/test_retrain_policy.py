"""RetrainPolicy: reasons, cooldown, hysteresis, in-flight, idempotency, serializable state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from driftline.core.watch.concept_drift import DriftEvent
from driftline.core.watch.retrain_policy import RetrainPolicy

SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"
TRIGGER_SCHEMA = fastavro.parse_schema(
    json.loads((SCHEMAS / "retrain_trigger.v1.avsc").read_text())
)
MIN = 60_000
HOUR = 60 * MIN


def policy(**kwargs: Any) -> RetrainPolicy:
    p = RetrainPolicy("churn", **kwargs)
    p.on_version("v1", "champion", created_at_ms=0, now_ms=0)
    return p


def concept(
    since: int | None = 500, version: str = "v1", change_time_ms: int = 1_000
) -> DriftEvent:
    return DriftEvent(
        "concept_drift",
        "churn",
        version,
        "adwin",
        10,
        n=10_000,
        statistic=0.3,
        reference=0.1,
        since_change=since,
        change_time_ms=None if since is None else change_time_ms,
    )


def feature(name: str = "age") -> DriftEvent:
    return DriftEvent(
        "feature_drift",
        "churn",
        "v1",
        "psi",
        10,
        n=5_000,
        feature=name,
        statistic=0.4,
        threshold=0.2,
        p_value=1e-6,
    )


def snap(accuracy: float, version: str = "v1", count: int = 1_000) -> dict[str, Any]:
    return {
        "model": "churn",
        "version": version,
        "segment": "all",
        "window": "count:1000",
        "count": count,
        "metrics": {"accuracy": accuracy},
        "baseline": {"accuracy": 0.9},
    }


def valid(trigger: dict[str, Any] | None) -> dict[str, Any]:
    assert trigger is not None
    assert fastavro.validation.validate(trigger, TRIGGER_SCHEMA)
    return trigger


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule_ms": 0}, "schedule_ms"),
        ({"every_n_outcomes": -5}, "every_n_outcomes"),
        ({"drift_reasons": ["weather"]}, "drift reasons"),
        ({"degradation_evaluations": 0}, "degradation_evaluations"),
        ({"margin": 0}, "margins"),
        ({"clear_ratio": 1.0}, "clear_ratio"),
        ({"cooldown_ms": -1}, "cooldown_ms"),
        ({"min_rows": 500, "max_rows": 100}, "max_rows"),
        ({"growth": 1.0}, "growth"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RetrainPolicy("churn", **kwargs)


# -- each reason ------------------------------------------------------------------------------


def test_manual():
    p = policy()
    p.observe_outcomes(2_000, 0)
    t = valid(p.request(now_ms=5, requested_by="alice"))
    assert (t["reasons"], t["requested_by"], t["last_n"], t["window_start_ms"]) == (
        ["manual"],
        "alice",
        20_000,
        None,
    )
    assert t["champion_version"] == "v1" and t["created_at_ms"] == 5


def test_schedule():
    p = policy(schedule_ms=HOUR, cooldown_ms=0)
    p.observe_outcomes(2_000, 0)
    assert p.tick(0) is None and p.tick(HOUR - 1) is None
    t = valid(p.tick(HOUR))
    assert t["reasons"] == ["schedule"] and t["requested_by"] == "policy"
    p.on_version("v2", "candidate", created_at_ms=HOUR + 1, now_ms=HOUR + 1)
    assert p.tick(2 * HOUR - 1) is None
    assert valid(p.tick(2 * HOUR))["reasons"] == ["schedule"]


def test_outcome_count():
    p = policy(every_n_outcomes=1_000, cooldown_ms=0, min_rows=500)
    p.observe_outcomes(999, 1)
    assert p.tick(1) is None
    p.observe_outcomes(1, 2)
    t = valid(p.tick(2))
    assert t["reasons"] == ["outcome_count"] and t["evidence"]["outcome_count.outcomes"] == 1_000


def test_performance_degradation_needs_k_consecutive_evaluations():
    p = policy(degradation_evaluations=3, cooldown_ms=0)
    p.observe_outcomes(2_000, 0)
    assert p.observe_snapshot(snap(0.80), 1) is None
    assert p.observe_snapshot(snap(0.80), 2) is None
    assert p.observe_snapshot(snap(0.88), 3) is None  # not degraded: the streak breaks
    assert p.observe_snapshot(snap(0.80), 4) is None
    assert p.observe_snapshot(snap(0.80), 5) is None
    t = valid(p.observe_snapshot(snap(0.80), 6))
    assert t["reasons"] == ["performance_degradation"]
    assert t["evidence"]["performance_degradation.evaluations"] == 3


@pytest.mark.parametrize(
    "bad",
    [
        snap(0.5, version="v0"),
        snap(0.5, count=10),
        {**snap(0.5), "segment": "region=eu"},
        {**snap(0.5), "window": "time:300s"},
        {**snap(0.5), "model": "fraud"},
    ],
)
def test_snapshots_of_others_are_ignored(bad):
    p = policy(degradation_evaluations=1, cooldown_ms=0)
    assert p.observe_snapshot(bad, 1) is None and p.state["streak"] == 0


def test_concept_drift_waits_for_enough_post_change_rows():
    p = policy(min_rows=2_000, cooldown_ms=0)
    p.observe_outcomes(10_000, 1)
    assert p.observe_drift(concept(since=500, change_time_ms=777), 2) is None
    p.observe_outcomes(1_499, 3)
    assert p.tick(3) is None
    p.observe_outcomes(1, 4)
    t = valid(p.tick(4))
    assert (t["reasons"], t["window_start_ms"], t["last_n"]) == (["concept_drift"], 777, 2_000)
    assert t["evidence"]["post_change_rows"] == 2_000
    assert t["evidence"]["concept_drift.since_change"] == 500


def test_post_change_window_is_capped_by_max_rows():
    p = policy(min_rows=100, max_rows=300, cooldown_ms=0)
    p.observe_outcomes(10_000, 1)
    assert valid(p.observe_drift(concept(since=5_000), 2))["last_n"] == 300


def answered(p: RetrainPolicy, t: dict[str, Any], stage: str, version: str, now: int) -> None:
    p.on_version(version, stage, created_at_ms=now, now_ms=now, trigger_id=t["trigger_id"])


def test_post_change_data_retrains_as_the_window_doubles_up_to_max_rows():
    p = policy(min_rows=500, max_rows=3_000, cooldown_ms=HOUR)
    p.observe_outcomes(10_000, 1)
    p.observe_drift(concept(since=100, change_time_ms=777), 2)
    p.observe_outcomes(400, 3)
    t = valid(p.tick(3))
    assert (t["reasons"], t["window_start_ms"], t["last_n"]) == (["concept_drift"], 777, 500)
    answered(p, t, "champion", "v2", 4)
    assert p.due_outcomes(5) == 10_400 + 500  # 1,000 post-change rows
    p.observe_outcomes(499, 5)
    assert p.tick(5) is None
    p.observe_outcomes(1, 6)
    t = valid(p.tick(6))  # within the cooldown: post_change_data neither waits nor starts it
    assert (t["reasons"], t["window_start_ms"], t["last_n"]) == (["post_change_data"], 777, 1_000)
    assert t["evidence"]["post_change_data.trained_on"] == 500
    assert p.state["last_trigger_ms"] == 3
    answered(p, t, "rejected", "v3", 7)  # a rejected later step does not stop the growth
    p.observe_outcomes(1_000, 8)
    t = valid(p.tick(8))
    assert (t["reasons"], t["last_n"]) == (["post_change_data"], 2_000)
    answered(p, t, "champion", "v4", 9)
    p.observe_outcomes(1_000, 10)
    assert valid(p.tick(10))["last_n"] == 3_000  # capped by max_rows: the last step
    answered(p, t, "champion", "v5", 11)
    p.observe_outcomes(50_000, 12)
    assert p.tick(12) is None and p.due_outcomes(12) is None


def test_post_change_data_skips_a_last_step_of_less_than_half_a_growth():
    p = policy(min_rows=500, max_rows=2_500, cooldown_ms=0)
    p.observe_outcomes(10_000, 1)
    p.observe_drift(concept(since=2_000), 2)  # 2,000 post-change rows already
    assert p.state["growth"]["rows"] == 2_000
    assert p.due_outcomes(3) is None  # 2,000 * sqrt(2) >= 2,500


def test_a_rejected_first_answer_to_a_change_point_stops_the_growth():
    p = policy(min_rows=500, cooldown_ms=0)
    p.observe_outcomes(10_000, 1)
    t = valid(p.observe_drift(concept(since=600), 2))
    answered(p, t, "rejected", "v2", 3)
    p.observe_outcomes(5_000, 4)
    assert p.tick(4) is None and p.state["growth"] is None


@pytest.mark.parametrize(
    ("kwargs", "event"),
    [({"growth": None}, concept(since=600)), ({}, feature())],
)
def test_no_growth_when_off_or_without_a_change_point(kwargs, event):
    p = policy(min_rows=500, cooldown_ms=0, **kwargs)
    p.observe_outcomes(10_000, 1)
    t = valid(p.observe_drift(event, 2))
    answered(p, t, "champion", "v2", 3)
    p.observe_outcomes(50_000, 4)
    assert p.tick(4) is None and p.due_outcomes(4) is None


def test_due_outcomes_says_when_the_post_change_rows_suffice():
    p = policy(min_rows=2_000, cooldown_ms=HOUR)
    assert p.due_outcomes(0) is None
    p.observe_outcomes(10_000, 1)
    p.observe_drift(concept(since=500), 2)
    assert p.due_outcomes(3) == 9_500 + 2_000
    t = valid(p.tick(3) or p.request(3))
    assert p.due_outcomes(4) is None  # in flight
    answered(p, t, "champion", "v2", 5)
    p.observe_drift(concept(since=500, version="v2"), 6)
    assert p.due_outcomes(7) is None  # cooling down: the timer's tick fires it


def test_drift_max_wait_falls_back_to_the_last_n():
    p = policy(min_rows=2_000, drift_max_wait_ms=HOUR, cooldown_ms=0, last_n=5_000)
    p.observe_outcomes(10_000, 0)
    assert p.observe_drift(concept(since=100), 0) is None
    assert p.tick(HOUR - 1) is None
    t = valid(p.tick(HOUR))
    assert (t["window_start_ms"], t["last_n"]) == (None, 5_000)


@pytest.mark.parametrize("kind", ["feature_drift", "prediction_drift"])
def test_feature_and_prediction_drift_fire_at_once_on_the_last_n(kind):
    p = policy(cooldown_ms=0, last_n=8_000)
    p.observe_outcomes(2_000, 0)
    e = DriftEvent(
        kind,
        "churn",
        "v1",
        "psi",
        10,
        n=5_000,
        feature="x",
        statistic=0.5,
        threshold=0.2,
        p_value=1e-9,
    )
    t = valid(p.observe_drift(e, 1))
    assert (t["reasons"], t["last_n"], t["window_start_ms"]) == ([kind], 8_000, None)
    assert t["evidence"][f"{kind}.feature"] == "x"


def test_drift_kinds_can_be_turned_off():
    p = policy(drift_reasons=["concept_drift"], cooldown_ms=0)
    assert p.observe_drift(feature(), 1) is None and p.state["pending"] == {}


def test_drift_of_another_version_is_ignored():
    p = policy(min_rows=1, cooldown_ms=0)
    p.observe_outcomes(1_000, 0)
    assert p.observe_drift(concept(version="v0"), 1) is None and p.state["pending"] == {}


# -- cooldown, in flight, hysteresis ----------------------------------------------------------


def test_cooldown_delays_and_manual_skips_it():
    p = policy(cooldown_ms=HOUR)
    p.observe_outcomes(2_000, 0)
    first = valid(p.observe_drift(feature(), 0))
    p.on_version("v2", "candidate", created_at_ms=MIN, now_ms=MIN)
    assert p.observe_drift(feature("income"), 2 * MIN) is None  # cooling down
    assert p.tick(HOUR - 1) is None
    second = valid(p.tick(HOUR))
    assert (
        second["reasons"] == ["feature_drift"]
        and second["idempotency_key"] != first["idempotency_key"]
    )
    p.on_version("v3", "candidate", created_at_ms=HOUR + 1, now_ms=HOUR + 1)
    assert valid(p.request(HOUR + 2, "bob"))["reasons"] == ["manual"]


def test_in_flight_blocks_until_its_version_or_the_timeout():
    p = policy(cooldown_ms=0, inflight_timeout_ms=6 * HOUR)
    p.observe_outcomes(2_000, 0)
    t = valid(p.request(0, "alice"))
    assert p.observe_drift(feature(), 1) is None
    assert p.request(2, "bob") is None  # queued behind the one in flight
    p.on_version("v0", "archived", created_at_ms=-5, now_ms=3)  # registry replay: older
    assert p.tick(4) is None
    p.on_version("v2", "candidate", created_at_ms=-1, now_ms=5, trigger_id=t["trigger_id"])
    nxt = valid(p.tick(6))
    assert nxt["reasons"] == ["manual", "feature_drift"] and nxt["requested_by"] == "bob"
    assert p.observe_drift(feature(), 7) is None
    assert valid(p.tick(6 * HOUR + 6))["reasons"] == ["feature_drift"]  # timed out


def test_force_overrides_the_one_in_flight():
    p = policy()
    p.observe_outcomes(2_000, 0)
    valid(p.request(0))
    forced = valid(p.request(1, "ops", force=True))
    assert forced["requested_by"] == "ops" and forced["evidence"]["force"] is True


# -- min_rows, for every reason ----------------------------------------------------------------


def test_the_trial_a_feature_drift_with_148_outcomes_waits_for_min_rows():
    """A feature-drift trigger fired with 148 outcomes and its answer was promoted; now no
    reason fires before ``min_rows`` rows exist, and it fires on the outcome that
    completes them (``due_outcomes``)."""
    p = policy(cooldown_ms=0, min_rows=2_000)
    p.observe_outcomes(148, 0)
    assert p.observe_drift(feature("date"), 1) is None
    assert p.tick(HOUR) is None and "feature_drift" in p.state["pending"]
    assert p.due_outcomes(HOUR) == 2_000
    p.observe_outcomes(1_851, HOUR)
    assert p.tick(HOUR + 1) is None
    p.observe_outcomes(1, HOUR + 2)
    t = valid(p.tick(HOUR + 2))
    assert t["reasons"] == ["feature_drift"] and t["evidence"]["outcomes"] == 2_000


@pytest.mark.parametrize(
    ("case", "kwargs", "feed"),
    [
        ("schedule", {"schedule_ms": HOUR}, lambda p: (p.tick(0), p.tick(HOUR))[1]),
        ("outcome_count", {"every_n_outcomes": 100}, lambda p: p.tick(1)),
        ("degradation", {"degradation_evaluations": 1},
         lambda p: p.observe_snapshot(snap(0.5), 1)),
        ("feature drift", {}, lambda p: p.observe_drift(feature(), 1)),
        ("concept drift, max wait over", {"drift_max_wait_ms": MIN},
         lambda p: (p.observe_drift(concept(since=100), 0), p.tick(HOUR))[1]),
        ("manual", {}, lambda p: p.request(1, "ana")),
    ],
)  # fmt: skip
def test_no_reason_fires_below_min_rows(case: str, kwargs: dict[str, Any], feed) -> None:
    p = policy(cooldown_ms=0, min_rows=1_000, **kwargs)
    p.observe_outcomes(999, 0)
    assert feed(p) is None, case
    p.observe_outcomes(1, 2)
    assert valid(p.tick(HOUR + 1))["last_n"] == 20_000, case


def test_a_forced_manual_request_fires_below_min_rows() -> None:
    p = policy(cooldown_ms=0, min_rows=1_000)
    p.observe_outcomes(10, 0)
    assert p.request(1, "ana") is None
    t = valid(p.request(2, "ana", force=True))
    assert t["reasons"] == ["manual"] and t["evidence"] == {
        "outcomes": 10, "force": True, "manual.requested_by": "ana"}  # fmt: skip


def test_degradation_rearms_only_after_it_clears():
    p = policy(degradation_evaluations=2, cooldown_ms=0, margin=0.05, clear_ratio=0.5)
    p.observe_outcomes(2_000, 0)
    p.observe_snapshot(snap(0.80), 1)
    valid(p.observe_snapshot(snap(0.80), 2))
    p.on_version("v2", "rejected", created_at_ms=3, now_ms=3)  # candidate lost: still v1
    for t in range(4, 10):  # still degraded: disarmed
        assert p.observe_snapshot(snap(0.80), t) is None
    assert p.observe_snapshot(snap(0.87), 10) is None  # 0.03 worse: in the band, stays off
    for t in range(11, 14):
        assert p.observe_snapshot(snap(0.80), t) is None
    assert p.observe_snapshot(snap(0.89), 14) is None  # 0.01 <= 0.5 x 0.05: re-armed
    p.observe_snapshot(snap(0.80), 15)
    assert valid(p.observe_snapshot(snap(0.80), 16))["reasons"] == ["performance_degradation"]


def test_a_new_champion_rearms_and_drops_stale_reasons():
    p = policy(min_rows=5_000, cooldown_ms=0)
    p.observe_outcomes(1_000, 0)
    p.observe_drift(concept(since=100), 1)
    assert "concept_drift" in p.state["pending"]
    p.on_version("v2", "champion", created_at_ms=2, now_ms=2)
    assert p.state["pending"] == {} and p.state["champion"] == "v2"
    assert p.observe_drift(concept(version="v1"), 3) is None  # the old champion's


# -- bursts and idempotency --------------------------------------------------------------------


def test_a_burst_of_drift_signals_yields_one_trigger():
    p = policy(min_rows=1_000, cooldown_ms=HOUR)
    p.observe_outcomes(50_000, 0)
    triggers = []
    for i in range(200):
        # the same change seen again and again (ADWIN, feature tests), 10 outcomes a step
        event = feature(f"f{i % 7}") if i % 2 else concept(since=300 + 10 * i)
        triggers.append(p.observe_drift(event, i))
        p.observe_outcomes(10, i)
        triggers.append(p.tick(i))
    fired = [t for t in triggers if t]
    assert len(fired) == 1
    [t] = fired
    assert t["reasons"] == ["concept_drift", "feature_drift"]
    assert t["last_n"] == 1_000 and t["evidence"]["concept_drift.signals"] == 35
    for i in range(200, 400):  # the burst goes on while the trigger is in flight
        assert p.observe_drift(feature(), i) is None


def run(p: RetrainPolicy, steps: list[tuple[str, Any]], start: int = 1) -> list[dict[str, Any]]:
    """Feed ``steps`` at now_ms = start, start + 1, ...; return the triggers."""
    out = []
    for now, (what, arg) in enumerate(steps, start=start):
        result = None
        if what == "outcomes":
            p.observe_outcomes(arg, now)
        elif what == "drift":
            result = p.observe_drift(arg, now)
        elif what == "snap":
            result = p.observe_snapshot(arg, now)
        elif what == "version":
            p.on_version(arg, "candidate", created_at_ms=now, now_ms=now)
        result = result or p.tick(now)
        if result:
            out.append(result)
    return out


STEPS: list[tuple[str, Any]] = [
    ("outcomes", 5_000),
    ("drift", concept(since=100)),
    ("outcomes", 3_000),
    ("drift", feature()),
    ("version", "v2"),
    ("snap", snap(0.7)),
    ("snap", snap(0.7)),
    ("snap", snap(0.7)),
    ("version", "v3"),
    ("outcomes", 30_000),
    ("drift", feature("x")),
    ("version", "v4"),
]


@pytest.mark.parametrize("crash_after", range(len(STEPS) + 1))
def test_idempotency_keys_are_stable_across_a_crash_and_replay(crash_after):
    kwargs = {"min_rows": 2_000, "cooldown_ms": 0, "every_n_outcomes": 25_000}
    straight = run(policy(**kwargs), STEPS)
    assert [t["reasons"] for t in straight] == [
        ["concept_drift"],
        ["feature_drift"],
        ["performance_degradation"],
        ["outcome_count", "feature_drift"],
    ]
    assert len({t["idempotency_key"] for t in straight}) == 4
    p = policy(**kwargs)
    before = run(p, STEPS[:crash_after])
    saved = json.loads(json.dumps(p.to_dict()))  # what the changelogged table holds
    after = run(RetrainPolicy.from_dict(saved), STEPS[crash_after:], start=crash_after + 1)
    assert before + after == straight
    # a replay of the last committed steps (state restored, inputs read again) re-emits the
    # same keys, so the trainer acts on each request once
    replay = run(RetrainPolicy.from_dict(saved), STEPS[crash_after:], start=crash_after + 1)
    assert [t["idempotency_key"] for t in replay] == [t["idempotency_key"] for t in after]


def test_to_dict_round_trips_config_and_state():
    p = policy(schedule_ms=HOUR, every_n_outcomes=10, drift_reasons=("feature_drift",))
    p.observe_outcomes(3, 1)
    p.observe_drift(feature(), 2)
    d = p.to_dict()
    q = RetrainPolicy.from_dict(json.loads(json.dumps(d)))
    assert q.to_dict() == d
    assert q.config["drift_reasons"] == ["feature_drift"]
