"""The join: predictions and labels in, outcomes and join dead letters out, exactly once.

predictions and labels are co-partitioned by event_id, and the join's consumer uses the
range assignor, so one worker owns partition p of both topics and so every key's two
sides. State is one bytes entry per model and event_id
(:class:`driftline.core.join.rules.JoinEntry` under a key of
:mod:`driftline.core.join.keys`; a pending prediction is held in the lean form of
:mod:`driftline.core.join.leanentry`, with one names record per distinct list of feature
names and partition) in a local store (:mod:`driftline.streams.joinstore`) whose source
of truth is a compacted changelog topic partitioned the same way.

Each batch (records read, plus the entries whose TTL passed) is one Kafka transaction
(:mod:`driftline.kafka.txn`): its outcomes, dead letters, changelog records and input
offsets commit together or not at all. The local store and the expiry index change
only after the commit; the monitor is fed only committed steps. An aborted batch is
read again from its first offsets against unchanged state. So after a crash, a
rebalance or a broker restart, each pair is published once, each duplicate, late,
orphan and expired case once, and the store matches the changelog.

On assignment the worker restores each partition's state from the changelog (all of
it for ``memory://``; for ``rocksdb://`` only what follows the offset the store saved)
before it reads that partition's input, then rebuilds the expiry index. A partition
whose store still holds entries of the previous release (keyed by the event_id alone)
is joined with ``legacy=True``: the joiner then migrates them inside the batches'
transactions (:mod:`driftline.core.join.joiner`).

It runs as a confluent-kafka loop on its own thread inside the worker, like the scorer:
Faust's per-event consumer bounded the join near 760 outcomes/s (docs/benchmarks-history.md),
and its exactly-once mode has open reports of duplicates after a kill
(faust-streaming#517), which this design avoids by owning the transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.core.errors import KafkaError
from driftline.core.join.expiry import ExpiryIndex
from driftline.core.join.joiner import Joiner, Step
from driftline.core.join.keys import is_legacy_key
from driftline.core.join.leanentry import is_names_key
from driftline.core.join.rules import JoinEntry
from driftline.core.wire.deadletter import Origin
from driftline.core.wire.headers import header_list
from driftline.core.wire.topics import replication_configs
from driftline.kafka.clients import admin_config, consumer_config
from driftline.kafka.helpers import take_batch
from driftline.kafka.txn import (
    Transactions,
    consumer_lag,
    loop_consumer_settings,
    usable,
)
from driftline.settings import Settings
from driftline.streams import telemetry as m
from driftline.streams.joinstore import Store

log = logging.getLogger(__name__)

Key = tuple[int, bytes]
OnCommitted = Callable[[list[Step], int], None]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Batch:
    """What one batch changed, before its transaction commits."""

    overlay: dict[Key, bytes | None] = field(default_factory=dict)
    deadlines: dict[Key, int] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    kinds: Counter[tuple[str, ...]] = field(default_factory=Counter)
    changelog_end: dict[int, int] = field(default_factory=dict)
    """Per partition: the offset after the last changelog record delivered."""


class JoinLoop:
    """The join's consume-join-produce loop. ``run`` blocks until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        joiner: Joiner,
        store: Store,
        *,
        group_id: str,
        on_committed: OnCommitted | None = None,
        batch_size: int = 2_000,
        poll_timeout_s: float = 0.05,
        sweep_every_s: float = 1.0,
        lag_every_s: float = 5.0,
        consumer: Any = None,
        producer: Any = None,
    ) -> None:
        """``consumer`` and ``producer`` default to real clients (tests pass others)."""
        self.settings = settings
        self.joiner = joiner
        self.store = store
        self.on_committed = on_committed
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.sweep_every_s = sweep_every_s
        self.lag_every_s = lag_every_s
        self.clock: Callable[[], int] = now_ms
        self.predictions = settings.topic("predictions")
        self.labels = settings.topic("labels")
        self.topics = {name: settings.topic(name) for name in ("outcomes", "deadletter")}
        self.changelog = f"{group_id.removesuffix('-join')}-join-changelog"
        self.group_id = group_id
        self.consumer = consumer or Consumer(
            consumer_config(
                settings,
                "join",
                group_id,
                # partition p of predictions and of labels go to the same member
                **loop_consumer_settings(settings, **{"partition.assignment.strategy": "range"}),
            )
        )
        self.txn = Transactions.for_loop(settings, "join", group_id, self.consumer,
                                         producer=producer, observer=m.TXN_METRICS)  # fmt: skip
        self.track_offsets = bool(getattr(store, "persists", True))
        """Only a store that outlives the process needs the changelog's offsets (it
        restores from where it stopped); a delivery callback per record costs CPU."""
        self.index: ExpiryIndex[Key] = ExpiryIndex(bucket_ms=1_000)
        self.owned: set[int] = set()
        self.legacy: dict[int, int] = {}
        """Per owned partition whose store holds entries of the previous release, how
        many: its messages get a second lookup until the last one is gone."""
        self.lag: int | None = None
        self._sweep_due = 0.0
        self._lag_due = 0.0
        self._batch = Batch()

    @property
    def producer(self) -> Producer:
        """The current transactional producer (replaced when fenced)."""
        return self.txn.producer

    # -- the loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Join until ``stop`` is set; then close (between batches: nothing is open)."""
        self.ensure_changelog()
        self.txn.init()
        self.consumer.subscribe(
            [self.predictions, self.labels],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        while not stop.is_set():
            msgs = self.next_batch()
            sweep = time.monotonic() >= self._sweep_due
            if msgs or sweep:
                self.process(msgs, self.clock(), sweep)
            if time.monotonic() >= self._lag_due:
                self._lag_due = time.monotonic() + self.lag_every_s
                self.lag = consumer_lag(self.consumer)
                m.CONSUMER_LAG.labels("join").set(self.lag)
        # Closed only on a clean stop: after a fatal client error, close() can hang,
        # and the thread must end so that the watchdog restarts the worker.
        self.consumer.close()
        self.store.close()

    def next_batch(self) -> list[Message]:
        """Up to ``batch_size`` records (:func:`driftline.kafka.helpers.take_batch`)."""
        return take_batch(self.consumer, self.batch_size, self.poll_timeout_s)

    def process(self, msgs: Sequence[Message], now: int, sweep: bool = False) -> bool:
        """Join ``msgs`` (and, with ``sweep``, expire what is due) in one transaction;
        then apply it locally. False when the transaction was aborted (the consumer is
        rewound to the batch's start and nothing local changed)."""
        t0 = time.perf_counter()
        swept: list[Key] = []
        if not msgs and not self.txn.fence_offsets():
            return False  # a sweep alone must be fenced by offsets: wait for a fetch

        def produce_batch() -> None:
            self._batch = batch = Batch()
            for msg in msgs:
                if usable(msg):
                    self._on_message(batch, msg, now)
            if sweep:
                swept.extend(self.index.due(now))
                for key in swept:
                    self._on_expire(batch, key, now)

        committed = self.txn.run(msgs, produce_batch)
        took = time.perf_counter() - t0
        if took > 5:
            log.warning("join: a batch of %d records took %.1f s", len(msgs), took)
        if not committed:
            for p, key in swept:  # put back what the aborted sweep took from the index
                stored = self.store.get(p, key)
                if stored is not None:
                    self.index.add((p, key), JoinEntry.from_bytes(stored).deadline_ms)
            return False
        if sweep:
            self._sweep_due = time.monotonic() + self.sweep_every_s
        self._apply(self._batch)
        if msgs:
            m.EVENTS_IN.labels("join").inc(len(msgs))
            m.BATCH_SECONDS.labels("join").observe(time.perf_counter() - t0)
        m.add_tally(m.JOIN_RESULTS, self._batch.kinds)
        if sweep:
            m.JOIN_PENDING.set(self.store.count(self.owned))
        if self.on_committed is not None and self._batch.steps:
            self.on_committed(self._batch.steps, now)
        return True

    # -- one batch ----------------------------------------------------------------------

    def _get(self, batch: Batch, key: Key) -> bytes | None:
        if key in batch.overlay:
            return batch.overlay[key]
        return self.store.get(*key)

    def _on_message(self, batch: Batch, msg: Message, now: int) -> None:
        key, partition, value = msg.key(), msg.partition() or 0, msg.value()
        ts_type, ts = msg.timestamp()
        origin = Origin(msg.topic() or "", partition, msg.offset() or 0, key,
                        ts if ts_type else None, header_list(msg.headers()))  # fmt: skip
        try:
            lookup = self._lookup(batch, partition)
            step = self.joiner.on_message(origin, value, now, lookup, partition in self.legacy)
        except Exception as exc:  # never drop a message: dead-letter what we cannot join
            log.exception("join: unexpected error at %s:%s", msg.topic(), msg.offset())
            step = self.joiner.internal_error(origin, value, repr(exc), now)
        self._record(batch, partition, step)

    def _on_expire(self, batch: Batch, key: Key, now: int) -> None:
        partition, k = key
        if partition not in self.owned:
            return
        stored = self._get(batch, key)
        if stored is None:
            return
        step = self.joiner.on_expire(partition, k, stored, now, self._lookup(batch, partition))
        self._record(batch, partition, step)

    def _lookup(self, batch: Batch, partition: int) -> Callable[[bytes], bytes | None]:
        return lambda k: self._get(batch, (partition, k))

    def _record(self, batch: Batch, partition: int, step: Step) -> None:
        """Produce ``step``'s changelog records and outputs; remember its local change."""
        for k, v in step.extra:  # a names record, a migrated legacy key: in the partition
            batch.overlay[(partition, k)] = v
            self._produce(self.changelog, v, k, [], partition, changelog=True)
        if step.key is not None and not step.keep:
            key = (partition, step.key)
            batch.overlay[key] = step.entry
            if step.entry is not None and step.deadline_ms is not None:
                batch.deadlines[key] = step.deadline_ms
            self._produce(self.changelog, step.entry, step.key, [], partition, changelog=True)
        for kind in step.kinds:
            batch.kinds[(kind,)] += 1
        for out in step.outputs:
            self._produce(self.topics[out.topic], out.value, out.key, out.headers)
        batch.steps.append(step)

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int = -1,
        changelog: bool = False,
    ) -> None:
        track = changelog and self.track_offsets
        extra = {"on_delivery": self._changelog_delivered} if track else {}
        self.txn.produce(topic, value, key, headers, partition=partition, **extra)

    def _changelog_delivered(self, err: CKafkaError | None, msg: Message) -> None:
        if err is None:
            p = msg.partition() or 0
            end = self._batch.changelog_end
            end[p] = max(end.get(p, 0), (msg.offset() or 0) + 1)

    def _apply(self, batch: Batch) -> None:
        """After the commit: the store and the expiry index take the batch's changes."""
        by_partition: dict[int, dict[bytes, bytes | None]] = {}
        legacy = self.legacy
        for (p, k), value in batch.overlay.items():
            by_partition.setdefault(p, {})[k] = value
            if p in legacy and value is None and is_legacy_key(k):  # migrated or swept
                legacy[p] -= 1
                if legacy[p] <= 0:
                    del legacy[p]
                    log.info("join: partition %d holds no entry of the previous release", p)
        for p, changes in by_partition.items():
            self.store.write(p, changes, batch.changelog_end.get(p, self.store.next_offset(p)))
        for key, deadline in batch.deadlines.items():
            self.index.add(key, deadline)
        for step in batch.steps:
            for d in step.label_delays_ms:
                m.LABEL_DELAY.observe(max(d, 0) / 1000.0)

    # -- partitions ---------------------------------------------------------------------

    def ensure_changelog(self) -> None:
        """Create the compacted changelog topic if it is missing (with three replicas or
        more, min.insync.replicas 2, like Driftline's topics)."""
        s = self.settings
        admin = AdminClient(admin_config(s))
        config = {"cleanup.policy": "compact", **replication_configs(s.replication_factor)}
        topic = NewTopic(self.changelog, s.data_partitions, s.replication_factor, config=config)
        for fut in admin.create_topics([topic], operation_timeout=30).values():
            try:
                fut.result(timeout=60)
            except Exception as exc:
                err = exc.args[0] if exc.args else None
                if getattr(err, "code", lambda: None)() != CKafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaError(f"join: cannot create {self.changelog}: {exc}") from exc

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = {tp.partition for tp in partitions if tp.topic == self.predictions}
        t0 = time.monotonic()
        restored = self.restore(mine)
        self.rebuild(mine)
        m.JOIN_PENDING.set(self.store.count(mine))
        log.info("join: assigned partitions %s; restored %d changelog records in %.1f s",
                 sorted(mine), restored, time.monotonic() - t0)  # fmt: skip

    def rebuild(self, mine: set[int]) -> None:
        """Own ``mine``, whose store is restored: rebuild the expiry index from it and
        note the partitions that still hold entries of the previous release."""
        self.owned = mine
        self.legacy = {}
        entries: list[tuple[Key, int]] = []
        for p in mine:
            for k, v in self.store.items(p):
                if is_names_key(k):
                    continue
                if is_legacy_key(k):
                    self.legacy[p] = self.legacy.get(p, 0) + 1
                entries.append(((p, k), JoinEntry.from_bytes(v).deadline_ms))
        self.index = ExpiryIndex.rebuild(entries, bucket_ms=1_000)
        if self.legacy:
            log.info("join: partitions %s hold entries of the previous release (keyed by "
                     "event_id); they are migrated as they are read",
                     sorted(self.legacy))  # fmt: skip

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions if tp.topic == self.predictions}
        for p in gone:
            self.store.release(p)
        self.owned -= gone
        for p in gone:
            self.legacy.pop(p, None)

    def restore(self, partitions: Iterable[int], timeout_s: float = 300.0) -> int:
        """Bring the store of ``partitions`` up to the changelog's committed end;
        returns how many records were read.

        The end is the high watermark when the partitions are assigned, not the first
        end of partition a read_committed reader meets: that one is the last stable
        offset, which stops short of a transaction still open. The previous owner's
        last transaction can still be open here (its offsets were accepted before the
        group moved on, its commit markers not yet written) and then commit, offsets
        included: a restore that stopped at the LSO lost that batch's entries while the
        input moved past it. So the restore waits until that transaction is resolved,
        committed or aborted (at most the transaction timeout, for one left open by a
        dead producer)."""
        parts = sorted(partitions)
        if not parts:
            return 0
        log.info("join: restoring partitions %s of %s", parts, self.changelog)
        group, no_commit = f"{self.group_id}-restore", {"enable.auto.commit": False}
        c = Consumer(consumer_config(self.settings, "join-restore", group,
                                     **no_commit, **{"enable.partition.eof": True}))  # fmt: skip
        # a read_committed consumer's watermark query answers the LSO, not the HW
        uncommitted = {"isolation.level": "read_uncommitted"}
        hw = Consumer(consumer_config(self.settings, "join-restore", group,
                                      **no_commit, **uncommitted))  # fmt: skip
        try:
            todo: list[TopicPartition] = []
            until: dict[int, int] = {}
            deadline = time.monotonic() + timeout_s
            for p in parts:
                lo, hi = watermarks(hw, TopicPartition(self.changelog, p), deadline)
                start = self.store.next_offset(p)
                if start < lo or start > hi:  # compacted or deleted past what we hold
                    self.store.reset(p)
                    start = lo
                if start < hi:
                    todo.append(TopicPartition(self.changelog, p, start))
                    until[p] = hi
            if not todo:
                return 0
            return self._read_changelog(c, todo, until, time.monotonic() + timeout_s)
        finally:
            hw.close()
            c.close()

    def _read_changelog(self, c: Consumer, todo: list[TopicPartition], until: dict[int, int],
                        deadline: float) -> int:  # fmt: skip
        """Read ``todo`` into the store until each partition's end reaches ``until``."""
        c.assign(todo)
        left = {tp.partition for tp in todo}
        n = 0
        while left:
            if time.monotonic() > deadline:
                raise KafkaError(f"join: changelog restore of partitions {sorted(left)} timed out"
                                 f" (ends {[until[p] for p in sorted(left)]})")  # fmt: skip
            changes: dict[int, dict[bytes, bytes | None]] = {}
            ends: dict[int, int] = {}
            for msg in c.consume(5_000, 0.5):
                p = msg.partition() or 0
                err = msg.error()
                if err is not None:
                    if err.code() == CKafkaError._PARTITION_EOF:
                        end = msg.offset() or 0
                        ends[p] = max(ends.get(p, 0), end)
                        if end >= until[p]:  # else: a transaction is still open below it
                            left.discard(p)
                    elif usable(msg):  # raises unless transient
                        pass
                    continue
                key = msg.key()
                if key is not None:
                    changes.setdefault(p, {})[key] = msg.value()
                    ends[p] = max(ends.get(p, 0), (msg.offset() or 0) + 1)
                    n += 1
            for p, end in ends.items():
                self.store.write(p, changes.get(p, {}), end)
        return n


