"""The join agent driven through Faust's ``agent.test_context()``, with no broker.

The app is the worker's own (``create_app``) and the join is installed as the worker
installs it. The test context feeds raw bytes to the agent through an in-memory
channel; the table uses the store under test (memory://, as the style guide asks, and
rocksdb:// in a temp dir, since the worker offers both). Nothing reaches Kafka: every
``Topic.send`` (outputs and changelog) is replaced by a recorder, and the join's clock
is fixed, so expiry is driven by setting the time, not by waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faust.topics import Topic

from driftline.core import headers as h
from driftline.core.codec import default_codec
from driftline.core.join import JoinEntry, JoinState, build_outcome
from driftline.core.joiner import DEAD_LETTER, LABEL, OUTCOME, PREDICTION, Joiner, Step
from driftline.core.modelconfig import ModelsConfig
from driftline.settings import Settings, TableStore
from driftline.streams import join
from driftline.streams.app import create_app, install_streams
from driftline.streams.monitor import Monitors
from tests.unit.core.examples import label, prediction

CODEC = default_codec()
TTL = 50  # ms of the fixed clock
NOW = 1_800_000_000_000
KEY = b"evt-0001"
PART = 2  # the partition the messages of KEY arrive on (of 3)
APP_ID = "t-join-unit"
CHANGELOG = f"{APP_ID}-join-changelog"
P = CODEC.encode(PREDICTION, prediction())
L = CODEC.encode(LABEL, label())
STORES: list[TableStore] = ["memory://", "rocksdb://"]
BUCKET = 1_000  # the expiry index's bucket (ms)


def swept(deadline_ms: int) -> int:
    """When the sweep finds an entry due at ``deadline_ms``: once its bucket has passed."""
    return (deadline_ms // BUCKET + 1) * BUCKET - 1


@dataclass(frozen=True)
class Sent:
    """One recorded ``Topic.send``."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: Any


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Sent]]:
    """Every ``Topic.send`` of the test, recorded instead of produced."""
    records: list[Sent] = []

    async def send(
        self: Topic, *, key: Any = None, value: Any = None, partition: int | None = None,
        headers: Any = None, **_: Any,
    ) -> None:  # fmt: skip
        records.append(Sent(self.get_topic_name(), key, value, partition, headers))

    monkeypatch.setattr(Topic, "send", send)
    yield records


def on(records: list[Sent], topic: str) -> list[Sent]:
    return [r for r in records if r.topic == topic]


class Rig:
    """The worker's app with the join installed; collects what the monitor hook gets."""

    def __init__(self, store: TableStore, datadir: Path, monitors: Monitors | None = None):
        settings = Settings(
            bootstrap_servers="127.0.0.1:1", topic_prefix="t.", data_partitions=3,
            table_store=store, data_dir=datadir,
        )  # fmt: skip
        self.app = create_app(settings, APP_ID)
        self.now = NOW
        joiner = Joiner(CODEC, {"churn": "classification"}.get, lambda model: TTL,
                        "t.predictions")  # fmt: skip
        if monitors is None:
            self.join = join.install(self.app, joiner, "t.predictions", "t.labels", 3,
                                     self.observe)  # fmt: skip
        else:
            self.join = install_streams(self.app, settings, CODEC, joiner, monitors)
            hook = self.join.observe
            assert hook is not None
            self.join.observe = self.chain(hook)
        self.join.clock = lambda: self.now
        self.app.finalize()
        self.steps: list[Step] = []
        self.seen = asyncio.Condition()

    def chain(
        self, hook: Callable[[list[Step], int], Awaitable[None]]
    ) -> Callable[[list[Step], int], Awaitable[None]]:
        async def both(steps: list[Step], now: int) -> None:
            await hook(steps, now)
            await self.observe(steps, now)

        return both

    async def observe(self, steps: list[Step], now: int) -> None:
        assert now == self.now
        async with self.seen:
            self.steps.extend(steps)
            self.seen.notify_all()

    async def put(self, agent: Any, *values: bytes, key: bytes = KEY, part: int = PART) -> None:
        """Feed ``values`` to the agent and wait until the monitor hook has their steps."""
        want = len(self.steps) + len(values)
        for value in values:
            await agent.put(value, key=key, partition=part, wait=False)
        async with self.seen:
            await asyncio.wait_for(self.seen.wait_for(lambda: len(self.steps) >= want), 5)

    def entry(self, part: int = PART, key: bytes = KEY) -> JoinEntry | None:
        """What the table's store holds for ``key``, read from the store itself."""
        data = self.join.table.data
        if self.app.conf.store.scheme == "memory":
            raw = data.data.get(key)
            assert data._key_partition.get(key, part) == part
        else:
            raw = data._db_for_partition(part).get(key)
        assert raw == self.join.state.get(part, key)
        return None if raw is None else JoinEntry.from_bytes(raw)

    def close(self) -> None:
        if self.app.conf.store.scheme == "rocksdb":
            self.join.table.data._dbs.clear()  # what the store's stop() does


