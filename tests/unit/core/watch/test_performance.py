"""PerformanceTracker: river's metrics per segment over a count and a time window."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import fastavro
import pytest
from river import metrics

from driftline.core.watch.performance import PerformanceTracker, label_key

SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"
SNAPSHOT_SCHEMA = fastavro.parse_schema(
    json.loads((SCHEMAS / "metric_snapshot.v1.avsc").read_text())
)


def outcome(
    t: int,
    prediction: Any,
    label: Any,
    scores: dict[str, float] | None = None,
    segment: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": f"e{t}",
        "model": "m",
        "version": "v1",
        "event_time_ms": t,
        "predicted_at_ms": t,
        "label_time_ms": t + 5,
        "label_delay_ms": 5,
        "prediction": prediction,
        "scores": scores or {},
        "label": label,
        "features": {},
        "segment": segment or {},
    }


def binary_stream(n: int, seed: int = 0, step_ms: int = 10) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = rng.random()
        y = rng.random() < p
        out.append(
            outcome(
                i * step_ms,
                p >= 0.5,
                y,
                {"True": p, "False": 1 - p},
                {"region": rng.choice(["eu", "us"])},
            )
        )
    return out


def by(snaps: list[dict[str, Any]], segment: str, window_prefix: str) -> dict[str, Any]:
    [snap] = [s for s in snaps if s["segment"] == segment and s["window"].startswith(window_prefix)]
    return snap


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "ranking"}, "task"),
        ({"task": "regression", "positive": True}, "positive"),
        ({"task": "classification", "window_size": 0}, "window_size"),
        ({"task": "classification", "period_ms": 0}, "period_ms"),
        ({"task": "classification", "n_buckets": 0}, "n_buckets"),
        ({"task": "classification", "period_ms": 1000, "n_buckets": 3}, "multiple"),
        ({"task": "classification", "n_thresholds": 1}, "n_thresholds"),
        ({"task": "classification", "max_segment_values": 0}, "max_segment_values"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PerformanceTracker("m", "v1", **kwargs)


def test_count_window_matches_river_on_the_last_n_binary():
    stream = binary_stream(3_000)
    tracker = PerformanceTracker("m", "v1", "classification", positive=True, window_size=500)
    for o in stream:
        tracker.update(o)
    last = stream[-500:]
    expected = {
        name: metric()
        for name, metric in [
            ("accuracy", metrics.Accuracy),
            ("precision", metrics.Precision),
            ("recall", metrics.Recall),
            ("f1", metrics.F1),
            ("log_loss", metrics.LogLoss),
            ("roc_auc", metrics.RollingROCAUC),
        ]
    }
    for o in last:
        p = o["scores"]["True"]
        for name, m in expected.items():
            m.update(o["label"], p if name in ("log_loss", "roc_auc") else o["prediction"])
    snap = by(tracker.snapshot(now_ms=0), "all", "count:")
    assert snap["count"] == 500
    assert snap["window_start_ms"] == last[0]["event_time_ms"]
    assert snap["window_end_ms"] == last[-1]["event_time_ms"]
    for name, m in expected.items():
        assert snap["metrics"][name] == pytest.approx(m.get(), abs=1e-12), name


def test_time_window_keeps_the_last_period_and_merges_buckets():
    stream = binary_stream(3_000, step_ms=100)  # 300 s of events
    tracker = PerformanceTracker(
        "m", "v1", "classification", positive=True, period_ms=60_000, n_buckets=6, n_thresholds=30
    )
    for o in stream:
        tracker.update(o)
    newest = stream[-1]["event_time_ms"]
    oldest_live = (newest // 10_000 - 5) * 10_000
    live = [o for o in stream if o["event_time_ms"] >= oldest_live]
    acc, auc, loss = metrics.Accuracy(), metrics.ROCAUC(n_thresholds=30), metrics.LogLoss()
    for o in live:
        acc.update(o["label"], o["prediction"])
        auc.update(o["label"], o["scores"]["True"])
        loss.update(o["label"], o["scores"]["True"])
    snap = by(tracker.snapshot(now_ms=0), "all", "time:")
    assert snap["window"] == "time:60s"
    assert snap["count"] == len(live)
    assert snap["window_start_ms"] == oldest_live
    assert snap["metrics"]["accuracy"] == pytest.approx(acc.get())
    assert snap["metrics"]["roc_auc"] == pytest.approx(auc.get())  # histogram == river
    assert snap["metrics"]["log_loss"] == pytest.approx(loss.get())


def test_late_outcomes_stay_out_of_the_time_window():
    tracker = PerformanceTracker("m", "v1", "classification", period_ms=10_000, n_buckets=10)
    tracker.update(outcome(100_000, "a", "a"))
    tracker.update(outcome(50_000, "a", "b"))  # older than the window: late
    snap = by(tracker.snapshot(now_ms=0), "all", "time:")
    assert (snap["count"], snap["counts"]["late"], snap["metrics"]["accuracy"]) == (1, 1, 1.0)
    assert by(tracker.snapshot(now_ms=0), "all", "count:")["count"] == 2
    # late counts, like the rest of the snapshot, belong to the window: once the buckets
    # that were newest when they came are gone, so are they
    tracker.update(outcome(200_000, "a", "a"))
    snap = by(tracker.snapshot(now_ms=0), "all", "time:")
    assert (snap["count"], snap["counts"]["late"]) == (1, 0)


@pytest.mark.parametrize(
    ("labels", "preds"),
    [
        (["a", "b", "c", "a", "b"], ["a", "b", "a", "a", "c"]),
        ([1, 2, 2, 3], [1, 2, 3, 3]),
    ],
)
def test_multiclass_macro_metrics_and_cross_entropy(labels, preds):
    tracker = PerformanceTracker("m", "v1", "classification", window_size=100)
    expected = [
        metrics.Accuracy(),
        metrics.MacroPrecision(),
        metrics.MacroRecall(),
        metrics.MacroF1(),
        metrics.CrossEntropy(),
    ]
    for i, (y, yp) in enumerate(zip(labels, preds, strict=True)):
        scores = {label_key(yp): 0.7, "zzz": 0.3}
        tracker.update(outcome(i, yp, y, scores))
        for m in expected[:4]:
            m.update(label_key(y), label_key(yp))
        expected[4].update(label_key(y), {**scores, label_key(y): scores.get(label_key(y), 0.0)})
    got = by(tracker.snapshot(now_ms=0), "all", "count:")["metrics"]
    names = ["accuracy", "precision", "recall", "f1", "log_loss"]
    assert [got[n] for n in names] == pytest.approx([m.get() for m in expected])
    assert "roc_auc" not in got


def test_regression_metrics_match_river():
    rng = random.Random(3)
    pairs = [(rng.gauss(0, 2), rng.gauss(0, 2)) for _ in range(400)]
    tracker = PerformanceTracker("m", "v1", "regression", window_size=250, period_ms=1_000_000)
    for i, (y, yp) in enumerate(pairs):
        tracker.update(outcome(i, yp, y))
    for prefix, window in [("count:", pairs[-250:]), ("time:", pairs)]:
        expected = [metrics.MAE(), metrics.RMSE(), metrics.R2()]
        for y, yp in window:
            for m in expected:
                m.update(y, yp)
        got = by(tracker.snapshot(now_ms=0), "all", prefix)["metrics"]
        assert [got["mae"], got["rmse"], got["r2"]] == pytest.approx([m.get() for m in expected])


@pytest.mark.parametrize(
    ("prediction", "scores", "counter"),
    [
        (float("nan"), None, "nan"),
        (float("inf"), None, "inf"),
        (None, None, "abstained"),
    ],
)
def test_non_finite_and_abstained_predictions_are_counted_not_scored(prediction, scores, counter):
    tracker = PerformanceTracker("m", "v1", "regression")
    tracker.update(outcome(0, 1.0, 1.5))
    tracker.update(outcome(1, prediction, 1.0, scores))
    for snap in tracker.snapshot(now_ms=0):
        assert snap["counts"][counter] == 1
        assert snap["counts"]["ok"] == 1 and snap["count"] == 2
        assert snap["metrics"]["mae"] == pytest.approx(0.5)


def test_nan_class_score_is_counted_and_kept_out():
    tracker = PerformanceTracker("m", "v1", "classification", positive=True)
    tracker.update(outcome(0, True, True, {"True": float("nan"), "False": 0.5}))
    tracker.update(outcome(1, True, False, {"True": 0.8, "False": 0.2}))
    snap = by(tracker.snapshot(now_ms=0), "all", "count:")
    assert snap["counts"]["nan"] == 1 and snap["metrics"]["accuracy"] == 0.0


def test_segments_are_capped_per_attribute_with_an_other_bucket():
    tracker = PerformanceTracker(
        "m", "v1", "classification", max_segment_values=2, max_segment_attributes=1
    )
    for i, region in enumerate(["eu", "us", "apac", "latam", "eu"]):
        tracker.update(outcome(i, "a", "a", segment={"region": region, "channel": "web"}))
    assert tracker.segments == ["all", "region=eu", "region=us", "region=__other__"]
    counts = {
        s["segment"]: s["count"]
        for s in tracker.snapshot(now_ms=0)
        if s["window"].startswith("count:")
    }
    assert counts == {"all": 5, "region=eu": 2, "region=us": 1, "region=__other__": 2}
    assert tracker.ignored_attributes == 5


def test_snapshots_carry_baselines_and_fit_the_schema():
    tracker = PerformanceTracker("m", "v1", "classification", positive=True)
    for o in binary_stream(300):
        tracker.update(o)
    snaps = tracker.snapshot(
        now_ms=123, baseline={"accuracy": 0.9}, segment_baselines={"region=eu": {"accuracy": 0.8}}
    )
    assert len(snaps) == 6
    for snap in snaps:
        assert fastavro.validation.validate(snap, SNAPSHOT_SCHEMA)
        assert snap["emitted_at_ms"] == 123
        want = 0.8 if snap["segment"] == "region=eu" else 0.9
        assert snap["baseline"] == {"accuracy": want}
        assert all(math.isfinite(v) for v in snap["metrics"].values())


def test_roc_auc_is_left_out_with_one_class():
    tracker = PerformanceTracker("m", "v1", "classification", positive=True)
    for i in range(10):
        tracker.update(outcome(i, True, True, {"True": 0.9, "False": 0.1}))
    for snap in tracker.snapshot(now_ms=0):
        assert "roc_auc" not in snap["metrics"] and snap["metrics"]["accuracy"] == 1.0
