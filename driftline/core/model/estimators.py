# mypy: disable-error-code="no-untyped-call"
# (river ships py.typed but leaves most of its estimators unannotated)
"""Model factories, the served form of a model version, and loading a signed version.

A factory is ``(params: Mapping[str, Any], seed: int) -> river estimator``. Shipped
factories are named (see :data:`FACTORIES`); a user registers their own by dotted path
``pkg.module:function`` in the models file. Features reach the estimator as Avro
decodes them (bool, int, float, str; nulls are dropped, as river reads a missing key):
the linear factories standardise numbers (bools count as 0/1) and one-hot encode
strings; the trees take both as they are.

A :class:`ServedModel` is what a scorer holds: the estimator of one version with its
feature spec and reference profile. :meth:`ServedModel.predict_one` is the one scoring
path, used by the scorer and by the validation gate alike. :func:`load_version` builds
it from a ModelVersion record, checking the artifact's digest and signature *before*
unpickling.

>>> model = build("logistic_regression", {"lr": 0.1}, seed=7)
>>> for i in range(200):
...     model.learn_one({"plan": "pro" if i % 2 else "basic", "x": i % 10}, i % 2 == 1)
>>> served = ServedModel("churn", "v1", "classification", model, Spec(()), "{}")
>>> prediction, scores = served.predict_one({"plan": "pro", "x": 3, "note": None})
>>> prediction, sorted(scores), scores["True"] > 0.5, is_finite_output(prediction, scores)
(True, ['False', 'True'], True, True)
>>> is_finite_output(float("nan"), {})
False
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from river import compose, linear_model, optim, preprocessing, tree

from driftline.core.errors import ArtifactError, ConfigError
from driftline.core.model.artifact import FORMAT, deserialize, serialize, sha256_hex, sign, verify
from driftline.core.model.validation import Spec

__all__ = [
    "FACTORIES",
    "ArtifactError",
    "Factory",
    "ServedModel",
    "artifact_record",
    "build",
    "estimator_params",
    "factory_task",
    "hoeffding_tree",
    "is_finite_output",
    "linear_regression",
    "load_version",
    "logistic_regression",
    "resolve_factory",
    "serialize",
    "sha256_hex",
    "sign",
    "training_epochs",
    "verify",
    "write_artifact",
]

Factory = Callable[[Mapping[str, Any], int], Any]
CLASSIFICATION = "classification"
REGRESSION = "regression"


def _encoded(estimator: Any) -> Any:
    """Numbers (and bools) standardised, strings one-hot encoded, then ``estimator``."""
    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return compose.TransformerUnion(numeric, categorical) | estimator


def _linear_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    kw = dict(params)
    if "lr" in kw:
        kw["optimizer"] = optim.SGD(float(kw.pop("lr")))
    return kw


def hoeffding_tree(params: Mapping[str, Any], seed: int) -> Any:
    """``river.tree.HoeffdingTreeClassifier(**params)`` (deterministic: needs no seed)."""
    return tree.HoeffdingTreeClassifier(**params)


def hoeffding_adaptive_tree(params: Mapping[str, Any], seed: int) -> Any:
    """``river.tree.HoeffdingAdaptiveTreeClassifier(seed=seed, **params)``."""
    return tree.HoeffdingAdaptiveTreeClassifier(seed=seed, **params)


def logistic_regression(params: Mapping[str, Any], seed: int) -> Any:
    """Binary classifier (bool labels): encoded features | ``LogisticRegression``.

    ``params``: ``lr`` (SGD learning rate) and any ``LogisticRegression`` argument.
    """
    return _encoded(linear_model.LogisticRegression(**_linear_kwargs(params)))


def softmax_regression(params: Mapping[str, Any], seed: int) -> Any:
    """Multi-class classifier: encoded features | ``SoftmaxRegression``."""
    return _encoded(linear_model.SoftmaxRegression(**_linear_kwargs(params)))


def linear_regression(params: Mapping[str, Any], seed: int) -> Any:
    """Regressor: encoded features | ``LinearRegression`` (``lr`` as for the classifier)."""
    return _encoded(linear_model.LinearRegression(**_linear_kwargs(params)))


FACTORIES: dict[str, tuple[str, Factory]] = {
    "hoeffding_tree": (CLASSIFICATION, hoeffding_tree),
    "hoeffding_adaptive_tree": (CLASSIFICATION, hoeffding_adaptive_tree),
    "logistic_regression": (CLASSIFICATION, logistic_regression),
    "softmax_regression": (CLASSIFICATION, softmax_regression),
    "linear_regression": (REGRESSION, linear_regression),
}
"""Shipped factories: name to (task, factory)."""


def resolve_factory(name: str) -> Factory:
    """The factory called ``name``: a shipped one, or ``pkg.module:function``."""
    if name in FACTORIES:
        return FACTORIES[name][1]
    module_name, sep, attr = name.partition(":")
    if not sep:
        module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(
            f"unknown model factory {name!r}: use one of {sorted(FACTORIES)} "
            "or a dotted path pkg.module:function"
        )
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import model factory {name!r}: {exc}") from exc
    if not callable(fn):
        raise ConfigError(f"model factory {name!r} is not callable")
    return fn  # type: ignore[no-any-return]


def factory_task(name: str) -> str | None:
    """The task of a shipped factory; None for a user factory (the models file says)."""
    entry = FACTORIES.get(name)
    return None if entry is None else entry[0]


TRAINING_PARAMS = frozenset({"epochs"})
"""Keys of a model's ``params`` that tell the trainer how to learn (see
:func:`training_epochs`); they never reach the factory."""


def estimator_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the :data:`TRAINING_PARAMS`: what the factory gets."""
    return {k: v for k, v in params.items() if k not in TRAINING_PARAMS}


