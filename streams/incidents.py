"""The worker's side of incidents (driftline.core.watch.incidents): rebuilding the open ones
from the alerts topic at start-up, and the Prometheus gauge Alertmanager is fed from.

**Restart.** A worker that starts reads the alerts topic from its beginning to its end
(:func:`read_alerts`) and gives every model's monitor the incidents still open
(:func:`~driftline.core.watch.incidents.open_incidents`), before the join feeds the
monitor anything: an incident still firing is not published (paged) again, and it
resolves like any other once the evidence says so.

**Gauge.** ``driftline_incident_firing{model, cause, severity, version}`` is 1 while an
incident is firing (``version``: the one it opened on, so the series is stable for its
life; ``severity`` changes only when it escalates) and 0 once it resolved, for
``RESOLVED_KEEP_S``, then the series is removed. The shipped rule
(infra/prometheus/rules/incidents.yml) alerts on ``last_over_time(...[5m]) == 1``: a
resolution is an explicit 0 sample and ends the alert at the next evaluation, while a
worker restart (no sample at all for a while) does not.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from driftline.core.errors import CodecError
from driftline.core.watch.incidents import FIRING, RESOLVED
from driftline.core.wire.codec import Codec
from driftline.kafka.clients import consumer_config
from driftline.settings import Settings
from driftline.streams import telemetry as m

log = logging.getLogger(__name__)

RESOLVED_KEEP_S = 600.0
"""How long a resolved incident's series stays at 0 before it is removed: longer than
the rule's 5 minute look-back, so Prometheus reads the 0."""

Labels = tuple[str, str, str, str]


def read_alerts(
    settings: Settings, codec: Codec, group_id: str, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Every Alert on the alerts topic up to its end at the call, in order within each
    partition (the key is the model: a model's records are in one partition). Records
    that do not decode as an Alert are skipped. Assign only: ``group_id`` never commits."""
    topic = settings.topic("alerts")
    conf = consumer_config(settings, "incidents", group_id, **{
        "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    consumer = Consumer(conf)
    out: list[dict[str, Any]] = []
    skipped = 0
    try:
        meta = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if meta is None or meta.error is not None:
            log.warning("incidents: no topic %s to rebuild incidents from", topic)
            return out
        ends: dict[int, int] = {}
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        todo = set(ends)
        deadline = time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(1_000, 0.2):
                err = msg.error()
                p = msg.partition() or 0
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(p)
                    continue
                if (msg.offset() or 0) + 1 >= ends.get(p, 0):
                    todo.discard(p)
                try:
                    out.append(codec.decode(msg.value() or b"", expect="Alert").value)
                except CodecError:
                    skipped += 1
        if todo:
            log.warning("incidents: stopped short of the end of %s partitions %s after %.0f s",
                        topic, sorted(todo), timeout_s)  # fmt: skip
    finally:
        consumer.close()
    if skipped:
        log.warning("incidents: skipped %d records of %s that are no Alert", skipped, topic)
    return out


class IncidentGauge:
    """``driftline_incident_firing``, kept from the incident records a worker publishes
    or restores (see the module docstring)."""

    def __init__(self, keep_s: float = RESOLVED_KEEP_S) -> None:
        self.keep_s = keep_s
        self.firing: dict[str, Labels] = {}
        """Labels of each firing incident, by incident key."""
        self.resolved: dict[Labels, float] = {}
        """Series at 0, with when they were set (monotonic seconds)."""

    @staticmethod
    def labels(record: Mapping[str, Any]) -> Labels:
        versions = record.get("versions") or [record.get("version") or ""]
        return (record["model"], record["kind"], record["severity"], versions[0] or "")

    def update(self, record: Mapping[str, Any], now_s: float | None = None) -> None:
        """Apply one incident record (notices are ignored)."""
        now = time.monotonic() if now_s is None else now_s
        key, state = record.get("incident_key"), record.get("state")
        if key is None or state not in (FIRING, RESOLVED):
            return
        old = self.firing.pop(key, None)
        if old is not None:
            m.INCIDENT_FIRING.labels(*old).set(0)
            self.resolved[old] = now
        if state == FIRING:
            labels = self.labels(record)
            m.INCIDENT_FIRING.labels(*labels).set(1)
            self.firing[key] = labels
            self.resolved.pop(labels, None)
        self.prune(now)

    def prune(self, now_s: float | None = None) -> None:
        """Remove the series of incidents resolved more than ``keep_s`` ago."""
        now = time.monotonic() if now_s is None else now_s
        for labels, at in list(self.resolved.items()):
            if now - at > self.keep_s:
                del self.resolved[labels]
                with contextlib.suppress(KeyError):  # removed meanwhile
                    m.INCIDENT_FIRING.remove(*labels)
