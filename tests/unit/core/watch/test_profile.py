"""Reference profiles and the two-sample statistics, checked against scipy and by hand."""

from __future__ import annotations

import json
import math
import random

import pytest
from scipy import stats

from driftline.core.watch.profile import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    chi2_test,
    ks_test,
    label_spec,
    psi,
)


@pytest.mark.parametrize(
    ("expected", "actual", "eps", "by_hand"),
    [
        ([50, 50], [50, 50], 1e-4, 0.0),
        # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
        ([50, 50], [25, 75], 1e-4, 0.25 * math.log(2) + 0.25 * math.log(1.5)),
        # fractions, not counts: scale does not matter
        ([0.2, 0.3, 0.5], [20, 30, 50], 1e-4, 0.0),
        # empty live bin: its fraction is raised to eps
        ([1, 1], [0, 2], 1e-4, (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2)),
        ([1, 1], [0, 2], 1e-2, (1e-2 - 0.5) * math.log(1e-2 / 0.5) + 0.5 * math.log(2)),
    ],
)
def test_psi_by_hand(expected, actual, eps, by_hand):
    assert psi(expected, actual, eps) == pytest.approx(by_hand)


@pytest.mark.parametrize(("expected", "actual"), [([], []), ([0, 0], [1, 1]), ([1], [1, 2])])
def test_psi_rejects_empty_or_mismatched_histograms(expected, actual):
    with pytest.raises(ValueError):
        psi(expected, actual)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ([30, 70], [50, 50]),
        ([120, 80, 40, 10], [100, 100, 30, 20]),
        ([5, 0, 7, 9], [6, 0, 2, 14]),  # a bin empty in both is dropped
        ([1000, 1000, 1000], [1010, 990, 1000]),
    ],
)
def test_chi2_matches_scipy_chi2_contingency(expected, actual):
    table = [[e, a] for e, a in zip(expected, actual, strict=True) if e + a]
    ref = stats.chi2_contingency(list(zip(*table, strict=True)), correction=False)
    stat, p = chi2_test(expected, actual)
    assert (stat, p) == pytest.approx((ref.statistic, ref.pvalue))


def test_chi2_by_hand():
    # 2x2 table [[30, 70], [50, 50]]: n=200, column sums 80/120, expected 40/60 per row
    by_hand = 2 * ((30 - 40) ** 2 / 40 + (70 - 60) ** 2 / 60)
    stat, p = chi2_test([30, 70], [50, 50])
    assert stat == pytest.approx(by_hand)
    assert p == pytest.approx(stats.chi2.sf(by_hand, 1))


@pytest.mark.parametrize(("expected", "actual"), [([5], [7]), ([3, 0], [4, 0]), ([0, 0], [1, 2])])
def test_chi2_with_fewer_than_two_bins_is_no_evidence(expected, actual):
    assert chi2_test(expected, actual) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("a", "b", "d_by_hand"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.0),
        ([1.0, 2.0, 3.0, 4.0], [3.5, 4.5, 5.5, 6.5], 0.75),  # ECDFs differ most at 3
        ([0.0, 1.0], [10.0, 11.0], 1.0),
    ],
)
def test_ks_by_hand_and_against_scipy(a, b, d_by_hand):
    d, p = ks_test(a, b)
    assert d == pytest.approx(d_by_hand)
    assert p == pytest.approx(stats.ks_2samp(a, b).pvalue)


def test_numeric_profile_bins_sample_and_bad_values():
    values = [float(i) for i in range(1_000)] + [None, float("nan"), float("inf")]
    prof = NumericProfile.build(values, n_bins=4, sample_size=10)
    assert prof.edges == (249.75, 499.5, 749.25)
    assert prof.counts == (250, 250, 250, 250)
    assert (prof.missing, prof.nan, prof.inf, prof.n) == (1, 1, 1, 1_000)
    assert list(prof.sample) == sorted(prof.sample) and len(prof.sample) == 10
    assert prof.sample[0] == 50.0 and prof.sample[-1] == 950.0


@pytest.mark.parametrize(
    ("values", "edges", "counts"),
    [
        ([0] * 90 + [1] * 10, (0.0, 0.1), (90, 0, 10)),  # ties do not swallow neighbours
        ([3] * 50, (3.0,), (50, 0)),
        ([], (), (0,)),
    ],
)
def test_numeric_profile_of_discrete_values(values, edges, counts):
    prof = NumericProfile.build(values, n_bins=10)
    assert (prof.edges, prof.counts) == (edges, counts)