def training_epochs(params: Mapping[str, Any]) -> int:
    """Passes the trainer makes over its training rows: ``params["epochs"]``, default 1.

    A retrain learns a window of a few hundred to a few thousand rows, not an endless
    stream; a Hoeffding tree splits a leaf only once enough rows reached it, so one pass
    over 1,000 rows of a new Agrawal concept left it at 0.80 accuracy and three passes
    reached 0.92 (``docs/benchmarks-history.md``, section 2).

    >>> training_epochs({"grace_period": 50}), training_epochs({"epochs": 3})
    (1, 3)
    """
    epochs = params.get("epochs", 1)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"params.epochs must be an integer >= 1, not {epochs!r}")
    return epochs


def build(name: str, params: Mapping[str, Any], seed: int) -> Any:
    """A fresh estimator from factory ``name`` (given ``params`` without the
    :data:`TRAINING_PARAMS`); bad parameters are a ConfigError."""
    factory = resolve_factory(name)
    try:
        return factory(estimator_params(params), seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model factory {name!r} refused params {dict(params)}: {exc}") from exc


def _label_key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One model version ready to score. ``model`` is the river estimator."""

    name: str
    version: str
    task: str
    model: Any
    spec: Spec
    profile_json: str
    sha256: str = ""
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The ModelVersion record it was loaded from (empty when built in code)."""

    def __post_init__(self) -> None:
        if self.task not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"task must be classification or regression, not {self.task!r}")

    def predict_one(self, features: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        """``(prediction, scores)``: the class with the highest probability and every
        class's probability keyed by ``str(class)``, or the value and ``{}`` for a
        regressor. ``(None, {})`` when a classifier knows no class yet. Non-finite
        output is returned as is: see :func:`is_finite_output`.
        """
        x = {k: v for k, v in features.items() if v is not None}
        if self.task == CLASSIFICATION:
            proba = self.model.predict_proba_one(x)
            if not proba:
                return None, {}
            best = max(proba, key=proba.__getitem__)
            return best, {_label_key(c): float(p) for c, p in proba.items()}
        y = self.model.predict_one(x)
        return (float(y) if isinstance(y, numbers.Real) else y), {}

    def predict_many(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, dict[str, float]]]:
        """:meth:`predict_one` of each row."""
        return [self.predict_one(r) for r in rows]


def is_finite_output(value: Any, scores: Mapping[str, float]) -> bool:
    """False when the prediction or any score is NaN or infinite."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return all(math.isfinite(p) for p in scores.values())


def artifact_bytes(artifact: Mapping[str, Any]) -> bytes:
    """The artifact's bytes: inline, else read from its ``uri`` (a path or file:// URI)."""
    inline = artifact.get("inline")
    if inline is not None:
        return bytes(inline)
    uri = artifact.get("uri")
    if not uri:
        raise ArtifactError("missing_artifact", "neither inline bytes nor a uri")
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ArtifactError("missing_artifact", f"unsupported artifact uri scheme in {uri!r}")
    path = Path(unquote(parsed.path) if parsed.scheme else uri)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError("missing_artifact", f"cannot read {uri}: {exc}") from exc


def artifact_record(data: bytes, key: bytes, *, uri: str | None = None) -> dict[str, Any]:
    """The Artifact record of ``data``: digest, signature, size, and the bytes inline
    (or only ``uri`` when the bytes are stored there)."""
    digest = sha256_hex(data)
    return {
        "format": FORMAT,
        "sha256": digest,
        "signature": sign(digest, key),
        "size_bytes": len(data),
        "inline": None if uri else data,
        "uri": uri,
    }


def write_artifact(directory: Path, model: str, version: str, data: bytes) -> str:
    """Store artifact bytes too large to travel inline under ``directory``; their file://
    URI (for :func:`artifact_record`). Written to a temporary name, then renamed."""
    path = Path(directory) / model / f"{version}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path.resolve().as_uri()


def load_version(
    record: Mapping[str, Any], key: bytes, *, allow_extra: bool = False
) -> ServedModel:
    """The :class:`ServedModel` of a ModelVersion record.

    Checks, in this order, before anything is unpickled: the bytes exist, their sha256
    is the recorded one, the recorded signature is the HMAC of that digest with ``key``.
    Raises :class:`ArtifactError` with the failing check as ``reason``.
    """
    artifact = record["artifact"]
    where = f"{record.get('model')}/{record.get('version')}"
    data = artifact_bytes(artifact)
    digest = sha256_hex(data)
    if digest != str(artifact.get("sha256", "")).lower():
        raise ArtifactError("digest_mismatch", f"{where}: bytes hash to {digest[:12]}...")
    if not verify(digest, str(artifact.get("signature", "")), key):
        raise ArtifactError("bad_signature", f"{where}: not signed with the registry key")
    if artifact.get("format") != FORMAT:
        raise ArtifactError("undeserializable", f"{where}: unknown format {artifact.get('format')}")
    try:
        estimator = deserialize(data)
    except Exception as exc:  # any unpickling failure of signed bytes
        raise ArtifactError("undeserializable", f"{where}: {type(exc).__name__}: {exc}") from exc
    return ServedModel(
        name=record["model"],
        version=record["version"],
        task=record["task"],
        model=estimator,
        spec=Spec.from_dicts(record["feature_spec"], allow_extra=allow_extra),
        profile_json=record["reference_profile"],
        sha256=digest,
        record=record,
    )
