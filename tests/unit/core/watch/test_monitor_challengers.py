"""ModelMonitor and the challengers an outcome carries (issue 23, item 6): each challenger
version gets the champion's rolling metrics (same windows, segments and metric names) on
the same labelled events, compared with its own validation metrics, and never raises the
champion's alerts or retrain triggers."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from driftline.core.model.config import ModelConfig
from driftline.core.watch.monitor import KEEP_VERSIONS, Emit, ModelMonitor
from tests.unit.core.examples import T0
from tests.unit.core.watch.test_monitor import (
    STEP_MS,
    champion,
    check_encodes,
    const,
    drive,
    jump,
    of,
    outcomes,
    train_champion,
)

CHAMPION = "v1-aaaaaaa"
WINDOW = 200
Error = Callable[[int], float]


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    return train_champion()


def shadowed(
    rows: list[dict[str, Any]], errors: dict[str, Error | None], seed: int = 11
) -> list[dict[str, Any]]:
    """``rows`` with each challenger's prediction of every event: wrong with probability
    ``errors[version](i)``, an abstention (null prediction) where it is None."""
    rng = random.Random(seed)
    out = []
    for i, row in enumerate(rows):
        shadows: list[dict[str, Any]] = []
        for version, error in errors.items():
            if error is None:
                shadows.append({"version": version, "prediction": None, "scores": {}})
                continue
            yp = row["label"] != (rng.random() < error(i))
            p = 0.7 if yp else 0.3
            shadows.append({"version": version, "prediction": yp,
                            "scores": {"True": p, "False": 1 - p}})  # fmt: skip
        out.append({**row, "challengers": shadows})
    return out


def challenger(trained: dict[str, Any], version: str, accuracy: float) -> dict[str, Any]:
    return champion(trained, version, stage="challenger", metrics={"accuracy": accuracy},
                    segment_metrics={"region=eu": {"accuracy": accuracy - 0.01}})  # fmt: skip


def accuracy_of(rows: list[dict[str, Any]], version: str) -> float | None:
    """Accuracy of ``version`` over the count window, computed apart from the monitor
    (abstentions left out, as the tracker leaves them out)."""
    hits = []
    for row in rows[-WINDOW:]:
        yp = (
            row["prediction"]
            if version == CHAMPION
            else next(c["prediction"] for c in row["challengers"] if c["version"] == version)
        )
        if yp is not None:
            hits.append(yp == row["label"])
    return sum(hits) / len(hits) if hits else None


def fire(emits: list[Emit]) -> list[tuple[str, ...]]:
    """What a run raised: alerts (kind, version, segment) and triggers (reasons)."""
    alerts = [(a["kind"], a["version"] or "-", a["segment"] or "-") for a in of(emits, "alerts")]
    return alerts + [tuple(t["reasons"]) for t in of(emits, "retrain")]


CASES: list[tuple[str, Error, dict[str, Error | None]]] = [
    # name, champion's error, challengers' errors
    ("a better challenger", const(0.2), {"v2-good": const(0.0)}),
    ("a worse challenger: no alert of it", const(0.1), {"v2-bad": const(1.0)}),
    ("a challenger that degrades while the champion holds", const(0.1),
     {"v2-drifts": jump(500, 0.05, 0.9)}),
    ("the champion degrades, not the challengers", jump(500, 0.05, 0.6),
     {"v2-a": const(0.05), "v3-b": const(0.5), "v4-c": const(1.0)}),
    ("an abstaining challenger beside another", const(0.1),
     {"v2-mute": None, "v3-ok": const(0.1)}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "error", "shadows"), CASES, ids=[c[0] for c in CASES])
def test_each_challenger_has_the_champions_metrics_and_fires_nothing(
    trained: dict[str, Any], name: str, error: Error, shadows: dict[str, Error | None]
) -> None:
    plain = outcomes(1_500, CHAMPION, error, seed=4)
    rows = shadowed(plain, shadows)
    runs: dict[str, list[Emit]] = {}
    monitors: dict[str, ModelMonitor] = {}
    for run, feed in (("with", rows), ("without", plain)):
        mon = monitors[run] = ModelMonitor(ModelConfig("churn", retrain={"cooldown_ms": 0}),
                                           window_size=WINDOW)  # fmt: skip
        mon.on_version(champion(trained, CHAMPION), T0)
        for k, version in enumerate(shadows):
            mon.on_version(challenger(trained, version, 0.5 + k / 10), T0)
        runs[run] = drive(mon, feed)
    emits = runs["with"]
    check_encodes(emits)
    # the challengers change nothing the champion raises, and raise nothing themselves
    fired = fire(emits)
    assert fired == fire(runs["without"]), name
    assert {f[1] for f in fired if len(f) == 3} <= {CHAMPION}  # the champion's alone
    if "champion degrades" in name:  # incidents: a steady error raises nothing at all
        assert fired, name
    assert monitors["with"].detector is not None and monitors["with"].detector.n == len(rows)
    assert set(monitors["with"].trackers) == {CHAMPION, *shadows}

    last = {
        (s["version"], s["segment"], s["window"]): s
        for s in of(emits, "metrics")
        if s["emitted_at_ms"] == rows[-1]["event_time_ms"] + 500 and s["version"] != "*"
    }
    mine = {(seg, w): s for (v, seg, w), s in last.items() if v == CHAMPION}
    assert ("all", f"count:{WINDOW}") in mine
    for k, version in enumerate(shadows):
        theirs = {(seg, w): s for (v, seg, w), s in last.items() if v == version}
        assert set(theirs) == set(mine), version  # same segments and windows
        expected = accuracy_of(rows, version)
        for key, snap in theirs.items():
            assert snap["count"] == mine[key]["count"]  # the same labelled events
            ok = {k for k, x in snap["metrics"].items() if x == x}  # not NaN
            if expected is not None:
                assert ok == {k for k in mine[key]["metrics"] if not k.startswith(("psi", "ks"))}
            validation = 0.5 + k / 10
            seg = key[0]
            assert snap["baseline"] == {"accuracy": validation - 0.01 if seg == "region=eu"
                                        else validation}  # fmt: skip
        count = theirs[("all", f"count:{WINDOW}")]
        if expected is None:
            assert count["counts"]["abstained"] == WINDOW and "accuracy" not in count["metrics"]
        else:
            assert count["metrics"]["accuracy"] == pytest.approx(expected)
    assert mine[("all", f"count:{WINDOW}")]["metrics"]["accuracy"] == pytest.approx(
        accuracy_of(rows, CHAMPION)
    )


@pytest.mark.parametrize(
    ("challengers", "tracked"),
    [
        (None, {CHAMPION}),  # an outcome written before challengers were joined
        ([], {CHAMPION}),
        ([{"version": CHAMPION, "prediction": False, "scores": {}}], {CHAMPION}),  # itself
        ([{"version": "v2", "prediction": True, "scores": {}}], {CHAMPION, "v2"}),
    ],
)
def test_only_the_challengers_an_outcome_carries_are_tracked(
    trained: dict[str, Any], challengers: list[dict[str, Any]] | None, tracked: set[str]
) -> None:
    mon = ModelMonitor(ModelConfig("churn"))
    mon.on_version(champion(trained, CHAMPION), T0)
    rows = [{**o, "challengers": challengers} for o in outcomes(20, CHAMPION, const(0.1))]
    drive(mon, rows)
    assert set(mon.trackers) == tracked
    counts = {v: t.snapshot(T0 + 10**6)[0]["count"] for v, t in mon.trackers.items()}
    assert counts == dict.fromkeys(tracked, 20)


def test_challengers_are_kept_beside_the_last_versions(trained: dict[str, Any]) -> None:
    """Versions in a challenger slot keep their trackers however many other versions
    are still scored; those others are capped as before (KEEP_VERSIONS with the
    champion) and the oldest goes first."""
    mon = ModelMonitor(ModelConfig("churn"))
    shadows = ["c1", "c2", "c3"]
    mon.on_version(champion(trained, CHAMPION), T0)
    for version in shadows:
        mon.on_version(challenger(trained, version, 0.8), T0)
    drive(mon, shadowed(outcomes(10, CHAMPION, const(0.1)), dict.fromkeys(shadows, const(0.1))))
    olds = ["v0-1", "v0-2", "v0-3", "v0-4"]
    for k, version in enumerate(olds):  # outcomes of earlier champions still in flight
        drive(mon, outcomes(5, version, const(0.1), start=10 + 5 * k))
    kept = [CHAMPION, *shadows, *olds[-(KEEP_VERSIONS - 1) :]]
    assert sorted(mon.trackers) == sorted(kept)
    mon.on_version({**challenger(trained, "c1", 0.8), "stage": "archived"}, T0 + STEP_MS)
    drive(mon, outcomes(5, "v0-5", const(0.1), start=40))  # c1 left its slot: it may go
    assert "c1" not in mon.trackers and {CHAMPION, "c2", "c3", "v0-5"} <= set(mon.trackers)
