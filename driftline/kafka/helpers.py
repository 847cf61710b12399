"""Kafka I/O shared by the trainer, the projector and the CLI: publish records with
delivery confirmed, look up partitions and offsets, read assigned partitions to an end.

Every client configuration comes from :mod:`driftline.kafka.clients`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka import (
    KafkaError as CKafkaError,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from driftline.core.errors import DriftlineError, KafkaError
from driftline.core.lifecycle.registry import record_key
from driftline.core.wire.codec import default_codec
from driftline.core.wire.headers import build as build_headers
from driftline.core.wire.headers import for_confluent
from driftline.kafka.clients import admin_config, consumer_config, producer_config
from driftline.settings import Settings

log = logging.getLogger("driftline.kafka_io")  # the name logs have always shown

T = TypeVar("T")
TIMEOUT_S = 30.0


def headers(record_name: str, event_time_ms: int | None = None) -> list[tuple[str, Any]]:
    """Driftline's headers (:mod:`driftline.core.wire.headers`) of a value of ``record_name``."""
    full = record_name if "." in record_name else f"io.driftline.{record_name}"
    return for_confluent(build_headers(full, event_time_ms, None))


def reader(settings: Settings, role: str, **overrides: Any) -> Consumer:
    """A consumer for ``assign()`` reads: never joins a group, never commits."""
    group = f"{settings.group(role)}-{uuid.uuid4().hex[:8]}"
    conf = consumer_config(settings, role, group, **{"enable.auto.commit": False, **overrides})
    return Consumer(conf)


_TRANSIENT = {"NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART",
              "_TRANSPORT", "_TIMED_OUT", "REQUEST_TIMED_OUT", "NOT_COORDINATOR"}  # fmt: skip


def retrying(what: str, call: Callable[[], T], patience_s: float = 15.0) -> T:
    """``call()``, retried while the cluster reports a transient error (a leader still
    being elected for a new topic, ...); a KafkaError with the code after ``patience_s``."""
    deadline = time.monotonic() + patience_s
    delay = 0.05
    while True:
        try:
            return call()
        except KafkaException as exc:
            err = poll_error(exc)
            if err.code not in _TRANSIENT or time.monotonic() > deadline:
                raise KafkaError(f"{what}: {err}", code=err.code) from exc
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


class Offsets:
    """Partition and offset look-ups through an AdminClient.

    A consumer's own look-ups queue behind its pending fetch (up to ``fetch.wait.max.ms``,
    ~0.5 s each); the admin client asks the leaders directly. Ends are read-committed
    (the last stable offset), which is where a ``read_committed`` consumer stops.
    """

    def __init__(self, settings: Settings) -> None:
        self.admin = AdminClient(admin_config(settings))

    def partitions(self, topic: str) -> list[int]:
        """The partitions of ``topic`` (a KafkaError when it does not exist)."""
        md = retrying(f"metadata of {topic}", lambda: self.admin.list_topics(topic, timeout=10))
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            raise KafkaError(
                f"topic {topic} does not exist", code=None if t is None else str(t.error)
            )
        return sorted(t.partitions)

    def query(self, tps: Iterable[tuple[str, int]], spec: str | int) -> dict[tuple[str, int], int]:
        """Offsets of partitions: ``"earliest"``, ``"latest"``, or the first offset with a
        timestamp at or after ``spec`` ms (the end offset when there is none)."""
        tps = list(tps)
        if not tps:
            return {}
        if spec == "earliest":
            offset_spec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        elif spec == "latest":
            offset_spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        else:
            offset_spec = OffsetSpec.for_timestamp(int(spec))

        def ask() -> dict[tuple[str, int], int]:
            futures = self.admin.list_offsets(
                {TopicPartition(t, p): offset_spec for t, p in tps},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=TIMEOUT_S,
            )
            return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

        found = retrying(f"offsets ({spec}) of {tps[:3]}...", ask)
        if isinstance(spec, int) and any(off < 0 for off in found.values()):
            ends = self.query([tp for tp, off in found.items() if off < 0], "latest")
            found.update(ends)
        return found


