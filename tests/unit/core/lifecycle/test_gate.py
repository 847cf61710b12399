"""The validation gate's rules, one parametrized table of cases."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from driftline.core.lifecycle.gate import CHECKS, evaluate, run_gate, time_split
from driftline.core.model.config import GateConfig
from driftline.core.model.estimators import ServedModel, artifact_record, serialize
from driftline.core.model.validation import Spec

KEY = b"gate-key"
NAN = float("nan")


@dataclass
class Stub:
    """A classifier wrong on ``err[seg]`` percent of a segment's rows; or broken."""

    err: dict[str, int] = field(default_factory=dict)
    output: float | None = None  # a fixed (e.g. NaN) probability
    raises: bool = False

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:
        if self.raises:
            raise RuntimeError("boom")
        if self.output is not None:
            return {True: self.output, False: self.output}
        right = x["i"] % 100 >= self.err.get(x["seg"], 0)
        label = x["y"] if right else not x["y"]
        return {label: 0.8, not label: 0.2}


@dataclass
class RegStub:
    """A regressor off by ``bias``."""

    bias: float

    def predict_one(self, x: dict[str, Any]) -> float:
        return float(x["t"]) + self.bias


@dataclass
class Const:
    """A classifier that always says ``value`` (the majority class of ``rows()`` is False)."""

    value: bool = False

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:
        return {self.value: 0.9, not self.value: 0.1}


@dataclass
class RegAlt:
    """A regressor off by ``even`` on even rows and ``odd`` on odd ones."""

    even: float
    odd: float

    def predict_one(self, x: dict[str, Any]) -> float:
        return float(x["t"]) + (self.even if x["i"] % 2 == 0 else self.odd)


def rows(n_a: int = 400, n_b: int = 400, regression: bool = False) -> list[dict[str, Any]]:
    out = []
    for i in range(n_a + n_b):
        seg = "a" if i < n_a else "b"
        y = (i * 7) % 3 == 0
        label: Any = float(i % 10) if regression else y
        out.append(
            {
                "features": {"i": i, "seg": seg, "y": y, "t": i % 10},
                "label": label,
                "segment": {"seg": seg},
            }
        )
    return out


def record(model: Any, version: str, task: str = "classification") -> dict[str, Any]:
    return {
        "model": "churn",
        "version": version,
        "task": task,
        "feature_spec": [],
        "reference_profile": "{}",
        "artifact": artifact_record(serialize(model), KEY),
    }


CFG = GateConfig(min_improvement=0.01, segment_tolerance=0.02, min_segment_samples=100)

