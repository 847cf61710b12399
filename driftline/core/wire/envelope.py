"""Check the envelope of an event and the value of a label.

The envelope is what every FeatureEvent, Prediction and Label carries around its
payload: an ``event_id`` that is also the Kafka key, and the ``model``. Reason codes:
invalid_event_id, missing_key, key_mismatch, unknown_model (:func:`check_envelope`);
label_type_mismatch, non_finite (:func:`check_label`); too_large (:func:`check_size`). The
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
from dataclasses import dataclass
from typing import Any

from driftline.core.errors import ConfigError, ValidationError

__all__ = [
    "MAX_EVENT_BYTES", "MAX_EVENT_ID_CHARS", "MAX_LABEL_BYTES", "MAX_PREDICTION_BYTES",
    "TASKS", "LabelSpec", "check_envelope", "check_label", "check_size", "label_type",
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


def label_type(value: object) -> str:
    """A label value's type as Avro names it: boolean, integer, number, string or null.

    >>> [label_type(v) for v in (True, 1, 1.0, "1", None)]
    ['boolean', 'integer', 'number', 'string', 'null']
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What a model's labels must be: its task and, for a classifier, the types of the
    classes its champion predicts (empty: any class type) and those classes (as the
    scores map keys them), for the message. ``source`` names the version it comes from.
    """

    task: str
    types: frozenset[str] = frozenset()
    classes: tuple[str, ...] = ()
    source: str = ""


_HOW = {"boolean": "true or false", "integer": "an integer", "string": "a string"}
_CLASS_TYPES = frozenset({"boolean", "integer", "string"})


def check_label(value: object, task: str | LabelSpec) -> None:
    """Check that a label value fits the model: its task, or a :class:`LabelSpec`.

    classification: bool, int or str (a float, even 1.0, is refused: class labels are
    compared exactly), and of a type the champion predicts when ``task`` is a LabelSpec
    that knows it (a boolean model refuses ``1`` and ``"True"``: neither could ever
    equal a prediction); a class value of the right type that the champion never
    predicted is accepted (a new class is the model's error to count, not the label's).
    regression: an int or finite float, never bool. A null label is refused for both.
    Reason ``label_type_mismatch`` (what arrived and what was expected), or
    ``non_finite`` for NaN or infinity.

    >>> check_label("churned", "classification")
    >>> bools = LabelSpec("classification", frozenset({"boolean"}), ("False", "True"),
    ...                   "churn v3")
    >>> try:
    ...     check_label("True", bools)
    ... except ValidationError as e:
    ...     print(e.reason)
    ...     print(e.detail[:56])
    label_type_mismatch
    label 'True' (string): churn v3 predicts boolean classes
    >>> try:
    ...     check_label(float("nan"), "regression")
    ... except ValidationError as e:
    ...     print(e.reason)
    non_finite
    """
    spec = task if isinstance(task, LabelSpec) else None
    name = spec.task if spec is not None else task
    t = type(value)
    kind = label_type(value)
    if name == "classification":
        if t is str or t is bool or t is int or isinstance(value, str | int):
            types = spec.types & _CLASS_TYPES if spec is not None else frozenset()
            if not types or kind in types:
                return
            assert spec is not None
            shown = ", ".join(spec.classes[:10]) + (", ..." if len(spec.classes) > 10 else "")
            how = " or ".join(_HOW[x] for x in sorted(types))
            raise ValidationError(
                "label_type_mismatch",
                f"label {_show(value)} ({kind}): {spec.source or 'the champion'} predicts "
                f"{' and '.join(sorted(types))} classes ({shown}); send {how}",
            )
        expected = "a boolean, integer or string class"
    elif name == "regression":
        if t is int or (t is not bool and isinstance(value, int)):
            return
        if isinstance(value, float):
            if math.isfinite(value):
                return
            raise ValidationError("non_finite", f"label {_show(value)}: must be finite")
        expected = "a number (integer or float)"
    else:
        raise ConfigError(f"task must be one of {TASKS}, got {name!r}")
    whose = (
        f"{spec.source} is a {name} model, which needs"
        if spec and spec.source
        else (f"{name} needs")
    )
    raise ValidationError(
        "label_type_mismatch", f"label {_show(value)} ({kind}): {whose} {expected}"
    )
