"""What ``driftline status`` reads from the cluster: Driftline's topics with their
partitions and offsets, the consumer groups reading them and their lag, the models
on the registry topic, and the newest alerts. One JSON-ready dict; the text comes
from :func:`driftline.cli_ops_format.status_lines`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from driftline.core.errors import DriftlineError, KafkaError
from driftline.core.wire.codec import default_codec
from driftline.kafka.admin import declared
from driftline.kafka.clients import admin_config
from driftline.settings import Settings

__all__ = ["collect", "lag_rows", "model_rows"]

ALERT = "io.driftline.Alert"


def collect(settings: Settings, n_alerts: int = 5) -> dict[str, Any]:
    """The ``driftline status --json`` document."""
    admin = AdminClient(admin_config(settings))
    try:
        md = admin.list_topics(timeout=15)
    except KafkaException as exc:
        raise KafkaError(f"cannot reach {settings.bootstrap_servers}: {exc}") from exc
    names = [s.name for s in declared(settings)]
    present = {
        n: sorted(md.topics[n].partitions)
        for n in names
        if n in md.topics and md.topics[n].error is None
    }
    ends = _watermarks(settings, present)
    topics = []
    for n in names:
        if n not in present:
            topics.append({"topic": n, "exists": False})
            continue
        marks = ends[n].values()
        topics.append(
            {
                "topic": n,
                "exists": True,
                "partitions": len(present[n]),
                "messages": sum(high - low for low, high in marks),
                "end_offsets": sum(high for _, high in marks),
            }
        )
    models: list[dict[str, Any]] = []
    if settings.topic("registry") in present:
        from driftline.consumers.registry_io import read_registry

        registry = read_registry(settings)
        models = model_rows((m, registry.versions(m)) for m in registry.models())
    alerts_topic = settings.topic("alerts")
    alerts = _last_alerts(settings, ends[alerts_topic], n_alerts) if alerts_topic in ends else []
    return {
        "prefix": settings.topic_prefix,
        "bootstrap_servers": settings.bootstrap_servers,
        "topics": topics,
        "groups": _group_lag(admin, ends),
        "models": models,
        "alerts": alerts,
    }


def _watermarks(
    settings: Settings, partitions: dict[str, list[int]]
) -> dict[str, dict[int, tuple[int, int]]]:
    """(low, high) offsets per topic and partition: two batched admin requests."""
    from driftline.consumers.kafka_io import Offsets

    offsets = Offsets(settings)
    tps = [(t, p) for t, ps in partitions.items() for p in ps]
    lows, highs = offsets.query(tps, "earliest"), offsets.query(tps, "latest")
    out: dict[str, dict[int, tuple[int, int]]] = {t: {} for t in partitions}
    for t, p in tps:
        out[t][p] = (lows[(t, p)], highs[(t, p)])
    return out


def _group_lag(
    admin: AdminClient, ends: dict[str, dict[int, tuple[int, int]]]
) -> list[dict[str, Any]]:
    """Every consumer group with offsets committed on these topics, with its lag."""
    listed = admin.list_consumer_groups(request_timeout=15).result()
    futures = {
        g.group_id: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(g.group_id)], request_timeout=15
        )[g.group_id]
        for g in listed.valid
    }
    rows = []
    for group, fut in sorted(futures.items()):
        try:
            committed: dict[str, dict[int, int]] = {}
            for tp in fut.result().topic_partitions or []:
                if tp.topic in ends:
                    committed.setdefault(tp.topic, {})[tp.partition] = tp.offset
        except KafkaException:  # a group that vanished meanwhile: nothing to report
            continue
        rows += [{"group": group, **r} for r in lag_rows(committed, ends)]
    return rows


def _last_alerts(
    settings: Settings, marks: dict[int, tuple[int, int]], n: int
) -> list[dict[str, Any]]:
    """The ``n`` newest alerts (by creation time) of the alerts topic."""
    from driftline.consumers.kafka_io import consume_to_end, reader  # consumers/ sits above

    if n <= 0 or not any(high > low for low, high in marks.values()):
        return []
    topic = settings.topic("alerts")
    codec = default_codec()
    got: list[dict[str, Any]] = []

    def keep(msg: Any) -> None:
        with contextlib.suppress(DriftlineError):  # not an alert: not ours to show
            got.append(codec.decode(msg.value() or b"", expect=ALERT).value)

    consumer = reader(settings, f"status-{uuid.uuid4().hex[:6]}", **{"enable.partition.eof": True})
    try:
        starts = {p: max(low, high - n) for p, (low, high) in marks.items()}
        consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        consume_to_end(consumer, {(topic, p): high for p, (_, high) in marks.items()}, keep)
    finally:
        consumer.close()
    got.sort(key=lambda a: a["created_at_ms"])
    keys = ("created_at_ms", "model", "version", "severity", "kind", "message")
    return [{k: a.get(k) for k in keys} for a in got[-n:]]


def lag_rows(
    committed: Mapping[str, Mapping[int, int]],
    ends: Mapping[str, Mapping[int, tuple[int, int]]],
) -> list[dict[str, Any]]:
    """Per topic: partitions with a committed offset, their sum, and the lag (end offset
    minus committed; the whole retained log where nothing is committed yet).

    >>> lag_rows({"t": {0: 5, 1: -1001}}, {"t": {0: (0, 9), 1: (2, 4), 2: (0, 0)}})
    [{'topic': 't', 'partitions': 1, 'committed': 5, 'lag': 6}]
    """
    rows = []
    for topic, offsets in sorted(committed.items()):
        marks = ends.get(topic, {})
        lag = 0
        done = 0
        n = 0
        for partition, (low, high) in sorted(marks.items()):
            at = offsets.get(partition, -1)
            if at >= 0:
                n += 1
                done += at
                lag += max(0, high - at)
            else:
                lag += max(0, high - low)
        if n:
            rows.append({"topic": topic, "partitions": n, "committed": done, "lag": lag})
    return rows


VERSION_KEYS = ("version", "stage", "created_at_ms", "stage_changed_at_ms", "stage_reason")


def model_rows(
    registry_models: Iterable[tuple[str, Sequence[Mapping[str, Any]]]],
) -> list[dict[str, Any]]:
    """Per model: champion, challengers (the newest also as ``challenger``) and every
    version (oldest first) with its stage.

    >>> model_rows([("churn", [{"version": "v1", "stage": "champion"}])])[0]["champion"]
    'v1'
    """
    out = []
    for model, versions in registry_models:
        by_stage = {v["stage"]: v["version"] for v in versions}
        out.append(
            {
                "model": model,
                "champion": by_stage.get("champion"),
                "challenger": by_stage.get("challenger"),
                "challengers": [v["version"] for v in versions if v["stage"] == "challenger"],
                "versions": [{k: v.get(k) for k in VERSION_KEYS} for v in versions],
            }
        )
    return out