# (case, candidate, champion, config, holdout, failed checks)
CASES: list[tuple[str, Any, Any, GateConfig, list[dict[str, Any]], set[str]]] = [
    ("no champion: beats the majority class", Stub({"a": 10}), None, CFG, rows(), set()),
    ("no champion: the majority class itself", Const(False), None, CFG, rows(), {"improvement"}),
    ("no champion: worse than the majority", Const(True), None, CFG, rows(), {"improvement"}),
    (
        "no champion, regression: beats the mean",
        RegStub(0.5),
        None,
        CFG,
        rows(regression=True),
        set(),
    ),
    (
        "no champion, regression: worse than the mean",
        RegStub(3.0),
        None,
        CFG,
        rows(regression=True),
        {"improvement"},
    ),
    ("clearly better", Stub({"a": 5, "b": 5}), Stub({"a": 10, "b": 10}), CFG, rows(), set()),
    ("equal", Stub({"a": 5}), Stub({"a": 5}), CFG, rows(), {"improvement"}),
    ("better by less than margin", Stub({"a": 5}), Stub({"a": 6}), CFG, rows(), {"improvement"}),
    (
        "zero margin: 4 rows of 800 won is no evidence",
        Stub({"a": 5}),
        Stub({"a": 6}),
        GateConfig(min_improvement=0.0, min_segment_samples=100),
        rows(),
        {"improvement"},
    ),
    (
        "the same by the point estimate (the rule before the bound)",
        Stub({"a": 5}),
        Stub({"a": 6}),
        GateConfig(min_improvement=0.0, min_segment_samples=100, improvement_alpha=None),
        rows(),
        set(),
    ),
    ("too few held-out rows", Stub({"a": 5}), Stub({"a": 50}), CFG, rows(40, 40), {"holdout"}),
    (
        "the trial: 35 held-out rows, mae 3.39 vs 7.56",
        RegStub(3.39),
        RegStub(7.56),
        CFG,
        rows(35, 0, regression=True),
        {"holdout"},
    ),
    (
        "regression: a gain within the noise",
        RegAlt(0.1, 2.0),
        RegStub(1.1),
        CFG,
        rows(regression=True),
        {"improvement"},
    ),
    (
        "the same by the point estimate",
        RegAlt(0.1, 2.0),
        RegStub(1.1),
        GateConfig(min_improvement=0.01, min_segment_samples=100, improvement_alpha=None),
        rows(regression=True),
        set(),
    ),
    (
        "better overall, worse on a big segment",
        Stub({"a": 0, "b": 10}),
        Stub({"a": 20, "b": 0}),
        CFG,
        rows(),
        {"segments"},
    ),
    (
        "worse on a small segment only",
        Stub({"a": 0, "b": 10}),
        Stub({"a": 20, "b": 0}),
        CFG,
        rows(400, 50),
        set(),
    ),
    (
        "segment worse within tolerance",
        Stub({"a": 0, "b": 1}),
        Stub({"a": 20, "b": 0}),
        CFG,
        rows(),
        set(),
    ),
    (
        "segment worse than tolerance, within sampling noise",
        Stub({"a": 0, "b": 5}),
        Stub({"a": 20, "b": 2}),
        CFG,
        rows(),
        set(),
    ),
    (
        "the same without the noise margin",
        Stub({"a": 0, "b": 5}),
        Stub({"a": 20, "b": 2}),
        GateConfig(min_improvement=0.01, min_segment_samples=100, segment_alpha=None),
        rows(),
        {"segments"},
    ),
    ("NaN output", Stub(output=NAN), None, CFG, rows(), {"finite", "improvement"}),
    ("inf output", Stub(output=float("inf")), None, CFG, rows(), {"finite", "improvement"}),
    ("raises", Stub(raises=True), None, CFG, rows(), {"smoke", "improvement"}),
    ("no held-out rows", Stub(), None, CFG, [], {"smoke", "holdout", "improvement"}),
    (
        "too large",
        Stub(),
        None,
        GateConfig(max_artifact_bytes=10, min_segment_samples=100),
        rows(),
        {"size"},
    ),
    ("regression: lower mae wins", RegStub(0.5), RegStub(1.0), CFG, rows(regression=True), set()),
    (
        "regression: higher mae loses",
        RegStub(1.0),
        RegStub(0.5),
        CFG,
        rows(regression=True),
        {"improvement", "segments"},
    ),
]


