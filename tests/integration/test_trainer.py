"""The trainer through the real broker: trigger -> candidate -> gate -> champion, lineage
down to offsets, a failing gate, idempotency, commits and a tampered champion."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from driftline.consumers.outcomes import OutcomeReader
from driftline.core.errors import ArtifactError
from driftline.core.lifecycle import reservoir
from driftline.core.model.config import ModelsConfig
from driftline.core.model.estimators import load_version
from driftline.kafka.helpers import Publisher
from driftline.kafka.registry_follower import read_registry
from driftline.settings import Settings
from tests.integration import harness
from tests.integration.loop_helpers import (
    T0,
    answer_triggers,
    bootstrap_champion,
    models,
    produce_outcomes,
    publish_trigger,
    read_topic,
    trainer,
    trigger,
)
from tests.unit.core.examples import known


def test_trigger_becomes_a_champion_with_exact_lineage(
    s: Settings, group_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    churn = produce_outcomes(s, 600)
    produce_outcomes(s, 100, seed=2, model="other")  # interleaved, never trained on
    trg = trigger()
    publish_trigger(s, trg)
    t = trainer(s, group_id)
    try:
        t0 = time.monotonic()
        with caplog.at_level(logging.INFO, logger="driftline.trainer"):
            (outcome,) = t.run(max_triggers=1, idle_timeout_s=30)
        elapsed = time.monotonic() - t0
    finally:
        t.close()
    assert outcome.status == "champion", outcome
    answers = [r.getMessage() for r in caplog.records if "answered trigger" in r.getMessage()]
    assert len(answers) == 1  # one INFO line per answer
    assert answers[0].startswith(
        f"churn: answered trigger {trg['trigger_id']} (manual) with {outcome.version} champion"
    )  # then the wait from the trigger, in seconds and in the events that came meanwhile
    assert re.search(r"; [\d.]+ s and [\d,]+ events since the trigger$", answers[0]), answers
    assert elapsed < 15
    reg = read_registry(s)
    champ = reg.champion("churn")
    assert champ is not None and champ["version"] == outcome.version
    assert champ["stage_changed_by"] == "trainer"
    lin = champ["lineage"]
    assert (lin["trigger_id"], lin["trigger_key"]) == (trg["trigger_id"], trg["idempotency_key"])
    assert lin["rows"] + lin["holdout_rows"] == 600
    expected: dict[int, tuple[int, int]] = {}
    for _, p, off in churn:
        lo, hi = expected.get(p, (off, off))
        expected[p] = (min(lo, off), max(hi, off + 1))
    assert {
        r["partition"]: (r["start_offset"], r["end_offset"]) for r in lin["data_ranges"]
    } == expected
    assert {r["topic"] for r in lin["data_ranges"]} == {s.topic("outcomes")}
    assert champ["gate"]["passed"] and champ["metrics"]["accuracy"] > 0.8
    assert set(lin["step_ms"]) >= {"read", "train", "gate"}
    # candidate first, then champion: both on the topic, in that order
    stages = [c.stage for c in reg.changes if c.version == outcome.version]
    assert stages == ["candidate", "champion"]
    served = load_version(champ, s.signing_key.get_secret_value().encode())
    assert served.predict_one({"amount": 9.0, "plan": "pro"})[0] is True


def test_failing_gate_leaves_the_champion_in_place(s: Settings, group_id: str) -> None:
    old = bootstrap_champion(s)
    produce_outcomes(s, 700)
    publish_trigger(s, trigger(last_n=600))
    (outcome,) = answer_triggers(s, group_id, models(min_improvement=1.0))  # cannot be met
    assert outcome.status == "rejected"
    reg = read_registry(s)
    assert known(reg.champion("churn"))["version"] == old["version"]
    rejected = known(reg.get("churn", known(outcome.version)))
    assert rejected["stage"] == "rejected"
    assert rejected["lineage"]["champion_version"] == old["version"]
    assert rejected["lineage"]["rows"] + rejected["lineage"]["holdout_rows"] == 600
    assert rejected["gate"]["checks"]["improvement"] is False
    assert rejected["stage_reason"].startswith("gate: failed improvement")
    assert "95% lower bound" in rejected["stage_reason"]
    alerts = read_topic(s, "alerts", "Alert")
    assert [a["kind"] for a in alerts] == ["candidate_rejected"]


@pytest.mark.parametrize(
    ("flipped", "stage", "reason"),
    [
        (False, "champion", "gate passed, promotion auto"),
        (True, "rejected", "post-alarm outcomes, failed"),
    ],
)
def test_a_candidate_trained_before_the_latest_alarm_is_gated_again(
    s: Settings, group_id: str, flipped: bool, stage: str, reason: str
) -> None:
    """No stale answers, without a live loop: the champion's detector runs over its
    outcomes of the window and since; a change after the window (labels inverted) raises
    an alarm, and the candidate, gated again on the post-alarm outcomes, is rejected."""
    old = bootstrap_champion(s)
    produce_outcomes(s, 600, version=old["version"])
    produce_outcomes(s, 400, seed=3, start=600, version=old["version"],
                     noise=0.9 if flipped else 0.1)  # fmt: skip
    publish_trigger(s, trigger(window_end_ms=T0 + 600_000))
    (outcome,) = answer_triggers(s, group_id)
    assert outcome.status == stage, outcome
    reg = read_registry(s)
    record = known(reg.get("churn", known(outcome.version)))
    assert record["stage"] == stage and reason in record["stage_reason"], record["stage_reason"]
    assert record["gate"]["passed"]  # its offline gate passed: the alarm held it back
    assert (known(reg.champion("churn"))["version"] == old["version"]) == flipped
    if flipped:
        assert f"trained on data up to {T0 + 599_000}" in record["stage_reason"]
        (alert,) = read_topic(s, "alerts", "Alert")
        assert alert["kind"] == "candidate_rejected" and alert["evidence"]["reason"] == "stale"
        assert T0 + 600_000 <= alert["evidence"]["alarm_ms"] < T0 + 1_000_000


def test_duplicate_trigger_is_answered_once_and_offsets_are_committed(
    s: Settings, group_id: str
) -> None:
    produce_outcomes(s, 600)
    first = trigger()
    publish_trigger(s, first)
    publish_trigger(s, trigger(idempotency_key=first["idempotency_key"]))
    outcomes = answer_triggers(s, group_id, triggers=2)
    assert [o.status for o in outcomes] == ["champion", "skipped"]
    assert outcomes[1].version == outcomes[0].version
    assert len(read_registry(s).versions("churn")) == 1
    # a restarted trainer in the same group finds nothing left to do
    again = trainer(s, group_id)
    try:
        assert again.run(idle_timeout_s=3) == []
    finally:
        again.close()


def test_time_window_reads_from_offsets_for_times(s: Settings, group_id: str) -> None:
    produce_outcomes(s, 400)
    start = T0 + 250 * 1_000  # event times T0 + i s: the last 150 outcomes
    publish_trigger(s, trigger(window_start_ms=start))
    (outcome,) = answer_triggers(s, group_id)
    lin = known(read_registry(s).get("churn", known(outcome.version)))["lineage"]
    assert lin["rows"] + lin["holdout_rows"] == 150


def test_unknown_model_raises_a_training_failed_alert(s: Settings, group_id: str) -> None:
    trg = trigger(model="nobody")
    publish_trigger(s, trg)
    (outcome,) = answer_triggers(s, group_id)
    assert outcome.status == "failed"
    (alert,) = read_topic(s, "alerts", "Alert")
    assert alert["kind"] == "training_failed"
    assert alert["evidence"]["trigger_id"] == trg["trigger_id"]
    assert "neither in the models file nor in the registry" in alert["message"]


def dies(params: Any, seed: int) -> Any:
    """A model factory that kills the process it runs in (as the OOM killer would)."""
    os._exit(137)


def test_a_training_child_that_dies_is_answered_by_an_alert_and_replaced(
    s: Settings, group_id: str
) -> None:
    produce_outcomes(s, 600)
    first, second = trigger(), trigger()
    publish_trigger(s, first)
    publish_trigger(s, second)
    deadly = models()
    deadly = ModelsConfig({"churn": dataclasses.replace(
        deadly["churn"], factory=f"{__name__}:dies", task="classification")})  # fmt: skip
    t = trainer(s, group_id, deadly)
    try:
        (failed,) = t.run(max_triggers=1, idle_timeout_s=30)
        t.models = models()  # the next trigger trains on a child started afresh
        (answered,) = t.run(max_triggers=1, idle_timeout_s=30)
        started = t._pool.started
    finally:
        t.close()
    assert (failed.trigger_id, failed.status) == (first["trigger_id"], "failed")
    assert failed.alerts == ("training_failed",)
    (alert,) = read_topic(s, "alerts", "Alert")
    assert alert["kind"] == "training_failed"
    assert alert["evidence"]["trigger_id"] == first["trigger_id"]
    assert alert["evidence"]["error"].startswith("BrokenProcessPool")
    assert (answered.trigger_id, answered.status) == (second["trigger_id"], "champion")
    assert started == 2
    assert known(read_registry(s).champion("churn"))["version"] == answered.version


def test_tampered_champion_is_refused_and_alerted(s: Settings, group_id: str) -> None:
    champ = bootstrap_champion(s)
    bad = dict(champ, artifact=dict(champ["artifact"]))
    data = bytearray(bad["artifact"]["inline"])
    data[100] ^= 0x01
    bad["artifact"]["inline"] = bytes(data)
    bad["stage_changed_at_ms"] += 1
    pub = Publisher(s, "test")
    pub.send_versions([bad])
    pub.close()
    key = s.signing_key.get_secret_value().encode()
    on_topic = known(read_registry(s).champion("churn"))
    with pytest.raises(ArtifactError) as info:
        load_version(on_topic, key)
    assert info.value.reason == "digest_mismatch"
    # the trainer alerts and gates the next candidate without the broken champion
    produce_outcomes(s, 600)
    publish_trigger(s, trigger())
    (outcome,) = answer_triggers(s, group_id)
    assert outcome.status == "champion"
    assert [a["kind"] for a in read_topic(s, "alerts", "Alert")] == ["artifact_rejected"]
    assert "could not be loaded" in known(read_registry(s).champion("churn"))["gate"]["summary"]


def test_last_n_reads_back_past_other_models(s: Settings) -> None:
    churn = produce_outcomes(s, 200, seed=1)
    produce_outcomes(s, 900, seed=2, start=200, model="other")  # newer, on top of churn's
    reader = OutcomeReader(s)
    try:
        got = reader.read("churn", last_n=150)
    finally:
        reader.close()
    newest = sorted(churn, key=lambda d: d[0]["event_time_ms"])[-150:]
    assert [r["event_id"] for r in got.rows] == [d[0]["event_id"] for d in newest]
    assert got.messages == 1_100  # widened the look-back to the beginning
    offsets = {(p, off) for _, p, off in newest}
    assert {(r["partition"], r["offset"]) for r in got.rows} == offsets
    for r in got.ranges:
        mine = [off for p, off in offsets if p == r["partition"]]
        assert (r["start_offset"], r["end_offset"]) == (min(mine), max(mine) + 1)


def test_a_later_window_reads_only_the_new_outcomes(s: Settings) -> None:
    """The reader keeps what it read: the next trigger's window reads from Kafka only
    the outcomes that arrived since, and gets the same rows as a fresh reader."""
    first = produce_outcomes(s, 300, seed=1)
    produce_outcomes(s, 100, seed=2, start=300, model="other")
    reader, fresh = OutcomeReader(s), OutcomeReader(s)
    try:
        a = reader.read("churn", start_ms=T0)
        assert (a.messages, a.cached, len(a.rows)) == (400, 0, 300)
        later = produce_outcomes(s, 200, seed=3, start=400)
        b = reader.read("churn", start_ms=T0)
        assert (b.messages, b.cached) == (200, 400)
        again = fresh.read("churn", start_ms=T0)
        assert again.messages == 600
        assert b.rows == again.rows and b.ranges == again.ranges
        assert {r["event_id"] for r in b.rows} == {d[0]["event_id"] for d in first + later}
        # a window reaching back before what it holds is read whole again
        small = OutcomeReader(s, cache_messages=60)  # keeps the newest few
        try:
            small.read("churn", start_ms=T0)
            c = small.read("churn", start_ms=T0)
            assert (c.messages, c.cached) == (600, 0) and c.rows == again.rows
        finally:
            small.close()
    finally:
        reader.close()
        fresh.close()


def test_a_small_window_is_not_promoted(s: Settings, group_id: str) -> None:
    """The trial: a trigger answered from a few dozen held-out rows. The candidate beats
    the old champion on them, but 30 rows are below ``min_holdout_rows``: rejected, with
    the reason in the registry and on the alerts topic."""
    old = bootstrap_champion(s)
    produce_outcomes(s, 150)
    publish_trigger(s, trigger(last_n=150))
    (outcome,) = answer_triggers(s, group_id)
    assert outcome.status == "rejected"
    reg = read_registry(s)
    assert known(reg.champion("churn"))["version"] == old["version"]
    rejected = known(reg.get("churn", known(outcome.version)))
    assert rejected["gate"]["checks"]["holdout"] is False
    assert "on 30 held-out rows (needs >= 100)" in rejected["stage_reason"]
    (alert,) = read_topic(s, "alerts", "Alert")
    assert alert["kind"] == "candidate_rejected" and "needs >= 100" in alert["message"]


def test_a_manual_trigger_honours_min_rows_unless_forced(
    s: Settings, group_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    old = bootstrap_champion(s)
    produce_outcomes(s, 300)
    publish_trigger(s, trigger())
    publish_trigger(s, trigger(evidence={"force": True}))
    t = trainer(s, group_id, models(min_rows=500))
    try:
        with caplog.at_level(logging.INFO, logger="driftline.trainer"):
            refused, forced = t.run(max_triggers=2, idle_timeout_s=30)
    finally:
        t.close()
    assert (refused.status, refused.version) == ("refused", None)
    # the one INFO line per answer says what answer_trigger returned
    answers = [r.getMessage() for r in caplog.records if "answered trigger" in r.getMessage()]
    assert [a.split(" with ")[1].split(" in ")[0] for a in answers] == [
        "no version (refused); alerts: training_refused",
        f"{forced.version} rejected; alerts: candidate_rejected",
    ]
    # forced: trained on the 300 rows, and the gate still guards (60 held-out rows)
    assert forced.status == "rejected" and forced.version is not None
    reg = read_registry(s)
    assert [v["version"] for v in reg.versions("churn")] == [old["version"], forced.version]
    assert known(reg.get("churn", known(forced.version)))["gate"]["checks"]["holdout"] is False
    alert = next(a for a in read_topic(s, "alerts", "Alert") if a["kind"] == "training_refused")
    expected = {"trigger_id": refused.trigger_id, "rows": 300, "earlier_rows": 0, "min_rows": 500}
    assert alert["evidence"] == expected
    assert "fewer than min_rows (500)" in alert["message"] and "--force" in alert["message"]


def test_a_small_window_is_completed_from_the_champions_sample(s: Settings, group_id: str) -> None:
    """The champion's record carries a sample of the 480 rows it trained on (through Kafka,
    ModelVersion v2); a manual window of 500 rows under min_rows 900 is completed with
    the newest 400 of them, which are learnt and never held out."""
    old = bootstrap_champion(s)  # event times T0 + 0 .. 599 s
    on_topic = known(read_registry(s).champion("churn"))
    assert len(reservoir.decode(on_topic["training_sample"])) == 480
    produce_outcomes(s, 500, start=1_000)  # event times from T0 + 1,000 s
    publish_trigger(s, trigger())
    (outcome,) = answer_triggers(s, group_id, models(min_rows=900))
    assert outcome.status in ("champion", "challenger", "rejected"), outcome
    lin = known(read_registry(s).get("churn", known(outcome.version)))["lineage"]
    assert (lin["earlier_rows"], lin["earlier_version"]) == (400, old["version"])
    assert (lin["rows"], lin["holdout_rows"]) == (400 + 400, 100)
    sample = reservoir.decode(
        known(read_registry(s).get("churn", known(outcome.version)))["training_sample"]
    )
    assert {r["event_time_ms"] < T0 + 600_000 for r in sample} == {True, False}  # both kinds


def test_a_running_trainer_reloads_its_models_file_on_sighup(s: Settings, tmp_path: Path) -> None:
    """A broken file is refused with a config_rejected alert and the trainer runs on with
    its last good configuration; a good one is applied between triggers."""
    path = tmp_path / "models.toml"
    path.write_text('[models.churn]\nfactory = "logistic_regression"\n')
    settings = s.model_copy(update={"models_file": path})
    proc = harness.Process(settings, ["trainer", "--metrics-port", "0"],
                           tmp_path / "trainer.log", "trainer started").start()  # fmt: skip
    try:
        path.write_text('[models.churn]\nfactory = "logistic_regresion"\n')
        alerts = harness.refused_models_file(s, proc)
        rejected = [a for a in alerts if a["kind"] == "config_rejected"]
        assert rejected, proc.tail()
        (alert,) = rejected
        assert alert["model"] == "churn" and alert["evidence"]["process"] == "trainer"
        assert "models.churn.factory (line 2): unknown model factory" in alert["message"]
        assert proc.running() and "refused models file" in proc.tail()

        path.write_text('[models.churn]\nfactory = "logistic_regression"\npromotion = "manual"\n')
        harness.reloaded_models_file(proc)
        assert "changed: churn" in proc.tail()
    finally:
        assert proc.stop() == 0, proc.tail()
