"""A model trained outside Driftline registered as a version: its records, its gate, and
a clear error for every way the model or the rows can be wrong."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import pytest
from river import linear_model, tree

from driftline.core.errors import ConfigError
from driftline.core.lifecycle.registered import register
from driftline.core.model.config import GateConfig, ModelConfig
from driftline.core.model.estimators import load_version
from driftline.core.model.foreign import Fitted
from driftline.core.wire.codec import default_codec

KEY = b"register-key"
FEATURES = (
    {"name": "age", "type": "integer", "min": 0, "max": 120},
    {"name": "plan", "type": "category", "categories": ["basic", "pro"]},
)
# Latency is not what these tests are about: a one-row pandas frame per prediction cost
# 1.7 ms on a loaded 2-core machine, a third of the gate's default max_predict_us
FAST = GateConfig(max_predict_us=1e7)
CFG = ModelConfig("churn", factory="logistic_regression", features=FEATURES, gate=FAST)


def rows(n: int = 400, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        age, plan = rng.randrange(18, 90), rng.choice(["basic", "pro"])
        out.append({"event_id": f"e{i}", "event_time_ms": 1_000 + i,
                    "features": {"age": age, "plan": plan}, "label": age > 50})  # fmt: skip
    return out


class AgeRule:
    """The scikit-learn interface (``predict``, ``predict_proba``, ``classes_``,
    ``feature_names_in_``) without scikit-learn: old when over ``cut``."""

    classes_ = (False, True)

    def __init__(self, cut: int = 50, frame: bool = True) -> None:
        self.cut = cut
        if frame:
            self.feature_names_in_ = ["plan", "age"]

    def _ages(self, X: Any) -> list[int]:
        if hasattr(X, "columns"):
            return [int(a) for a in X["age"]]
        return [int(row[0]) for row in X]  # the models file's order: age, plan

    def predict(self, X: Any) -> list[bool]:
        return [a > self.cut for a in self._ages(X)]

    def predict_proba(self, X: Any) -> list[list[float]]:
        return [[0.1, 0.9] if a > self.cut else [0.8, 0.2] for a in self._ages(X)]


class Constant:
    """A scikit-learn-like regressor or classifier that always says ``value``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def predict(self, X: Sequence[Any]) -> list[Any]:
        return [self.value for _ in range(len(X))]


class Raises:
    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        raise KeyError("income")


def trained_river() -> Any:
    model = tree.HoeffdingTreeClassifier(grace_period=50)
    for r in rows(2_000, seed=9):
        model.learn_one(r["features"], r["label"])
    return model


@pytest.mark.parametrize("frame", [True, False], ids=["pandas-frame", "list-rows"])
def test_a_scikit_learn_like_model_is_served_as_it_predicts(frame: bool) -> None:
    run, records = register(AgeRule(frame=frame), rows(), CFG, key=KEY, by="ana",
                            source="rule.pkl", now_ms=5_000, host="h", code="c")  # fmt: skip
    assert [r["stage"] for r in records] == ["candidate", "champion"]
    assert run.verdict["passed"] and records[0]["metrics"]["accuracy"] == 1.0
    record = default_codec().decode(default_codec().encode("ModelVersion", records[0])).value
    served = load_version(record, KEY)
    assert isinstance(served.model, Fitted)
    assert served.predict_one({"age": 70, "plan": "pro"}) == (True, {"False": 0.1, "True": 0.9})
    assert [f["name"] for f in record["feature_spec"]] == ["age", "plan"]
    assert record["factory"] == "logistic_regression"  # what a retrain builds
    assert record["lineage"]["rows"] == 0 and record["lineage"]["holdout_rows"] == 400
    assert set(record["lineage"]["step_ms"]) >= {"adapt", "validate", "serialize", "profile"}
    assert "rule.pkl" in record["stage_reason"] and "AgeRule" in record["stage_reason"]


def test_a_river_model_against_a_champion_goes_through_the_gate() -> None:
    """Better than the champion: champion, the old one archived; worse: rejected; asked
    for a candidate: the candidate only, whatever the gate said."""
    data = rows()
    _, first = register(AgeRule(cut=65), data, CFG, key=KEY, by="t", source="r.pkl", now_ms=1)
    champion = first[-1]
    assert champion["stage"] == "champion" and champion["metrics"]["accuracy"] < 0.9
    _, better = register(trained_river(), data, CFG, key=KEY, by="ana", source="tree.pkl",
                         now_ms=2, champion=champion, existing_versions=["v1-x"])  # fmt: skip
    assert [(r["version"][:2], r["stage"]) for r in better] == [
        ("v2", "candidate"), ("v1", "archived"), ("v2", "champion")]  # fmt: skip
    _, worse = register(Constant(False), data, CFG, key=KEY, by="ana", source="c.pkl",
                        now_ms=3, champion=better[-1])  # fmt: skip
    assert [r["stage"] for r in worse] == ["candidate", "rejected"]
    _, asked = register(Constant(False), data, CFG, key=KEY, by="ana", source="c.pkl",
                        now_ms=4, champion=better[-1], stage="candidate")  # fmt: skip
    assert [r["stage"] for r in asked] == ["candidate"]


def test_manual_promotion_leaves_a_passing_model_waiting_as_challenger() -> None:
    cfg = ModelConfig("churn", factory="logistic_regression", features=FEATURES,
                      promotion="manual", gate=FAST)  # fmt: skip
    _, records = register(AgeRule(), rows(), cfg, key=KEY, by="ana", source="r.pkl", now_ms=1)
    assert [r["stage"] for r in records] == ["candidate", "challenger"]


REGRESSOR = ModelConfig("price", task="regression", factory="linear_regression",
                        features=FEATURES, gate=FAST)  # fmt: skip


IDS = ["no-predict", "regressor-as-classifier", "raises", "other-classes", "nan",
       "not-a-number", "missing-feature", "out-of-range", "no-rows"]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "cfg", "data", "message"),
    [
        (object(), CFG, rows(), "neither river's predict_one nor scikit-learn's predict"),
        (linear_model.LinearRegression(), CFG, rows(), "no predict_proba_one"),
        (Raises(), CFG, rows(), r"cannot score row 1 \(age=.*\): KeyError: 'income'"),
        (Constant("yes"), CFG, rows(), r"classes \['yes'\] are none of the labels"),
        (Constant(math.nan), REGRESSOR, rows(), "cannot score row 1 .*: it predicted nan"),
        (Constant("big"), REGRESSOR, rows(), "a regressor must predict a number, not 'big'"),
        (
            AgeRule(),
            CFG,
            [{**r, "features": {"age": r["features"]["age"]}} for r in rows()],
            "400 of 400 rows do not match .* row 1: missing_feature: feature 'plan'",
        ),
        (
            AgeRule(),
            CFG,
            [{**r, "features": {**r["features"], "age": 300}} for r in rows()],
            r"row 1: out_of_range: feature 'age' = 300: .*\(and 395 more rows\)",
        ),
        (AgeRule(), CFG, [], "no labelled rows"),
    ],
    ids=IDS,
)
def test_a_model_or_rows_that_cannot_serve_are_refused_with_the_reason(
    model: Any, cfg: ModelConfig, data: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        register(model, data, cfg, key=KEY, by="ana", source="m.pkl", now_ms=1)


def test_only_none_or_candidate_as_the_asked_stage() -> None:
    with pytest.raises(ConfigError, match="stage must be"):
        register(AgeRule(), rows(), CFG, key=KEY, by="a", source="m", now_ms=1, stage="champion")
