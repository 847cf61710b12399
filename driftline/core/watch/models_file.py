"""The models file as every process reads it: parsed and checked whole, the retrain
section against the retrain policy itself.

:func:`driftline.core.model.config.parse` checks what the model room knows (keys, types,
features, gate, factory and params); this module adds the ``[models.NAME.retrain]``
section, checked against :class:`~driftline.core.watch.retrain_policy.RetrainPolicy`:
its keys are the policy's keyword arguments (read from its signature, so a new argument
is accepted as soon as the policy has it), each value of the annotated type, then the
policy is built so its own range checks speak; ``watch`` must name metrics of the task.
:func:`load` is what ``driftline worker``, ``trainer``, ``models check`` and ``models
bootstrap`` call; :func:`rejected_alerts` is the Alert a running process publishes when
a reload finds a broken file (it keeps its last good configuration).

>>> config, problems = check('''
... [models.churn]
... task = "classification"
... [models.churn.retrain]
... min_rws = 300
... cooldown_ms = -1
... watch = ["mae"]
... ''')
>>> for p in problems:
...     print(p)
models.churn.retrain.min_rws (line 5): unknown key (did you mean min_rows?)
models.churn.retrain.cooldown_ms (line 6): cooldown_ms must be >= 0, inflight_timeout_ms >= 1
models.churn.retrain.watch[0] (line 7): "mae" is not a classification metric (accuracy, \
precision, recall, f1, log_loss, roc_auc)
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from driftline.core.errors import ConfigError
from driftline.core.model.config import ModelConfig, ModelsConfig, parse
from driftline.core.model.config_problems import (
    Found,
    ModelsFileError,
    Problem,
    checked_keys,
    key_in_message,
)
from driftline.core.watch.incidents import NOTICE_FIELDS
from driftline.core.watch.monitor import PRIMARY_METRICS
from driftline.core.watch.retrain_policy import RetrainPolicy
from driftline.core.watch.window_stats import TASK_METRICS

__all__ = [
    "RETRAIN_KEYS",
    "check",
    "check_retrain",
    "load",
    "models_toml",
    "rejected_alerts",
]


def _policy_hints() -> dict[str, Any]:
    hints = typing.get_type_hints(RetrainPolicy.__init__)
    params = inspect.signature(RetrainPolicy.__init__).parameters
    return {
        name: hints.get(name, Any)
        for name, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


_RETRAIN_HINTS = _policy_hints()
RETRAIN_KEYS = tuple(_RETRAIN_HINTS)
"""The keys of ``[models.NAME.retrain]``: RetrainPolicy's keyword arguments."""


def check_retrain(cfg: ModelConfig) -> Found:
    """Problems of ``cfg.retrain`` (paths below ``models.NAME``)."""
    found: Found = []
    good = checked_keys(("retrain",), cfg.retrain, _RETRAIN_HINTS, found)
    metrics = TASK_METRICS[cfg.task]
    for i, name in enumerate(good.get("watch") or ()):
        if name not in metrics:
            why = f'"{name}" is not a {cfg.task} metric ({", ".join(metrics)})'
            found.append((("retrain", "watch", i), why))
    try:
        RetrainPolicy(cfg.name, **good)
    except (ValueError, TypeError, ConfigError) as exc:
        key = key_in_message(str(exc), good)
        found.append((("retrain", key) if key else ("retrain",), str(exc)))
    return found


def check(text: str, source: str | None = None) -> tuple[ModelsConfig, list[Problem]]:
    """The models of ``text`` that parsed and every problem of the file, in file order."""
    return parse(text, source, [check_retrain])


def load(path: Path | None) -> ModelsConfig:
    """The models file at ``path`` (none: no models), checked whole: a
    :class:`ModelsFileError` lists every problem; an unreadable file is a ConfigError."""
    if path is None:
        return ModelsConfig()
    return ModelsConfig.load(path, [check_retrain])