_NO_LEADER_YET = {
    CKafkaError.NOT_LEADER_FOR_PARTITION,
    CKafkaError.LEADER_NOT_AVAILABLE,
    CKafkaError.UNKNOWN_TOPIC_OR_PART,
    CKafkaError._UNKNOWN_PARTITION,  # the client's metadata does not show it yet
}


_BROKER_GONE = {CKafkaError._TIMED_OUT, CKafkaError._TRANSPORT, CKafkaError._DESTROY_BROKER}
"""A leader that died while it was asked (on a cluster: the handle of a broker gone from
the metadata is destroyed under the request); its partition soon has another one."""


def watermarks(c: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """``tp``'s low and high watermarks. Retried until ``deadline`` while the partition
    has no leader yet (a changelog created a moment ago) or the call fails transiently;
    any other error, or the deadline, raises."""
    while True:
        try:
            lo, hi = c.get_watermark_offsets(tp, timeout=10)
            return int(lo), int(hi)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, CKafkaError) else None
            retriable = code in _NO_LEADER_YET or (
                isinstance(err, CKafkaError) and err.retriable() and not err.fatal()
            ) or code in _BROKER_GONE  # fmt: skip
            if not retriable or time.monotonic() > deadline:
                raise KafkaError(f"join: watermarks of {tp.topic}[{tp.partition}]: {exc}") from exc
            log.info("join: watermarks of %s[%d] not available yet (%s); retrying",
                     tp.topic, tp.partition, err)  # fmt: skip
            time.sleep(0.5)
