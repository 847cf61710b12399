"""The scorer's ``on_batch`` report of one committed batch (streams/scorer.py): the events
it scored per (model, champion version) and its dead letters that name a model, which
the monitor's skew rate counts together. An event scored by the champion and its
challengers is one event: the challengers' predictions ride in the champion's
Prediction and on predictions.shadow, and are not counted again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Message

from driftline.core.model.scoring import Scoring
from driftline.core.model.validation import Spec
from driftline.core.wire.codec import default_codec
from driftline.kafka.txn import Transactions
from driftline.settings import Settings
from driftline.streams.scorer import ScorerLoop
from tests.unit.core.examples import T0, feature_event
from tests.unit.streams.fakemsg import Msg

CODEC = default_codec()
SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="t.")
SPEC = Spec.from_dicts([{"name": "x", "type": "number"}])


@dataclass(frozen=True)
class Served:
    name: str
    version: str
    spec: Spec = SPEC

    def predict_one(self, features: Any) -> tuple[Any, dict[str, float]]:
        return "a", {"a": 0.75, "b": 0.25}


@dataclass
class Txn:
    """A transaction that commits at once and keeps what was produced."""

    produced: list[str] = field(default_factory=list)

    def run(self, msgs: list[Any], fn: Callable[[], None]) -> bool:
        fn()
        return True

    def produce(self, topic: str, value: bytes | None, key: bytes | None,
                headers: list[tuple[str, bytes]], **kw: Any) -> None:  # fmt: skip
        self.produced.append(topic)


def test_an_event_counts_once_under_the_champion_whatever_its_challengers() -> None:
    champion = Served("churn", "v1")
    challengers = (Served("churn", "v2"), Served("churn", "v3"))
    served = {"churn": (champion, challengers), "solo": (Served("solo", "v7"), ())}
    scoring = Scoring(CODEC, lambda m: served[m], served.__contains__)
    loop = ScorerLoop(SETTINGS, scoring, CODEC, group_id="g")
    try:
        txn = Txn()
        loop.txn = cast(Transactions, txn)  # a fake with the calls the loop makes
        batches: list[tuple[int, Counter[tuple[str, str]], list[dict[str, Any]]]] = []
        loop.on_batch = lambda now, scored, dead: batches.append((now, Counter(scored), dead))
        events = [
            *(feature_event(event_id=f"c{i}", features={"x": 1.0 * i}) for i in range(3)),
            feature_event(event_id="s0", model="solo", features={"x": 2.0}),
            feature_event(event_id="c9", features={"y": 1.0}),  # refused: missing x
        ]
        msgs = [Msg("t.features", 0, i, e["event_id"].encode(),
                    CODEC.encode("io.driftline.FeatureEvent", e), [], T0)
                for i, e in enumerate(events)]  # fmt: skip
        loop.process(cast(list[Message], msgs))  # fakes of what the loop reads
    finally:
        loop.consumer.close()
    ((_, scored, dead),) = batches
    assert scored == Counter({("churn", "v1"): 3, ("solo", "v7"): 1})
    assert [(d["model"], d["reason"]) for d in dead] == [("churn", "missing_feature")]
    assert Counter(txn.produced) == Counter(
        {"t.predictions": 4, "t.predictions.shadow": 6, "t.deadletter": 1}
    )
