"""Per-model configuration: task, factory, feature spec before a champion exists, join
TTL, promotion policy, gate, retrain policy and drift exclusions. Read from a TOML file
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

    [models.churn.drift]
    exclude = ["signup_date"]   # never tested for drift, never a retrain reason

    [models.churn.online]       # an online challenger that learns every outcome (opt-in)
    factory = "hoeffding_adaptive_tree"

    [models.churn.live]         # promotion and rollback on live paired evidence
    alpha = 0.05

    [[models.churn.features]]   # FeatureSpec records (schemas/model_version.v1.avsc)
    name = "age"
    type = "integer"

Reading a file checks every section and collects every problem (with its key and line,
see :mod:`driftline.core.model.config_problems`) before anything uses it: unknown keys,
value types, enumerations, each feature, the gate thresholds, the factory (it must exist
and fit the task) and its ``params`` (the estimator is built with them). The retrain
section is checked against the policy itself one room up
(:func:`driftline.core.watch.models_file.check`), which every process uses to read the
file.

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
>>> try:
...     ModelsConfig.from_toml('[models.churn]\\ntask = "regresion"\\njoin_ttl = 5\\n')
... except ModelsFileError as e:
...     for p in e.problems:
...         print(p)
models.churn.task (line 2): must be one of classification, regression, not "regresion"
models.churn.join_ttl (line 3): unknown key (did you mean join_ttl_ms?)
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from driftline.core.errors import ConfigError
from driftline.core.model.config_problems import (
    Found,
    ModelsFileError,
    Problem,
    checked_keys,
    dotted,
    key_in_message,
    line_of,
    locate,
    type_error,
    unknown_key,
)
from driftline.core.model.validation import FEATURE_TYPES, FeatureSpec, Spec

__all__ = [
    "DEFAULT_FACTORY",
    "PROMOTIONS",
    "TASKS",
    "DriftConfig",
    "GateConfig",
    "LiveConfig",
    "ModelConfig",
    "ModelsConfig",
    "ModelsFileError",
    "OnlineConfig",
    "Problem",
    "check_model",
    "parse",
]

TASKS = ("classification", "regression")
PROMOTIONS = ("auto", "manual")
DEFAULT_FACTORY = {"classification": "hoeffding_tree", "regression": "linear_regression"}
DRIFT_PSEUDO_FEATURES = ("__prediction__", "__score__")
"""Names ``drift.exclude`` accepts besides features: prediction and score drift."""

ModelCheck = Callable[["ModelConfig"], Found]
"""A further check of a parsed model (the retrain policy's, one room up)."""


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the validation gate (see driftline.core.lifecycle.gate)."""

    min_improvement: float = 0.0
    """The lower confidence bound of the candidate's gain over the champion (or, for a
    first version, the trivial baseline) on the primary metric must exceed this."""
    improvement_alpha: float | None = 0.05
    """One-sided significance of that bound (driftline.core.lifecycle.improvement); None:
    the point estimate, the rule before the bound."""
    min_holdout_rows: int = 100
    """Fewer held-out rows fail the gate: a verdict on a few dozen of the newest rows
    does not hold for the rows to come."""
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
        if self.improvement_alpha is not None and not 0 < self.improvement_alpha < 1:
            raise ConfigError(f"improvement_alpha must be in (0, 1), got {self.improvement_alpha}")
        if self.min_holdout_rows < 1:
            raise ConfigError(f"min_holdout_rows must be >= 1, got {self.min_holdout_rows}")


@dataclass(frozen=True)
class DriftConfig:
    """What the feature-drift monitor leaves out (``[models.NAME.drift]``)."""

    exclude: tuple[str, ...] = ()
    """Features never tested for drift, so never a drift alert or retrain reason: time
    stamps, ids, counters, anything that drifts by construction. ``__prediction__`` and
    ``__score__`` leave out prediction drift."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if not all(isinstance(x, str) for x in self.exclude):
            raise ConfigError(f"drift.exclude must be a list of strings, not {self.exclude!r}")


TREE_FACTORIES = ("hoeffding_tree", "hoeffding_adaptive_tree")
"""Classifier factories whose parameters the default online learner, river's
``HoeffdingAdaptiveTreeClassifier`` (a Hoeffding tree that replaces drifting branches),
takes as they are."""


