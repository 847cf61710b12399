"""What labelled rows say about the model to bootstrap: the task and its rule, labels
that do not fit, columns that drift by construction, the inferred spec, and the plan."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.core.errors import ConfigError
from driftline.core.model.config import DriftConfig, ModelConfig
from driftline.core.model.config_problems import ModelsFileError
from driftline.core.model.from_rows import (
    BOOTSTRAP_TTL_MS,
    MAX_CLASSES,
    check_labels,
    drifting_columns,
    infer_spec,
    infer_task,
    plan,
)

TASKS: list[tuple[str, list[Any], str | None, str]] = [
    ("booleans", [True, False] * 5, "classification", "boolean labels"),
    ("few integers", [1, 2, 3] * 5, "classification", "3 distinct integers"),
    ("few strings", ["ham", "spam"] * 5, "classification", "2 distinct strings"),
    ("fractions", [0.5, 1.0, 2.0], "regression", "numbers with a fraction"),
    ("ints and fractions", [1, 2, 2.5], "regression", "numbers with a fraction"),
    ("many whole floats", [float(i) for i in range(MAX_CLASSES + 1)], "regression",
     "21 distinct numbers"),
    ("few whole floats", [0.0, 1.0] * 5, None, "pass --task regression for a value"),
    ("many integers", list(range(MAX_CLASSES + 1)), None, "pass --task classification or"),
    ("many strings", [f"c{i}" for i in range(MAX_CLASSES + 1)], None, "more than 20 classes"),
    ("mixed types", [True, "yes", 1], None, "mixes boolean and integer and string values"),
    ("a null label", [True, None], None, "empty on 1 row(s) (first: row 2)"),
    ("no rows", [], None, "no rows"),
]  # fmt: skip


@pytest.mark.parametrize(("labels", "task", "words"), [c[1:] for c in TASKS],
                         ids=[c[0] for c in TASKS])  # fmt: skip
def test_infer_task(labels: list[Any], task: str | None, words: str) -> None:
    if task is None:
        with pytest.raises(ConfigError) as info:
            infer_task(labels, "y")
        assert words in str(info.value)
        return
    guess = infer_task(labels, "y")
    assert (guess.task, words in guess.why) == (task, True)


LABELS: list[tuple[list[Any], str, str | None]] = [
    ([1.5, 2, -3.0], "regression", None),
    ([1.5, "abc"], "regression", "row 2: label 'abc' (string): regression needs a number"),
    ([True, 2.5], "classification", "row 2: label 2.5 (number)"),
    (["a"] * 5 + [1.0] * 5, "classification", "(and 2 more)"),
    ([True, "True"], "classification", "mixes boolean and string classes"),
    ([True, False], "classification", None),
]


@pytest.mark.parametrize(("labels", "task", "words"), LABELS)
def test_check_labels(labels: list[Any], task: str, words: str | None) -> None:
    if words is None:
        check_labels(labels, task)
        return
    with pytest.raises(ConfigError) as info:
        check_labels(labels, task)
    assert words in str(info.value)


def _rows(n: int, **columns: Any) -> list[dict[str, Any]]:
    return [{k: f(i) for k, f in columns.items()} for i in range(n)]


rng = random.Random(3)
DRIFTING: list[tuple[str, list[dict[str, Any]], dict[str, str]]] = [
    ("a time stamp, several rows a day", _rows(100, day=lambda i: 738_000 + i // 4),
     {"day": "never falls between consecutive rows (99 of 99 pairs), 25 distinct values"}),
    ("a count down", _rows(50, left=lambda i: 100.0 - i), {"left": "never rises"}),
    ("an id in order", _rows(30, id=lambda i: f"row-{i:04d}"), {"id": "never falls"}),
    ("shuffled ids", _rows(30, id=lambda i: (i * 7919) % 1000),
     {"id": "a different value on each of its 30 rows"}),
    ("shuffled string ids", _rows(30, id=lambda i: f"u{(i * 7919) % 1000}"),
     {"id": "a different value"}),
    ("mostly ordered (96%)", _rows(101, t=lambda i: i if i % 25 else -i), {"t": "never falls"}),
    ("noise", _rows(200, x=lambda i: rng.gauss(0, 1)), {}),
    ("a few levels sorted", _rows(100, plan=lambda i: "basic" if i < 50 else "pro"), {}),
    ("a constant", _rows(100, c=lambda i: 3), {}),
    ("too few rows", _rows(19, t=lambda i: i), {}),
    ("booleans", _rows(100, b=lambda i: i > 50), {}),
    ("floats distinct on every row are no id", _rows(30, x=lambda i: rng.random()), {}),
    ("with gaps", _rows(90, t=lambda i: None if i % 3 else i), {"t": "never falls"}),
]  # fmt: skip


@pytest.mark.parametrize(("rows", "expected"), [c[1:] for c in DRIFTING],
                         ids=[c[0] for c in DRIFTING])  # fmt: skip
def test_drifting_columns(rows: list[dict[str, Any]], expected: dict[str, str]) -> None:
    found = drifting_columns(rows)
    assert set(found) == set(expected)
    for name, words in expected.items():
        assert words in found[name], found[name]


def test_infer_spec_bounds_categories_and_drifting_columns() -> None:
    rows = [
        {"age": 18 + i % 60, "amount": 10.0 + i / 7, "plan": "ab"[i % 2], "city": f"c{i % 80}",
         "day": 738_000 + i, "rare": "x" if i else "y", "vip": i % 3 == 0}
        for i in range(200)
    ]  # fmt: skip
    spec = {f.name: f for f in infer_spec(rows, drifting={"day"}).features}
    assert (spec["age"].type, spec["age"].min, spec["age"].max) == ("integer", -12.0, 107.0)
    assert (spec["amount"].min, spec["amount"].max) == (-4.3, 52.7)
    assert spec["plan"].categories == ("a", "b")
    assert spec["city"].categories == ()  # 80 values: more than 50, any value
    assert spec["rare"].categories == ()  # "y" seen once: the set is not closed
    assert (spec["day"].min, spec["day"].max) == (None, None)
    assert spec["vip"].type == "boolean"
    assert all(f.required for f in spec.values())


def _labelled(n: int, label: Any) -> list[dict[str, Any]]:
    return [{"features": {"x": float(i % 13), "day": 700 + i}, "label": label(i)}
            for i in range(n)]  # fmt: skip


def test_plan_without_a_models_file_infers_everything() -> None:
    found = plan("price", _labelled(100, lambda i: i / 3), None, label_column="y")
    cfg = found.config
    assert (cfg.task, cfg.factory, cfg.join_ttl_ms) == ("regression", "linear_regression",
                                                        BOOTSTRAP_TTL_MS)  # fmt: skip
    assert found.inferred and [f["name"] for f in cfg.features] == ["day", "x"]
    assert set(found.drifting) == {"day"}
    assert found.file_config().drift == DriftConfig(("day",))
    lines = found.lines(100, "y")
    assert lines[0] == "task: regression (label 'y': numbers with a fraction)"
    assert any('exclude = ["day"]' in line for line in lines)


def test_plan_follows_the_models_file_and_checks_the_labels_against_it() -> None:
    declared = ModelConfig("churn", features=({"name": "x", "type": "number"},),
                           drift=DriftConfig(("x",)))  # fmt: skip
    found = plan("churn", _labelled(50, lambda i: i % 2 == 0), declared)
    assert found.config is declared and not found.inferred
    assert found.file_config() is declared  # its own exclusions win
    with pytest.raises(ConfigError, match="--task regression disagrees"):
        plan("churn", _labelled(50, lambda i: True), declared, task="regression")
    with pytest.raises(ConfigError, match=r"label 0\.5"):
        plan("churn", _labelled(50, lambda i: i / 2), declared)


def test_plan_refuses_options_that_do_not_fit() -> None:
    with pytest.raises(ConfigError, match="pass --task"):
        plan("m", _labelled(50, lambda i: float(i % 2)), None)
    with pytest.raises(ModelsFileError, match="linear_regression is a regression factory"):
        plan("m", _labelled(50, lambda i: i % 2 == 0), None, factory="linear_regression")
    with pytest.raises(ConfigError, match="row 1: label True"):
        plan("m", _labelled(50, lambda i: True), None, task="regression")
