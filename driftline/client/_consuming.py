"""The consuming core the sync and asyncio subscribers share.

All librdkafka calls (``consume``, the rebalance callbacks, commits, ``close``) are made
by whichever thread calls :meth:`Reader.fetch`, :meth:`Reader.commit` and
:meth:`Reader.close`: the caller's thread for :class:`Subscriber`, one executor thread
for :class:`AsyncSubscriber`. :meth:`Reader.next_record` only reads the local buffer.

Positions: a record handed out is *held* until the caller asks for the next one (or
closes cleanly); then it counts as processed. Records skipped (filtered by model,
tombstones, undecodable with ``skip_and_count``) count as processed at once.
Processed positions are stored for librdkafka's auto-commit (``commit="auto"``) or
kept for :meth:`Reader.commit` (``commit="manual"``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as _RdKafkaError

from driftline.client._outgoing import wrap
from driftline.client.errors import UndecodableMessageError
from driftline.client.received import (
    CommitMode,
    OnError,
    Received,
    Start,
    check_options,
    start_ms,
)
from driftline.client.records import Record
from driftline.core.errors import CodecError, ConfigError, KafkaError
from driftline.core.wire import headers
from driftline.core.wire.codec import Codec, default_codec
from driftline.kafka.clients import consumer_config
from driftline.settings import Settings

__all__ = ["Reader", "Subscription"]

R = TypeVar("R", bound=Record)

log = logging.getLogger("driftline.client")
TIMEOUT_S = 30.0


class Reader(Generic[R]):
    """A consumer-group member over one topic, decoding into ``record_type``."""

    def __init__(
        self,
        record_type: type[R],
        settings: Settings | None,
        *,
        app: str,
        topic: str | None,
        model: str | Iterable[str] | None,
        group_id: str | None,
        start: Start,
        commit: CommitMode,
        on_error: OnError,
        codec: Codec | None,
        config: Mapping[str, Any] | None,
        batch_size: int,
    ) -> None:
        check_options(record_type, app, commit, on_error, batch_size)
        settings = settings if settings is not None else Settings()
        self.record_type = record_type
        self.topic = settings.topic(topic if topic is not None else record_type.TOPIC)
        self.group_id = group_id if group_id else f"{app}-{self.topic}"
        self.models = (
            None if model is None else frozenset([model] if isinstance(model, str) else model)
        )
        self.start = start
        self._start_ms = start_ms(start)
        self.commit_mode = commit
        self.on_error = on_error
        self.codec = codec if codec is not None else default_codec()
        self.batch_size = batch_size
        self.skipped: Counter[str] = Counter()
        self.assigned: frozenset[int] = frozenset()
        self._buffer: deque[Message] = deque()
        self._held: Message | None = None
        self._done: dict[int, int] = {}  # partition -> next offset, processed, not yet stored
        self._lock = threading.RLock()
        self._closed = False
        conf = consumer_config(
            settings,
            f"client-{app}",
            self.group_id,
            **{
                "enable.auto.commit": commit == "auto",
                "enable.auto.offset.store": False,
                "auto.offset.reset": "latest" if start == "latest" else "earliest",
                "enable.partition.eof": False,
                **dict(config or {}),
            },
        )
        if "logger" not in (config or {}):  # an application keeps librdkafka's own logging
            del conf["logger"]
        try:
            self.consumer = Consumer(conf)
            self.consumer.subscribe(
                [self.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        except KafkaException as exc:
            raise wrap(exc, f"cannot subscribe to {self.topic}") from exc

    # -- rebalance callbacks (run inside consume(), on the fetching thread) ------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            committed = consumer.committed(partitions, timeout=TIMEOUT_S)
            fresh = [tp for tp in committed if tp.offset < 0]
            if fresh:
                self._place(consumer, fresh)
            consumer.assign(committed)
        except KafkaException as exc:
            raise wrap(exc, f"cannot position the consumer on {self.topic}") from exc
        self.assigned = frozenset(tp.partition for tp in committed)  # eager: the whole set

    def _place(self, consumer: Consumer, fresh: list[TopicPartition]) -> None:
        """Set the start offset of partitions where the group has no committed offset.

        ``latest`` and timestamps are resolved to offsets now, so a record produced
        after the assignment is never skipped."""
        if self.start == "earliest":
            for tp in fresh:
                tp.offset = OFFSET_BEGINNING
            return
        found: dict[int, int] = {}
        if self._start_ms is not None:
            query = [TopicPartition(self.topic, tp.partition, self._start_ms) for tp in fresh]
            for tp in consumer.offsets_for_times(query, timeout=TIMEOUT_S):
                if tp.offset >= 0:
                    found[tp.partition] = tp.offset
        for tp in fresh:
            if tp.partition in found:
                tp.offset = found[tp.partition]
            else:  # latest, or no record at or after the timestamp
                tp.offset = _end_offset(consumer, tp)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        with self._lock:
            self._forget(gone, keep_done=self.commit_mode == "auto")
            if self.commit_mode == "auto":
                self._store()
                try:  # hand the processed positions over before another member reads on
                    consumer.commit(asynchronous=False)
                except KafkaException as exc:
                    if exc.args[0].code() != _RdKafkaError._NO_OFFSET:
                        log.warning("commit on revoke of %s failed: %s", self.topic, exc)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._forget({tp.partition for tp in partitions}, keep_done=False)

    def _forget(self, gone: set[int], keep_done: bool) -> None:
        self.assigned = self.assigned - gone
        self._buffer = deque(m for m in self._buffer if m.partition() not in gone)
        if self._held is not None and self._held.partition() in gone:
            self._held = None  # its processing cannot be recorded any more
        if not keep_done:
            for p in gone:
                self._done.pop(p, None)

    # -- the fetching thread ---------------------------------------------------------

    def fetch(self, timeout: float) -> None:
        """Store processed positions, then read up to ``batch_size`` messages."""
        if self._closed:
            raise KafkaError(f"the subscriber of {self.topic} is closed")
        with self._lock:
            self._store()
        try:
            msgs = self.consumer.consume(self.batch_size, timeout)
        except KafkaException as exc:
            raise wrap(exc, f"cannot read {self.topic}") from exc
        failed = None
        with self._lock:
            for m in msgs:
                err = m.error()
                if err is None:
                    self._buffer.append(m)
                elif err.code() != _RdKafkaError._PARTITION_EOF and failed is None:
                    failed = KafkaError(f"cannot read {self.topic}: {err.str()}", err.name())
        if failed is not None:
            raise failed

    def _store(self) -> None:
        if self.commit_mode != "auto" or not self._done:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in self._done.items()]
        self._done.clear()
        try:
            self.consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:  # a partition revoked meanwhile: nothing to store
            log.debug("store_offsets on %s: %s", self.topic, exc)

    def commit(self) -> None:
        """Commit every record handed out so far, the one in hand included."""
        if self.commit_mode == "none":
            raise ConfigError("commit() needs commit='manual' or 'auto'")
        with self._lock:
            offsets = dict(self._done)
            if self._held is not None:
                partition, offset = _position(self._held)
                offsets[partition] = offset + 1
            if not offsets:
                return
            tps = [TopicPartition(self.topic, p, o) for p, o in offsets.items()]
        try:
            self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            raise wrap(exc, f"cannot commit on {self.topic}") from exc
        with self._lock:
            for p, o in offsets.items():
                if self._done.get(p) == o:
                    del self._done[p]

    def close(self, processed: bool) -> None:
        """Leave the group; the record in hand counts as processed if ``processed``."""
        if self._closed:
            return
        with self._lock:
            if processed:
                self._advance()
            self._held = None
            self._store()
            self._buffer.clear()
        self._closed = True
        try:
            self.consumer.close()  # commits what was stored (commit="auto")
        except KafkaException as exc:
            raise wrap(exc, f"cannot close the consumer of {self.topic}") from exc

    # -- the caller's thread -----------------------------------------------------------

    def _advance(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._mark(held)

    def _mark(self, m: Message) -> None:
        if self.commit_mode != "none":
            partition, offset = _position(m)
            self._done[partition] = offset + 1

    def has_buffered(self) -> bool:
        return bool(self._buffer)

    def next_record(self) -> Received[R] | None:
        """The next buffered record for the caller, or None when the buffer is empty.

        Raises UndecodableMessageError (``on_error="raise"``); the bad message is then
        held like a record, so iterating on moves past it."""
        with self._lock:
            self._advance()
            while self._buffer:
                m = self._buffer.popleft()
                value = m.value()
                if value is None:
                    self.skipped["tombstone"] += 1
                    self._mark(m)
                    continue
                try:
                    decoded = self.codec.decode(value, expect=self.record_type.SCHEMA)
                    record = self.record_type.from_dict(decoded.value)
                except CodecError as exc:
                    partition, offset = _position(m)
                    err = UndecodableMessageError(
                        exc,
                        topic=self.topic,
                        partition=partition,
                        offset=offset,
                        key=m.key(),
                        value=value,
                    )
                    if self.on_error == "raise":
                        self._held = m
                        raise err from exc
                    self.skipped[exc.reason] += 1
                    log.warning("skipped an undecodable message: %s", err)
                    self._mark(m)
                    continue
                if self.models is not None and record.model not in self.models:
                    self._mark(m)
                    continue
                self._held = m
                return self._received(m, record, decoded.writer_version)
            return None

    def _received(self, m: Message, record: R, writer_version: int) -> Received[R]:
        ts_type, ts = m.timestamp()
        key = m.key()
        partition, offset = _position(m)
        return Received(
            record=record,
            topic=self.topic,
            partition=partition,
            offset=offset,
            timestamp_ms=ts if ts_type else None,
            key=None if key is None else key.decode("utf-8", errors="replace"),
            headers=headers.parse(headers.header_list(m.headers())),
            writer_version=writer_version,
        )


def _end_offset(consumer: Consumer, tp: TopicPartition) -> int:
    """The partition's high watermark, retrying while a new topic elects its leader."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S)[1]
        except KafkaException as exc:
            err = exc.args[0]
            if not err.retriable() or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _position(m: Message) -> tuple[int, int]:
    """Partition and offset of a consumed message (never None once consumed)."""
    partition, offset = m.partition(), m.offset()
    assert partition is not None and offset is not None
    return partition, offset


