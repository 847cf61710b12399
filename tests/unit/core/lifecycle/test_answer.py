"""How a trigger is answered, as data: config fallback, stage reasons, alerts (Avro-valid),
and the whole decision (:func:`answer_trigger`) without Kafka."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from driftline.core.errors import ConfigError
from driftline.core.lifecycle.answer import (
    alert,
    answer_trigger,
    answered_by,
    config_for,
    failure_alert,
    hold_stale,
    restage_answer,
    stage_reason,
    stale_rule,
)
from driftline.core.lifecycle.registry import Registry, is_probation, promote, retire
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import GateConfig, ModelConfig, ModelsConfig
from driftline.core.wire.codec import default_codec
from tests.unit.core.examples import T0, known, model_version, retrain_trigger


def test_config_from_the_models_file_wins() -> None:
    cfg = ModelConfig("churn", factory="hoeffding_tree")
    assert config_for(ModelsConfig({"churn": cfg}), "churn", model_version()) is cfg


def test_config_follows_the_champion_when_the_file_lacks_the_model() -> None:
    champ = model_version(factory="logistic_regression")
    champ["lineage"]["params"] = {"lr": "0.05", "name": "plain", "grace": "100"}
    cfg = config_for(ModelsConfig(), "churn", champ)
    assert (cfg.task, cfg.factory, cfg.seed) == ("classification", "logistic_regression", 42)
    assert cfg.params == {"lr": 0.05, "name": "plain", "grace": 100}
    with pytest.raises(ConfigError, match="neither in the models file nor in the registry"):
        config_for(ModelsConfig(), "churn", None)


@pytest.mark.parametrize(
    ("stage", "passed", "reason"),
    [
        ("champion", True, "gate passed, promotion auto"),
        ("challenger", True, "gate passed, waiting for approval (promotion manual)"),
        ("challenger", False,
         "gate inconclusive, kept as a challenger in shadow: failed improvement: ..."),
        ("rejected", False, "gate: failed improvement: ..."),
    ],
)  # fmt: skip
def test_stage_reason(stage: str, passed: bool, reason: str) -> None:
    assert stage_reason(stage, {"passed": passed, "summary": "failed improvement: ..."}) == reason


def test_alerts_are_valid_alert_records() -> None:
    failed = failure_alert(
        retrain_trigger(), "run-1", ValueError("no rows"), seconds=1.23456, host="h", now_ms=9
    )
    assert failed["kind"] == "training_failed" and failed["severity"] == "critical"
    assert failed["evidence"]["error"] == "ValueError: no rows"
    assert failed["evidence"]["seconds"] == 1.235
    assert failed["message"].startswith("Training churn for trigger trg-0001 failed")
    info = alert("churn", "v2", "candidate_rejected", "info", "m", {"n": 1}, now_ms=1)
    for record in (failed, info):
        data = default_codec().encode("Alert", record)
        assert default_codec().decode(data, expect="Alert").value == record
    assert (
        failed["alert_id"]
        != failure_alert(retrain_trigger(), "run-1", ValueError(), seconds=0, host="h", now_ms=9)[
            "alert_id"
        ]
    )


# -- answer_trigger: the whole decision, without Kafka ------------------------------------

KEY = b"answer-key"
GATE = GateConfig(min_segment_samples=50)


def rows(n: int, *, flip: bool = False, seed: int = 1, start: int = 0) -> list[dict[str, Any]]:
    """Outcome-like dicts, event times ``start .. start + n - 1`` seconds after T0."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        amount = rng.random() * 10
        out.append(
            {
                "event_id": f"e{i}",
                "event_time_ms": T0 + i * 1_000,
                "features": {"amount": amount},
                "label": (amount > 5) != flip,
                "segment": {"region": "eu" if i % 2 else "us"},
            }
        )
    return out


def registry_with_champion(flip: bool, promotion: str = "auto") -> tuple[Registry, ModelsConfig]:
    cfg = ModelConfig(
        "churn",
        factory="logistic_regression",
        promotion=promotion,
        gate=GATE,
        retrain={"min_rows": 100},
    )
    _, records = bootstrap(rows(600, flip=flip, seed=9), cfg, key=KEY, by="t", reason="r",
                           now_ms=T0)  # fmt: skip
    return Registry.from_records(records), ModelsConfig({"churn": cfg})


