"""Per-model configuration: task, factory, feature spec before a champion exists, join
TTL, promotion policy, gate and retrain policy. Read from a TOML file
(``DRIFTLINE_MODELS_FILE``) or built in code::

    [models.churn]
    task = "classification"
    factory = "hoeffding_tree"
    join_ttl_ms = 600000
    promotion = "auto"          # or "manual": a person approves with `driftline models approve`

    [models.churn.params]
    grace_period = 100

    [models.churn.gate]
    min_improvement = 0.0

    [models.churn.retrain]      # keyword arguments of watch.retrain_policy.RetrainPolicy
    cooldown_ms = 60000

    [[models.churn.features]]   # FeatureSpec records (schemas/model_version.v1.avsc)
    name = "age"
    type = "integer"

>>> cfg = ModelsConfig.from_toml('''
... [models.churn]
... task = "classification"
... [[models.churn.features]]
... name = "age"
... type = "integer"
... ''')
>>> m = cfg["churn"]
>>> m.task, m.factory, m.promotion, sorted(m.spec().names)
('classification', 'hoeffding_tree', 'auto', ['age'])
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from driftline.core.errors import ConfigError
from driftline.core.model.validation import Spec

TASKS = ("classification", "regression")
PROMOTIONS = ("auto", "manual")
DEFAULT_FACTORY = {"classification": "hoeffding_tree", "regression": "linear_regression"}


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the validation gate (see driftline.core.lifecycle.gate)."""

    min_improvement: float = 0.0
    """The candidate's primary metric must beat the champion's by more than this."""
    segment_tolerance: float = 0.02
    """No segment with enough samples may be worse than the champion by more than this."""
    min_segment_samples: int = 200
    segment_alpha: float | None = 0.05
    """A segment fails only when worse beyond the tolerance by more than sampling noise
    at this significance (Bonferroni over the gated segments); None: the tolerance alone."""
    holdout_fraction: float = 0.2
    max_artifact_bytes: int = 50_000_000
    max_predict_us: float = 5_000.0

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.segment_tolerance < 0 or self.min_segment_samples < 1:
            raise ConfigError("segment_tolerance must be >= 0 and min_segment_samples >= 1")
        if self.segment_alpha is not None and not 0 < self.segment_alpha < 1:
            raise ConfigError(f"segment_alpha must be in (0, 1), got {self.segment_alpha}")