FETCH_S = 0.5
"""The longest single wait in librdkafka, so that timeouts stay accurate."""


class Subscription(Generic[R]):
    """What :class:`Subscriber` and :class:`AsyncSubscriber` share: the options (see
    :mod:`driftline.client.subscriber`), the :class:`Reader` they drive, its state, and
    the waits of ``poll`` and ``wait_assigned``; the subclasses only fetch, each on its
    own kind of thread."""

    def __init__(
        self,
        record_type: type[R],
        settings: Settings | None = None,
        *,
        app: str,
        topic: str | None = None,
        model: str | Iterable[str] | None = None,
        group_id: str | None = None,
        start: Start = "latest",
        commit: CommitMode = "auto",
        on_error: OnError = "raise",
        idle_timeout: float | None = None,
        codec: Codec | None = None,
        config: Mapping[str, Any] | None = None,
        batch_size: int = 500,
    ) -> None:
        self._reader: Reader[R] = Reader(
            record_type,
            settings,
            app=app,
            topic=topic,
            model=model,
            group_id=group_id,
            start=start,
            commit=commit,
            on_error=on_error,
            codec=codec,
            config=config,
            batch_size=batch_size,
        )
        self.idle_timeout = idle_timeout

    @property
    def topic(self) -> str:
        """The full topic name."""
        return self._reader.topic

    @property
    def group_id(self) -> str:
        """The consumer group."""
        return self._reader.group_id

    @property
    def skipped(self) -> Counter[str]:
        """Messages skipped, by reason (``tombstone`` and codec reason codes)."""
        return Counter(self._reader.skipped)

    @property
    def assigned(self) -> frozenset[int]:
        """Partitions currently assigned to this member."""
        return self._reader.assigned

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    @staticmethod
    def _fetch_for(deadline: float | None) -> float | None:
        """How long the next fetch of ``poll`` may wait; None once ``deadline`` passed."""
        if deadline is None:
            return FETCH_S
        step = min(FETCH_S, deadline - time.monotonic())
        return None if step < 0 else step

    def _unassigned(self, deadline: float, timeout: float) -> bool:
        """Whether ``wait_assigned`` must fetch again; TimeoutError past ``deadline``."""
        if self._reader.assigned:
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"no partition of {self.topic} assigned in {timeout} s")
        return True