def test_categorical_profile_keeps_the_top_values():
    values = ["a"] * 5 + ["b"] * 3 + ["c", "d"] + [None, True]
    prof = CategoricalProfile.build(values, max_categories=3)
    assert prof.counts == {"a": 5, "b": 3, "c": 1, OTHER: 2}
    assert prof.missing == 1


def test_reference_profile_round_trips_compactly():
    rng = random.Random(0)
    rows = [
        {"x": rng.gauss(0, 1), "k": rng.choice("abc"), "flag": rng.random() < 0.3}
        for _ in range(10_000)
    ]
    spec = [
        {"name": "x", "type": "number"},
        {"name": "k", "type": "category"},
        {"name": "flag", "type": "boolean"},
    ]
    scores = [{"True": p, "False": 1 - p} for p in (rng.random() for _ in range(10_000))]
    prof = ReferenceProfile.build(
        rows,
        spec,
        [s["True"] > 0.5 for s in scores],
        scores,
        task="classification",
        score_class="True",
    )
    text = prof.to_json()
    assert ReferenceProfile.from_json(text) == prof
    assert len(text) < 16_000
    d = json.loads(text)
    assert set(d["features"]) == {"x", "k", "flag"}
    assert d["features"]["flag"]["counts"].keys() == {"True", "False"}
    assert isinstance(prof.prediction, CategoricalProfile)
    assert prof.score is not None and prof.score_class == "True"


@pytest.mark.parametrize(
    ("spec", "match"),
    [([{"name": "x", "type": "vector"}], "unknown type")],
)
def test_reference_profile_rejects_unknown_types(spec, match):
    with pytest.raises(ValueError, match=match):
        ReferenceProfile.build([{"x": 1}], spec)


def test_reference_profile_rejects_other_formats():
    with pytest.raises(ValueError, match="format"):
        ReferenceProfile.from_json('{"v": 99, "features": {}}')


Names = tuple[str, ...]
LABELLED: list[tuple[str, list[object], list[dict[str, float]] | None, str, Names, Names]] = [
    ("booleans", [True, False, True], [{"True": 0.6, "False": 0.4}], "classification",
     ("boolean",), ("False", "True")),
    ("integers, a class never predicted", [1, 2, 2], [{"1": 0.5, "2": 0.3, "3": 0.2}],
     "classification", ("integer",), ("1", "2", "3")),
    ("strings", ["ham", "spam"], None, "classification", ("string",), ("ham", "spam")),
    ("no prediction yet", [None, None], None, "classification", (), ()),
    ("a regressor", [1.5, 2.5], None, "regression", (), ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("predictions", "scores", "task", "types", "classes"),
    [c[1:] for c in LABELLED],
    ids=[c[0] for c in LABELLED],
)
def test_a_profile_records_what_its_classifier_predicts(
    predictions: list[object],
    scores: list[dict[str, float]] | None,
    task: str,
    types: tuple[str, ...],
    classes: tuple[str, ...],
) -> None:
    rows = [{"x": float(i)} for i in range(len(predictions))]
    profile = ReferenceProfile.build(
        rows, [{"name": "x", "type": "number"}], predictions, scores, task=task
    )
    assert (profile.label_types, profile.classes) == (types, classes)
    back = ReferenceProfile.from_json(profile.to_json())
    assert back == profile
    spec = label_spec({"model": "m", "version": "v1", "task": task,
                       "reference_profile": profile.to_json()})  # fmt: skip
    assert (spec.task, spec.types, spec.classes, spec.source) == (
        task, frozenset(types), classes, "m v1")  # fmt: skip


def _legacy(counts: dict[str, int]) -> str:
    """A profile written before label types were recorded."""
    prediction = {"type": "category", "counts": counts, "missing": 0}
    return json.dumps({"v": 1, "n": 3, "features": {}, "prediction": prediction})


@pytest.mark.parametrize(
    ("counts", "types"),
    [
        ({"True": 3, "False": 1}, {"boolean"}),
        ({"True": 3}, {"boolean"}),
        ({"True": 3, OTHER: 1}, {"boolean"}),
        ({"1": 3, "0": 1}, set()),  # the int 1 or the string "1": only the task is checked
        ({"yes": 1, "True": 2}, set()),
    ],
)
def test_label_spec_of_a_version_profiled_before_label_types(
    counts: dict[str, int], types: set[str]
) -> None:
    record = {"model": "m", "version": "v0", "task": "classification",
              "reference_profile": _legacy(counts)}  # fmt: skip
    assert label_spec(record).types == types
    assert label_spec({**record, "reference_profile": "not json"}).types == frozenset()