@dataclass(frozen=True)
class OnlineConfig:
    """An online challenger that learns from every outcome (``[models.NAME.online]``;
    see driftline.core.lifecycle.online). Off unless the section is present."""

    factory: str = ""
    """Factory of the learner; default: ``hoeffding_adaptive_tree`` for classifiers,
    the model's own factory for regressors."""
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 42
    learn_fraction: float = 1.0
    """Share of outcomes learnt (a deterministic sample by event id), for learners slower
    than the outcome rate; every outcome is still scored test-then-train."""
    checkpoint_every: int = 500
    """Publish the learner's state after this many rows learnt..."""
    checkpoint_min_ms: int = 1_000
    """...but not sooner than this after the last checkpoint..."""
    checkpoint_max_ms: int = 30_000
    """...and at least this often while it learns."""
    window: int = 1_000
    """Outcomes in the learner's prequential (test-then-train) score."""

    def __post_init__(self) -> None:
        if not 0 < self.learn_fraction <= 1:
            raise ConfigError(f"online.learn_fraction must be in (0, 1], not {self.learn_fraction}")
        for name in ("checkpoint_every", "window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"online.{name} must be >= 1")
        if not 0 <= self.checkpoint_min_ms <= self.checkpoint_max_ms:
            raise ConfigError("online: 0 <= checkpoint_min_ms <= checkpoint_max_ms")


@dataclass(frozen=True)
class LiveConfig:
    """Promotion, probation and rollback on live paired evidence (``[models.NAME.live]``;
    see driftline.core.lifecycle.promotion)."""

    enabled: bool = True
    alpha: float = 0.05
    """Bound on the chance that a challenger no better than the champion is promoted (or
    a champion no worse than the one it replaced is rolled back), over all time."""
    min_pairs: int = 200
    """Paired outcomes before any decision."""
    min_segment_pairs: int = 100
    """Discordant pairs that make a segment large enough to veto a promotion."""
    max_pairs: int = 20_000
    """Discordant pairs after which the evidence restarts without a decision."""
    probation_pairs: int = 2_000
    """Paired outcomes the previous champion stays in shadow after a promotion."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"live.alpha must be in (0, 1), not {self.alpha}")
        for name in ("min_pairs", "min_segment_pairs", "max_pairs", "probation_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"live.{name} must be >= 1")


@dataclass(frozen=True)
class ModelConfig:
    """How Driftline serves, monitors and retrains one model."""

    name: str
    task: str = "classification"
    factory: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 42
    features: tuple[Mapping[str, Any], ...] = ()
    allow_extra_features: bool = False
    join_ttl_ms: int = 3_600_000
    promotion: str = "auto"
    positive_class: str | None = None
    gate: GateConfig = field(default_factory=GateConfig)
    retrain: Mapping[str, Any] = field(default_factory=dict)
    online: OnlineConfig | None = None
    live: LiveConfig = field(default_factory=LiveConfig)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"model {self.name}: task must be one of {TASKS}, not {self.task!r}")
        if self.promotion not in PROMOTIONS:
            raise ConfigError(f"model {self.name}: promotion must be one of {PROMOTIONS}")
        if self.join_ttl_ms < 1:
            raise ConfigError(f"model {self.name}: join_ttl_ms must be >= 1")
        if not self.factory:
            object.__setattr__(self, "factory", DEFAULT_FACTORY[self.task])
        if self.online is not None and not self.online.factory:
            default = "hoeffding_adaptive_tree" if self.task == "classification" else self.factory
            object.__setattr__(self, "online", replace(self.online, factory=default))

    def spec(self) -> Spec:
        """The feature spec declared here (used until a champion brings its own)."""
        return Spec.from_dicts(self.features, allow_extra=self.allow_extra_features)

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> ModelConfig:
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"model {name}: unknown keys {sorted(unknown)}")
        kw = dict(d)
        if "gate" in kw:
            try:
                kw["gate"] = GateConfig(**kw["gate"])
            except TypeError as exc:
                raise ConfigError(f"model {name}: bad gate config: {exc}") from exc
        for key, kind in (("online", OnlineConfig), ("live", LiveConfig)):
            if key in kw:
                try:
                    kw[key] = kind(**kw[key])
                except TypeError as exc:
                    raise ConfigError(f"model {name}: bad {key} config: {exc}") from exc
        if "features" in kw:
            kw["features"] = tuple(kw["features"])
        return cls(name=name, **kw)


@dataclass(frozen=True)
class ModelsConfig:
    """Every configured model, by name. Unknown models are refused by the pipeline."""

    models: Mapping[str, ModelConfig] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ModelConfig:
        return self.models[name]

    def __contains__(self, name: object) -> bool:
        return name in self.models

    def __iter__(self) -> Iterator[ModelConfig]:
        return iter(self.models.values())

    def get(self, name: str) -> ModelConfig | None:
        return self.models.get(name)

    @classmethod
    def from_toml(cls, text: str) -> ModelsConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"models file is not valid TOML: {exc}") from exc
        models = data.get("models", {})
        if not isinstance(models, dict):
            raise ConfigError("models file: [models.NAME] tables expected")
        return cls({n: ModelConfig.from_dict(n, d) for n, d in models.items()})

    @classmethod
    def load(cls, path: Path | None) -> ModelsConfig:
        """The models in ``path``; none when ``path`` is None."""
        if path is None:
            return cls()
        try:
            return cls.from_toml(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read models file {path}: {exc}") from exc
