"""The projector: keeps the SQL view (:mod:`driftline.consumers.sqlview`) in step with the
registry, alerts and retrain topics.

It assigns itself every partition of the three topics (no consumer group) and stores
the next offset of each in the same database transaction as the rows a batch wrote,
so a crash neither loses nor repeats a record, and one view is written by one
projector. The topics are the source of truth: :func:`rebuild` drops the tables and
replays the topics from their beginning. What a rebuild cannot restore is what the
topics no longer hold: stage changes the registry's compaction removed (each version
keeps its last record) and alerts and triggers past their retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from prometheus_client import Counter
from sqlalchemy import Connection, Engine, delete

from driftline.consumers import process, sqlview
from driftline.core.errors import CodecError
from driftline.core.wire.codec import default_codec
from driftline.kafka.helpers import Offsets, reader
from driftline.settings import Settings

log = logging.getLogger("driftline.projector")

RECORDS = Counter(
    "driftline_projector_records_total", "Records projected into SQL.", ["topic", "status"]
)
RECORD_OF = {"registry": "ModelVersion", "alerts": "Alert", "retrain": "RetrainTrigger"}


class Projector:
    """Projects the registry, alerts and retrain topics into the SQL view at ``url``."""

    def __init__(self, settings: Settings, url: str | None = None) -> None:
        self.engine: Engine = sqlview.engine(url or settings.sql_url)
        sqlview.ensure_schema(self.engine)
        self.kinds = {settings.topic(k): k for k in RECORD_OF}
        self.consumer = reader(settings, "projector")
        self.offsets = Offsets(settings)
        with self.engine.connect() as conn:
            stored = sqlview.read_offsets(conn)
        assignment = []
        for topic in self.kinds:
            for p in self.offsets.partitions(topic):
                assignment.append(
                    TopicPartition(topic, p, stored.get((topic, p), OFFSET_BEGINNING))
                )
        self.consumer.assign(assignment)
        self.assignment = [(tp.topic, tp.partition) for tp in assignment]
        self.next = {tp: stored.get(tp, 0) for tp in self.assignment}
        """Next offset to project per partition (0 stands for the beginning)."""

    def _apply(self, conn: Connection, msg: Message) -> None:
        topic = msg.topic() or ""
        kind = self.kinds[topic]
        value = msg.value()
        if value is None:
            if kind == "registry":  # tombstone: the version is gone from the registry
                model, _, version = (msg.key() or b"").decode().partition("/")
                t = sqlview.versions
                conn.execute(delete(t).where(t.c.model == model, t.c.version == version))
            RECORDS.labels(kind, "tombstone").inc()
            return
        try:
            rec = default_codec().decode(value, expect=RECORD_OF[kind]).value
        except CodecError as exc:
            log.error("%s[%s]@%s: %s", topic, msg.partition(), msg.offset(), exc)
            RECORDS.labels(kind, "undecodable").inc()
            return
        if kind == "registry":
            sqlview.project_version(conn, rec, msg.partition() or 0, msg.offset() or 0)
        elif kind == "alerts":
            sqlview.project_alert(conn, rec)
        else:
            sqlview.project_trigger(conn, rec)
        RECORDS.labels(kind, "ok").inc()

    def poll_once(self, timeout_s: float = 0.5, batch: int = 500) -> int:
        """Project one batch in one transaction; the number of records it held."""
        msgs = [m for m in self.consumer.consume(batch, timeout_s) if m.error() is None]
        if not msgs:
            return 0
        offsets: dict[tuple[str, int], int] = {}
        with self.engine.begin() as conn:
            for m in msgs:
                self._apply(conn, m)
                offsets[(m.topic() or "", m.partition() or 0)] = (m.offset() or 0) + 1
            sqlview.write_offsets(conn, offsets)
        self.next.update(offsets)
        return len(msgs)

    def catch_up(self, idle_s: float = 5.0) -> int:
        """Project everything the topics hold now; the number of records projected."""
        ends = self.offsets.query(self.assignment, "latest")
        done = 0
        last = time.monotonic()
        while True:
            n = self.poll_once(0.2)
            done += n
            if n:
                last = time.monotonic()
            positions = self.consumer.position([TopicPartition(t, p) for t, p in ends])
            behind = [  # the position also moves past transaction markers
                (pos.topic, pos.partition)
                for pos in positions
                if max(pos.offset, self.next[(pos.topic, pos.partition)])
                < ends[(pos.topic, pos.partition)]
            ]
            if not behind:
                return done
            if time.monotonic() - last > idle_s:
                log.warning("projector stopped short of the end of %s", behind)
                return done

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Project until ``should_stop()``."""
        while not should_stop():
            self.poll_once()

    def close(self) -> None:
        self.consumer.close()
        self.engine.dispose()


def rebuild(settings: Settings, url: str | None = None) -> int:
    """Drop the view at ``url`` and replay the topics into fresh tables; records projected."""
    engine = sqlview.engine(url or settings.sql_url)
    sqlview.drop_all(engine)
    engine.dispose()
    projector = Projector(settings, url)
    try:
        return projector.catch_up()
    finally:
        projector.close()


def main(settings: Settings, metrics_port: int | None = None) -> None:
    """Run the projector until SIGTERM or SIGINT; metrics on ``metrics_port`` (0: none)."""
    port, stopped = process.start(settings, metrics_port)
    projector = Projector(settings)
    log.info("projector writing %s (metrics on :%s)", settings.sql_url, port or "-")
    try:
        projector.run(should_stop=stopped)
    except KeyboardInterrupt:
        pass
    finally:
        projector.close()
