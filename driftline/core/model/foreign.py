"""Models trained outside Driftline, made servable: a river estimator as it is, a
scikit-learn-like one (``predict``, and for a classifier ``predict_proba`` with
``classes_``) through :class:`Fitted`, which scores one feature dict at a time.

:func:`adapt` picks the path; ``driftline models register`` then validates the result on
the user's rows (``driftline.core.lifecycle.registered``). A :class:`Fitted` model is
frozen: it never learns (retraining builds a new model with the models file's factory).

The columns a scikit-learn-like model reads are its ``feature_names_in_`` (set when it
was fitted on a pandas frame; it then gets a one-row frame), else the models file's
feature names in the file's order (it then gets a one-row list).

>>> class Threshold:  # the scikit-learn interface, without scikit-learn
...     classes_ = [False, True]
...     def predict(self, X):
...         return [row[0] > 5 for row in X]
...     def predict_proba(self, X):
...         return [[0.2, 0.8] if row[0] > 5 else [0.9, 0.1] for row in X]
>>> model = adapt(Threshold(), "classification", ["x", "y"])
>>> model.predict_proba_one({"x": 7, "y": 1}), model.predict_one({"x": 1, "y": 1})
({False: 0.2, True: 0.8}, False)
>>> adapt(object(), "regression", ["x"])
Traceback (most recent call last):
...
driftline.core.errors.ConfigError: a object is no model Driftline can serve: ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftline.core.errors import ConfigError

__all__ = ["Fitted", "adapt", "describe"]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``numpy.bool_`` as bool, ...)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


class Fitted:
    """A fitted scikit-learn-like estimator with river's scoring interface.

    ``learn_one`` raises: the model was trained elsewhere and stays as it was."""

    def __init__(self, estimator: Any, columns: Sequence[str]) -> None:
        names = getattr(estimator, "feature_names_in_", None)
        self.estimator = estimator
        self.frame = names is not None
        self.columns = [str(c) for c in names] if names is not None else list(columns)
        if not self.columns:
            raise ConfigError("a scikit-learn-like model needs at least one feature column")

    def _x(self, x: Mapping[str, Any]) -> Any:
        row = [x.get(c) for c in self.columns]
        if self.frame:
            import pandas as pd

            return pd.DataFrame([row], columns=self.columns)
        return [row]

    def predict_one(self, x: Mapping[str, Any]) -> Any:
        return _plain(self.estimator.predict(self._x(x))[0])

    def predict_proba_one(self, x: Mapping[str, Any]) -> dict[Any, float]:
        proba = getattr(self.estimator, "predict_proba", None)
        classes = getattr(self.estimator, "classes_", None)
        if not callable(proba) or classes is None:  # a classifier without probabilities
            return {self.predict_one(x): 1.0}
        row = proba(self._x(x))[0]
        return {_plain(c): float(p) for c, p in zip(classes, row, strict=True)}

    def learn_one(self, x: Mapping[str, Any], y: Any) -> None:
        raise TypeError(
            "a model registered from outside Driftline does not learn; "
            "retraining builds a new one with the models file's factory"
        )


def adapt(estimator: Any, task: str, columns: Sequence[str]) -> Any:
    """``estimator`` as a model a scorer can call: a river estimator (``predict_one``,
    and ``predict_proba_one`` for a classifier) as it is, a scikit-learn-like one
    (``predict``) wrapped in :class:`Fitted` reading ``columns``; else a ConfigError."""
    need = "predict_proba_one" if task == "classification" else "predict_one"
    if callable(getattr(estimator, need, None)):
        return estimator
    if callable(getattr(estimator, "predict", None)):
        return Fitted(estimator, columns)
    what = type(estimator).__name__
    if callable(getattr(estimator, "predict_one", None)):
        raise ConfigError(
            f"a {what} has predict_one but no predict_proba_one: a classifier Driftline "
            "serves gives every class's probability (or register it with task = "
            '"regression" if it predicts numbers)'
        )
    raise ConfigError(
        f"a {what} is no model Driftline can serve: it has neither river's predict_one "
        "nor scikit-learn's predict"
    )


def describe(estimator: Any) -> str:
    """``module.Class`` of the estimator (of the wrapped one for :class:`Fitted`).

    >>> describe(Fitted(object(), ["x"]))
    'builtins.object'
    """
    inner = estimator.estimator if isinstance(estimator, Fitted) else estimator
    kind = type(inner)
    return f"{kind.__module__}.{kind.__qualname__}"