def manual_trigger(**kw: Any) -> dict[str, Any]:
    return retrain_trigger(**{"window_start_ms": None, "last_n": None, "reasons": ["manual"],
                              **kw})  # fmt: skip


def clock(start: int = T0 + 5_000) -> Any:
    ticks = iter(range(start, start + 1_000))
    return lambda: next(ticks)


@pytest.mark.parametrize(
    ("case", "champion_flipped", "promotion", "stage", "stages", "alerts"),
    [
        ("a better candidate becomes champion", True, "auto", "champion",
         ["candidate", "archived", "champion"], []),
        ("promotion manual: it waits as challenger", True, "manual", "challenger",
         ["candidate", "challenger"], []),
        ("no better than the champion: rejected, with an alert", False, "auto", "rejected",
         ["candidate", "rejected"], ["candidate_rejected"]),
    ],
)  # fmt: skip
def test_answer_decides_the_stage_and_what_to_publish(
    case: str,
    champion_flipped: bool,
    promotion: str,
    stage: str,
    stages: list[str],
    alerts: list[str],
) -> None:
    reg, models = registry_with_champion(champion_flipped, promotion)
    old = known(reg.champion("churn"))
    trg = manual_trigger()
    got = answer_trigger(trg, rows(500, start=1_000), reg, models, key=KEY, clock_ms=clock(),
                         run_id="run-1", code="c", host="h")  # fmt: skip
    assert got.stage == stage, case
    assert [r["stage"] for r in got.records] == stages
    assert [a["kind"] for a in got.alerts] == alerts
    assert got.records[0]["version"] == got.version and known(got.version).startswith("v2-")
    assert got.records[0]["lineage"]["champion_version"] == old["version"]
    assert got.records[0]["lineage"]["training_run_id"] == "run-1"
    assert "frame" in got.records[0]["lineage"]["step_ms"]
    # stage changes come after the version's creation, in publish order
    times = [r["stage_changed_at_ms"] for r in got.records]
    assert times == sorted(times) and times[-1] > got.records[0]["created_at_ms"]
    if alerts:
        assert got.alerts[0]["evidence"] == {"trigger_id": trg["trigger_id"],
                                             "training_run_id": "run-1"}  # fmt: skip
    # the registry is only read: applying the records is the caller's job
    assert known(reg.champion("churn"))["version"] == old["version"]


def test_with_a_live_loop_the_replaced_champion_stays_on_probation() -> None:
    reg, models = registry_with_champion(True)
    old = known(reg.champion("churn"))
    got = answer_trigger(manual_trigger(), rows(500, start=1_000), reg, models, key=KEY,
                         clock_ms=clock(), code="c", host="h", probation=True)  # fmt: skip
    assert [(r["version"], r["stage"]) for r in got.records[1:]] == [
        (old["version"], "challenger"), (got.version, "champion")]  # fmt: skip
    assert is_probation(got.records[1]) and not is_probation(got.records[2])


def test_answer_trains_on_the_trigger_window_only() -> None:
    reg, models = registry_with_champion(True)
    data = rows(800)
    start = T0 + 300 * 1_000
    got = answer_trigger(manual_trigger(window_start_ms=start, last_n=400), data, reg, models,
                         key=KEY, clock_ms=clock(), code="c", host="h")  # fmt: skip
    lineage = got.records[0]["lineage"]
    assert lineage["rows"] + lineage["holdout_rows"] == 400  # the newest 400 of 500 in window
    assert known(got.run).train_rows == lineage["rows"]


def test_answer_alerts_on_a_refused_champion_and_gates_without_it() -> None:
    reg, models = registry_with_champion(True)
    champ = known(reg.champion("churn"))
    bad = dict(champ, artifact=dict(champ["artifact"], signature="00" * 32))
    reg.apply(dict(bad, stage_changed_at_ms=champ["stage_changed_at_ms"] + 1))
    got = answer_trigger(manual_trigger(), rows(500), reg, models, key=KEY, clock_ms=clock(),
                         code="c", host="h")  # fmt: skip
    assert [a["kind"] for a in got.alerts][:1] == ["artifact_rejected"]
    assert got.alerts[0]["evidence"] == {"reason": "bad_signature"}
    assert "could not be loaded" in known(got.verdict)["summary"]


