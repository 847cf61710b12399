"""The loop closed through the real broker: the worker scores with the champion, the
trainer answers a trigger with a better version, and the worker serves that version
(seen in the predictions' version field) within seconds."""

from __future__ import annotations

import random
import time

from driftline.consumers.trainer import Trainer
from driftline.core.model.config import ModelsConfig
from tests.integration import harness
from tests.integration.churn import example, send
from tests.integration.loop_helpers import FAST_GROUP, publish_trigger, trigger


def flipped(rng: random.Random, start: int, n: int) -> list[dict]:
    """Events whose concept flipped: every label inverted (the champion is now wrong)."""
    return [{**e, "label": not e["label"]} for e in (example(rng, start + i) for i in range(n))]


def test_worker_serves_the_retrained_champion(pipeline, group_id: str) -> None:
    s, old, proc = pipeline
    rng = random.Random(21)
    send(s, flipped(rng, 0, 600))
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= 600, timeout=90)
    assert len(outcomes) >= 600, proc.tail()
    assert {o["version"] for o in outcomes} == {old}

    publish_trigger(s, trigger(last_n=600))
    trainer = Trainer(
        s, ModelsConfig.load(s.models_file), group_id=group_id, consumer_overrides=FAST_GROUP
    )
    try:
        answers = []
        deadline = time.monotonic() + 60  # the monitor may publish triggers of its own too
        while not any(a.status == "champion" for a in answers) and time.monotonic() < deadline:
            answers += trainer.run(max_triggers=1, idle_timeout_s=10)
    finally:
        trainer.close()
    new = next(a.version for a in answers if a.status == "champion")
    promoted = time.monotonic()

    served_after = None
    probe = 0
    while served_after is None and time.monotonic() - promoted < 30:
        batch = flipped(rng, 10_000 + 20 * probe, 20)
        probe += 1
        send(s, batch, labels=False)
        ids = {e["event_id"] for e in batch}
        preds = harness.collect(
            s, "predictions", lambda got, ids=ids: ids <= {p["event_id"] for p in got}
        )
        versions = {p["version"] for p in preds if p["event_id"] in ids}
        if versions == {new}:
            served_after = time.monotonic() - promoted
    assert served_after is not None, proc.tail()
    assert served_after < 15
    last = [p for p in preds if p["event_id"] in ids]
    accuracy = sum(
        p["prediction"] == e["label"] for p in last for e in batch if e["event_id"] == p["event_id"]
    ) / len(batch)
    assert accuracy > 0.8  # the new version learned the flipped concept
