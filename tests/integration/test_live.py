"""The trainer's live loop through the real broker (issue 17): an online challenger that
learns every outcome once, across a restart, enters as a challenger and is promoted on
live paired evidence, the champion it replaces kept on probation."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from confluent_kafka import Producer

from driftline.consumers.trainer import Trainer
from driftline.core.lifecycle.registry import is_online, is_probation
from driftline.core.model.config import LiveConfig, ModelsConfig, OnlineConfig
from driftline.core.wire.codec import default_codec
from driftline.kafka.clients import producer_config
from driftline.kafka.registry_follower import read_registry
from driftline.settings import Settings
from tests.integration.loop_helpers import (
    FAST_GROUP,
    T0,
    bootstrap_champion,
    models,
    produce_outcomes,
    publish_trigger,
    read_topic,
    trigger,
)
from tests.unit.core.examples import known


def live_models() -> ModelsConfig:
    cfg = replace(
        models()["churn"],
        online=OnlineConfig(factory="hoeffding_tree", checkpoint_every=100, checkpoint_min_ms=0),
        live=LiveConfig(min_pairs=50, probation_pairs=200),
    )
    return ModelsConfig({"churn": cfg})


def produce(s: Settings, n: int, start: int, champion: str, challenger: str | None) -> None:
    """``n`` outcomes of the concept ``amount > 5``: the champion predicts the opposite,
    the challenger (when given) the truth."""
    rng = random.Random(start)
    producer = Producer(producer_config(s, "test"))
    for i in range(start, start + n):
        amount = rng.random() * 10
        label, t = amount > 5, T0 + i * 1_000
        row: dict[str, Any] = {
            "event_id": f"e-{uuid.uuid4().hex[:8]}-{i}", "model": "churn", "version": champion,
            "event_time_ms": t, "predicted_at_ms": t + 5, "label_time_ms": t + 1_000,
            "label_delay_ms": 1_000, "prediction": not label, "scores": {}, "label": label,
            "features": {"amount": amount, "plan": rng.choice(["basic", "pro"])},
            "segment": {"region": "eu" if i % 2 else "us"},
            "challengers": [] if challenger is None else [
                {"version": challenger, "prediction": label, "scores": {}}],
        }  # fmt: skip
        producer.produce(s.topic("outcomes"), default_codec().encode("Outcome", row),
                         row["event_id"].encode(), timestamp=row["label_time_ms"])  # fmt: skip
    assert producer.flush(30) == 0


def pump_until(t: Trainer, done: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    assert t.live is not None
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s: {t.live.state()}"
        t.live.pump(0.2)


def learned(t: Trainer) -> int:
    assert t.live is not None
    learner = t.live.lives["churn"].learner
    return 0 if learner is None else learner.learned


def live_trainer(s: Settings, group_id: str, config: ModelsConfig | None = None) -> Trainer:
    """A trainer with its live loop (``live_models()`` unless told)."""
    cfg = config or live_models()
    return Trainer(s, cfg, group_id=group_id, consumer_overrides=FAST_GROUP, live=True)


def learn_outcomes(s: Settings, group_id: str, champion: str, n: int) -> None:
    """A live trainer, started at the end of the outcomes topic, learns ``n`` new outcomes
    of ``champion`` (no challenger) and is closed."""
    t = live_trainer(s, group_id)
    try:
        assert t.live is not None
        t.live.start()
        produce(s, n, 0, champion, None)
        pump_until(t, lambda: learned(t) == n, f"{n} rows learnt")
    finally:
        t.close()


def test_an_online_challenger_learns_each_outcome_once_and_wins_on_live_evidence(
    s: Settings, group_id: str
) -> None:
    old = bootstrap_champion(s)["version"]
    t = live_trainer(s, group_id)
    try:
        assert t.live is not None
        t.live.start()  # no learner yet: from the end of the outcomes topic
        produce(s, 350, 0, old, None)
        pump_until(t, lambda: learned(t) == 350, "350 rows learnt")
        pump_until(t, lambda: read_registry(s).challengers("churn") != [], "online challenger")
    finally:
        t.close()
    reg = read_registry(s)
    (entered,) = reg.challengers("churn")
    online = entered["version"]
    assert is_online(online) and known(reg.champion("churn"))["version"] == old
    checkpoint_rows = entered["lineage"]["rows"]
    assert 300 <= checkpoint_rows <= 350  # the newest checkpoint's, every 100 rows at least

    # a restarted trainer resumes the learner from its checkpoint and reads on from there:
    # the rows after the checkpoint are learnt once more into the state, never twice
    t = live_trainer(s, group_id)
    try:
        assert t.live is not None
        t.live.start()
        assert learned(t) == checkpoint_rows
        pump_until(t, lambda: learned(t) == 350, "the rows after the checkpoint")
        produce(s, 400, 350, old, online)  # paired: the champion wrong, the learner right
        pump_until(t, lambda: known(read_registry(s).champion("churn"))["version"] == online,
                   "live promotion")  # fmt: skip
        pump_until(t, lambda: learned(t) == 750, "every row learnt")
        assert learned(t) == 750
    finally:
        t.close()
    reg = read_registry(s)
    assert is_probation(reg.get("churn", old))  # the replaced champion, still in shadow
    promoted = [a for a in read_topic(s, "alerts", "Alert") if a["kind"] == "live_promotion"]
    assert [a["version"] for a in promoted] == [online]
    assert "better" in promoted[0]["message"] or promoted[0]["evidence"]


def test_a_backlog_of_outcomes_is_checkpointed_at_the_configured_cadence(
    s: Settings, group_id: str
) -> None:
    """350 outcomes already on the topic when the live loop reads (a loop catching up, a
    batch holds them all): the learner's state is still published every 100 rows, not once
    per batch read, so the served state trails the outcomes read by one cadence at most."""
    old = bootstrap_champion(s)["version"]
    learn_outcomes(s, group_id, old, 350)
    rows = [r["lineage"]["rows"] for r in read_topic(s, "registry", "ModelVersion")
            if r["stage"] == "checkpoint"]  # fmt: skip
    assert rows == [100, 200, 300]


def test_a_candidate_trained_before_the_live_loops_alarm_enters_as_a_challenger(
    s: Settings, group_id: str
) -> None:
    """No stale answers with the live loop: its detector on the champion alarms at a change
    after the trigger's window; the candidate, whose offline gate passed, enters as a
    challenger (live evidence after the alarm decides), not as champion."""
    old = bootstrap_champion(s)["version"]
    cfg = replace(models()["churn"], live=LiveConfig(min_pairs=50))
    t = live_trainer(s, group_id, ModelsConfig({"churn": cfg}))
    try:
        assert t.live is not None
        t.live.start()  # from the end of the outcomes topic
        produce_outcomes(s, 700, version=old)  # the champion right, then wrong from 700 on
        produce_outcomes(s, 500, seed=3, start=700, version=old, noise=0.95)
        watched = t.live.lives["churn"]
        pump_until(t, lambda: watched.latest_alarm_ms is not None, "concept-drift alarm")
        assert watched.latest_alarm_ms is not None and watched.latest_alarm_ms > T0 + 599_000
        publish_trigger(s, trigger(window_end_ms=T0 + 600_000))
        (outcome,) = t.run(max_triggers=1, idle_timeout_s=30)
    finally:
        t.close()
    assert outcome.status == "challenger", outcome
    reg = read_registry(s)
    record = known(reg.get("churn", known(outcome.version)))
    assert record["gate"]["passed"] and record["stage"] == "challenger"
    assert record["stage_reason"].startswith(
        f"trained on data up to {T0 + 599_000}, before the latest concept-drift alarm"
    )
    assert "live evidence decides" in record["stage_reason"]
    assert known(reg.champion("churn"))["version"] == old


def test_a_learner_resumed_behind_the_reader_skips_no_outcome(s: Settings, group_id: str) -> None:
    """A learner that comes back after the live loop started (here a models file that
    turns the online learner on again; after a restart, a registry read further than at
    start) resumes from its checkpoint, behind what the loop has read: the loop reads
    those outcomes again for it, so its state holds every outcome once."""
    old = bootstrap_champion(s)["version"]
    learn_outcomes(s, group_id, old, 350)
    checkpoint_rows = known(read_registry(s).challengers("churn")[0])["lineage"]["rows"]
    assert checkpoint_rows == 300
    plain = ModelsConfig({"churn": replace(live_models()["churn"], online=None)})
    t = live_trainer(s, group_id, plain)
    try:
        assert t.live is not None
        t.live.start()  # no learner: from the end of the outcomes topic
        produce(s, 100, 350, old, None)
        read, deadline = 0, time.monotonic() + 60
        while read < 100:  # the 100 new outcomes, with no learner to learn them
            assert time.monotonic() < deadline, f"{read} of 100 outcomes read"
            read += t.live.pump(0.2)
        t.models = live_models()  # the learner again: resumed at 300, the loop at 450
        pump_until(t, lambda: learned(t) == 450, "every row learnt once")
        for _ in range(5):
            t.live.pump(0.2)
        assert learned(t) == 450
    finally:
        t.close()