def test_answer_for_an_unknown_model_raises() -> None:
    with pytest.raises(ConfigError, match="neither in the models file nor in the registry"):
        answer_trigger(manual_trigger(model="nobody"), rows(100), Registry(), ModelsConfig(),
                       key=KEY, clock_ms=clock())  # fmt: skip


@pytest.mark.parametrize(
    ("case", "trigger", "start", "stage", "earlier"),
    [
        ("manual, 300 rows, none older in the champion's sample: refused", manual_trigger(),
         0, "refused", 0),
        ("manual, 300 rows completed by 200 older ones: trained", manual_trigger(), 1_000,
         "rejected", 200),
        ("forced: trained (and gated)", manual_trigger(evidence={"force": True}), 0,
         "rejected", 0),
        ("a change point's window: the policy counted it; never completed", manual_trigger(
            reasons=["concept_drift"], window_start_ms=T0 + 1_000_000, last_n=300,
            evidence={"post_change_rows": 500}), 1_000, "rejected", 0),
    ],
)  # fmt: skip
def test_a_window_below_min_rows(
    case: str, trigger: dict[str, Any], start: int, stage: str, earlier: int
) -> None:
    """The champion was bootstrapped on rows at T0 .. T0 + 599 s; its sample holds the 480
    it trained on. Windows of 300 rows start at ``start`` s; min_rows is 500."""
    reg, models = registry_with_champion(True)
    cfg = dataclasses.replace(models["churn"], retrain={"min_rows": 500})
    got = answer_trigger(trigger, rows(300, start=start), reg, ModelsConfig({"churn": cfg}),
                         key=KEY, clock_ms=clock(), code="c", host="h")  # fmt: skip
    assert got.stage == stage, case
    if stage == "refused":
        assert (got.run, got.version, got.verdict, got.records) == (None, None, None, [])
        (refused,) = got.alerts
        assert refused["kind"] == "training_refused" and refused["severity"] == "warning"
        assert refused["evidence"] == {
            "trigger_id": "trg-0001", "rows": 300, "earlier_rows": 0, "min_rows": 500}  # fmt: skip
        default_codec().encode("Alert", refused)
        return
    assert got.run is not None and got.verdict is not None
    lineage = got.records[0]["lineage"]
    assert (lineage["earlier_rows"], lineage["holdout_rows"]) == (earlier, 60)
    assert lineage["rows"] == 240 + earlier  # held-out rows from the window only
    assert lineage["earlier_version"] == (
        known(reg.champion("churn"))["version"] if earlier else None
    )
    assert got.verdict["checks"]["holdout"] is False  # 60 held out: no promotion either way


def test_a_retired_model_is_refused_and_challengers_are_capped() -> None:
    reg, models = registry_with_champion(True, promotion="manual")
    for i in range(3):  # three answers wait as challengers; the cap of 2 archives the oldest
        got = answer_trigger(manual_trigger(trigger_id=f"t{i}"), rows(500, start=1_000 * i),
                             reg, models, key=KEY, clock_ms=clock(T0 + 10_000 * (i + 1)),
                             code="c", host="h", max_challengers=2)  # fmt: skip
        assert got.stage == "challenger"
        for r in got.records:
            reg.apply(r)
    assert [r["stage"] for r in got.records] == ["candidate", "archived", "challenger"]
    assert "the oldest of 2 challengers" in got.records[1]["stage_reason"]
    assert len(reg.challengers("churn")) == 2
    for r in retire(reg, "churn", by="ops", reason="r", now_ms=T0 + 99_000):
        reg.apply(r)
    got = answer_trigger(manual_trigger(), rows(500), reg, models, key=KEY, clock_ms=clock(),
                         code="c", host="h")  # fmt: skip
    assert (got.stage, got.records, got.run) == ("refused", [], None)
    assert got.alerts[0]["evidence"]["reason"] == "model_retired"
    assert "is retired" in got.alerts[0]["message"]


