"""FeatureDriftMonitor: per-event bin counts, tests on demand, effect size gate."""

from __future__ import annotations

import random
from bisect import bisect_left
from typing import Any

import pytest
from scipy import stats

from driftline.core.watch.feature_drift import PREDICTION, SCORE, FeatureDriftMonitor, drift_metrics
from driftline.core.watch.profile import ReferenceProfile, psi

SPEC = [{"name": "x", "type": "number"}, {"name": "k", "type": "category"}]


def rows(
    n: int,
    seed: int,
    shift: float = 0.0,
    cats: str = "abc",
    weights: tuple[float, ...] = (0.5, 0.3, 0.2),
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"x": rng.gauss(shift, 1), "k": rng.choices(cats, weights)[0]} for _ in range(n)]


def scores(n: int, seed: int, a: float = 2.0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"True": p, "False": 1 - p} for p in (rng.betavariate(a, 2) for _ in range(n))]


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    ss = scores(20_000, 1)
    return ReferenceProfile.build(
        rows(20_000, 0),
        SPEC,
        [s["True"] > 0.5 for s in ss],
        ss,
        task="classification",
        score_class="True",
    )


def feed(
    monitor: FeatureDriftMonitor,
    live: list[dict[str, Any]],
    live_scores: list[dict[str, float]] | None = None,
) -> None:
    for i, r in enumerate(live):
        s = live_scores[i] if live_scores else None
        monitor.update(r, None if s is None else s["True"] > 0.5, s)


