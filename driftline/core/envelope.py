"""Check the envelope of an event and the value of a label.

The envelope is what every FeatureEvent, Prediction and Label carries around its
payload: an ``event_id`` that is also the Kafka key, and the ``model``. Reason codes:
invalid_event_id, missing_key, key_mismatch, unknown_model (:func:`check_envelope`);
type_mismatch, non_finite (:func:`check_label`). The feature map itself is checked
by :class:`driftline.core.validation.Spec`.

>>> check_envelope({"event_id": "e1", "model": "churn"}, b"e1", {"churn"})
>>> check_label(True, "classification")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping
from typing import Any

from driftline.core.errors import ConfigError, ValidationError

__all__ = ["MAX_EVENT_ID_CHARS", "TASKS", "check_envelope", "check_label"]

TASKS = ("classification", "regression")
MAX_EVENT_ID_CHARS = 256
_SHOW = 80


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


def check_envelope(
    record: Mapping[str, Any],
    key: bytes | None,
    known_model: Container[str] | Callable[[str], bool],
) -> None:
    """Check the envelope of a FeatureEvent, Prediction or Label dict and its Kafka key.

    In order: ``event_id`` is a non-empty str of at most 256 chars (invalid_event_id),
    the key is present (missing_key) and is the UTF-8 event_id (key_mismatch), and the
    model is known to ``known_model``, a set or a predicate (unknown_model).

    >>> check_envelope({"event_id": "e1", "model": "churn"}, b"e1", {"churn"})
    >>> try:
    ...     check_envelope({"event_id": "e1", "model": "churn"}, b"e2", {"churn"})
    ... except ValidationError as e:
    ...     print(e.reason)
    key_mismatch
    """
    event_id = record.get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
        raise ValidationError(
            "invalid_event_id",
            f"event_id {_show(event_id)}: must be a non-empty str of at most "
            f"{MAX_EVENT_ID_CHARS} chars",
        )
    if key is None:
        raise ValidationError("missing_key", f"event {_show(event_id)} has no Kafka key")
    if key != event_id.encode():
        raise ValidationError(
            "key_mismatch", f"event {_show(event_id)}: Kafka key {_show(key)} differs"
        )
    model = record.get("model")
    if type(model) is not str:
        known = False
    elif callable(known_model):
        known = known_model(model)
    else:
        known = model in known_model
    if not known:
        raise ValidationError("unknown_model", f"event {_show(event_id)}: model {_show(model)}")


def check_label(value: object, task: str) -> None:
    """Check that a label value fits the task.

    classification: bool, int or str (a float, even 1.0, is a type_mismatch: class
    labels are compared exactly); regression: an int or finite float, never bool.
    A null label is a type_mismatch for both.

    >>> check_label("churned", "classification")
    >>> try:
    ...     check_label(float("nan"), "regression")
    ... except ValidationError as e:
    ...     print(e.reason)
    non_finite
    """
    t = type(value)
    if task == "classification":
        if t is str or t is bool or t is int or isinstance(value, str | int):
            return
        expected = "bool, int or str"
    elif task == "regression":
        if t is int or (t is not bool and isinstance(value, int)):
            return
        if isinstance(value, float):
            if math.isfinite(value):
                return
            raise ValidationError("non_finite", f"label {_show(value)}: must be finite")
        expected = "int or float"
    else:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    raise ValidationError(
        "type_mismatch", f"label {_show(value)}: {task} needs {expected}, got {t.__name__}"
    )
