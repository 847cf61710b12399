"""Topics as code: make the cluster match :mod:`driftline.core.wire.topics`, idempotently."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from driftline.core.errors import KafkaError
from driftline.core.wire.topics import TopicDiff, TopicSpec, declare, diff
from driftline.kafka.clients import admin_config
from driftline.settings import Settings

TIMEOUT_S = 30.0


def declared(settings: Settings) -> list[TopicSpec]:
    """The topics these settings declare."""
    return declare(settings.topic_prefix, settings.data_partitions, settings.replication_factor)


def _wrap(exc: KafkaException, what: str) -> KafkaError:
    err = exc.args[0] if exc.args else None
    if err is None or not hasattr(err, "name"):
        return KafkaError(f"{what}: {exc}")
    return KafkaError(f"{what}: {err.str()}", code=err.name())


def actual_state(
    admin: AdminClient, specs: Iterable[TopicSpec]
) -> dict[str, dict[str, object] | None]:
    """Partitions, replication factor and configs of each spec's topic (None if absent)."""
    specs = list(specs)
    try:
        md = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise _wrap(exc, "cannot read cluster metadata") from exc
    state: dict[str, dict[str, object] | None] = {}
    present = []
    for s in specs:
        t = md.topics.get(s.name)
        if t is None or t.error is not None:
            state[s.name] = None
            continue
        parts = t.partitions
        repl = len(next(iter(parts.values())).replicas) if parts else 0
        state[s.name] = {"partitions": len(parts), "replication_factor": repl, "configs": {}}
        present.append(s.name)
    if present:
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in present]
        for res, fut in admin.describe_configs(resources).items():
            try:
                entries = fut.result(timeout=TIMEOUT_S)
            except KafkaException as exc:
                raise _wrap(exc, f"cannot describe configs of {res.name}") from exc
            topic_state = state[res.name]
            assert topic_state is not None
            topic_state["configs"] = {k: e.value for k, e in entries.items()}
    return state


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did to one topic."""

    name: str
    action: str  # created, altered, unchanged, refused
    detail: str = ""


def apply(settings: Settings, admin: AdminClient | None = None) -> list[ApplyResult]:
    """Create missing topics and bring configs of existing ones in line; idempotent.

    Partition counts are never changed silently: a co-partitioned topic with the wrong
    count is refused with a reason, since adding partitions moves keys.
    """
    admin = admin or AdminClient(admin_config(settings))
    specs = declared(settings)
    diffs = [diff(s, a) for s, a in zip(specs, actual_state(admin, specs).values(), strict=True)]
    results: list[ApplyResult] = []
    to_create = [d.spec for d in diffs if not d.exists]
    if to_create:
        futures = admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.configs))
                for s in to_create
            ],
            operation_timeout=TIMEOUT_S,
        )
        for name, fut in futures.items():
            try:
                fut.result(timeout=TIMEOUT_S)
                results.append(ApplyResult(name, "created"))
            except KafkaException as exc:
                err = exc.args[0]
                if getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    results.append(ApplyResult(name, "unchanged", "created concurrently"))
                else:
                    raise _wrap(exc, f"cannot create {name}") from exc
    for d in diffs:
        if not d.exists:
            continue
        problems = d.problems()
        if problems:
            results.append(ApplyResult(d.spec.name, "refused", "; ".join(problems)))
            continue
        if d.actual_partitions is not None and d.actual_partitions < d.spec.partitions:
            _add_partitions(admin, d)
        if d.config_changes:
            _alter_configs(admin, d)
            changed = ", ".join(
                f"{k}: {old} -> {new}" for k, (old, new) in d.config_changes.items()
            )
            results.append(ApplyResult(d.spec.name, "altered", changed))
        elif d.actual_partitions is not None and d.actual_partitions < d.spec.partitions:
            results.append(
                ApplyResult(d.spec.name, "altered", f"partitions -> {d.spec.partitions}")
            )
        else:
            results.append(ApplyResult(d.spec.name, "unchanged"))
    order = {s.name: i for i, s in enumerate(specs)}
    return sorted(results, key=lambda r: order[r.name])


def _add_partitions(admin: AdminClient, d: TopicDiff) -> None:
    from confluent_kafka.admin import NewPartitions

    fut = admin.create_partitions([NewPartitions(d.spec.name, d.spec.partitions)])[d.spec.name]
    try:
        fut.result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise _wrap(exc, f"cannot add partitions to {d.spec.name}") from exc


def _alter_configs(admin: AdminClient, d: TopicDiff) -> None:
    res = ConfigResource(
        ResourceType.TOPIC,
        d.spec.name,
        incremental_configs=[
            ConfigEntry(k, new, incremental_operation=AlterConfigOpType.SET)
            for k, (_old, new) in d.config_changes.items()
        ],
    )
    for _r, fut in admin.incremental_alter_configs([res]).items():
        try:
            fut.result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            raise _wrap(exc, f"cannot alter configs of {d.spec.name}") from exc


def describe(settings: Settings, admin: AdminClient | None = None) -> list[TopicDiff]:
    """Declared against actual, one :class:`TopicDiff` per declared topic."""
    admin = admin or AdminClient(admin_config(settings))
    specs = declared(settings)
    return [diff(s, a) for s, a in zip(specs, actual_state(admin, specs).values(), strict=True)]
