"""Envelope and label checks: tables of (record, key, models, expected reason)."""

from __future__ import annotations

import math
from collections.abc import Callable, Container
from typing import Any

import pytest

from driftline.core.errors import ConfigError, ValidationError
from driftline.core.wire.envelope import (
    MAX_EVENT_ID_CHARS,
    LabelSpec,
    check_envelope,
    check_label,
)

MODELS = {"churn"}
LONG_ID = "e" * MAX_EVENT_ID_CHARS


def rec(event_id: object = "e1", model: object = "churn") -> dict[str, Any]:
    return {"event_id": event_id, "model": model}


ENVELOPE_CASES: list[
    tuple[str, dict[str, Any], bytes | None, Container[str] | Callable[[str], bool], str | None]
] = [
    ("valid", rec(), b"e1", MODELS, None),
    ("longest id", rec(LONG_ID), LONG_ID.encode(), MODELS, None),
    ("non-ascii id", rec("é-1"), "é-1".encode(), MODELS, None),
    ("predicate", rec(), b"e1", lambda m: m.startswith("ch"), None),
    ("empty id", rec(""), b"", MODELS, "invalid_event_id"),
    ("id too long", rec(LONG_ID + "e"), (LONG_ID + "e").encode(), MODELS, "invalid_event_id"),
    ("id not a str", rec(12), b"12", MODELS, "invalid_event_id"),
    ("id absent", {"model": "churn"}, b"e1", MODELS, "invalid_event_id"),
    ("no key", rec(), None, MODELS, "missing_key"),
    ("other key", rec(), b"e2", MODELS, "key_mismatch"),
    ("key of another encoding", rec("é"), "é".encode("latin-1"), MODELS, "key_mismatch"),
    ("unknown model", rec(model="fraud"), b"e1", MODELS, "unknown_model"),
    ("predicate says no", rec(), b"e1", lambda m: False, "unknown_model"),
    ("model not a str", rec(model=None), b"e1", lambda m: True, "unknown_model"),
    ("id checked before key", rec(""), None, MODELS, "invalid_event_id"),
    ("key checked before model", rec(model="x"), b"e2", MODELS, "key_mismatch"),
]


@pytest.mark.parametrize(
    ("case", "record", "key", "models", "reason"),
    ENVELOPE_CASES,
    ids=[c[0] for c in ENVELOPE_CASES],
)
def test_check_envelope(
    case: str,
    record: dict[str, Any],
    key: bytes | None,
    models: Container[str] | Callable[[str], bool],
    reason: str | None,
) -> None:
    if reason is None:
        check_envelope(record, key, models)
        return
    with pytest.raises(ValidationError) as info:
        check_envelope(record, key, models)
    assert info.value.reason == reason
    assert len(info.value.detail) < 300


BOOLS = LabelSpec("classification", frozenset({"boolean"}), ("False", "True"), "churn v3")
INTS = LabelSpec("classification", frozenset({"integer"}), ("1", "2", "3"), "digits v1")
STRS = LabelSpec("classification", frozenset({"string"}), ("ham", "spam"), "mail v2")
ANY_CLASS = LabelSpec("classification", source="old v1")  # a version that recorded no types
PRICE = LabelSpec("regression", source="price v2")

# (value, task or LabelSpec, expected reason, words the detail must hold)
LABEL_CASES: list[tuple[object, str | LabelSpec, str | None, tuple[str, ...]]] = [
    (True, "classification", None, ()),
    (3, "classification", None, ()),
    ("spam", "classification", None, ()),
    (1.0, "classification", "label_type_mismatch", ("1.0 (number)", "boolean, integer or string")),
    (None, "classification", "label_type_mismatch", ("None (null)",)),
    (2.5, "regression", None, ()),
    (-4, "regression", None, ()),
    (True, "regression", "label_type_mismatch", ("True (boolean)", "a number")),
    ("2.5", "regression", "label_type_mismatch", ("'2.5' (string)", "a number")),
    (None, "regression", "label_type_mismatch", ("None (null)",)),
    (math.nan, "regression", "non_finite", ("must be finite",)),
    (math.inf, "regression", "non_finite", ()),
    (-math.inf, "regression", "non_finite", ()),
    (False, BOOLS, None, ()),
    (
        1,
        BOOLS,
        "label_type_mismatch",
        ("1 (integer)", "churn v3 predicts boolean", "true or"),
    ),
    ("True", BOOLS, "label_type_mismatch", ("'True' (string)", "(False, True)")),
    (1.0, BOOLS, "label_type_mismatch", ("1.0 (number)",)),
    (7, INTS, None, ()),  # a class it never predicted, of the right type: accepted
    (True, INTS, "label_type_mismatch", ("True (boolean)", "digits v1 predicts integer")),
    ("3", INTS, "label_type_mismatch", ("'3' (string)", "send an integer")),
    ("eggs", STRS, None, ()),
    (0, STRS, "label_type_mismatch", ("0 (integer)", "mail v2 predicts string")),
    ("x", ANY_CLASS, None, ()),
    (True, ANY_CLASS, None, ()),
    (2.5, ANY_CLASS, "label_type_mismatch", ("old v1 is a classification model",)),
    (4.5, PRICE, None, ()),
    ("abc", PRICE, "label_type_mismatch", ("'abc' (string)", "price v2 is a regression model")),
]


@pytest.mark.parametrize(("value", "task", "reason", "words"), LABEL_CASES)
def test_check_label(
    value: object, task: str | LabelSpec, reason: str | None, words: tuple[str, ...]
) -> None:
    if reason is None:
        check_label(value, task)
        return
    with pytest.raises(ValidationError) as info:
        check_label(value, task)
    assert info.value.reason == reason
    for word in words:
        assert word in info.value.detail


def test_unknown_task_is_config_error() -> None:
    with pytest.raises(ConfigError):
        check_label(1, "ranking")
