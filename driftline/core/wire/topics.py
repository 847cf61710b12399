"""Driftline's topics, declared as data: name, partitions, replication and configs.

``driftline topics apply`` makes a cluster match these declarations; this module
only says what they are. predictions, labels and outcomes (and features, which
feed predictions) share one partition count and are keyed by event_id, so the
join is local to one worker.

>>> specs = {t.name: t for t in declare("driftline.", data_partitions=6, replication_factor=1)}
>>> specs["driftline.registry"].configs["cleanup.policy"]
'compact'
>>> {specs[f"driftline.{n}"].partitions for n in ("predictions", "labels", "outcomes")}
{6}

A topic with three or more replicas also declares ``min.insync.replicas=2`` (see
:func:`replication_configs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000
WEEK_MS = 7 * DAY_MS


@dataclass(frozen=True)
class TopicSpec:
    """One topic as Driftline wants it."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)
    key: str = ""
    value: str = ""
    co_partitioned: bool = False

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be >= 1, got {self.partitions}")
        if self.replication_factor < 1:
            raise ValueError(f"{self.name}: replication factor must be >= 1")


def _delete(retention_ms: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(retention_ms)}


# name suffix, key, value record, co-partitioned with the join, configs
_TOPICS: tuple[tuple[str, str, str, bool, dict[str, str]], ...] = (
    ("features", "event_id", "FeatureEvent", True, _delete(7 * DAY_MS)),
    ("predictions", "event_id", "Prediction", True, _delete(7 * DAY_MS)),
    ("predictions.shadow", "event_id", "Prediction", True, _delete(7 * DAY_MS)),
    ("labels", "event_id", "Label", True, _delete(7 * DAY_MS)),
    ("outcomes", "event_id", "Outcome", True, _delete(4 * WEEK_MS)),
    ("metrics", "model", "MetricSnapshot", False, _delete(7 * DAY_MS)),
    ("alerts", "model", "Alert", False, _delete(4 * WEEK_MS)),
    ("retrain", "model", "RetrainTrigger", False, _delete(4 * WEEK_MS)),
    (
        "registry",
        "model/version (model/version@checkpoint: an online learner's newest state)",
        "ModelVersion",
        False,
        {
            "cleanup.policy": "compact",
            "retention.ms": "-1",
            "min.cleanable.dirty.ratio": "0.1",
            # online learners checkpoint every few seconds: segments roll hourly (or at
            # 64 MiB) so that compaction keeps only each key's newest state
            "segment.ms": str(3_600_000),
            "segment.bytes": str(64 * 1024 * 1024),
        },
    ),
    ("deadletter", "source key", "DeadLetter", False, _delete(4 * WEEK_MS)),
)


def replication_configs(replication_factor: int) -> dict[str, str]:
    """Topic configs that go with a replication factor: with three or more replicas, a
    write acknowledged to an ``acks=all`` producer (every Driftline producer) is on at
    least two of them (``min.insync.replicas=2``), so the loss of any one broker loses
    no acknowledged record, and the topic stays writable with one broker down. Kafka's
    broker default is 1, where a leader alone in its ISR acknowledges writes that die
    with it. Fewer replicas: the broker's default (2 of 2 would stop every write while
    either broker is away).

    >>> replication_configs(3)
    {'min.insync.replicas': '2'}
    >>> replication_configs(1)
    {}
    """
    return {"min.insync.replicas": "2"} if replication_factor >= 3 else {}


SMALL_TOPIC_PARTITIONS = 3
"""Partitions of the per-model topics (metrics, alerts, retrain, deadletter)."""


def declare(prefix: str, data_partitions: int, replication_factor: int) -> list[TopicSpec]:
    """Every Driftline topic under ``prefix``. The registry has one partition: one
    total order of stage changes."""
    specs = []
    for suffix, key, value, co, configs in _TOPICS:
        if suffix == "registry":
            partitions = 1
        elif co:
            partitions = data_partitions
        else:
            partitions = SMALL_TOPIC_PARTITIONS
        specs.append(
            TopicSpec(
                name=prefix + suffix,
                partitions=partitions,
                replication_factor=replication_factor,
                configs={**configs, **replication_configs(replication_factor)},
                key=key,
                value=value,
                co_partitioned=co,
            )
        )
    return specs


@dataclass(frozen=True)
class TopicDiff:
    """What differs between a declared topic and the cluster."""

    spec: TopicSpec
    exists: bool
    actual_partitions: int | None = None
    actual_replication: int | None = None
    config_changes: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)

    @property
    def in_sync(self) -> bool:
        return (
            self.exists
            and self.actual_partitions == self.spec.partitions
            and self.actual_replication == self.spec.replication_factor
            and not self.config_changes
        )

    def problems(self) -> list[str]:
        """Differences ``apply`` cannot fix by itself."""
        out = []
        if self.exists and self.actual_partitions is not None:
            if self.actual_partitions > self.spec.partitions:
                out.append(
                    f"{self.spec.name} has {self.actual_partitions} partitions, more than the "
                    f"declared {self.spec.partitions}; Kafka cannot remove partitions"
                )
            elif self.actual_partitions < self.spec.partitions and self.spec.co_partitioned:
                out.append(
                    f"{self.spec.name} has {self.actual_partitions} partitions, declared "
                    f"{self.spec.partitions}: adding partitions to a co-partitioned topic moves "
                    "keys and breaks the join; recreate the topics or change the declaration"
                )
        if self.exists and self.actual_replication not in (None, self.spec.replication_factor):
            out.append(
                f"{self.spec.name} has replication factor {self.actual_replication}, declared "
                f"{self.spec.replication_factor}; change it with kafka-reassign-partitions"
            )
        return out


def diff(spec: TopicSpec, actual: Mapping[str, object] | None) -> TopicDiff:
    """Compare ``spec`` with the cluster's view ``actual`` (None if the topic is absent).

    ``actual`` holds ``partitions`` (int), ``replication_factor`` (int) and ``configs``
    (a mapping of config name to its current value).

    >>> s = TopicSpec("t", 3, 1, {"retention.ms": "10"})
    >>> actual = {"partitions": 3, "replication_factor": 1, "configs": {"retention.ms": "5"}}
    >>> diff(s, actual).config_changes
    {'retention.ms': ('5', '10')}
    >>> diff(s, None).exists
    False
    """
    if actual is None:
        return TopicDiff(spec, exists=False)
    current = actual.get("configs")
    current_cfg: Mapping[str, object] = current if isinstance(current, Mapping) else {}
    changes: dict[str, tuple[str | None, str]] = {}
    for k, v in spec.configs.items():
        have = current_cfg.get(k)
        if have is None or str(have) != v:
            changes[k] = (None if have is None else str(have), v)
    parts = actual.get("partitions")
    repl = actual.get("replication_factor")
    return TopicDiff(
        spec,
        exists=True,
        actual_partitions=parts if isinstance(parts, int) else None,
        actual_replication=repl if isinstance(repl, int) else None,
        config_changes=changes,
    )
