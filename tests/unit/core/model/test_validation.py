"""Feature-spec validation: one table of (spec, features, expected reason) cases."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.core.errors import ConfigError, ValidationError
from driftline.core.model.validation import FeatureSpec, Spec

NUM = {"name": "x", "type": "number"}
NUM_BOUNDED = {"name": "x", "type": "number", "min": 0.0, "max": 10.0}
INT = {"name": "n", "type": "integer"}
INT_BOUNDED = {"name": "n", "type": "integer", "min": 1.0, "max": 5.0}
BOOL = {"name": "b", "type": "boolean"}
CAT = {"name": "c", "type": "category", "categories": ["a", "b"]}
CAT_ANY = {"name": "c", "type": "category"}
OPT = {"name": "o", "type": "number", "required": False}


class FloatSub(float):
    pass


CASES: list[tuple[str, list[dict[str, Any]], dict[str, object], str | None]] = [
    ("number accepts float", [NUM], {"x": 1.5}, None),
    ("number accepts int", [NUM], {"x": 3}, None),
    ("number accepts float subclass", [NUM], {"x": FloatSub(2.0)}, None),
    ("number rejects bool", [NUM], {"x": True}, "type_mismatch"),
    ("number rejects str", [NUM], {"x": "1.5"}, "type_mismatch"),
    ("number rejects NaN", [NUM], {"x": math.nan}, "non_finite"),
    ("number rejects +inf", [NUM], {"x": math.inf}, "non_finite"),
    ("number rejects -inf", [NUM], {"x": -math.inf}, "non_finite"),
    ("number rejects inf subclass", [NUM], {"x": FloatSub("inf")}, "non_finite"),
    ("number min inclusive", [NUM_BOUNDED], {"x": 0.0}, None),
    ("number max inclusive", [NUM_BOUNDED], {"x": 10}, None),
    ("number below min", [NUM_BOUNDED], {"x": -0.1}, "out_of_range"),
    ("number above max", [NUM_BOUNDED], {"x": 11}, "out_of_range"),
    ("non_finite before range", [NUM_BOUNDED], {"x": math.nan}, "non_finite"),
    ("integer accepts int", [INT], {"n": -7}, None),
    ("integer accepts huge int", [INT], {"n": 10**30}, None),
    ("integer rejects integral float", [INT], {"n": 3.0}, "type_mismatch"),
    ("integer rejects bool", [INT], {"n": False}, "type_mismatch"),
    ("integer rejects str", [INT], {"n": "3"}, "type_mismatch"),
    ("integer in range", [INT_BOUNDED], {"n": 5}, None),
    ("integer out of range", [INT_BOUNDED], {"n": 0}, "out_of_range"),
    ("boolean accepts bool", [BOOL], {"b": False}, None),
    ("boolean rejects int", [BOOL], {"b": 1}, "type_mismatch"),
    ("boolean rejects str", [BOOL], {"b": "true"}, "type_mismatch"),
    ("category accepts known", [CAT], {"c": "b"}, None),
    ("category rejects unknown", [CAT], {"c": "z"}, "unseen_category"),
    ("category rejects int", [CAT], {"c": 1}, "type_mismatch"),
    ("category without list accepts any", [CAT_ANY], {"c": "anything"}, None),
    ("required absent", [NUM], {}, "missing_feature"),
    ("required null", [NUM], {"x": None}, "missing_feature"),
    ("optional absent", [OPT], {}, None),
    ("optional null", [OPT], {"o": None}, None),
    ("optional present is checked", [OPT], {"o": "x"}, "type_mismatch"),
    ("extra name", [NUM], {"x": 1.0, "y": 2.0}, "unexpected_feature"),
    ("extra name with optional null", [OPT], {"o": None, "y": 1}, "unexpected_feature"),
    ("extra name with optional absent", [OPT, NUM], {"x": 1, "y": 1}, "unexpected_feature"),
    ("first problem in spec order", [NUM, INT], {"x": "s", "n": None}, "type_mismatch"),
    ("spec features before extras", [NUM, INT], {"z": 1, "x": 1.0}, "missing_feature"),
    ("all fine", [NUM, INT, BOOL, CAT, OPT], {"x": 1.0, "n": 1, "b": True, "c": "a"}, None),
]


@pytest.mark.parametrize(("case", "specs", "features", "reason"), CASES, ids=[c[0] for c in CASES])
def test_check(
    case: str, specs: list[dict[str, Any]], features: dict[str, object], reason: str | None
) -> None:
    spec = Spec.from_dicts(specs)
    if reason is None:
        spec.check(features)
        assert spec.check_all(features) == []
    else:
        with pytest.raises(ValidationError) as info:
            spec.check(features)
        assert info.value.reason == reason
        assert spec.check_all(features)[0].reason == reason


def test_allow_extra() -> None:
    Spec.from_dicts([NUM], allow_extra=True).check({"x": 1.0, "y": "anything"})


def test_check_all_lists_every_problem() -> None:
    spec = Spec.from_dicts([NUM_BOUNDED, INT, BOOL, CAT])
    found = spec.check_all({"x": 99.0, "b": 1, "c": "q", "y": 0, "zz": 0})
    assert [e.reason for e in found] == [
        "out_of_range",
        "missing_feature",
        "type_mismatch",
        "unseen_category",
        "unexpected_feature",
        "unexpected_feature",
    ]


@pytest.mark.parametrize(
    ("features", "fragments"),
    [
        (
            {"x": "s" * 500},
            [
                "feature 'x'",
                "expected number (an Avro double or long), got a string; write a double or a long",
                "...",
            ],
        ),
        ({"x": 42.0}, ["feature 'x' = 42.0", "within [0.0, 10.0]"]),
        ({}, ["feature 'x' is required"]),
        ({"x": 1.0, "y" * 200: 1}, ["not in the spec", "..."]),
    ],
)
def test_detail_names_feature_value_and_rule(
    features: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ValidationError) as info:
        Spec.from_dicts([NUM_BOUNDED]).check(features)
    for fragment in fragments:
        assert fragment in info.value.detail
    assert len(info.value.detail) < 250


# What Apache avro's Python writer sends (ints and bools of the feature union as
# doubles) is taken as the int or bool it was; anything else is refused with a detail
# that says what arrived, what was expected and how to write it.
CONFORM: list[tuple[str, list[dict[str, Any]], dict[str, object], object]] = [
    ("as given when valid", [INT, BOOL], {"n": 3, "b": True}, {"n": 3, "b": True}),
    ("whole double to integer", [INT], {"n": 3.0}, {"n": 3}),
    ("negative zero to integer", [INT], {"n": -0.0}, {"n": 0}),
    ("2**53 to integer", [INT], {"n": 2.0**53}, {"n": 2**53}),
    ("1.0 to True", [BOOL], {"b": 1.0}, {"b": True}),
    ("0.0 to False", [BOOL], {"b": 0.0}, {"b": False}),
    ("numbers stay as sent", [NUM, INT], {"x": 2.0, "n": 2.0}, {"x": 2.0, "n": 2}),
    ("the rest is kept", [INT, CAT, OPT], {"n": 1.0, "c": "a", "o": None},
     {"n": 1, "c": "a", "o": None}),
    ("bounds after the int", [INT_BOUNDED], {"n": 6.0}, ("out_of_range", "n' = 6:")),
    ("half is no integer", [INT], {"n": 2.5},
     ("type_mismatch", "expected integer (an Avro long), got a double that is not whole; "
                       "write a long (a Python int, a java.lang.Long)")),
    ("beyond 2**53 is not exact", [INT], {"n": 2.0**60}, ("type_mismatch", "not whole")),
    ("NaN is no integer", [INT], {"n": math.nan}, ("type_mismatch", "not whole")),
    ("2.0 is no boolean", [BOOL], {"b": 2.0},
     ("type_mismatch", "expected boolean (an Avro boolean), got a double other than 0.0 or "
                       "1.0; write a boolean (a Python bool, a java.lang.Boolean)")),
    ("a long is no boolean", [BOOL], {"b": 1}, ("type_mismatch", "got a long")),
    ("a double is no category", [CAT], {"c": 1.0},
     ("type_mismatch", "expected category (an Avro string), got a double; write a string")),
    ("the first mismatch is reported", [INT, BOOL], {"n": 1.5, "b": 1.0},
     ("type_mismatch", "feature 'n' = 1.5")),
    ("another mismatch is still one", [INT, CAT], {"n": 1.0, "c": 2},
     ("type_mismatch", "feature 'c' = 2")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "specs", "features", "want"), CONFORM, ids=[c[0] for c in CONFORM]
)
def test_conform(
    case: str, specs: list[dict[str, Any]], features: dict[str, object], want: object
) -> None:
    spec = Spec.from_dicts(specs)
    if isinstance(want, dict):
        got = spec.conform(features)
        assert got == want and [type(v) for v in got.values()] == [type(v) for v in want.values()]
        if got == features and all(type(features[k]) is type(v) for k, v in got.items()):
            assert got is features  # nothing to undo: the same mapping, no copy
        return
    reason, fragment = cast(tuple[str, str], want)
    with pytest.raises(ValidationError) as info:
        spec.conform(features)
    assert info.value.reason == reason
    assert fragment in info.value.detail
    assert len(info.value.detail) < 250


BAD_SPECS: list[tuple[str, list[dict[str, Any]]]] = [
    ("unknown type", [{"name": "x", "type": "float"}]),
    ("min above max", [{"name": "x", "type": "number", "min": 2.0, "max": 1.0}]),
    ("NaN bound", [{"name": "x", "type": "number", "min": math.nan}]),
    ("bounds on a category", [{"name": "c", "type": "category", "max": 1.0}]),
    ("categories on a number", [{"name": "x", "type": "number", "categories": ["a"]}]),
    ("duplicate names", [NUM, NUM]),
]


@pytest.mark.parametrize(("case", "specs"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_config_error(case: str, specs: list[dict[str, Any]]) -> None:
    with pytest.raises(ConfigError):
        Spec.from_dicts(specs)


def test_dicts_round_trip_with_avro_defaults() -> None:
    spec = Spec.from_dicts([{"name": "x", "type": "number"}, CAT, INT_BOUNDED])
    assert spec.to_dicts()[0] == {
        "name": "x",
        "type": "number",
        "required": True,
        "min": None,
        "max": None,
        "categories": [],
    }
    assert Spec.from_dicts(spec.to_dicts()) == spec


INFER_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], FeatureSpec]] = [
    ("ints", [{"f": 1}, {"f": 4}], {}, FeatureSpec("f", "integer")),
    ("ints and floats", [{"f": 1}, {"f": 4.5}], {}, FeatureSpec("f", "number")),
    ("bools", [{"f": True}, {"f": False}], {}, FeatureSpec("f", "boolean")),
    ("strs", [{"f": "b"}, {"f": "a"}], {}, FeatureSpec("f", "category", categories=("a", "b"))),
    (
        "too many categories",
        [{"f": str(i)} for i in range(4)],
        {"max_categories": 3},
        FeatureSpec("f", "category"),
    ),
    ("null somewhere", [{"f": 1.0}, {"f": None}], {}, FeatureSpec("f", "number", required=False)),
    ("absent somewhere", [{"f": 1.0}, {"g": 1}], {}, FeatureSpec("f", "number", required=False)),
    (
        "margin",
        [{"f": 2.0}, {"f": 4.0}],
        {"margin": 0.5},
        FeatureSpec("f", "number", min=1.0, max=5.0),
    ),
    (
        "margin on integers rounds outwards",
        [{"f": 0}, {"f": 3}],
        {"margin": 0.1},
        FeatureSpec("f", "integer", min=-1.0, max=4.0),
    ),
    (
        "margin of a constant",
        [{"f": 10.0}, {"f": 10.0}],
        {"margin": 0.5},
        FeatureSpec("f", "number", min=5.0, max=15.0),
    ),
    (
        "NaN ignored for bounds",
        [{"f": math.nan}, {"f": 1.0}, {"f": 3.0}],
        {"margin": 0.0},
        FeatureSpec("f", "number", min=1.0, max=3.0),
    ),
    ("only NaN: no bounds", [{"f": math.nan}], {"margin": 1.0}, FeatureSpec("f", "number")),
]


@pytest.mark.parametrize(
    ("case", "rows", "kwargs", "expected"), INFER_CASES, ids=[c[0] for c in INFER_CASES]
)
def test_infer(
    case: str, rows: list[dict[str, Any]], kwargs: dict[str, Any], expected: FeatureSpec
) -> None:
    spec = Spec.infer(rows, **kwargs)
    assert spec.features[0] == expected


@pytest.mark.parametrize(
    ("rows", "kwargs"),
    [
        ([{"f": 1}, {"f": "a"}], {}),
        ([{"f": True}, {"f": 1}], {}),
        ([{"f": None}], {}),
        ([{"f": [1]}], {}),
        ([{"f": 1}], {"margin": -1.0}),
    ],
)
def test_infer_rejects(rows: list[dict[str, Any]], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Spec.infer(rows, **kwargs)


def test_infer_sorts_features_and_generator_input() -> None:
    spec = Spec.infer({"b": i, "a": float(i)} for i in range(3))
    assert [f.name for f in spec.features] == ["a", "b"]


row_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["a", "b", "c"]),
)


@given(st.lists(st.dictionaries(st.sampled_from("pqrs"), row_values), min_size=1))
def test_inferred_spec_accepts_its_training_rows(rows: list[dict[str, Any]]) -> None:
    try:
        spec = Spec.infer(rows, margin=0.0)
    except ConfigError:
        return  # a feature with mixed or no values cannot be inferred
    for row in rows:
        spec.check(row)


@pytest.mark.parametrize(
    "rows",
    [
        [{"f": -1e308}, {"f": 1e308}],
        [{"f": -(10**400)}, {"f": 10**400}],
        [{"f": 10**400}],
    ],
)
def test_infer_without_bounds_when_margin_overflows(rows: list[dict[str, Any]]) -> None:
    f = Spec.infer(rows, margin=1.0).features[0]
    assert (f.min, f.max) == (None, None)
    for row in rows:
        Spec((f,)).check(row)