def rejected_alerts(
    error: ModelsFileError,
    models: Iterable[str],
    *,
    process: str,
    now_ms: int,
    show: int = 5,
) -> list[dict[str, Any]]:
    """Alert records (kind ``config_rejected``) for a reload that found ``error``: one per
    model a problem names, and for problems of the whole file one per model in force
    (``models``; ``*`` when there are none). The first ``show`` problems travel in the
    message and the evidence."""
    problems: Sequence[Problem] = error.problems
    named = list(dict.fromkeys(p.model for p in problems if p.model is not None))
    if any(p.model is None for p in problems):
        named += [m for m in models if m not in named]
    where = error.source or "the models file"
    digest = hashlib.sha256(str(error).encode()).hexdigest()[:16]
    out = []
    for model in named or ["*"]:
        mine = [p for p in problems if p.model in (model, None)] or list(problems)
        listed = "; ".join(str(p) for p in mine[:show])
        more = f" (and {len(mine) - show} more)" if len(mine) > show else ""
        evidence: dict[str, Any] = {"source": where, "process": process, "errors": len(mine)}
        evidence.update({f"error.{i}": str(p) for i, p in enumerate(mine[:show])})
        out.append(
            {
                "alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{digest}/{model}/{now_ms}")),
                "model": model,
                "version": None,
                "segment": None,
                "kind": "config_rejected",
                "severity": "warning",
                "message": (
                    f"The {process} did not reload {where}: {listed}{more}. It keeps its "
                    "last good configuration; `driftline models check` lists every error."
                ),
                "evidence": evidence,
                "created_at_ms": now_ms,
                **NOTICE_FIELDS,
            }
        )
    return out


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} to TOML")


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _line(key: str, value: Any, comment: str = "") -> str:
    text = f"{_key(key)} = {_toml(value)}"
    return f"{text:<32} # {comment}" if comment else text


def _defaults(keys: Iterable[tuple[str, Any]], given: Mapping[str, Any]) -> list[str]:
    """``key = value`` for what ``given`` sets, ``# key = default`` for the rest."""
    out = [_line(k, v) for k, v in given.items()]
    for k, default in keys:
        if k not in given:
            shown = "(none)" if default is None else _toml(default)
            out.append(f"# {_key(k)} = {shown}")
    return out


def models_toml(
    cfg: ModelConfig, *, header: Sequence[str] = (), notes: Mapping[str, str] | None = None
) -> str:
    """``cfg`` as a reviewable ``[models.NAME]`` file: every key it sets, the defaults of
    the gate and the retrain policy as comments, ``header`` lines and ``notes`` (by key:
    ``task``, ``factory``, ``join_ttl_ms``, ``drift.exclude``, or a feature name) as
    comments. :func:`load` reads it back to ``cfg``."""
    notes = notes or {}
    m = f"models.{_key(cfg.name)}"
    out = [f"# {h}" if h else "#" for h in header]
    out += ["", f"[{m}]"]
    for key in ("task", "factory", "join_ttl_ms", "promotion", "seed", "allow_extra_features"):
        out.append(_line(key, getattr(cfg, key), notes.get(key, "")))
    if cfg.positive_class is not None:
        out.append(_line("positive_class", cfg.positive_class))
    out += ["", f"[{m}.params]                  # the factory's own arguments (see docs)"]
    out += [_line(k, v) for k, v in cfg.params.items()] or ["# none: the estimator's defaults"]
    gate_given = {
        f.name: getattr(cfg.gate, f.name)
        for f in dataclasses.fields(cfg.gate)
        if getattr(cfg.gate, f.name) != f.default and getattr(cfg.gate, f.name) is not None
    }
    gate_defaults = [(f.name, f.default) for f in dataclasses.fields(cfg.gate)]
    out += ["", f"[{m}.gate]                    # defaults commented out"]
    out += _defaults(gate_defaults, gate_given)
    params = inspect.signature(RetrainPolicy.__init__).parameters
    primary = {"watch": list(PRIMARY_METRICS[cfg.task])}  # what the monitor passes
    retrain_defaults = [(k, primary.get(k, params[k].default)) for k in RETRAIN_KEYS]
    out += ["", f"[{m}.retrain]                 # defaults commented out"]
    out += _defaults(retrain_defaults, cfg.retrain)
    out += ["", f"[{m}.drift]"]
    out.append(_line("exclude", list(cfg.drift.exclude), notes.get("drift.exclude", "")))
    for f in cfg.features:
        out += ["", f"[[{m}.features]]"]
        for key, value in f.items():
            if value is None or (key == "categories" and not value):
                continue
            if key == "required" and value is True:
                continue
            out.append(_line(key, value, notes.get(str(f["name"]), "") if key == "name" else ""))
    return "\n".join(out) + "\n"
