"""The shared checks of a models file: lines of keys, value types against annotations,
unknown keys with a suggestion, and configurations built in code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from driftline.core.model.config import DriftConfig, ModelConfig, check_model
from driftline.core.model.config_problems import (
    ModelsFileError,
    Problem,
    dotted,
    key_in_message,
    line_of,
    locate,
    type_error,
    unknown_key,
)

TEXT = """\
# a comment
[models.churn]
task = "classification"   # trailing comment
"quoted key" = 1
gate.holdout_fraction = 0.3
retrain = { min_rws = 3, cooldown_ms = 5 }

[models.churn.params]
lr = 0.1

[[models.churn.features]]
name = "a"

[[models.churn.features]]
name = "b"
[models.churn.features.extra]
x = 1

[models."fraud detector"]
task = "regression"
"""

LINES = [
    (("models", "churn"), 2),
    (("models", "churn", "task"), 3),
    (("models", "churn", "quoted key"), 4),
    (("models", "churn", "gate", "holdout_fraction"), 5),
    (("models", "churn", "retrain", "min_rws"), 6),
    (("models", "churn", "retrain", "cooldown_ms"), 6),
    (("models", "churn", "params", "lr"), 9),
    (("models", "churn", "features", 0, "name"), 12),
    (("models", "churn", "features", 1), 14),
    (("models", "churn", "features", 1, "name"), 15),
    (("models", "churn", "features", 1, "extra", "x"), 17),
    (("models", "fraud detector", "task"), 20),
    (("models", "churn", "params", "missing"), 8),  # its table's line
    (("nowhere",), None),
]


@pytest.mark.parametrize(("path", "line"), LINES)
def test_locate_finds_the_line_of_a_key(path: tuple[str | int, ...], line: int | None) -> None:
    assert line_of(locate(TEXT), path) == line


TYPES: list[tuple[Any, Any, str | None]] = [
    (3, int, None),
    (True, int, "must be an integer, not the boolean true"),
    (3.5, int, "must be an integer, not the number 3.5"),
    (3, float, None),
    (float("nan"), float, "must be a finite number, not nan"),
    ("x", float, 'must be a number, not the string "x"'),
    (None, int | None, None),
    ("x", int | None, 'must be an integer, not the string "x"'),
    (["a"], list[str], None),
    (["a", 1], list[str], "must be a list of strings; item 1 is the integer 1"),
    ([], tuple[str, ...] | list[str], None),
    ({"a": 1}, Mapping[str, Any], None),
    ([1], Mapping[str, Any], "must be a table, not a list"),
    ("x" * 60, bool, 'must be true or false, not the string "' + "x" * 37 + '..."'),
]


@pytest.mark.parametrize(("value", "tp", "reason"), TYPES)
def test_type_error(value: Any, tp: Any, reason: str | None) -> None:
    assert type_error(value, tp) == reason


def test_unknown_key_suggests_the_closest_known_one() -> None:
    assert unknown_key("cooldown", ["cooldown_ms", "min_rows"]) == (
        "unknown key (did you mean cooldown_ms?)"
    )
    assert unknown_key("zzz", ["b", "a"]) == "unknown key (known: a, b)"


def test_key_in_message_picks_the_first_named_key() -> None:
    keys = ["min_rows", "max_rows", "rows"]
    assert key_in_message("max_rows must be >= min_rows", keys) == "max_rows"
    assert key_in_message("nothing here", keys) is None


def test_dotted_paths_and_one_line_errors() -> None:
    assert dotted(("models", "a b", "features", 2, "type")) == 'models."a b".features[2].type'
    err = ModelsFileError([Problem("models.m.x", "bad", "m", 3), Problem("models.m.y", "worse")])
    assert str(err) == (
        "models file refused (2 errors): models.m.x (line 3): bad; models.m.y: worse"
    ).replace("models file refused", "model configuration refused")
    assert "m.toml" in str(ModelsFileError([], "m.toml"))


CODE_CASES: list[tuple[str, ModelConfig, list[tuple[tuple[str | int, ...], str]]]] = [
    ("defaults", ModelConfig("m"), []),
    (
        "regressor factory for a classifier",
        ModelConfig("m", factory="linear_regression"),
        [(("factory",), "linear_regression is a regression factory; task is classification")],
    ),
    (
        "unknown parameter",
        ModelConfig("m", params={"grace": 1}),
        [(("params", "grace"), "not a parameter of factory hoeffding_tree")],
    ),
    (
        "training params never reach the factory",
        ModelConfig("m", params={"epochs": 2, "grace_period": 50}),
        [],
    ),
    (
        "drift exclusion of an undeclared feature",
        ModelConfig(
            "m",
            features=({"name": "a", "type": "number"},),
            drift=DriftConfig(("b", "__prediction__")),
        ),
        [(("drift", "exclude", 0), "'b' is not a declared feature")],
    ),
    (
        "exclusions are not checked without declared features",
        ModelConfig("m", drift=DriftConfig(("anything",))),
        [],
    ),
]


@pytest.mark.parametrize(
    ("cfg", "expected"), [c[1:] for c in CODE_CASES], ids=[c[0] for c in CODE_CASES]
)
def test_check_model_of_a_configuration_built_in_code(
    cfg: ModelConfig, expected: list[tuple[tuple[str | int, ...], str]]
) -> None:
    found = check_model(cfg)
    assert [p for p, _ in found] == [p for p, _ in expected]
    for (_, reason), (_, words) in zip(found, expected, strict=True):
        assert words in reason


def test_from_dict_lists_every_problem() -> None:
    with pytest.raises(ModelsFileError) as info:
        ModelConfig.from_dict("m", {"task": "x", "seed": "y"})
    assert [p.key for p in info.value.problems] == ["models.m.task", "models.m.seed"]
    assert ModelConfig.from_dict("m", {"task": "regression"}).factory == "linear_regression"