@dataclass(frozen=True)
class OnlineConfig:
    """An online challenger that learns from every outcome (``[models.NAME.online]``;
    see driftline.core.lifecycle.online). Off unless the section is present."""

    factory: str = ""
    """Factory of the learner; default: ``hoeffding_adaptive_tree`` for classifiers,
    the model's own factory for regressors."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Its parameters; default: the model's own (without its training passes) where the
    learner is the model's own kind: a regressor on its own factory, or the adaptive
    tree of a Hoeffding-tree classifier (the same split settings: a tree tuned to split
    sooner learns online as fast as the served one); else the factory's defaults."""
    seed: int = 42
    learn_fraction: float = 1.0
    """Share of outcomes learnt (a deterministic sample by event id), for learners slower
    than the outcome rate; every outcome is still scored test-then-train."""
    checkpoint_every: int = 200
    """Publish the learner's state after this many rows learnt..."""
    checkpoint_min_ms: int = 250
    """...but not sooner than this after the last checkpoint (and, while the learner is
    the champion, this often with anything learnt, whatever the count)..."""
    checkpoint_max_ms: int = 30_000
    """...and at least this often while it learns."""
    window: int = 1_000
    """Outcomes in the learner's prequential (test-then-train) score."""

    def __post_init__(self) -> None:
        if not 0 < self.learn_fraction <= 1:
            raise ConfigError(f"learn_fraction must be in (0, 1], not {self.learn_fraction}")
        for name in ("checkpoint_every", "window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not 0 <= self.checkpoint_min_ms <= self.checkpoint_max_ms:
            raise ConfigError(
                "checkpoint_min_ms must be >= 0 and <= checkpoint_max_ms, not "
                f"{self.checkpoint_min_ms} and {self.checkpoint_max_ms}"
            )


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
            raise ConfigError(f"alpha must be in (0, 1), not {self.alpha}")
        for name in ("min_pairs", "min_segment_pairs", "max_pairs", "probation_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")


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
    drift: DriftConfig = field(default_factory=DriftConfig)
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
        online = self.online
        if online is not None and not online.factory:
            from driftline.core.model.estimators import estimator_params

            if self.task == "classification":
                own = self.factory in TREE_FACTORIES
                params = online.params or (estimator_params(self.params) if own else {})
                online = replace(online, factory="hoeffding_adaptive_tree", params=params)
            else:
                params = online.params or estimator_params(self.params)
                online = replace(online, factory=self.factory, params=params)
            object.__setattr__(self, "online", online)

    def spec(self) -> Spec:
        """The feature spec declared here (used until a champion brings its own)."""
        return Spec.from_dicts(self.features, allow_extra=self.allow_extra_features)

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> ModelConfig:
        """The model ``name`` of a parsed ``[models.NAME]`` table; a ModelsFileError names
        every problem."""
        found: Found = []
        cfg = _parse_model(name, d, found)
        if found or cfg is None:
            raise ModelsFileError([_problem(name, p, r) for p, r in found])
        return cfg


KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "name")
"""The keys of a ``[models.NAME]`` table."""
TABLES = ("params", "gate", "retrain", "drift", "online", "live")
FEATURE_KEYS = tuple(f.name for f in dataclasses.fields(FeatureSpec))
GATE_KEYS = tuple(f.name for f in dataclasses.fields(GateConfig))
DRIFT_KEYS = tuple(f.name for f in dataclasses.fields(DriftConfig))
ONLINE_KEYS = tuple(f.name for f in dataclasses.fields(OnlineConfig))
LIVE_KEYS = tuple(f.name for f in dataclasses.fields(LiveConfig))
_HINTS = typing.get_type_hints(ModelConfig)
_FEATURE_HINTS = {**typing.get_type_hints(FeatureSpec), "categories": list[str]}
_GATE_HINTS = typing.get_type_hints(GateConfig)
_DRIFT_HINTS = {"exclude": list[str]}
_ONLINE_HINTS = {**typing.get_type_hints(OnlineConfig), "params": dict[str, Any]}
_LIVE_HINTS = typing.get_type_hints(LiveConfig)
_ENUMS = {"task": TASKS, "promotion": PROMOTIONS}


def _problem(model: str, path: tuple[str | int, ...], reason: str) -> Problem:
    return Problem(dotted(("models", model, *path)), reason, model)


def _kind(value: Any) -> str:
    reason = type_error(value, dict) or ""
    return reason.split(", not ", 1)[-1] if reason else "a table"