@pytest.mark.parametrize(
    ("candidate", "champion", "config", "holdout", "failed"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_gate_rules(candidate: Any, champion: Any, config: GateConfig, holdout, failed) -> None:
    task = "regression" if isinstance(candidate, RegStub | RegAlt) else "classification"
    champ = None if champion is None else record(champion, "v1", task)
    labels = [r["label"] for r in rows(regression=task == "regression")]  # trained on
    result = run_gate(
        record(candidate, "v2", task), champ, holdout, config, key=KEY, train_labels=labels
    )
    verdict = result.verdict
    assert set(verdict["checks"]) == set(CHECKS)
    assert {c for c, ok in verdict["checks"].items() if not ok} == failed
    assert verdict["passed"] is (not failed)
    assert verdict["summary"].startswith("passed" if not failed else "failed")
    for check in failed:
        assert check in verdict["summary"]
    if champion is not None and holdout:
        assert "vs champion v1" in verdict["summary"]
        assert verdict["champion_metrics"]["rows"] == len(holdout)
    elif holdout:
        assert "baseline" in verdict["summary"]
    if config.improvement_alpha is not None and holdout and not {"smoke", "finite"} & failed:
        assert "95% lower bound" in verdict["summary"]
        assert verdict["candidate_metrics"]["gain_bound"] <= verdict["candidate_metrics"]["gain"]


def test_numbers_in_the_verdict() -> None:
    result = run_gate(
        record(Stub({"a": 0, "b": 10}), "v2"),
        record(Stub({"a": 20, "b": 0}), "v1"),
        rows(),
        CFG,
        key=KEY,
    )
    v = result.verdict
    assert v["candidate_metrics"]["accuracy"] == pytest.approx(0.95)
    assert v["champion_metrics"]["accuracy"] == pytest.approx(0.90)
    assert v["candidate_metrics"]["accuracy@seg=b"] == pytest.approx(0.90)
    assert v["champion_metrics"]["accuracy@seg=b"] == pytest.approx(1.0)
    assert "gain +0.0500, 95% lower bound +0.0" in v["summary"]
    assert "exact McNemar, 120 of 800 rows differ" in v["summary"]
    assert v["candidate_metrics"]["gain"] == pytest.approx(0.05)
    assert 0.01 < v["candidate_metrics"]["gain_bound"] < 0.05
    assert result.improvement is not None and result.improvement.n == 800
    assert "worst segment seg=b worse by 0.1000" in v["summary"]
    assert result.candidate is not None
    assert result.candidate.segments["seg=a"]["count"] == 400


def test_slow_model_fails_latency() -> None:
    ticks = itertools.count(step=10_000_000)  # every clock read is 10 ms later
    result = run_gate(
        record(Stub(), "v2"), None, rows(50, 50), CFG, key=KEY, clock=lambda: next(ticks)
    )
    assert result.verdict["checks"]["latency"] is False
    assert result.verdict["candidate_metrics"]["predict_p95_us"] == 10_000


def test_tampered_candidate_fails_the_artifact_check() -> None:
    rec = record(Stub(), "v2")
    rec["artifact"]["signature"] = "00" * 32
    result = run_gate(rec, None, rows(), CFG, key=KEY)
    assert result.verdict["passed"] is False
    assert result.verdict["checks"]["artifact"] is False
    assert "bad_signature" in result.verdict["summary"]


def test_unloadable_champion_is_not_compared_the_baseline_is() -> None:
    champ = record(Stub(), "v1")
    champ["artifact"]["inline"] = b"tampered"
    result = run_gate(record(Stub({"a": 50}), "v2"), champ, rows(), CFG, key=KEY)
    assert result.verdict["passed"] is True
    assert result.champion_error is not None and "digest_mismatch" in result.champion_error
    assert "could not be loaded" in result.verdict["summary"]
    assert "vs majority-class baseline (False)" in result.verdict["summary"]
    worse = run_gate(record(Const(True), "v2"), champ, rows(), CFG, key=KEY)
    assert worse.verdict["checks"]["improvement"] is False


def test_a_float_label_as_a_classifier_cannot_beat_the_majority() -> None:
    """The trial's first champion: a float label taken as classes, accuracy 0.0 on the
    held-out rows, passed for want of a champion; the baseline scores 0.0 too."""
    holdout = [{"features": {"i": i, "seg": "a", "y": True, "t": 0}, "label": 0.5 + i,
                "segment": {}} for i in range(200)]  # fmt: skip
    result = run_gate(record(Const(True), "v1"), None, holdout, CFG, key=KEY,
                      train_labels=[0.25 * i for i in range(800)])  # fmt: skip
    assert result.verdict["checks"]["improvement"] is False
    assert result.verdict["candidate_metrics"]["accuracy"] == 0.0
    assert result.verdict["candidate_metrics"]["baseline_accuracy"] == 0.0


def test_evaluate_counts_abstentions_apart() -> None:
    class Abstains:
        def predict_proba_one(self, x: Any) -> dict[Any, float]:
            return {}

    model = ServedModel("m", "v", "classification", Abstains(), Spec(()), "{}")
    ev = evaluate(model, rows(10, 0))
    assert (ev.rows, ev.errors, ev.non_finite) == (10, 0, 0)
    assert ev.segments == {}


@pytest.mark.parametrize(
    ("n", "fraction", "sizes"),
    [(10, 0.2, (8, 2)), (10, 0.25, (7, 3)), (1, 0.5, (1, 0)), (2, 0.9, (1, 1)), (0, 0.2, (0, 0))],
)
def test_time_split_holds_out_the_newest(n: int, fraction: float, sizes: tuple[int, int]) -> None:
    train, hold = time_split(list(range(n)), fraction)
    assert (len(train), len(hold)) == sizes
    assert train + hold == list(range(n))