def run(store: TableStore, tmp_path: Path, scenario: Callable[[Rig, Any], Awaitable[None]],
        monitors: Monitors | None = None) -> None:  # fmt: skip
    """Build the rig on a fresh event loop and run ``scenario(rig, agent)`` in a test
    context of the join agent."""

    async def main() -> None:
        rig = Rig(store, tmp_path / "data", monitors)
        try:
            async with rig.join.agent.test_context() as agent:
                await scenario(rig, agent)
        finally:
            rig.close()

    asyncio.run(main())


def decoded(record: Sent, name: str) -> dict[str, Any]:
    assert record.value is not None
    return CODEC.decode(record.value, expect=name).value


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("first", ["prediction", "label"])
def test_a_prediction_and_its_label_give_one_outcome(
    store: TableStore, first: str, tmp_path: Path, sent: list[Sent]
) -> None:
    one, other = (P, L) if first == "prediction" else (L, P)

    async def scenario(rig: Rig, agent: Any) -> None:
        await rig.put(agent, one)
        held = JoinState.WAITING_FOR_LABEL if one is P else JoinState.WAITING_FOR_PREDICTION
        time_ms = prediction()["event_time_ms"] if one is P else label()["label_time_ms"]
        expected = JoinEntry(held, NOW + TTL, time_ms, TTL, one)
        assert rig.entry() == expected
        assert on(sent, CHANGELOG) == [Sent(CHANGELOG, KEY, expected.to_bytes(), PART, None)]
        assert on(sent, "t.outcomes") == []
        assert rig.steps[0].prediction == (prediction() if one is P else None)

        rig.now += 10
        await rig.put(agent, other)
        tomb = JoinEntry(JoinState.JOINED, NOW + 10 + TTL, prediction()["event_time_ms"], TTL)
        assert rig.entry() == tomb
        assert [r.value for r in on(sent, CHANGELOG)] == [expected.to_bytes(), tomb.to_bytes()]
        assert {r.partition for r in on(sent, CHANGELOG)} == {PART}
        (outcome,) = on(sent, "t.outcomes")
        assert outcome.key == KEY
        assert decoded(outcome, OUTCOME) == build_outcome(prediction(), label())
        assert h.parse(outcome.headers)[h.SCHEMA] == OUTCOME
        assert on(sent, "t.deadletter") == []
        # the monitor hook got the prediction (first time seen) and the outcome
        got = rig.steps[1]
        assert got.prediction == (prediction() if other is P else None)
        assert [(o.topic, o.record) for o in got.outputs] == [
            ("outcomes", build_outcome(prediction(), label()))
        ]
        assert got.kinds == ["joined"]

    run(store, tmp_path, scenario)


@pytest.mark.parametrize("store", STORES)
def test_a_duplicate_label_is_dead_lettered_and_no_second_outcome(
    store: TableStore, tmp_path: Path, sent: list[Sent]
) -> None:
    again = CODEC.encode(LABEL, label(label=True))  # a second, different label

    async def scenario(rig: Rig, agent: Any) -> None:
        await rig.put(agent, P, L)
        tomb = rig.entry()
        await rig.put(agent, again)
        assert rig.entry() == tomb  # kept as is: no write, no changelog record
        assert len(on(sent, CHANGELOG)) == 2
        assert len(on(sent, "t.outcomes")) == 1
        (dead,) = on(sent, "t.deadletter")
        record = decoded(dead, DEAD_LETTER)
        assert record["reason"] == "duplicate_label"
        assert record["stage"] == "join"
        assert record["raw"] == again
        assert record["model"] == "churn"
        assert record["source_key"] == KEY
        assert record["source_partition"] == PART
        assert dict(dead.headers)[h.DLQ_REASON] == b"duplicate_label"
        assert rig.steps[-1].kinds == ["duplicate_label"]
        assert [o.record for o in rig.steps[-1].outputs] == [record]

    run(store, tmp_path, scenario)