@pytest.mark.parametrize(
    ("champion_now", "stage"),
    [("same", "champion"), ("another", "challenger")],
)
def test_an_answer_is_restaged_on_the_registry_as_it_stands_after_training(
    champion_now: str, stage: str
) -> None:
    """While a trigger trains the live loop may change the champion: a candidate gated
    against one that no longer is champion enters as a challenger."""
    reg, models = registry_with_champion(True)
    old = known(reg.champion("churn"))
    got = answer_trigger(manual_trigger(), rows(500, start=1_000), reg, models, key=KEY,
                         clock_ms=clock(), code="c", host="h", probation=True)  # fmt: skip
    assert got.stage == "champion"
    if champion_now == "another":
        other = {**old, "version": "online-1", "stage": "candidate"}
        reg.apply(other)
        for r in promote(reg, "churn", "online-1", by="t", reason="live", now_ms=T0 + 9_000):
            reg.apply(r)
    again = restage_answer(got, reg, champion_then=old["version"], now_ms=T0 + 10_000,
                           probation=True)  # fmt: skip
    assert again.stage == stage and again.records[0] == got.records[0]
    assert again.records[-1]["version"] == got.version and again.records[-1]["stage"] == stage
    if stage == "champion":
        assert [r["stage"] for r in again.records] == [r["stage"] for r in got.records]
    else:
        assert "no longer the champion" in again.records[-1]["stage_reason"]


@pytest.mark.parametrize(("probation", "stage"), [(True, "challenger"), (False, "champion")])
def test_a_candidate_against_an_online_champion_waits_for_live_evidence(
    probation: bool, stage: str
) -> None:
    """An online champion has learnt the held-out rows: with the live loop running, a
    candidate that passes every other check enters as a challenger."""
    reg, models = registry_with_champion(True)
    online = {**known(reg.champion("churn")), "version": "online-1"}
    reg = Registry.from_records([online])
    got = answer_trigger(manual_trigger(), rows(500, start=1_000), reg, models, key=KEY,
                         clock_ms=clock(), code="c", host="h", probation=probation)  # fmt: skip
    assert got.stage == stage
    if probation:
        assert "learns online" in got.records[-1]["stage_reason"]


@pytest.mark.parametrize(
    ("lineage", "expected"),
    [
        ({"trigger_id": "trg-0001"}, "v4"),  # the same trigger, read again
        # sent again under a new id (a monitor restarted mid-window): its key answers it
        ({"trigger_id": "trg-0002", "trigger_key": "churn:feature_drift:2023-11-14T23"}, "v4"),
        ({"trigger_id": "trg-0002", "trigger_key": "churn:concept_drift:2023-11-14T23"}, None),
    ],
)
def test_a_trigger_already_answered_is_found_by_its_key_or_its_id(
    lineage: dict[str, Any], expected: str | None
) -> None:
    version = model_version()
    version["lineage"] = {**version["lineage"], "trigger_key": None, **lineage}
    found = answered_by(Registry.from_records([version]), retrain_trigger())
    assert (None if found is None else found["version"]) == expected


# -- no stale answers: a candidate trained before the latest concept-drift alarm ----------


@pytest.mark.parametrize(
    ("stage", "trained_until", "alarm", "live", "post_rows", "want"),
    [
        ("champion", None, 1_000, False, 500, None),  # window end unknown
        ("champion", 900, None, False, 500, None),  # no alarm
        ("champion", 1_000, 1_000, False, 0, None),  # trained up to the change
        ("champion", 1_500, 1_000, True, 0, None),  # trained after it
        ("challenger", 900, 1_000, False, 0, None),  # not promoted anyway
        ("rejected", 900, 1_000, True, 0, None),
        ("champion", 900, 1_000, True, 0, "challenger"),  # a live loop decides
        ("champion", 900, 1_000, False, 200, "regate"),  # enough post-alarm rows
        ("champion", 900, 1_000, False, 199, "rejected"),  # too few: dropped
    ],
)  # fmt: skip
def test_stale_rule(
    stage: str,
    trained_until: int | None,
    alarm: int | None,
    live: bool,
    post_rows: int,
    want: str | None,
) -> None:
    got = stale_rule(stage, trained_until, alarm, live=live, post_alarm_rows=post_rows,
                     min_rows=200)  # fmt: skip
    assert got == want


TRAINED_UNTIL = T0 + 1_499_000  # the newest row of rows(500, start=1_000)


