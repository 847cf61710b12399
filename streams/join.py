"""The join agent: predictions and labels in, outcomes (and join dead letters) out.

predictions and labels are co-partitioned by event_id, so one worker owns both sides
of every key. State is one bytes entry per event_id (driftline.core.join.JoinEntry) in
a Faust table whose changelog has the same partitioning, in memory or in RocksDB
(``DRIFTLINE_TABLE_STORE``). Reads and writes name their partition explicitly (the
source message's, or the one the expiry index recorded) through
:mod:`driftline.streams.tablestore`, so a batch from ``take_events`` and the expiry
sweep, which runs outside stream iteration, both land in the right partition of the
store and of the changelog. Reads and writes of one key happen without an ``await`` in
between, so the sweep and the agent never interleave on a key.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import faust
from faust.types import TP

from driftline.core.deadletter import Origin
from driftline.core.expiry import ExpiryIndex
from driftline.core.headers import header_list
from driftline.core.join import JoinEntry
from driftline.core.joiner import Joiner, Step
from driftline.streams import metrics as m
from driftline.streams.tablestore import Partitions, partitions_of

log = logging.getLogger(__name__)

BATCH = 1_000
WITHIN_S = 0.05
SWEEP_EVERY_S = 1.0

Observe = Callable[[list[Step], int], Awaitable[None]]
Change = tuple[int, bytes, bytes | None]


def now_ms() -> int:
    return int(time.time() * 1000)


class JoinState:
    """The join table, read and written by explicit partition, with an expiry index."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.index: ExpiryIndex[tuple[int, bytes]] = ExpiryIndex(bucket_ms=1_000)
        self.owned: set[int] = set()
        self._store: Partitions | None = None

    @property
    def store(self) -> Partitions:
        """The table's store (made by Faust on first use, so not at install time)."""
        if self._store is None:
            self._store = partitions_of(self.table.data)
        return self._store

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.store.get(partition, key)

    def apply(self, partition: int, key: bytes, step: Step) -> Change | None:
        """Apply ``step`` to the store; returns the changelog record to send, if any.

        The caller sends it with an awaited ``send`` (not the table's ``send_soon``,
        whose buffer publishes one message per event-loop turn and throttled the join).
        """
        if step.keep:
            return None
        if step.entry is None:
            self.store.delete(partition, key)
            return partition, key, None
        self.store.put(partition, key, step.entry)
        if step.deadline_ms is not None:
            self.index.add((partition, key), step.deadline_ms)
        return partition, key, step.entry

    def rebuild(self, partitions: Iterable[int]) -> None:
        """After recovery: index every held entry of the partitions this worker owns."""
        self.owned = set(partitions)
        entries = [
            ((p, key), JoinEntry.from_bytes(value).deadline_ms)
            for p, key, value in self.store.items(self.owned)
        ]
        self.index = ExpiryIndex.rebuild(entries, bucket_ms=1_000)
        m.JOIN_PENDING.set(self.pending())

    def pending(self) -> int:
        """Entries held for the owned partitions (RocksDB: its estimate)."""
        return self.store.count(self.owned)