class Publisher:
    """Produce Driftline records; :meth:`flush` raises unless every one was delivered."""

    def __init__(self, settings: Settings, role: str) -> None:
        self.settings = settings
        self.producer = Producer(producer_config(settings, role))
        self._errors: list[str] = []

    def _delivered(self, err: Any, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def send(
        self,
        topic: str,
        key: str,
        record_name: str,
        value: Mapping[str, Any],
        event_time_ms: int | None = None,
    ) -> None:
        """Queue ``value`` (encoded as ``record_name``) to the Driftline topic ``topic``."""
        data = default_codec().encode(record_name, value)
        self.producer.produce(
            self.settings.topic(topic),
            key=key.encode(),
            value=data,
            headers=headers(record_name, event_time_ms),
            on_delivery=self._delivered,
        )
        self.producer.poll(0)

    def send_versions(self, records: Iterable[Mapping[str, Any]]) -> None:
        for r in records:
            self.send("registry", record_key(r), "ModelVersion", r, r["stage_changed_at_ms"])

    def close(self) -> None:
        """Flush (see :meth:`flush`) and release the producer."""
        try:
            self.flush()
        finally:
            self.producer.close()

    def flush(self, timeout_s: float = TIMEOUT_S) -> None:
        """Wait for every queued record; KafkaError if any was not delivered."""
        left = self.producer.flush(timeout_s)
        errors, self._errors = self._errors, []
        if left or errors:
            raise KafkaError(f"{left} records undelivered after {timeout_s} s; errors: {errors}")


def take_batch(consumer: Consumer, size: int, wait_s: float) -> list[Message]:
    """Up to ``size`` messages: what the consumer holds, at once; it waits (up to
    ``wait_s``) only when it holds none. (``consume(n, timeout)`` waits for n messages
    or the whole timeout, which added up to ``wait_s`` to the latency of every event
    whenever fewer than n were arriving per timeout.)"""
    msgs = consumer.consume(size, 0)
    if msgs:
        return msgs
    first = consumer.poll(wait_s)
    if first is None:
        return []
    return [first, *consumer.consume(size - 1, 0)]


def consume_to_end(
    consumer: Consumer,
    ends: Mapping[tuple[str, int], int],
    handle: Callable[[Message], None],
    *,
    starts: Mapping[tuple[str, int], int] | None = None,
    idle_s: float = 5.0,
    batch: int = 1_000,
) -> dict[tuple[str, int], int]:
    """Hand every message of the assigned partitions (assigned at ``starts``) to ``handle``
    until each reaches its end offset (exclusive) in ``ends``. Returns the next offset per
    partition. A partition ends early at the end a read_committed reader can see (an
    end-of-partition event, when the consumer has ``enable.partition.eof``): a
    transactional topic's last offset is a commit marker, never delivered as a record.
    A partition that stays short of its end for ``idle_s`` (e.g. behind an open
    transaction) stops there."""
    nxt = {tp: (starts or {}).get(tp, 0) for tp in ends}
    todo = {tp for tp, end in ends.items() if end > nxt[tp]}
    last = time.monotonic()
    while todo:
        msgs = take_batch(consumer, batch, 0.2)
        for m in msgs:
            tp = (m.topic() or "", m.partition() or 0)
            err = m.error()
            if err is not None:
                if err.code() == CKafkaError._PARTITION_EOF:
                    todo.discard(tp)
                else:
                    log.warning("consume error: %s", err)
                continue
            nxt[tp] = (m.offset() or 0) + 1
            handle(m)
        if msgs:
            last = time.monotonic()
        for tp in list(todo):
            if nxt[tp] >= ends[tp]:
                todo.discard(tp)
        if todo:
            positions = consumer.position([TopicPartition(t, p) for t, p in todo])
            for pos in positions:
                if pos.offset >= ends[(pos.topic, pos.partition)]:
                    todo.discard((pos.topic, pos.partition))
        if todo and time.monotonic() - last > idle_s:
            log.warning("stopped short of the end of %s after %.0f s idle", sorted(todo), idle_s)
            break
    return nxt


def poll_error(exc: KafkaException) -> KafkaError:
    """A confluent KafkaException as Driftline's KafkaError, keeping the error code."""
    err = exc.args[0] if exc.args else None
    code = err.name() if err is not None and hasattr(err, "name") else None
    return KafkaError(str(err if err is not None else exc), code=code)


def keep_alive_until(
    consumer: Consumer, future: Future[T], meanwhile: Callable[[], object] | None = None
) -> T:
    """``future.result()``, polling ``consumer`` meanwhile with its partitions paused, so a
    long task neither exceeds ``max.poll.interval.ms`` nor reads ahead. A message from a
    partition a rebalance assigned meanwhile is sought back and paused, not lost.
    ``meanwhile()`` (short) is called between polls."""
    consumer.pause(consumer.assignment())
    try:
        while not future.done():
            if meanwhile is not None:
                meanwhile()
            msg = consumer.poll(0.2 if meanwhile is None else 0.01)
            if msg is not None and msg.error() is None:
                tp = TopicPartition(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
                consumer.seek(tp)
                consumer.pause([tp])
        return future.result()
    finally:
        consumer.resume(consumer.assignment())


def read_records(
    settings: Settings, topic: str, expect: str, keep: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The decoded ``expect`` records of Driftline topic ``topic`` (features, alerts, ...)
    from its oldest kept record to its end now, those that ``keep``; undecodable ones are
    logged and skipped. Reads without a consumer group, commits nothing."""
    name = settings.topic(topic)
    offsets = Offsets(settings)
    ends = offsets.query([(name, p) for p in offsets.partitions(name)], "latest")
    starts = offsets.query(list(ends), "earliest")
    consumer = reader(settings, f"read-{topic}", **{"enable.partition.eof": True})
    consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in ends])
    codec = default_codec()
    out: list[dict[str, Any]] = []

    def handle(msg: Message) -> None:
        raw = msg.value()
        if raw is None:
            return
        try:
            value = codec.decode(raw, expect=expect).value
        except DriftlineError as exc:
            log.warning("%s offset %s: %s", name, msg.offset(), exc)
            return
        if keep(value):
            out.append(value)

    try:
        consume_to_end(consumer, ends, handle, starts=starts)
    finally:
        consumer.close()
    return out


def events_since(settings: Settings, since_ms: int, topic: str = "features") -> int:
    """Records that reached Driftline topic ``topic`` (every model's) from ``since_ms`` to
    now: how far the stream moved while something took its time, in the stream's own
    unit (a retrain's seconds are events missed at the rate of the day)."""
    offsets = Offsets(settings)
    name = settings.topic(topic)
    tps = [(name, p) for p in offsets.partitions(name)]
    at, end = offsets.query(tps, since_ms), offsets.query(tps, "latest")
    return sum(max(0, end[tp] - at[tp]) for tp in tps)
