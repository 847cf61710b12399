"""The demo's and the loop bench's stream kinds (driftline/demo/synthetic.py): each names
its model once, yields the segments and label types it declares, changes concept where
it says, and the demo's models file serves it with its own factory."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

import driftline.demo.synthetic as synthetic
from driftline.core.model.config import ModelsConfig
from driftline.demo.run import MODEL, models_toml
from driftline.demo.synthetic import KINDS, change_points, drifting_stream, kind

N, EVERY = 1_200, 400


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_yields_its_declared_rows(name: str) -> None:
    k = KINDS[name]
    rows = list(drifting_stream(name, N, EVERY, seed=3))
    assert [r.index for r in rows] == list(range(N))
    assert len({frozenset(r.features) for r in rows}) == 1  # one feature set throughout
    assert all(isinstance(v, float) for r in rows for v in r.features.values())
    labels = {type(r.label) for r in rows}
    assert labels == ({bool} if k.binary else {int})
    assert len({r.label for r in rows}) >= 2
    segments = {tuple(sorted(r.segment)) for r in rows}
    assert segments == ({("elevel",)} if k.segment is not synthetic._none else {()})
    # the same seed gives the same stream
    again = list(itertools.islice(drifting_stream(name, N, EVERY, seed=3), 50))
    assert [(r.features, r.label) for r in again] == [(r.features, r.label) for r in rows[:50]]


@pytest.mark.parametrize(
    ("name", "points"),
    [("agrawal", [400, 800]), ("sea", [400, 800]), ("led", [400, 800]),
     ("gradual", [400, 800]), ("hyperplane", []), ("rbf", []), ("stationary", [])],
)  # fmt: skip
def test_change_points_by_kind(name: str, points: list[int]) -> None:
    assert change_points(name, N, EVERY) == points


@pytest.mark.parametrize("name", ["agrawal", "sea", "led"])
def test_abrupt_kinds_switch_concept_at_the_change_points(name: str) -> None:
    rows = list(drifting_stream(name, N, EVERY, seed=1))
    concepts = [f"{name}-{c}" for c in KINDS[name].concepts]
    assert [r.concept for r in rows[::EVERY]] == concepts[: N // EVERY]
    assert all(rows[i].concept == rows[i - 1].concept for i in range(1, N) if i % EVERY)


def test_a_gradual_change_mixes_the_two_concepts_around_its_point() -> None:
    """Agrawal function 0 then 2 (which label by different rules): far from the change
    point the labels follow one rule, near it both."""
    rows = list(drifting_stream("gradual", 20_000, 10_000, seed=1))

    def rule0(r: synthetic.Row) -> bool:  # Agrawal function 0: age < 40 or age >= 60
        return bool(r.features["age"] < 40 or r.features["age"] >= 60)

    def share0(lo: int, hi: int) -> float:
        return float(sum(rule0(r) == r.label for r in rows[lo:hi]) / (hi - lo))

    assert share0(2_000, 6_000) == 1.0  # all concept 0 (the sigmoid tail starts ~2,500 before)
    assert share0(12_000, 15_000) < 0.8  # concept 2 (agrees with rule 0 by chance only)
    mid = share0(9_700, 10_300)
    assert share0(12_000, 15_000) < mid < 1.0
    assert Counter(r.concept for r in rows) == {"gradual-0": 10_000, "gradual-2": 10_000}


def test_incremental_kinds_have_one_generator_and_ignore_drift_every() -> None:
    a = list(drifting_stream("hyperplane", 500, 100, seed=2))
    b = list(drifting_stream("hyperplane", 500, 1_000, seed=2))
    assert [r.label for r in a] == [r.label for r in b]
    assert {r.concept for r in a} == {"hyperplane-0"}


@pytest.mark.parametrize("name", list(KINDS))
def test_the_demo_models_file_serves_each_kind_with_its_factory(name: str) -> None:
    config = ModelsConfig.from_toml(models_toml(name, 500, 8_000))[MODEL]
    assert config.factory == KINDS[name].factory
    assert config.params["epochs"] == 5


@pytest.mark.parametrize(("bad", "error"), [("nope", "stream must be one of")])
def test_unknown_kinds_are_refused(bad: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        kind(bad)
    with pytest.raises(ValueError, match=error):
        next(drifting_stream(bad, 10, 5))