@pytest.mark.parametrize("store", STORES)
def test_the_sweep_expires_a_prediction_then_forgets_its_tombstone(
    store: TableStore, tmp_path: Path, sent: list[Sent]
) -> None:
    async def scenario(rig: Rig, agent: Any) -> None:
        await rig.put(agent, P)
        other = CODEC.encode(PREDICTION, prediction(event_id="evt-0002"))
        await rig.put(agent, other, key=b"evt-0002", part=0)
        rig.join.state.rebuild([PART])  # as after an assignment: this worker owns PART only
        assert rig.join.state.pending() >= 1
        writes = len(on(sent, CHANGELOG))

        rig.now = NOW + TTL - 1
        await rig.join.sweep()  # nothing due yet
        assert len(sent) == writes and len(rig.steps) == 2

        rig.now = expired_at = swept(NOW + TTL)
        await rig.join.sweep()
        tomb = rig.entry()
        assert tomb is not None and tomb.state is JoinState.EXPIRED_PREDICTION
        assert tomb.deadline_ms == expired_at + TTL
        assert on(sent, CHANGELOG)[-1] == Sent(CHANGELOG, KEY, tomb.to_bytes(), PART, None)
        (dead,) = on(sent, "t.deadletter")
        record = decoded(dead, DEAD_LETTER)
        assert (record["reason"], record["raw"], record["model"]) == (
            "expired_prediction", P, "churn",
        )  # fmt: skip
        assert record["source_partition"] == PART
        assert rig.steps[-1].kinds == ["expired_prediction"]
        # the partition this worker does not own is left to its owner
        assert rig.entry(0, b"evt-0002") is not None

        rig.now = swept(tomb.deadline_ms)
        await rig.join.sweep()
        assert rig.entry() is None
        assert on(sent, CHANGELOG)[-1] == Sent(CHANGELOG, KEY, None, PART, None)
        assert on(sent, "t.outcomes") == []

        # a label after the tombstone is gone is held again (an orphan, in time)
        await rig.put(agent, L)
        held = rig.entry()
        assert held is not None and held.state is JoinState.WAITING_FOR_PREDICTION

    run(store, tmp_path, scenario)


def test_undecodable_input_is_dead_lettered_and_the_agent_goes_on(
    tmp_path: Path, sent: list[Sent]
) -> None:
    async def scenario(rig: Rig, agent: Any) -> None:
        await rig.put(agent, b"\x00garbage", P)
        (dead,) = on(sent, "t.deadletter")
        assert decoded(dead, DEAD_LETTER)["reason"] == "undecodable"
        assert decoded(dead, DEAD_LETTER)["raw"] == b"\x00garbage"
        held = rig.entry()
        assert held is not None and held.state is JoinState.WAITING_FOR_LABEL

    run("memory://", tmp_path, scenario)


def test_the_worker_monitor_sees_the_prediction_and_the_outcome(
    tmp_path: Path, sent: list[Sent]
) -> None:
    monitors = Monitors(ModelsConfig())

    async def scenario(rig: Rig, agent: Any) -> None:
        await rig.put(agent, P, L)
        mon = monitors.by_model["churn"]
        assert mon.counts["predictions"] == 1
        assert mon.counts["outcomes"] == 1
        assert list(mon.trackers) == [prediction()["version"]]
        assert len(on(sent, "t.outcomes")) == 1

    run("memory://", tmp_path, scenario, monitors)


def test_an_unexpected_error_is_dead_lettered_not_dropped(tmp_path: Path, sent: list[Sent]) -> None:
    """Faust acks an event whose handler raised: the agent must turn a bug into a dead
    letter (internal_error, with the raw bytes) and go on with the next message."""

    async def scenario(rig: Rig, agent: Any) -> None:
        real = rig.join.joiner.on_message
        calls = 0

        def flaky(*args: Any) -> Step:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug")
            return real(*args)

        rig.join.joiner.on_message = flaky  # type: ignore[method-assign]
        await rig.put(agent, P, L)
        (dead,) = on(sent, "t.deadletter")
        d = decoded(dead, DEAD_LETTER)
        assert (d["reason"], d["stage"], d["raw"]) == ("internal_error", "join", P)
        assert "a bug" in d["detail"]
        held = rig.entry()  # the label that followed was handled normally
        assert held is not None and held.state is JoinState.WAITING_FOR_PREDICTION

    run("memory://", tmp_path, scenario)
