"""Check the envelope of an event and the value of a label.

The envelope is what every FeatureEvent, Prediction and Label carries around its
payload: an ``event_id`` that is also the Kafka key, and the ``model``. Reason codes:
invalid_event_id, missing_key, key_mismatch, unknown_model (:func:`check_envelope`);
type_mismatch, non_finite (:func:`check_label`); too_large (:func:`check_size`). The
feature map itself is checked by :class:`driftline.core.model.validation.Spec`.

Sizes: what the pipeline publishes about an event must fit in one Kafka message
(librdkafka's default ``message.max.bytes`` is 1,000,000 bytes, Faust's
``max_request_size`` too). A prediction repeats its event's features and segment, and
an outcome repeats the prediction and adds the label, so values beyond these limits
are refused (``too_large``) rather than scored into records no producer can send:

=====================  ===========  ==================================================
limit                  bytes        applies to
=====================  ===========  ==================================================
MAX_EVENT_BYTES        800,000      a FeatureEvent value (before it is decoded)
MAX_PREDICTION_BYTES   900,000      a Prediction value (the scorer's own, and the join's
                                    input)
MAX_LABEL_BYTES        65,536       a Label value (the join's input)
=====================  ===========  ==================================================

>>> check_envelope({"event_id": "e1", "model": "churn"}, b"e1", {"churn"})
>>> check_label(True, "classification")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping
from typing import Any

from driftline.core.errors import ConfigError, ValidationError

__all__ = [
    "MAX_EVENT_BYTES", "MAX_EVENT_ID_CHARS", "MAX_LABEL_BYTES", "MAX_PREDICTION_BYTES",
    "TASKS", "check_envelope", "check_label", "check_size",
]  # fmt: skip

TASKS = ("classification", "regression")
MAX_EVENT_ID_CHARS = 256
MAX_EVENT_BYTES = 800_000
MAX_PREDICTION_BYTES = 900_000
MAX_LABEL_BYTES = 65_536
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


def check_size(value: bytes, limit: int, what: str) -> None:
    """Refuse a value of more than ``limit`` bytes (too_large); ``what`` names it.

    >>> try:
    ...     check_size(bytes(70_000), MAX_LABEL_BYTES, "a Label")
    ... except ValidationError as e:
    ...     print(e.reason, "|", e.detail)
    too_large | a Label of 70000 bytes: at most 65536
    """
    if len(value) > limit:
        raise ValidationError("too_large", f"{what} of {len(value)} bytes: at most {limit}")


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
