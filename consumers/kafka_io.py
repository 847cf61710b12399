"""Kafka I/O shared by the trainer, the projector and the CLI: publish records with
delivery confirmed, follow the registry topic, read ranges of the outcomes topic.

Every client configuration comes from :mod:`driftline.kafka.clients`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from driftline.core.codec import default_codec
from driftline.core.errors import CodecError, KafkaError
from driftline.core.registry import Registry, StageChange, registry_key
from driftline.kafka.clients import consumer_config, producer_config
from driftline.settings import Settings

log = logging.getLogger("driftline.kafka_io")

T = TypeVar("T")
CONTENT_TYPE = b"application/vnd.apache.avro.single-object"
TIMEOUT_S = 30.0


def headers(
    record_name: str, event_time_ms: int | None = None
) -> list[tuple[str, str | bytes | None]]:
    """Headers an operator reads without decoding: content type, schema, event time."""
    out: list[tuple[str, str | bytes | None]] = [
        ("content-type", CONTENT_TYPE),
        ("schema", f"io.driftline.{record_name}".encode()),
    ]
    if event_time_ms is not None:
        out.append(("event-time-ms", str(event_time_ms).encode()))
    return out


def reader(settings: Settings, role: str, **overrides: Any) -> Consumer:
    """A consumer for ``assign()`` reads: never joins a group, never commits."""
    group = f"{settings.client_id}-{role}-{uuid.uuid4().hex[:8]}"
    conf = consumer_config(settings, role, group, **{"enable.auto.commit": False, **overrides})
    return Consumer(conf)


def partitions(consumer: Consumer, topic: str) -> list[int]:
    """The partitions of ``topic`` (a KafkaError when it does not exist)."""
    md = consumer.list_topics(topic, timeout=TIMEOUT_S)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise KafkaError(f"topic {topic} does not exist", code=None if t is None else str(t.error))
    return sorted(t.partitions)


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


def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """(low, high) offsets of one partition, asked of its leader."""
    low, high = retrying(
        f"watermarks of {topic}[{partition}]",
        lambda: consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=TIMEOUT_S, cached=False
        ),
    )
    return int(low), int(high)


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
            key = registry_key(r["model"], r["version"])
            self.send("registry", key, "ModelVersion", r, r["stage_changed_at_ms"])

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


def consume_to_end(
    consumer: Consumer,
    ends: Mapping[tuple[str, int], int],
    handle: Callable[[Message], None],
    *,
    idle_s: float = 5.0,
    batch: int = 1_000,
) -> dict[tuple[str, int], int]:
    """Hand every message of the assigned partitions to ``handle`` until each reaches its end
    offset (exclusive) in ``ends``. Returns the next offset per partition; a partition that
    stays short of its end for ``idle_s`` (e.g. behind an open transaction) stops there."""
    nxt = {tp: -1 for tp in ends}
    todo = {tp for tp, end in ends.items() if end > 0}
    last = time.monotonic()
    while todo:
        msgs = consumer.consume(batch, 0.2)
        for m in msgs:
            if m.error() is not None:
                log.warning("consume error: %s", m.error())
                continue
            tp = (m.topic() or "", m.partition() or 0)
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


class RegistryFollower:
    """Follows the registry topic from its beginning into a :class:`Registry`."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.topic = settings.topic("registry")
        self.registry = registry if registry is not None else Registry()
        self.consumer = reader(settings, "registry")
        self._parts = partitions(self.consumer, self.topic)
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in self._parts])
        self.position = dict.fromkeys(((self.topic, p) for p in self._parts), 0)

    def _apply(self, msg: Message, changes: list[StageChange]) -> None:
        value = msg.value()
        if value is None:  # a tombstone: model/version deleted
            model, _, version = (msg.key() or b"").decode().partition("/")
            self.registry.delete(model, version)
            return
        try:
            record = default_codec().decode(value, expect="ModelVersion").value
        except CodecError as exc:
            log.error("registry offset %s: %s", msg.offset(), exc)
            return
        change = self.registry.apply(record)
        if change is not None:
            changes.append(change)

    def catch_up(self, idle_s: float = 5.0) -> list[StageChange]:
        """Apply every record up to the registry's current end; the changes they made."""
        ends = {(self.topic, p): watermarks(self.consumer, self.topic, p)[1] for p in self._parts}
        todo = {tp: end for tp, end in ends.items() if end > self.position[tp]}
        changes: list[StageChange] = []
        if todo:
            reached = consume_to_end(
                self.consumer, todo, lambda m: self._apply(m, changes), idle_s=idle_s
            )
            for tp, off in reached.items():
                self.position[tp] = max(self.position[tp], off)
        return changes

    def close(self) -> None:
        self.consumer.close()