def _parse_model(name: str, d: Any, found: Found) -> ModelConfig | None:
    """``[models.NAME]`` as a ModelConfig, every problem appended to ``found`` (the model
    is still built from its good keys, so later checks can run)."""
    if not isinstance(d, dict):
        found.append(((), f"must be a table ([models.{name}]), not {_kind(d)}"))
        return None
    kw: dict[str, Any] = {}
    for key, value in d.items():
        if key not in KEYS:
            found.append(((key,), unknown_key(key, KEYS)))
        elif key in TABLES:
            if isinstance(value, dict):
                kw[key] = value
            else:
                table = f"must be a table ([models.{name}.{key}]), not {_kind(value)}"
                found.append(((key,), table))
        elif key == "features":
            kw[key] = _features(value, found)
        else:
            why = type_error(value, _HINTS[key])
            if why is None and key in _ENUMS and value not in _ENUMS[key]:
                why = f'must be one of {", ".join(_ENUMS[key])}, not "{value}"'
            if why is None and key == "join_ttl_ms" and value < 1:
                why = f"must be >= 1 (ms), not {value}"
            if why is None and key == "factory" and not value:
                why = "must name a factory (or be left out for the task's default)"
            if why is not None:
                found.append(((key,), why))
            else:
                kw[key] = value
    if "gate" in kw:
        kw["gate"] = _gate(kw["gate"], found)
    if "drift" in kw:
        kw["drift"] = DriftConfig(**checked_keys(("drift",), kw["drift"], _DRIFT_HINTS, found))
    sections = (("online", OnlineConfig, _ONLINE_HINTS), ("live", LiveConfig, _LIVE_HINTS))
    for key, kind, hints in sections:
        if key in kw:
            good = checked_keys((key,), kw[key], hints, found)
            try:
                kw[key] = kind(**good)
            except ConfigError as exc:
                bad = key_in_message(str(exc), good)
                found.append(((key, bad) if bad else (key,), str(exc)))
                kw[key] = None if key == "online" else LiveConfig()
    try:
        cfg = ModelConfig(name=name, **kw)
    except ConfigError as exc:  # every field was checked above: a safety net
        found.append(((), str(exc)))
        return None
    found.extend(check_model(cfg, skip={p[0] for p, _ in found if p}))
    return cfg


def _features(value: Any, found: Found) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
        what = "a list of values" if isinstance(value, list) else _kind(value)
        found.append((("features",), f"must be an array of tables ([[features]]), not {what}"))
        return ()
    good: list[Mapping[str, Any]] = []
    seen: dict[str, int] = {}
    for i, f in enumerate(value):
        here = ("features", i)
        n = len(found)
        checked = checked_keys(here, f, _FEATURE_HINTS, found)
        for key in ("name", "type"):
            if key not in f:
                found.append(((*here, key), f"missing (every feature needs a {key})"))
        if checked.get("type") is not None and checked["type"] not in FEATURE_TYPES:
            found.append(((*here, "type"), f"must be one of {', '.join(FEATURE_TYPES)}, "
                                           f"not \"{checked['type']}\""))  # fmt: skip
        if len(found) > n:
            continue
        if checked["name"] in seen:
            dup = f"duplicate feature {checked['name']!r} (also features[{seen[checked['name']]}])"
            found.append(((*here, "name"), dup))
            continue
        seen[checked["name"]] = i
        try:
            FeatureSpec.from_dict(checked)
        except ConfigError as exc:
            bad = key_in_message(str(exc).split(":", 1)[-1], ("type", "min", "max", "categories"))
            found.append(((*here, bad) if bad else here, str(exc)))
            continue
        good.append(f)
    return tuple(good)


def _gate(table: Mapping[str, Any], found: Found) -> GateConfig:
    """The gate's table: each value's own range check reported at its key (each key is
    tried alone, so two bad thresholds are two problems), then the keys together."""
    good = checked_keys(("gate",), table, _GATE_HINTS, found)
    bad: set[str] = set()
    for key, value in good.items():
        try:
            GateConfig(**{key: value})
        except ConfigError as exc:
            found.append((("gate", key), str(exc)))
            bad.add(key)
    try:
        return GateConfig(**{k: v for k, v in good.items() if k not in bad})
    except ConfigError as exc:  # a rule between keys
        named = key_in_message(str(exc), good)
        found.append((("gate", named) if named else ("gate",), str(exc)))
        return GateConfig()


_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


def _refused(cfg: ModelConfig, key: str) -> bool:
    """Whether the factory refuses ``params[key]`` on its own (which key a message that
    names none is about)."""
    from driftline.core.model.estimators import build

    try:
        build(cfg.factory, {key: cfg.params[key]}, cfg.seed)
    except ConfigError:
        return True
    return False


