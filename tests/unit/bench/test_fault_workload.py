"""The fault harness's workload and verification, without a broker: two models score every
churn event under the same event_id, and the verification counts per kind and model."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.faults.verify import kinds, order
from bench.faults.workload import (
    KINDS,
    event_id,
    first_label_time,
    kind,
    make_truth,
    steps,
)
from driftline.core.wire.codec import default_codec

CODEC = default_codec()


def test_twin_scores_every_churn_event_under_the_same_id_and_gets_its_own_labels() -> None:
    t = make_truth(3_000, seed=1)
    exp = t.expected()
    assert set(exp) == set(KINDS)
    churn = {event_id(i) for i, m in enumerate(t.model) if m == "churn"}
    for what in ("prediction", "outcome"):
        assert set(exp[kind(what, "twin")]) == set(exp[kind(what, "churn")]) == churn
    assert exp[kind("duplicate_label", "twin")] and exp[kind("duplicate_label", "churn")]
    assert exp[kind("duplicate_label", "twin")] != exp[kind("duplicate_label", "churn")]
    features: Counter[tuple[str, bytes]] = Counter()
    labels: dict[tuple[str, str], list[int]] = {}
    for batch in steps(t, seed=1):
        for topic, key, value in batch:
            rec = CODEC.decode(value).value
            if topic == "features":
                features[(rec["model"], key)] += 1
            else:
                labels.setdefault((rec["model"], rec["event_id"]), []).append(rec["label_time_ms"])
    assert {k for k, n in features.items() if k[0] == "twin"} == {
        ("twin", e.encode()) for e in churn}  # fmt: skip
    assert set(features.values()) == {1}
    for e in list(churn)[:50]:
        i = int(e[1:])
        for model in ("churn", "twin"):
            times = labels[(model, e)]
            assert times[0] == first_label_time(i, model)
            assert len(times) == 1 + exp[kind("duplicate_label", model)].get(e, 0)
    assert first_label_time(5, "twin") != first_label_time(5, "churn")


def rec(**kw: Any) -> dict[str, Any]:
    return {"event_time_ms": 1_700_000_000_000, **kw}


def test_results_are_counted_per_model_and_an_outcome_with_the_other_models_label_is_caught(
) -> None:  # fmt: skip
    key = event_id(7).encode()
    topics = {
        "predictions": [(0, 0, key, rec(model="churn")), (0, 1, key, rec(model="twin"))],
        "outcomes": [
            (0, 0, key, rec(model="churn", label_time_ms=first_label_time(7, "churn"))),
            (0, 1, key, rec(model="twin", label_time_ms=first_label_time(7, "churn"))),
        ],
        "deadletter": [(0, 0, key, {"stage": "join", "reason": "duplicate_label",
                                    "model": "twin", "source_topic": "l", "source_offset": 3})],
    }  # fmt: skip
    got = kinds(topics)
    assert {k: dict(v) for k, v in got.items()} == {
        "prediction churn": {"e0000007": 1}, "prediction twin": {"e0000007": 1},
        "outcome churn": {"e0000007": 1}, "outcome twin": {"e0000007": 1},
        "duplicate_label twin": {"e0000007": 1},
    }  # fmt: skip
    (bad,) = order(topics)
    assert bad.startswith("outcome twin e0000007") and "not its model's first" in bad