def read_registry(settings: Settings) -> Registry:
    """The registry as the topic holds it now."""
    follower = RegistryFollower(settings)
    try:
        follower.catch_up()
        return follower.registry
    finally:
        follower.close()


@dataclass
class OutcomeRead:
    """Outcomes of one model read from the outcomes topic, and what was read for them."""

    rows: list[dict[str, Any]]
    ranges: list[dict[str, Any]]
    """Per partition, the offsets of the rows kept: [first, last + 1)."""
    messages: int = 0
    undecodable: int = 0
    seconds: float = 0.0
    starts: dict[int, int] = field(default_factory=dict)


class OutcomeReader:
    """Reads a model's outcomes for a trigger's window with ``assign()`` (no group)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("outcomes")
        self.consumer = reader(settings, "outcomes", **{"fetch.max.bytes": 52_428_800})

    def _starts(self, parts: list[int], start_ms: int | None) -> dict[int, int]:
        if start_ms is None:
            return {p: watermarks(self.consumer, self.topic, p)[0] for p in parts}
        found = retrying(
            f"offsets of {self.topic} at {start_ms}",
            lambda: self.consumer.offsets_for_times(
                [TopicPartition(self.topic, p, start_ms) for p in parts], timeout=TIMEOUT_S
            ),
        )
        return {tp.partition: tp.offset for tp in found}

    def _scan(self, model: str, starts: Mapping[int, int], ends: Mapping[int, int]) -> OutcomeRead:
        rows: list[dict[str, Any]] = []
        got = OutcomeRead(rows, [], starts=dict(starts))
        codec = default_codec()

        def handle(m: Message) -> None:
            got.messages += 1
            try:
                value = codec.decode(m.value() or b"", expect="Outcome").value
            except CodecError:
                got.undecodable += 1
                return
            if value["model"] == model:
                value.update(topic=m.topic(), partition=m.partition(), offset=m.offset())
                rows.append(value)

        todo = {p: e for p, e in ends.items() if 0 <= starts[p] < e}
        self.consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in todo])
        try:
            consume_to_end(self.consumer, {(self.topic, p): e for p, e in todo.items()}, handle)
        finally:
            self.consumer.unassign()
        return got

    def read(
        self,
        model: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        last_n: int | None = None,
    ) -> OutcomeRead:
        """Outcomes of ``model`` with event time in [start_ms, end_ms), at most the newest
        ``last_n`` of them (by event time). The end is each partition's end when called.

        Without ``start_ms``, ``last_n`` reads back from the end, widening the look-back
        until it holds ``last_n`` rows of the model or reaches the beginning.
        """
        t0 = time.monotonic()
        parts = partitions(self.consumer, self.topic)
        ends = {p: watermarks(self.consumer, self.topic, p)[1] for p in parts}
        base = self._starts(parts, start_ms)
        base = {p: (ends[p] if off < 0 else off) for p, off in base.items()}
        lookback = last_n if last_n is not None and start_ms is None else None
        while True:
            starts = dict(base)
            if lookback is not None:
                starts = {p: max(base[p], ends[p] - lookback) for p in parts}
            got = self._scan(model, starts, ends)
            in_window = [
                r
                for r in got.rows
                if (start_ms is None or r["event_time_ms"] >= start_ms)
                and (end_ms is None or r["event_time_ms"] < end_ms)
            ]
            if lookback is None or len(in_window) >= lookback or starts == base:
                break
            lookback *= 4
        got.rows = _newest(in_window, last_n)
        got.ranges = list(_ranges(self.topic, got.rows))
        got.seconds = time.monotonic() - t0
        return got

    def close(self) -> None:
        self.consumer.close()


def _newest(rows: list[dict[str, Any]], last_n: int | None) -> list[dict[str, Any]]:
    """The rows in event-time order (ties by partition and offset), at most the last N."""
    rows = sorted(rows, key=lambda r: (r["event_time_ms"], r["partition"], r["offset"]))
    return rows if last_n is None else rows[-last_n:] if last_n > 0 else []


def _ranges(topic: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    bounds: dict[int, list[int]] = {}
    for r in rows:
        b = bounds.setdefault(r["partition"], [r["offset"], r["offset"]])
        b[0], b[1] = min(b[0], r["offset"]), max(b[1], r["offset"])
    for p in sorted(bounds):
        yield {"topic": topic, "partition": p, "start_offset": bounds[p][0],
               "end_offset": bounds[p][1] + 1}  # fmt: skip


def poll_error(exc: KafkaException) -> KafkaError:
    """A confluent KafkaException as Driftline's KafkaError, keeping the error code."""
    err = exc.args[0] if exc.args else None
    code = err.name() if err is not None and hasattr(err, "name") else None
    return KafkaError(str(err if err is not None else exc), code=code)