def check_model(cfg: ModelConfig, skip: Iterable[str | int] = ()) -> Found:
    """What a built ModelConfig gets wrong that its types cannot say: the factory exists
    and fits the task, the estimator builds with ``params`` (a TypeError or ValueError of
    the factory names the key when it can), ``positive_class`` is for classification,
    ``drift.exclude`` names declared features. ``skip`` lists keys already found wrong."""
    from driftline.core.model.estimators import (  # imports river: only when checking
        TRAINING_PARAMS,
        build,
        factory_task,
        resolve_factory,
        training_epochs,
    )

    skipped = set(skip)
    found: Found = []
    factory_ok = "factory" not in skipped and "task" not in skipped
    if factory_ok:
        task = factory_task(cfg.factory)
        if task is not None and task != cfg.task:
            found.append((("factory",), f"{cfg.factory} is a {task} factory; task is {cfg.task}"))
            factory_ok = False
        else:
            try:
                resolve_factory(cfg.factory)
            except ConfigError as exc:
                found.append((("factory",), str(exc)))
                factory_ok = False
    if "params" not in skipped:
        try:
            training_epochs(cfg.params)
        except ConfigError as exc:
            found.append((("params", "epochs"), str(exc).removeprefix("params.epochs ")))
    if factory_ok and "params" not in skipped:
        try:
            build(cfg.factory, cfg.params, cfg.seed)
        except ConfigError as exc:
            text = str(exc.__cause__ or exc)
            m = _UNEXPECTED.search(text)
            if m:
                why = f"not a parameter of factory {cfg.factory} ({text})"
                found.append((("params", m.group(1)), why))
            else:
                keys = [k for k in cfg.params if k not in TRAINING_PARAMS]
                named = key_in_message(text, keys)
                culprits = [named] if named else [k for k in keys if _refused(cfg, k)]
                why = f"factory {cfg.factory} refused it: {text}"
                found += [(("params", k), why) for k in culprits] or [(("params",), why)]
    online = cfg.online
    if online is not None and "online" not in skipped:
        task = factory_task(online.factory)
        if task is not None and task != cfg.task:
            why = f"{online.factory} is a {task} factory; task is {cfg.task}"
            found.append((("online", "factory"), why))
        else:
            try:
                build(online.factory, online.params, online.seed)
            except ConfigError as exc:
                found.append((("online", "params" if online.params else "factory"), str(exc)))
    if cfg.positive_class is not None and cfg.task != "classification":
        found.append((("positive_class",), "applies to classification only"))
    declared = {f["name"] for f in cfg.features}
    if declared and "features" not in skipped:
        for i, x in enumerate(cfg.drift.exclude):
            if x not in declared and x not in DRIFT_PSEUDO_FEATURES:
                names = ", ".join([*sorted(declared), *DRIFT_PSEUDO_FEATURES])
                why = f"{x!r} is not a declared feature (known: {names})"
                found.append((("drift", "exclude", i), why))
    return found


def parse(
    text: str, source: str | None = None, checks: Iterable[ModelCheck] = ()
) -> tuple[ModelsConfig, list[Problem]]:
    """Every model of a models file's ``text`` that parsed, and every problem of the file
    (each with its line), in file order. ``checks`` run on each parsed model."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        line = int(m.group(1)) if m else None
        return ModelsConfig(), [Problem("(file)", f"not valid TOML: {exc}", None, line)]
    lines = locate(text)
    problems: list[Problem] = []

    def add(model: str | None, path: tuple[str | int, ...], reason: str) -> None:
        full = ("models", model, *path) if model is not None else path
        problems.append(Problem(dotted(full), reason, model, line_of(lines, full)))

    for key in data:
        if key != "models":
            add(None, (key,), unknown_key(key, ["models"]) + ": models go in [models.NAME]")
    models = data.get("models", {})
    if not isinstance(models, dict):
        add(None, ("models",), f"must be a table of [models.NAME] tables, not {_kind(models)}")
        models = {}
    parsed: dict[str, ModelConfig] = {}
    for name, table in models.items():
        found: Found = []
        cfg = _parse_model(name, table, found)
        if cfg is not None:
            for check in checks:
                found.extend(check(cfg))
            parsed[name] = cfg
        for path, reason in found:
            add(name, path, reason)
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return ModelsConfig(parsed), problems


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
    def from_toml(
        cls, text: str, source: str | None = None, checks: Iterable[ModelCheck] = ()
    ) -> ModelsConfig:
        """The models of ``text``; a :class:`ModelsFileError` lists every problem."""
        config, problems = parse(text, source, checks)
        if problems:
            raise ModelsFileError(problems, source)
        return config

    @classmethod
    def load(cls, path: Path | None, checks: Iterable[ModelCheck] = ()) -> ModelsConfig:
        """The models in ``path``; none when ``path`` is None. Processes read the file with
        :func:`driftline.core.watch.models_file.load`, which adds the retrain checks."""
        if path is None:
            return cls()
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read models file {path}: {exc}") from exc
        return cls.from_toml(text, str(path), checks)
