"""A user's own history as the loop bench's stream: rows of a CSV or Parquet file in
order (by ``--time`` when given), and the model configuration to run them with (the
models file's entry, else what ``driftline models bootstrap`` infers from the rows).

Columns follow ``driftline produce``: the label column and the id and time columns are
not features, ``--drop`` columns are ignored, every other column is a feature, and a
``--segment`` column is a feature and a segment attribute. The bench's clock is the
row's position (one row per ms, as the demo replays 1,000 events/s): the time column
only orders the rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from driftline.core.errors import ConfigError
from driftline.core.model.config import ModelConfig
from driftline.core.model.from_rows import plan
from driftline.core.watch import models_file
from driftline.demo.synthetic import Row

MODEL = "bench"
"""The model's name when no models file names one."""


@dataclass(frozen=True)
class Source:
    """Where the rows come from and which columns are what (picklable: a task carries it
    to the worker processes, which read the file themselves)."""

    path: str
    label: str
    time: str | None = None
    segments: tuple[str, ...] = ()
    id_column: str = "event_id"
    drop: tuple[str, ...] = ()
    model_config: str | None = None
    model: str | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name


def read_frame(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ConfigError(f"{path.name}: the bench reads a .csv or .parquet file")


def _native(value: Any) -> Any:
    """A Python value of a pandas cell (None for a missing one); integral floats of an
    integer column stay floats here: the feature spec decides."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def load_rows(source: Source) -> list[Row]:
    """The file's rows in order, as the bench's stream (``Row.index`` is the position)."""
    frame = read_frame(Path(source.path))
    columns = list(frame.columns)
    wanted = [source.label, *source.segments, *([source.time] if source.time else [])]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ConfigError(
            f"{source.name} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, columns))})"
        )
    if source.time:
        frame = frame.sort_values(source.time, kind="stable")
    not_features = {source.label, source.id_column, *source.drop}
    if source.time:
        not_features.add(source.time)
    features = [c for c in columns if c not in not_features]
    if not features:
        raise ConfigError(f"{source.name}: no feature columns left")
    labels = frame[source.label]
    if labels.isna().any():
        raise ConfigError(f"{source.name}: {int(labels.isna().sum())} rows have no label")
    out = []
    for i, (label, values) in enumerate(
        zip(labels.tolist(), frame[features].itertuples(index=False), strict=True)
    ):
        x = {f: v for f, v in zip(features, map(_native, values), strict=True) if v is not None}
        out.append(Row(index=i, features=x, label=_native(label), concept="",
                       segment=segment_of(x, source.segments)))  # fmt: skip
    return out


def segment_of(features: dict[str, Any], columns: Sequence[str]) -> dict[str, str]:
    """The segment attributes of an event: each column's value as text (an integral
    number without its ``.0``).

    >>> segment_of({"elevel": 2.0, "age": 40}, ["elevel"])
    {'elevel': '2'}
    """
    out = {}
    for c in columns:
        v = features.get(c)
        if v is None:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        out[c] = str(v)
    return out


def config_for(source: Source, warm: list[Row]) -> ModelConfig:
    """The models file's entry for the model (``--model``, or its only model), else the
    configuration ``driftline models bootstrap`` infers from the warm-up rows."""
    declared = None
    name = source.model or MODEL
    if source.model_config:
        models = models_file.load(Path(source.model_config))
        names = list(models.models)
        if source.model is None and len(names) == 1:
            name = names[0]
        if name not in models:
            raise ConfigError(
                f"{source.model_config} has no model {name!r} (models: {', '.join(names)}); "
                "name one with --model"
            )
        declared = models[name]
    rows = [{"features": r.features, "label": r.label} for r in warm]
    found = plan(name, rows, declared, label_column=source.label)
    if found.config.task != "classification":
        raise ConfigError(
            f"{source.name}: the loop bench scores classification (accuracy); "
            f"{name} is a {found.config.task} model"
        )
    return found.config