def flagged(monitor: FeatureDriftMonitor) -> dict[str, str | None]:
    return {r.feature: r.test for r in monitor.evaluate() if r.drifted}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_chunks": 0}, "n_chunks"),
        ({"window_size": 2, "n_chunks": 4}, "window_size"),
        ({"reservoir_size": 2, "n_chunks": 4}, "reservoir_size"),
        ({"psi_threshold": 0}, "psi_threshold"),
        ({"ks_threshold": 1.5}, "ks_threshold"),
        ({"alpha": 1.0}, "alpha"),
        ({"eps": 0}, "eps"),
        ({"min_count": 0}, "min_count"),
    ],
)
def test_bad_arguments_raise(profile, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureDriftMonitor("m", "v1", profile, **kwargs)


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_a_stationary_sample_does_not_flag(profile, seed):
    monitor = FeatureDriftMonitor("m", "v1", profile, window_size=5_000)
    feed(monitor, rows(5_000, seed), scores(5_000, seed + 100))
    assert flagged(monitor) == {}


@pytest.mark.parametrize(
    ("live_kwargs", "score_a", "want"),
    [
        ({"shift": 1.0}, 2.0, {"x": "psi"}),
        ({"shift": 0.4}, 2.0, {"x": "ks"}),  # PSI under 0.2 but D over 0.1
        ({"weights": (0.2, 0.3, 0.5)}, 2.0, {"k": "psi"}),
        ({"cats": "abz"}, 2.0, {"k": "psi"}),  # an unseen category lands in __other__
        ({}, 5.0, {PREDICTION: "psi", SCORE: "psi"}),  # prediction drift, no labels
    ],
)
def test_a_shifted_sample_flags(profile, live_kwargs, score_a, want):
    monitor = FeatureDriftMonitor("m", "v1", profile, window_size=5_000)
    feed(monitor, rows(5_000, 5, **live_kwargs), scores(5_000, 6, a=score_a))
    assert flagged(monitor) == want


def test_large_n_tiny_shift_is_significant_but_not_flagged(profile):
    monitor = FeatureDriftMonitor("m", "v1", profile, window_size=200_000, n_chunks=1)
    feed(monitor, rows(200_000, 7, shift=0.05, weights=(0.48, 0.31, 0.21)))
    results = {r.feature: r for r in monitor.evaluate()}
    for name in ("x", "k"):
        result = results[name]
        assert result.chi2_p is not None and result.psi is not None
        assert result.chi2_p < 0.01  # a test alone would flag it
        assert result.psi < 0.2 and not result.drifted
    assert results["x"].ks is not None
    assert results["x"].ks < 0.1


def test_statistics_match_a_direct_computation(profile):
    live = rows(400, 8, shift=0.3)  # fewer than the reservoir: it holds every value
    monitor = FeatureDriftMonitor(
        "m", "v1", profile, window_size=1_000, n_chunks=2, reservoir_size=1_000, min_count=100
    )
    feed(monitor, live)
    got = {r.feature: r for r in monitor.evaluate()}
    xp = profile.features["x"]
    bins = [0] * len(xp.counts)
    for r in live:
        bins[bisect_left(xp.edges, r["x"])] += 1
    assert got["x"].psi == pytest.approx(psi(xp.counts, bins))
    ks = stats.ks_2samp(xp.sample, [r["x"] for r in live])
    assert (got["x"].ks, got["x"].ks_p) == pytest.approx((ks.statistic, ks.pvalue))
    kp = profile.features["k"]
    live_k = [sum(r["k"] == c for r in live) for c in kp.counts]
    table = stats.chi2_contingency([list(kp.counts.values()), live_k], correction=False)
    assert got["k"].chi2_p == pytest.approx(table.pvalue)


def test_below_min_count_nothing_is_tested(profile):
    monitor = FeatureDriftMonitor("m", "v1", profile, min_count=500)
    feed(monitor, rows(100, 9, shift=3.0))
    results = monitor.evaluate()
    assert all(r.psi is None and not r.drifted for r in results)
    assert {r.feature: r.n for r in results}["x"] == 100


def test_the_window_slides_by_chunks(profile):
    monitor = FeatureDriftMonitor("m", "v1", profile, window_size=4_000, n_chunks=4)
    feed(monitor, rows(4_000, 10, shift=2.0))
    assert "x" in flagged(monitor)
    feed(monitor, rows(4_000, 11))
    assert monitor.count == 4_000 and flagged(monitor) == {}


def test_missing_nan_and_inf_rates(profile):
    monitor = FeatureDriftMonitor("m", "v1", profile, min_count=1)
    for value in [1.0, None, float("nan"), float("inf"), "oops"]:
        monitor.update({"x": value, "k": "a"})
    x = {r.feature: r for r in monitor.evaluate()}["x"]
    assert (x.n, x.missing_rate, x.nan_rate, x.inf_rate) == (1, 0.4, 0.2, 0.2)


def test_events_and_snapshot_metrics(profile):
    monitor = FeatureDriftMonitor("m", "v1", profile, window_size=5_000)
    feed(monitor, rows(5_000, 12, shift=1.0), scores(5_000, 13, a=5.0))
    results = monitor.evaluate()
    events = {e.feature: e for e in monitor.events(results, now_ms=42)}
    assert set(events) == {"x", PREDICTION, SCORE}
    assert events["x"].kind == "feature_drift" and events[SCORE].kind == "prediction_drift"
    assert events["x"].detected_at_ms == 42 and events["x"].threshold == 0.2
    assert events["x"].statistic is not None and events["x"].statistic >= 0.2
    m = drift_metrics(results)
    assert {"psi.x", "ks.x", "psi.k", f"psi.{PREDICTION}", f"ks.{SCORE}"} <= set(m)
    assert all(isinstance(v, float) for v in m.values())


def test_discrete_scores_do_not_flag_for_their_rounding() -> None:
    """A tree's scores take a few values; the profile keeps them rounded to 6 digits, so the
    live ones must be compared rounded alike (raw, KS saw D of 0.5 on the same stream)."""
    levels = [0.7176781234, 0.9012345678, 1.0]

    def tree_scores(n: int, seed: int) -> list[dict[str, float]]:
        rng = random.Random(seed)
        return [{"True": p, "False": 1 - p} for p in (rng.choice(levels) for _ in range(n))]

    ss = tree_scores(5_000, 1)
    prof = ReferenceProfile.build(
        rows(5_000, 0), SPEC, [True] * 5_000, ss, task="classification", score_class="True"
    )
    monitor = FeatureDriftMonitor("m", "v1", prof, window_size=5_000)
    feed(monitor, rows(5_000, 7), tree_scores(5_000, 8))
    assert flagged(monitor) == {}


@pytest.mark.parametrize(
    ("exclude", "tested"),
    [
        ((), {"x", "k", PREDICTION, SCORE}),
        (("x",), {"k", PREDICTION, SCORE}),
        (("x", PREDICTION, SCORE), {"k"}),
        (("nothing-of-that-name",), {"x", "k", PREDICTION, SCORE}),
    ],
)
def test_excluded_features_are_never_tested(
    profile: ReferenceProfile, exclude: tuple[str, ...], tested: set[str]
) -> None:
    """``[models.NAME.drift] exclude``: a shifted excluded feature is neither counted nor
    tested, so it raises no drift event; the others are tested as before."""
    monitor = FeatureDriftMonitor("churn", "v1", profile, window_size=2_000, exclude=exclude)
    live_scores = scores(2_000, 3, a=5.0)
    feed(monitor, rows(2_000, 2, shift=2.0), live_scores)
    results = monitor.evaluate()
    assert {r.feature for r in results} == tested
    events = {e.feature for e in monitor.events(results, now_ms=0)}
    assert events == tested & {"x", PREDICTION, SCORE}  # k did not move
    assert set(drift_metrics(results)) == {f"{s}.{f}" for f in tested for s in ("psi", "ks")
                                           if s == "psi" or f in ("x", SCORE)}  # fmt: skip


def _state(monitor: FeatureDriftMonitor) -> list[tuple[Any, ...]]:
    """Everything a monitor counted, chunk by chunk."""
    return [(c.n, c.bins, c.bad, c.cats, c.rows) for c in monitor._chunks]


ODD_ROWS: dict[str, list[tuple[dict[str, Any], Any, dict[str, float] | None]]] = {
    "missing values": [
        (
            {"x": None if i % 7 == 0 else i / 10, "k": None if i % 5 == 0 else "a"},
            True,
            {"True": 0.7, "False": 0.3},
        )
        for i in range(300)
    ],
    "nan and inf": [
        ({"x": [float("nan"), float("inf"), -float("inf"), 0.5][i % 4], "k": "b"}, False, None)
        for i in range(300)
    ],
    "ints and bools": [({"x": [1, True, -3, 0][i % 4], "k": "c"}, True, None) for i in range(300)],
    "a string among numbers": [
        ({"x": "1.5" if i == 100 else float(i), "k": "a"}, True, None) for i in range(300)
    ],
    "an int beyond int64": [
        ({"x": 2**70 if i == 3 else i, "k": "a"}, True, None) for i in range(300)
    ],
    "non-string and unknown categories": [
        ({"x": 0.0, "k": [True, 1, "z", 2.5, "a"][i % 5]}, True, None) for i in range(300)
    ],
    "all missing": [({}, None, None) for _ in range(300)],
}


@pytest.mark.parametrize("batch", [1, 7, 64, 250, 1_000])
@pytest.mark.parametrize("case", ODD_ROWS, ids=list(ODD_ROWS))
def test_update_many_counts_what_update_counts(
    profile: ReferenceProfile, case: str, batch: int
) -> None:
    """Batched or one by one: the same bins, bad counts, categories and reservoir rows
    (the same random draws), across chunk boundaries (chunks of 250 here)."""
    data = ODD_ROWS[case] * 4
    one = FeatureDriftMonitor("m", "v", profile, window_size=1_000, reservoir_size=40)
    many = FeatureDriftMonitor("m", "v", profile, window_size=1_000, reservoir_size=40)
    for r in data:
        one.update(*r)
    for i in range(0, len(data), batch):
        many.update_many(data[i : i + batch])
    assert _state(many) == _state(one)
    assert many.evaluate() == one.evaluate()


def test_update_many_on_a_live_stream(profile: ReferenceProfile) -> None:
    live, ss = rows(5_000, 3, shift=0.3), scores(5_000, 4)
    one = FeatureDriftMonitor("m", "v", profile, window_size=2_000)
    many = FeatureDriftMonitor("m", "v", profile, window_size=2_000)
    feed(one, live, ss)
    batch = [(r, s["True"] > 0.5, s) for r, s in zip(live, ss, strict=True)]
    for i in range(0, len(batch), 700):
        many.update_many(batch[i : i + 700])
    assert _state(many) == _state(one)
    assert flagged(many) == flagged(one)
