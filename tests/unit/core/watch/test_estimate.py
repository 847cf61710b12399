"""CBPE: the estimate and its band against realized performance on synthetic streams."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from driftline.core.model.calibration import fit
from driftline.core.watch.estimate import PerformanceEstimator, estimates


def _event(
    t: int, p: float, y: bool | None = None, segment: dict[str, str] | None = None
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "event_time_ms": t,
        "prediction": p >= 0.5,
        "scores": {"True": p, "False": 1 - p},
        "segment": segment or {},
    }
    if y is not None:
        e["label"] = y
    return e


def _stream(est: PerformanceEstimator, n: int, draw, seed: int = 0, t0: int = 0) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p, q = draw(rng)  # the score the model gives, the true P(True)
        rows.append((t0 + i, p, rng.random() < q))
    for t, p, _ in rows:
        est.update(_event(t, p))
    for t, p, y in rows:
        est.observe_outcome(_event(t, p, y))


CALIBRATED = [
    ("uniform", lambda r: (p := r.random(), p)),
    ("confident", lambda r: (p := r.betavariate(5, 1), p)),
    ("unsure", lambda r: (p := 0.4 + 0.2 * r.random(), p)),
]


@pytest.mark.parametrize(("name", "draw"), CALIBRATED)
def test_calibrated_stream_lies_within_the_band(name: str, draw) -> None:
    est = PerformanceEstimator("m", "v", None, positive="True", window_size=500, keep_chunks=40)
    _stream(est, 20_000, draw, seed=[n for n, _ in CALIBRATED].index(name))  # not hash(): salted
    checks = est.checks(0, min_labelled=500)
    assert len(checks) == 40
    inside = sum(
        c["metrics"]["estimated_accuracy_lower"]
        <= c["metrics"]["realized_accuracy"]
        <= c["metrics"]["estimated_accuracy_upper"]
        for c in checks
    )
    assert inside >= 34  # a 95% band: 38 of 40 expected; 34 leaves room for chance
    assert checks[-1]["metrics"]["estimation_mae_accuracy"] < 0.03


def test_miscalibrated_scores_fixed_by_the_calibration_map() -> None:
    def draw(r: random.Random) -> tuple[float, float]:
        p = r.random()
        return p, 0.5 + (p - 0.5) * 0.4  # over-confident

    rng = random.Random(2)
    held = []
    for _ in range(3_000):
        p, q = draw(rng)
        held.append((p >= 0.5, {"True": p, "False": 1 - p}, rng.random() < q))
    raw = PerformanceEstimator("m", "v", None, window_size=1_000)
    cal = PerformanceEstimator("m", "v", fit(held), window_size=1_000)
    _stream(raw, 5_000, draw, seed=3)
    _stream(cal, 5_000, draw, seed=3)
    err_raw = raw.checks(0)[-1]["metrics"]["estimation_mae_accuracy"]
    err_cal = cal.checks(0)[-1]["metrics"]["estimation_mae_accuracy"]
    assert err_raw > 0.1 and err_cal < 0.03


@pytest.mark.parametrize(
    ("conf", "expected", "half"),
    [([1.0] * 10, 1.0, 0.0), ([0.5] * 100, 0.5, 1.96 * 5 / 100), ([0.9, 0.7], 0.8, None)],
)
def test_accuracy_and_band(conf: list[float], expected: float, half: float | None) -> None:
    e = estimates(np.array(conf))
    assert math.isclose(e["estimated_accuracy"], expected)
    if half is not None:
        assert math.isclose(
            e["estimated_accuracy_upper"] - expected, min(half, 1 - expected), abs_tol=1e-9
        )


def test_binary_f1_and_auc_match_realized_on_calibrated_labels() -> None:
    rng = np.random.default_rng(7)
    p = rng.beta(2, 2, 20_000)
    y = rng.random(20_000) < p
    e = estimates(p.copy(), p, p, p >= 0.5, draws=50)
    pred = p >= 0.5
    tp, fp, fn = (y & pred).sum(), (~y & pred).sum(), (y & ~pred).sum()
    assert abs(e["estimated_f1"] - 2 * tp / (2 * tp + fp + fn)) < 0.01
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    n1 = y.sum()
    auc = (ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(p) - n1))
    assert abs(e["estimated_roc_auc"] - auc) < 0.01
    assert e["estimated_roc_auc_lower"] < e["estimated_roc_auc"] < e["estimated_roc_auc_upper"]


def test_segments_are_bounded_and_estimated() -> None:
    est = PerformanceEstimator("m", "v", None, window_size=100, max_segment_values=2)
    for i in range(300):
        est.update(_event(i, 0.8, segment={"region": f"r{i % 4}"}))
    assert est.segments == ["all", "region=r0", "region=r1", "region=__other__"]
    snaps = {s["segment"]: s for s in est.snapshot(0)}
    assert snaps["region=__other__"]["count"] == 100
    assert math.isclose(snaps["all"]["metrics"]["estimated_accuracy"], 0.8)


def test_outcomes_outside_every_chunk_are_ignored_and_abstentions_skipped() -> None:
    est = PerformanceEstimator("m", "v", None, window_size=10)
    est.update({"event_time_ms": 5, "prediction": None, "scores": {}})
    assert est.snapshot(0) == []
    for i in range(10):
        est.update(_event(100 + i, 0.9))
    est.observe_outcome(_event(5, 0.9, True))
    assert est.checks(0, min_labelled=1) == []


@pytest.mark.parametrize("kw", [{"window_size": 0}, {"confidence": 1.0}, {"draws": 1}])
def test_bad_arguments(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PerformanceEstimator("m", "v", None, **kw)


@pytest.mark.parametrize("with_ids", [True, False])
def test_interleaved_partitions_put_each_label_in_its_predictions_chunk(with_ids: bool) -> None:
    """Three partitions read in turns: consecutive chunks' event-time spans overlap. By
    event_id each outcome finds the chunk its prediction went to (segment 'all'); without
    one the spans decide, and the labels of the overlap go to the newest chunk."""
    est = PerformanceEstimator("m", "v", None, window_size=100)
    order = [t for part in range(3) for t in range(part, 300, 3)]  # p0's, then p1's, p2's
    order = order[:50] + order[100:150] + order[50:100] + order[150:]  # read in turns
    events = {t: {**_event(t, 0.9 if t < 150 else 0.6), "event_id": f"e{t}"} for t in order}
    for t in order:
        e = events[t] if with_ids else {k: v for k, v in events[t].items() if k != "event_id"}
        est.update(e)
    for t in order:
        e = {**events[t], "label": t % 2 == 0}
        est.observe_outcome(e if with_ids else {k: v for k, v in e.items() if k != "event_id"})
    checks = [c for c in est.checks(0, min_labelled=1) if c["segment"] == "all"]
    labelled = [c["counts"]["labelled"] for c in checks]
    if with_ids:
        assert labelled == [100, 100, 100]
    else:
        assert labelled != [100, 100, 100]  # the overlap's labels went to the newest chunk
