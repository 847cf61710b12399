"""The report's per-feature drift panel: the ranking and series from feature_drift alert
records, the reference against current histogram data, and the panel on a written page."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from driftline.core.watch.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.demo import drift_panel, report
from driftline.demo.drift_panel import distribution, profile_of, ranking
from tests.unit.core.examples import model_version


def fd(feature: str, stat: float, threshold: float, features: str, **ev: Any) -> dict[str, Any]:
    return {"kind": "feature_drift", "evidence": {
        "feature": feature, "detector": "psi", "statistic": stat, "threshold": threshold,
        "features": features, **ev}}  # fmt: skip


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        pytest.param([], [], id="no alert"),
        pytest.param(
            [(5, {"kind": "concept_drift", "evidence": {"statistic": 0.4}})],
            [],
            id="other kinds ignored",
        ),
        pytest.param(
            [(1, fd("a", 0.3, 0.2, "a"))], [("a", [(1, 0.3, 0.2)], 1.5, None)], id="one alert"
        ),
        pytest.param(
            [
                (30, fd("a", 0.5, 0.2, "a,b")),
                (10, fd("a", 0.3, 0.2, "a")),
                (20, fd("b", 0.9, 0.2, "b,a")),
            ],
            [
                ("b", [(20, 0.9, 0.2)], 4.5, None),
                ("a", [(10, 0.3, 0.2), (30, 0.5, 0.2)], 2.5, None),
            ],
            id="series in time order, ranked by largest statistic over threshold",
        ),
        pytest.param(
            [(1, fd("a", 0.3, 0.2, "a,c")), (2, fd("b", 0.25, 0.2, "b"))],
            [
                ("a", [(1, 0.3, 0.2)], 1.5, None),
                ("b", [(2, 0.25, 0.2)], 1.25, None),
                ("c", [], 0.0, None),
            ],
            id="a feature only listed ranks after those with a statistic",
        ),
        pytest.param(
            [
                (1, fd("a", 0.9, 0.1, "a,b", **{"importance.a": 0.01, "importance.b": 0.2})),
                (2, fd("c", 0.3, 0.2, "c")),
            ],
            [
                ("b", [], 0.0, 0.2),
                ("a", [(1, 0.9, 0.1)], 9.0, 0.01),
                ("c", [(2, 0.3, 0.2)], 1.5, None),
            ],
            id="importance first when the alerts carry it",
        ),
        pytest.param(
            [
                (
                    1,
                    {
                        "kind": "feature_drift",
                        "evidence": {"feature": "a", "statistic": None, "features": "a"},
                    },
                )
            ],
            [("a", [], 0.0, None)],
            id="no statistic: listed without a point",
        ),
        pytest.param(
            [(1, fd("a", 0.4, 0.0, "a"))],
            [("a", [(1, 0.4, 0.0)], 0.4, None)],
            id="no threshold: the statistic itself",
        ),
    ],
)
def test_ranking_and_series(
    alerts: list[tuple[int, dict[str, Any]]],
    expected: list[tuple[str, list[tuple[int, float, float]], float, float | None]],
) -> None:
    got = [(d.feature, d.points, round(d.peak, 6), d.importance) for d in ranking(alerts)]
    assert got == expected


NUM = NumericProfile((1.0, 2.0, 3.0), (1, 1, 1, 1), ())
CAT = CategoricalProfile({"fr": 6, "de": 3, "__other__": 1})


@pytest.mark.parametrize(
    ("profile", "values", "labels", "reference", "current", "n", "missing"),
    [
        pytest.param(NUM, [0.0, 1.0, 1.5, 2.5, 9.0, 9.5, None, math.inf, "x"],
                     ["<= 1", "(1, 2]", "(2, 3]", "> 3"], [0.25] * 4,
                     [2 / 6, 1 / 6, 1 / 6, 2 / 6], 6, 3, id="numeric, right-closed bins"),
        pytest.param(NUM, [], ["<= 1", "(1, 2]", "(2, 3]", "> 3"], [0.25] * 4, [0.0] * 4, 0, 0,
                     id="numeric, no current value"),
        pytest.param(NumericProfile((), (4,), ()), [1.0, 2.0], ["all"], [1.0], [1.0], 2, 0,
                     id="numeric, a constant feature"),
        pytest.param(CAT, ["fr", "fr", "de", "us", None], ["fr", "de", "us", "__other__"],
                     [0.6, 0.3, 0.0, 0.1], [0.5, 0.25, 0.25, 0.0], 4, 1,
                     id="categorical, a category unseen in training"),
        pytest.param(CategoricalProfile({"a": 1}), [True, 1, "a"], ["a", "True", "1"],
                     [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], 3, 0,
                     id="categorical, values keyed as the profile keys them"),
    ],
)  # fmt: skip
def test_distribution(
    profile: NumericProfile | CategoricalProfile, values: list[Any], labels: list[str],
    reference: list[float], current: list[float], n: int, missing: int,
) -> None:  # fmt: skip
    d = distribution(profile, values)
    assert d.labels == labels
    assert d.reference == pytest.approx(reference) and d.current == pytest.approx(current)
    assert (d.n_current, d.missing) == (n, missing)


def test_unseen_categories_beyond_the_limit_go_under_other() -> None:
    values = [f"new{i}" for i in range(drift_panel.NEW_CATEGORIES + 3)] + ["fr"]
    d = distribution(CategoricalProfile({"fr": 1}), values)
    assert len(d.labels) == drift_panel.NEW_CATEGORIES + 2 and d.labels[-1] == "__other__"
    assert d.current[-1] == pytest.approx(3 / len(values)) and sum(d.current) == pytest.approx(1)


def test_the_panel_on_a_written_report(tmp_path: Path) -> None:
    rng = random.Random(7)
    train = [{"age": rng.gauss(40, 5), "plan": rng.choice(["basic", "pro"])} for _ in range(500)]
    spec = [{"name": "age", "type": "number"}, {"name": "plan", "type": "category"}]
    profile = ReferenceProfile.build(train, spec)
    version = model_version(stage="champion", reference_profile=profile.to_json())
    assert profile_of(version) == profile and profile_of(model_version()) is None
    now = [{"age": rng.gauss(60, 5), "plan": rng.choice(["pro", "family"])} for _ in range(300)]
    alerts = [(i * 100, fd("age", 0.2 + 0.1 * i, 0.2, "age,plan")) for i in range(1, 4)]
    alerts.append((350, fd("plan", 0.25, 0.2, "plan,age")))
    panel = drift_panel.section(tmp_path, alerts, profile_of(version), now, version="v4",
                                dates=False, axis="event")  # fmt: skip
    assert (tmp_path / "feature_drift.png").stat().st_size > 10_000
    png = tmp_path / "accuracy.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    page = report.write(tmp_path, {}, png, [version], [], drift=panel).read_text()
    assert "<h2>Feature drift</h2>" in page and 'alt="feature drift"' in page
    first = "<tr><td>1</td><td>age</td><td>psi</td><td>2.50</td><td>4</td><td>-</td></tr>"
    second = "<tr><td>2</td><td>plan</td><td>psi</td><td>1.25</td><td>4</td><td>-</td></tr>"
    assert first in page and second in page
    assert page.index("<h2>Feature drift</h2>") < page.index("<h2>Incidents</h2>")
    assert "training profile of v4 (reference) against the last 300 feature events" in page
    quiet = drift_panel.section(tmp_path, [], None, [], version="-", dates=True, axis="t")
    assert "No feature drifted" in quiet
