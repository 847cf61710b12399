"""The join agent: predictions and labels in, outcomes (and join dead letters) out.

predictions and labels are co-partitioned by event_id, so one worker owns both sides
of every key. State is one bytes entry per event_id (driftline.core.join.JoinEntry) in
a Faust table whose changelog has the same partitioning. Writes name their partition
explicitly (the source message's), so a batch from ``take_events`` and the expiry
sweep, which runs outside stream iteration, both land in the right changelog
partition. Reads and writes of one key happen without an ``await`` in between, so
the sweep and the agent never interleave on a key.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust
from faust.types import TP

from driftline.core.deadletter import Origin
from driftline.core.expiry import ExpiryIndex
from driftline.core.headers import header_list
from driftline.core.joiner import Joiner, Step
from driftline.streams import metrics as m

log = logging.getLogger(__name__)

BATCH = 1_000
WITHIN_S = 0.05
SWEEP_EVERY_S = 1.0


def now_ms() -> int:
    return int(time.time() * 1000)


class JoinState:
    """The join table, written by explicit partition, with an expiry index."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.index: ExpiryIndex[tuple[int, bytes]] = ExpiryIndex(bucket_ms=1_000)
        self.owned: set[int] = set()

    @property
    def store(self) -> Any:
        return self.table.data

    def get(self, key: bytes) -> bytes | None:
        value = self.store.get(key)
        return value if isinstance(value, bytes) else None

    def apply(
        self, partition: int, key: bytes, step: Step
    ) -> tuple[int, bytes, bytes | None] | None:
        """Apply ``step`` to the store; returns the changelog record to send, if any.

        The caller sends it with an awaited ``send`` (not the table's ``send_soon``,
        whose buffer publishes one message per event-loop turn and throttled the join).
        """
        if step.keep:
            return None
        if step.entry is None:
            self.store.pop(key, None)
            return partition, key, None
        self.store[key] = step.entry
        if step.deadline_ms is not None:
            self.index.add((partition, key), step.deadline_ms)
        return partition, key, step.entry

    def rebuild(self, partitions: Iterable[int]) -> None:
        """After recovery: index every held entry of the partitions this worker owns."""
        from driftline.core.join import JoinEntry

        self.owned = set(partitions)
        key_partition = getattr(self.store, "_key_partition", {})
        entries = []
        for key, value in list(self.store.data.items()):
            p = key_partition.get(key)
            if p is None or p not in self.owned or not isinstance(value, bytes):
                continue
            entries.append(((p, key), JoinEntry.from_bytes(value).deadline_ms))
        self.index = ExpiryIndex.rebuild(entries, bucket_ms=1_000)
        m.JOIN_PENDING.set(len(self.store))


def install(
    app: faust.App,
    joiner: Joiner,
    predictions: str,
    labels: str,
    partitions: int,
    observe: Callable[[list[Step], int], Awaitable[None]] | None = None,
) -> JoinState:
    """Add the join table, agent and expiry sweep to ``app``."""
    source = app.topic(
        predictions, labels, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )  # fmt: skip
    table = app.Table(  # the app's serializers are raw: Driftline encodes its own values
        "join", key_type=bytes, value_type=bytes, partitions=partitions,
        help="Join state per event_id.",
    )  # fmt: skip
    state = JoinState(table)
    app_any: Any = app
    prefix = predictions.removesuffix("predictions")
    outputs = {
        name: app.topic(prefix + name, key_serializer="raw", value_serializer="raw")
        for name in ("outcomes", "deadletter")
    }

    changelog = table.changelog_topic

    async def publish(
        step: Step, kinds: Counter[tuple[str, ...]], change: tuple[int, bytes, bytes | None] | None
    ) -> None:
        if change is not None:
            partition, key, value = change
            await changelog.send(key=key, value=value, partition=partition)
        for kind in step.kinds:
            kinds[(kind,)] += 1
        for d in step.label_delays_ms:
            m.LABEL_DELAY.observe(max(d, 0) / 1000.0)
        for out in step.outputs:
            await outputs[out.topic].send(key=out.key, value=out.value, headers=out.headers)

    @app.agent(source, name="driftline-join")
    async def join(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            t0 = time.perf_counter()
            kinds: Counter[tuple[str, ...]] = Counter()
            now = now_ms()
            steps: list[Step] = []
            for event in events:
                msg = event.message
                key = msg.key
                origin = Origin(
                    msg.topic, msg.partition, msg.offset, key,
                    int(msg.timestamp * 1000), header_list(msg.headers),
                )  # fmt: skip
                step = joiner.on_message(origin, msg.value, state.get(key) if key else None, now)
                change = state.apply(msg.partition, key, step) if key else None
                await publish(step, kinds, change)
                steps.append(step)
            if observe is not None:
                await observe(steps, now)
            m.EVENTS_IN.labels("join").inc(len(events))
            m.add_tally(m.JOIN_RESULTS, kinds)
            m.BATCH_SECONDS.labels("join").observe(time.perf_counter() - t0)

    @app.timer(SWEEP_EVERY_S, name="driftline-join-sweep")  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        now = now_ms()
        kinds: Counter[tuple[str, ...]] = Counter()
        for partition, key in state.index.due(now):
            if partition not in state.owned:
                continue
            stored = state.get(key)
            if stored is None:
                continue
            origin = Origin(predictions, partition, -1, key, None, [])
            step = joiner.on_expire(origin, stored, now)
            await publish(step, kinds, state.apply(partition, key, step))
            if observe is not None:
                await observe([step], now)
        m.add_tally(m.JOIN_RESULTS, kinds)
        m.JOIN_PENDING.set(len(state.store))

    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        await app_any.tables.recovery.completed.wait()
        state.rebuild(tp.partition for tp in app.consumer.assignment() if tp.topic == predictions)

    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        state.owned -= {tp.partition for tp in revoked if tp.topic == predictions}

    app_any.on_partitions_assigned.connect(on_assigned)
    app_any.on_partitions_revoked.connect(on_revoked)

    return state