@pytest.mark.parametrize(
    ("case", "alarm", "live", "post", "stage", "reason", "alerts"),
    [
        ("no alarm", None, False, None, "champion", "gate passed, promotion auto", []),
        ("an alarm inside the window", T0 + 1_200_000, False, None, "champion",
         "gate passed, promotion auto", []),
        ("a live loop: challenger", T0 + 1_600_000, True, None, "challenger",
         "live evidence decides", []),
        ("re-gated on post-alarm rows of the same concept: champion", T0 + 1_600_000, False,
         (400, False), "champion", "gated again on 300 post-alarm outcomes, passed", []),
        ("re-gated on post-alarm rows of the other concept: rejected", T0 + 1_600_000, False,
         (400, True), "rejected", "gated again on 300 post-alarm outcomes, failed",
         ["candidate_rejected"]),
        ("too few post-alarm rows: dropped", T0 + 1_600_000, False, (150, False), "rejected",
         "dropped, only 50 post-alarm outcomes (the gate needs 100)", ["candidate_rejected"]),
    ],
)  # fmt: skip
def test_a_candidate_trained_before_the_latest_alarm_is_not_promoted_on_its_gate_alone(
    case: str,
    alarm: int | None,
    live: bool,
    post: tuple[int, bool] | None,
    stage: str,
    reason: str,
    alerts: list[str],
) -> None:
    reg, models = registry_with_champion(True)
    old = known(reg.champion("churn"))
    got = answer_trigger(manual_trigger(), rows(500, start=1_000), reg, models, key=KEY,
                         clock_ms=clock(), code="c", host="h", probation=live)  # fmt: skip
    assert got.stage == "champion" and got.trained_until_ms == TRAINED_UNTIL
    # rows after the window: the first 100 fall before the alarm and do not count
    after = [] if post is None else rows(post[0], start=1_500, flip=post[1], seed=3)
    held = hold_stale(got, reg, alarm_ms=alarm, live=live, post_alarm_rows=after, key=KEY,
                      now_ms=T0 + 20_000, probation=live)  # fmt: skip
    assert held.stage == stage, case
    assert held.records[0] == got.records[0]
    last = held.records[-1]
    assert (last["version"], last["stage"]) == (got.version, stage)
    assert reason in last["stage_reason"], last["stage_reason"]
    assert [a["kind"] for a in held.alerts] == alerts
    if held is not got:  # the reason names both times
        assert str(TRAINED_UNTIL) in last["stage_reason"] and str(alarm) in last["stage_reason"]
        assert last["stage_changed_at_ms"] == T0 + 20_000
    if stage == "champion":
        assert (held.records[-2]["version"], held.records[-2]["stage"]) == (
            old["version"], "challenger" if live else "archived")  # fmt: skip
    else:
        assert all(r["version"] == got.version for r in held.records)
    for a in held.alerts:
        want = {"reason": "stale", "trained_until_ms": TRAINED_UNTIL, "alarm_ms": alarm,
                "post_alarm_rows": len(after) - 100}  # fmt: skip
        assert a["evidence"] == want
        assert default_codec().decode(default_codec().encode("Alert", a), expect="Alert")


@pytest.mark.parametrize(
    ("champion_flipped", "promotion", "stage", "importance"),
    [
        (True, "auto", "champion", True),
        (True, "manual", "challenger", True),
        (False, "auto", "rejected", False),
    ],
)
def test_importance_only_for_a_candidate_that_may_serve(
    champion_flipped: bool, promotion: str, stage: str, importance: bool
) -> None:
    reg, models = registry_with_champion(champion_flipped, promotion)
    got = answer_trigger(manual_trigger(), rows(500, start=1_000), reg, models, key=KEY,
                         clock_ms=clock(), run_id="r", code="c", host="h")  # fmt: skip
    assert got.stage == stage
    for record in got.records:  # the candidate and every stage record after it
        lineage = record["lineage"]
        assert (lineage["importance"] is not None) == importance
        assert ("importance" in lineage["step_ms"]) == importance
    if importance:
        imp = got.records[-1]["lineage"]["importance"]
        assert set(imp) == {"amount"} and imp["amount"]["mean"] > 0.1
