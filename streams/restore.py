"""The status page's last known state, read back from the topics when a worker starts.

A restarted worker's memory (:class:`~driftline.streams.monitors.Recent`) is empty, while
the metrics topic holds every snapshot the monitors published, and the alerts and retrain
topics every alert and trigger. At start-up the worker reads the tail of each (the last
:data:`TAIL` records of every partition: no consumer group, nothing committed), keeps the
newest snapshot per model, version, segment and window (and the charted history those
records give) and the newest alerts and triggers, so the status page shows the last known
state at once, each restored snapshot marked until a fresh one replaces it. A record that
does not decode is skipped and counted; a failed read is logged and leaves the page to
fill as the monitors emit, never stopping the worker.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from driftline.core.errors import DriftlineError
from driftline.core.wire.codec import Codec
from driftline.kafka.helpers import Offsets, consume_to_end, reader
from driftline.settings import Settings
from driftline.streams.monitors import RECORD, Recent

log = logging.getLogger(__name__)

TAIL = {"metrics": 20_000, "alerts": 50, "retrain": 50}
"""Records read back per partition of each topic. 20,000 snapshots cover hours of ticks of
a model with a few versions and segments (a tick emits two per version and segment)."""


@dataclass
class Tail:
    """What was read back from one topic."""

    values: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


def read_tail(settings: Settings, codec: Codec, suffix: str, n: int) -> Tail:
    """The decoded values of the last ``n`` records of each partition of the ``suffix``
    topic (``metrics``, ``alerts`` or ``retrain``)."""
    topic, record = settings.topic(suffix), RECORD[suffix]
    offsets = Offsets(settings)
    tps = [(topic, p) for p in offsets.partitions(topic)]
    lows, highs = offsets.query(tps, "earliest"), offsets.query(tps, "latest")
    starts = {tp: max(lows[tp], highs[tp] - n) for tp in tps}
    ends = {tp: highs[tp] for tp in tps if highs[tp] > starts[tp]}
    got = Tail()
    if not ends:
        return got

    def keep(msg: Any) -> None:
        try:
            got.values.append(codec.decode(msg.value() or b"", expect=record).value)
        except DriftlineError:
            got.skipped += 1

    consumer = reader(settings, f"restore-{suffix}", **{"enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in ends])
        consume_to_end(consumer, ends, keep, starts=starts)
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
    return got


def read_last_known(settings: Settings, codec: Codec) -> dict[str, Tail]:
    """The tails of the metrics, alerts and retrain topics (blocking: run it off the
    event loop)."""
    return {suffix: read_tail(settings, codec, suffix, n) for suffix, n in TAIL.items()}


def restore(recent: Recent, tails: dict[str, Tail], at_ms: int | None = None) -> int:
    """Fold what :func:`read_last_known` read into ``recent`` (on the event loop);
    returns the snapshot keys restored."""
    at = int(time.time() * 1000) if at_ms is None else at_ms
    empty = Tail()
    n = recent.restore(tails.get("metrics", empty).values, tails.get("alerts", empty).values,
                       tails.get("retrain", empty).values, at_ms=at)  # fmt: skip
    skipped = {k: t.skipped for k, t in tails.items() if t.skipped}
    note = f"; undecodable, skipped: {skipped}" if skipped else ""
    log.info("status page restored from the topics: %d snapshots (%d records read), %d alerts, "
             "%d triggers%s", n, len(tails.get("metrics", empty).values), len(recent.alerts),
             len(recent.triggers), note)  # fmt: skip
    return n