class JoinAgent:
    """The join installed in an app: :meth:`handle` is the agent's body for one batch,
    :meth:`sweep` the expiry timer's. ``clock`` gives processing time in ms."""

    def __init__(
        self,
        app: faust.App,
        joiner: Joiner,
        predictions: str,
        labels: str,
        partitions: int,
        observe: Observe | None = None,
    ) -> None:
        self.joiner = joiner
        self.predictions = predictions
        self.observe = observe
        self.clock: Callable[[], int] = now_ms
        self.table: Any = app.Table(  # the app's serializers are raw: Driftline encodes
            "join", key_type=bytes, value_type=bytes, partitions=partitions,
            help="Join state per event_id.",
        )  # fmt: skip
        self.state = JoinState(self.table)
        self.source = app.topic(
            predictions, labels, key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw",
        )  # fmt: skip
        prefix = predictions.removesuffix("predictions")
        self.outputs = {
            name: app.topic(prefix + name, key_serializer="raw", value_serializer="raw")
            for name in ("outcomes", "deadletter")
        }
        self.agent: Any = None

    async def publish(
        self, step: Step, kinds: Counter[tuple[str, ...]], change: Change | None
    ) -> None:
        if change is not None:
            partition, key, value = change
            # A persistent store records, through Faust's own callback for table
            # writes, the changelog offset it holds: a restart replays only what follows.
            sent = self.table._on_changelog_sent if self.state.store.persists else None
            await self.table.changelog_topic.send(
                key=key, value=value, partition=partition, callback=sent
            )
        for kind in step.kinds:
            kinds[(kind,)] += 1
        for d in step.label_delays_ms:
            m.LABEL_DELAY.observe(max(d, 0) / 1000.0)
        for out in step.outputs:
            await self.outputs[out.topic].send(key=out.key, value=out.value, headers=out.headers)

    async def handle(self, events: Sequence[Any]) -> None:
        """One batch of predictions and labels."""
        t0 = time.perf_counter()
        kinds: Counter[tuple[str, ...]] = Counter()
        now = self.clock()
        steps: list[Step] = []
        state, joiner = self.state, self.joiner
        for event in events:
            msg = event.message
            key, partition = msg.key, msg.partition
            origin = Origin(
                msg.topic, partition, msg.offset, key,
                int(msg.timestamp * 1000), header_list(msg.headers),
            )  # fmt: skip
            try:
                stored = state.get(partition, key) if key else None
                step = joiner.on_message(origin, msg.value, stored, now)
            except Exception as exc:  # Faust would ack and drop it: dead-letter it instead
                log.exception("join: unexpected error at %s:%s", msg.topic, msg.offset)
                step = joiner.internal_error(origin, msg.value, repr(exc), now)
            change = state.apply(partition, key, step) if key else None
            await self.publish(step, kinds, change)
            steps.append(step)
        await self._observe(steps, now)
        m.EVENTS_IN.labels("join").inc(len(events))
        m.add_tally(m.JOIN_RESULTS, kinds)
        m.BATCH_SECONDS.labels("join").observe(time.perf_counter() - t0)

    async def _observe(self, steps: list[Step], now: int) -> None:
        """Feed the monitor; a monitor failure is logged and counted, never blocks the join."""
        if self.observe is None:
            return
        try:
            await self.observe(steps, now)
        except Exception:
            log.exception("join: the monitor failed on a batch of %d steps", len(steps))
            m.MONITOR_ERRORS.inc(len(steps))

    async def sweep(self) -> None:
        """Expire every due entry of the owned partitions."""
        now = self.clock()
        kinds: Counter[tuple[str, ...]] = Counter()
        state = self.state
        for partition, key in state.index.due(now):
            if partition not in state.owned:
                continue
            stored = state.get(partition, key)
            if stored is None:
                continue
            origin = Origin(self.predictions, partition, -1, key, None, [])
            step = self.joiner.on_expire(origin, stored, now)
            await self.publish(step, kinds, state.apply(partition, key, step))
            await self._observe([step], now)
        m.add_tally(m.JOIN_RESULTS, kinds)
        m.JOIN_PENDING.set(state.pending())


def install(
    app: faust.App,
    joiner: Joiner,
    predictions: str,
    labels: str,
    partitions: int,
    observe: Observe | None = None,
) -> JoinAgent:
    """Add the join table, agent and expiry sweep to ``app``."""
    join = JoinAgent(app, joiner, predictions, labels, partitions, observe)
    state = join.state
    app_any: Any = app

    @app.agent(join.source, name="driftline-join")
    async def agent(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            await join.handle(events)

    join.agent = agent

    @app.timer(SWEEP_EVERY_S, name="driftline-join-sweep")  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        await join.sweep()

    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        await app_any.tables.recovery.completed.wait()
        state.rebuild(tp.partition for tp in app.consumer.assignment() if tp.topic == predictions)

    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        state.owned -= {tp.partition for tp in revoked if tp.topic == predictions}

    app_any.on_partitions_assigned.connect(on_assigned)
    app_any.on_partitions_revoked.connect(on_revoked)

    return join
