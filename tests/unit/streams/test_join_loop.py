"""The join loop (streams/join_loop.py) driven batch by batch, with no broker.

The loop gets a recording producer and consumer in place of confluent-kafka's: the
producer keeps what each transaction produced and makes it visible only when the
transaction commits, so the tests see what a read_committed reader would, and can make
a commit fail the way a broker restart or a fenced worker makes it fail. Everything
else is the real code: the joiner, the stores (memory:// and rocksdb:// in a temp dir),
the expiry index. The clock is fixed, so expiry is driven by setting the time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import KafkaException, Message, TopicPartition

from driftline.core.errors import KafkaError
from driftline.core.join import origins
from driftline.core.join.joiner import DEAD_LETTER, LABEL, OUTCOME, PREDICTION, Joiner, Step
from driftline.core.join.keys import entry_key, split_key
from driftline.core.join.leanentry import LeanPredictions, is_names_key
from driftline.core.join.rules import JoinEntry, JoinState, build_outcome
from driftline.core.model.config import ModelsConfig
from driftline.core.wire import headers as h
from driftline.core.wire.codec import default_codec
from driftline.kafka import txn as txn_module
from driftline.kafka.txn import Helper, Transactions
from driftline.settings import Settings
from driftline.streams import join_loop as join_module
from driftline.streams.app import create_app
from driftline.streams.join_loop import JoinLoop
from driftline.streams.joinstore import MemoryStore, RocksStore, Store
from driftline.streams.monitors import Monitors, install
from driftline.streams.telemetry import TXN_METRICS
from tests.unit.core.examples import label, prediction
from tests.unit.streams.fakemsg import NOW, Msg

CODEC = default_codec()
TTL = 50  # ms of the fixed clock
KEY = b"evt-0001"
EKEY = entry_key("churn", KEY)
"""The store key of churn's entry for KEY."""
PART = 2  # the partition the messages of KEY arrive on (of 3)
CHANGELOG = "t-worker-join-changelog"
P = CODEC.encode(PREDICTION, prediction())
L = CODEC.encode(LABEL, label())
BUCKET = 1_000  # the expiry index's bucket (ms)
SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="t.", data_partitions=3)


def swept(deadline_ms: int) -> int:
    """When the sweep finds an entry due at ``deadline_ms``: once its bucket has passed."""
    return (deadline_ms // BUCKET + 1) * BUCKET - 1


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int
    headers: Any


@dataclass
class FakeProducer:
    """A transactional producer that keeps what committed transactions produced."""

    committed: list[Sent] = field(default_factory=list)
    open: list[tuple[Sent, Any]] = field(default_factory=list)
    offsets: list[list[TopicPartition]] = field(default_factory=list)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)
    fail_commit: int = 0
    """How many commits to fail with an error that requires an abort."""
    fatal: bool = False
    """Fail them with a fatal error instead (a fenced producer)."""
    aborts: int = 0
    inits: int = 0

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int = -1,
                headers: Any = None, on_delivery: Any = None) -> None:  # fmt: skip
        self.open.append((Sent(topic, key, value, partition, headers), on_delivery))

    def flush(self, timeout: float = 0) -> int:
        for sent, callback in self.open:
            if callback is not None:
                tp = (sent.topic, sent.partition)
                offset = self.ends.get(tp, 0)
                self.ends[tp] = offset + 1
                callback(None, Msg(sent.topic, sent.partition, offset, sent.key, sent.value))
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0

    def begin_transaction(self) -> None:
        assert not self.open

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], meta: Any,
                                    timeout: float) -> None:  # fmt: skip
        self.offsets.append(offsets)

    def commit_transaction(self, timeout: float) -> None:
        if self.fail_commit:
            self.fail_commit -= 1
            if self.fatal:
                raise KafkaException(CKafkaError(CKafkaError._FENCED, "test: fenced", fatal=True))
            err = CKafkaError(CKafkaError._FENCED, "test: abort", txn_requires_abort=True)
            raise KafkaException(err)
        self.committed += [sent for sent, _ in self.open]
        self.open.clear()

    def init_transactions(self, timeout: float) -> None:
        self.inits += 1

    def purge(self, in_queue: bool = True, in_flight: bool = True) -> None:
        self.open.clear()

    def abort_transaction(self, timeout: float) -> None:
        self.aborts += 1
        self.open.clear()


@dataclass
class FakeConsumer:
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    fetched: bool = True
    """Whether the consumer has positions yet (it has fetched since its assignment)."""

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t in ("t.predictions", "t.labels") for p in range(3)]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 7 if self.fetched else -1001)
                for tp in tps]  # fmt: skip

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def fakes(txn: Transactions) -> list[FakeProducer]:
    """The producers of ``txn`` made by a test's factory of fakes."""
    return cast(list[FakeProducer], txn.producers)


def is_label(value: bytes) -> bool:
    try:
        CODEC.decode(value, expect=LABEL)
    except Exception:
        return False
    return True


class Rig:
    """A join loop owning every partition, with fake clients and a fixed clock."""

    def __init__(self, store: Store) -> None:
        self.producer = FakeProducer()
        self.consumer = FakeConsumer()
        self.now = NOW
        self.steps: list[Step] = []
        joiner = Joiner(CODEC, {"churn": "classification"}.get, lambda model: TTL,
                        "t.predictions", "t.labels")  # fmt: skip
        self.loop = JoinLoop(SETTINGS, joiner, store, group_id="t-worker-join",
                             on_committed=self.observe, consumer=self.consumer,
                             producer=self.producer)  # fmt: skip
        self.loop.owned = {0, 1, 2}
        self.offsets = {"t.predictions": 0, "t.labels": 0}

    def observe(self, steps: list[Step], now: int) -> None:
        assert now == self.now
        self.steps.extend(steps)

    def put(self, *values: bytes, key: bytes = KEY, part: int = PART, sweep: bool = False,
            headers: list[tuple[str, bytes]] | None = None) -> bool:  # fmt: skip
        """One batch of ``values`` (predictions or labels by their record)."""
        msgs = []
        for value in values:
            topic = "t.labels" if is_label(value) else "t.predictions"
            msgs.append(Msg(topic, part, self.offsets[topic], key, value, headers))
            self.offsets[topic] += 1
        return self.loop.process(cast(list[Message], msgs), self.now, sweep)

    def sweep(self) -> bool:
        return self.loop.process([], self.now, sweep=True)

    def on(self, topic: str) -> list[Sent]:
        return [r for r in self.producer.committed if r.topic == topic]

    def entry(self, part: int = PART, key: bytes = KEY, model: str = "churn") -> JoinEntry | None:
        raw = self.loop.store.get(part, entry_key(model, key))
        return None if raw is None else JoinEntry.from_bytes(raw)


@pytest.fixture(params=["memory://", "rocksdb://"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    store: Store = MemoryStore() if request.param == "memory://" else RocksStore(tmp_path / "join")
    r = Rig(store)
    yield r
    store.close()


def decoded(record: Sent, name: str) -> dict[str, Any]:
    assert record.value is not None
    return CODEC.decode(record.value, expect=name).value


@pytest.mark.parametrize("first", ["prediction", "label"])
def test_a_prediction_and_its_label_give_one_outcome(rig: Rig, first: str) -> None:
    one, other = (P, L) if first == "prediction" else (L, P)
    assert rig.put(one)
    held = JoinState.WAITING_FOR_LABEL if one is P else JoinState.WAITING_FOR_PREDICTION
    time_ms = prediction()["event_time_ms"] if one is P else label()["label_time_ms"]
    origin = origins.pack(0, NOW, [], time_ms)  # where it was read: offset 0, its timestamp
    logged = []
    if one is P:  # held lean, after the names record of its feature names
        packed = LeanPredictions(CODEC).pack(P)
        assert packed is not None
        expected = JoinEntry(held, NOW + TTL, time_ms, TTL, packed.payload, lean=True,
                             origin=origin)  # fmt: skip
        logged.append(Sent(CHANGELOG, packed.key, packed.names, PART, []))
    else:
        expected = JoinEntry(held, NOW + TTL, time_ms, TTL, one, origin=origin)
    assert rig.entry() == expected
    logged.append(Sent(CHANGELOG, EKEY, expected.to_bytes(), PART, []))
    assert rig.on(CHANGELOG) == logged
    assert rig.on("t.outcomes") == []
    assert rig.steps[0].prediction == (prediction() if one is P else None)

    rig.now += 10
    assert rig.put(other)
    tomb = JoinEntry(JoinState.JOINED, NOW + 10 + TTL, prediction()["event_time_ms"], TTL)
    assert rig.entry() == tomb
    assert [r.value for r in rig.on(CHANGELOG)] == [*(r.value for r in logged), tomb.to_bytes()]
    (outcome,) = rig.on("t.outcomes")
    assert outcome.key == KEY
    assert decoded(outcome, OUTCOME) == build_outcome(prediction(), label())
    assert h.parse(outcome.headers)[h.SCHEMA] == OUTCOME
    assert rig.on("t.deadletter") == []
    got = rig.steps[1]  # the monitor hook got the prediction (first seen) and the outcome
    assert got.prediction == (prediction() if other is P else None)
    record = build_outcome(prediction(), label())
    if one is P:  # built from the lean entry: the monitor's copy has no features
        del record["features"]
    assert [(o.topic, o.record) for o in got.outputs] == [("outcomes", record)]
    # each batch committed the offsets after its input, in its own transaction
    committed = [[(tp.topic, tp.partition, tp.offset) for tp in o] for o in rig.producer.offsets]
    first_topic, second_topic = ("t.predictions", "t.labels")[:: 1 if one is P else -1]
    assert committed == [[(first_topic, PART, 1)], [(second_topic, PART, 1)]]
    # a store that persists knows where the changelog continues (memory:// restores it all)
    persists = rig.loop.store.persists
    assert rig.loop.store.next_offset(PART) == (len(logged) + 1 if persists else 0)


@pytest.mark.parametrize("first", ["prediction", "label"])
def test_the_outcome_carries_the_challengers_predictions(rig: Rig, first: str) -> None:
    """The champion's Prediction carries its challengers' predictions; the Outcome on the
    topic and the dict the monitor gets carry them too (held lean or not)."""
    others = [
        {"version": "v4", "prediction": False, "scores": {"True": 0.3, "False": 0.7}},
        {"version": "v5", "prediction": True, "scores": {"True": 0.6, "False": 0.4}},
    ]
    p = CODEC.encode(PREDICTION, prediction(challengers=others))
    assert rig.put(*((p, L) if first == "prediction" else (L, p)))
    (outcome,) = rig.on("t.outcomes")
    assert decoded(outcome, OUTCOME)["challengers"] == others
    (record,) = [o.record for s in rig.steps for o in s.outputs if o.topic == "outcomes"]
    assert record is not None and record["challengers"] == others
    assert rig.put(CODEC.encode(PREDICTION, prediction(event_id="e2")), key=b"e2")
    assert rig.put(CODEC.encode(LABEL, label(event_id="e2")), key=b"e2")
    plain = [o for s in rig.steps for o in s.outputs if o.topic == "outcomes"][-1]
    assert plain.record is not None and plain.record["challengers"] == []
    assert CODEC.decode(plain.value).value["challengers"] == []


def test_one_batch_holds_both_sides_of_a_key(rig: Rig) -> None:
    assert rig.put(P, L)
    assert len(rig.on("t.outcomes")) == 1
    assert rig.entry() is not None and rig.entry().state is JoinState.JOINED  # type: ignore[union-attr]


def test_a_duplicate_label_is_dead_lettered_and_no_second_outcome(rig: Rig) -> None:
    again = CODEC.encode(LABEL, label(label=True))  # a second, different label
    rig.put(P, L)
    tomb = rig.entry()
    rig.put(again)
    assert rig.entry() == tomb  # kept as is: no write, no changelog record
    assert [r.key for r in rig.on(CHANGELOG) if r.key and not is_names_key(r.key)] == [EKEY, EKEY]
    assert len(rig.on("t.outcomes")) == 1
    (dead,) = rig.on("t.deadletter")
    record = decoded(dead, DEAD_LETTER)
    assert (record["reason"], record["stage"], record["raw"]) == ("duplicate_label", "join", again)
    assert (record["model"], record["source_key"], record["source_partition"]) == (
        "churn", KEY, PART,
    )  # fmt: skip
    assert dict(dead.headers)[h.DLQ_REASON] == b"duplicate_label"
    assert rig.steps[-1].kinds == ["duplicate_label"]


def test_an_aborted_batch_changes_nothing_and_is_read_again(rig: Rig) -> None:
    """A commit that fails (broker restart, fenced zombie): the loop aborts, rewinds the
    consumer to the batch's first offsets, and leaves store, index and monitor as they
    were; the batch read again gives exactly one outcome."""
    rig.put(P)
    before = rig.entry()
    rig.producer.fail_commit = 1
    assert rig.put(L) is False
    assert rig.producer.aborts == 1
    assert rig.consumer.seeks == [("t.labels", PART, 0)]
    assert rig.entry() == before
    assert rig.on("t.outcomes") == [] and len(rig.steps) == 1
    rig.offsets["t.labels"] = 0  # the rewound consumer delivers the label again
    assert rig.put(L)
    assert len(rig.on("t.outcomes")) == 1
    assert rig.entry() is not None and rig.entry().state is JoinState.JOINED  # type: ignore[union-attr]


def test_a_fenced_producer_is_replaced_and_the_batch_read_again(rig: Rig) -> None:
    """A fatal error (the coordinator timed the transaction out while the broker was
    away, and fenced the producer): a new producer, the same batch again, one outcome."""
    rig.put(P)
    rig.producer.fail_commit, rig.producer.fatal = 1, True
    assert rig.put(L) is False
    assert rig.producer.inits == 1 and rig.producer.aborts == 0
    assert len(rig.loop.txn.renewed) == 1
    assert rig.consumer.seeks == [("t.labels", PART, 0)]
    assert rig.on("t.outcomes") == []
    rig.offsets["t.labels"] = 0
    assert rig.put(L)
    assert len(rig.on("t.outcomes")) == 1


def test_batches_take_turns_on_the_transactional_lanes() -> None:
    """Consecutive batches run on alternate producers (a producer that begins its next
    transaction while the coordinator still writes the last one's markers waits 20 ms
    in librdkafka); init registers every lane; a fenced lane alone is replaced, with
    the same lane number, and the turn still moves on."""
    lanes = [FakeProducer(), FakeProducer()]
    made: list[int] = []

    def make(lane: int) -> FakeProducer:
        made.append(lane)
        return lanes[lane] if len(made) <= 2 else FakeProducer()

    consumer = FakeConsumer()
    txn = Transactions(make, consumer, "t")  # type: ignore[arg-type]
    txn.init()
    assert [p.inits for p in lanes] == [1, 1]

    def batch(offset: int) -> bool:
        msg = Msg("t.labels", PART, offset, KEY, L)
        return txn.run([msg], lambda: txn.produce("t.out", b"v", KEY, []))  # type: ignore[list-item]

    assert batch(0) and batch(1) and batch(2)
    assert [len(p.committed) for p in lanes] == [2, 1]
    assert [[tp.offset for tp in o] for o in lanes[0].offsets] == [[1], [3]]
    assert [[tp.offset for tp in o] for o in lanes[1].offsets] == [[2]]
    lanes[1].fail_commit, lanes[1].fatal = 1, True
    assert not batch(3)  # lane 1's turn: fenced, replaced
    assert made == [0, 1, 1] and fakes(txn)[0] is lanes[0]
    assert fakes(txn)[1] is not lanes[1] and fakes(txn)[1].inits == 1
    assert consumer.seeks == [("t.labels", PART, 3)]
    assert batch(3) and len(lanes[0].committed) == 3


def test_each_batch_transaction_reports_the_time_of_its_phases() -> None:
    """``driftline_transaction_seconds{loop, phase}``: one observation per phase of a
    committed batch; none for an aborted one, nor for a sweep that read nothing."""
    from prometheus_client import REGISTRY

    def count(phase: str) -> float:
        got = REGISTRY.get_sample_value(
            "driftline_transaction_seconds_count", {"loop": "t-phases", "phase": phase}
        )
        return got or 0.0

    producer = FakeProducer()
    txn = Transactions(lambda lane: producer, FakeConsumer(), "t-phases",  # type: ignore[arg-type,return-value]
                       observer=TXN_METRICS)  # fmt: skip
    msg = Msg("t.labels", PART, 0, KEY, L)
    assert txn.run([msg], lambda: txn.produce("t.out", b"v", KEY, []))  # type: ignore[list-item]
    assert [count(ph) for ph in ("work", "deliver", "offsets", "commit")] == [1, 1, 1, 1]
    producer.fail_commit = 1
    assert not txn.run([msg], lambda: None)  # type: ignore[list-item]
    assert txn.run([], lambda: None)  # a sweep: fenced by the positions, not observed
    assert count("commit") == 1 and len(producer.offsets) == 3


def test_a_hung_send_offsets_replaces_the_producer_and_the_batch_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """librdkafka's send_offsets_to_transaction can block for good after a broker restart
    (#5456, #5511; seen in the fault harness): the loop stops waiting after STUCK_S,
    replaces the producer (whose init_transactions fences the stuck one) and rewinds
    the batch, which then commits on the new producer."""
    from prometheus_client import REGISTRY

    monkeypatch.setattr(txn_module, "STUCK_S", 0.2)
    release = threading.Event()

    class Hanging(FakeProducer):
        def send_offsets_to_transaction(self, offsets: Any, meta: Any, timeout: float) -> None:
            release.wait(30)

    made: list[FakeProducer] = []

    def make(lane: int) -> FakeProducer:
        made.append(Hanging() if len(made) < 2 else FakeProducer())
        return made[-1]

    consumer = FakeConsumer()
    txn = Transactions(make, consumer, "t-stuck", observer=TXN_METRICS)  # type: ignore[arg-type]
    txn.init()
    msg = Msg("t.labels", PART, 5, KEY, L)
    t0 = time.monotonic()
    assert not txn.run([msg], lambda: txn.produce("t.out", b"v", KEY, []))  # type: ignore[list-item]
    assert time.monotonic() - t0 < 5
    # every lane's producer is replaced: the other lane's would hang on its next batch
    assert len(made) == 4 and fakes(txn) == made[2:]
    assert [p.inits for p in made] == [1, 1, 1, 1] and len(txn.renewed) == 1
    assert consumer.seeks == [("t.labels", PART, 5)] and made[0].committed == []
    retried = REGISTRY.get_sample_value(
        "driftline_transactions_retried_total", {"loop": "t-stuck", "why": "stuck"}
    )
    assert retried == 1
    for offset in (5, 6):  # on both new lanes, in turn
        m = Msg("t.labels", PART, offset, KEY, L)
        assert txn.run([m], lambda: txn.produce("t.out", b"v", KEY, []))  # type: ignore[list-item]
    assert [[tp.offset for tp in o] for p in made[2:] for o in p.offsets] == [[7], [6]]
    release.set()


def test_the_helper_raises_what_its_call_raised_and_gives_up_on_a_hung_one() -> None:
    helper = Helper("t-helper")
    err = KafkaException(CKafkaError(CKafkaError._TIMED_OUT, "test: retriable", retriable=True))

    def fail() -> None:
        raise err

    with pytest.raises(KafkaException) as got:
        helper.call(fail, 5)
    assert got.value is err
    assert helper.call(lambda: None, 5) is True
    release = threading.Event()

    def hang() -> None:
        release.wait(30)

    assert helper.call(hang, 0.1) is False
    release.set()


def test_an_aborted_sweep_leaves_the_entry_due(rig: Rig) -> None:
    rig.put(P)
    rig.loop.index.add((PART, EKEY), NOW + TTL)
    rig.now = swept(NOW + TTL)
    rig.producer.fail_commit = 1
    assert rig.sweep() is False
    assert rig.entry() is not None and rig.entry().state is JoinState.WAITING_FOR_LABEL  # type: ignore[union-attr]
    assert rig.sweep()
    assert rig.entry().state is JoinState.EXPIRED_PREDICTION  # type: ignore[union-attr]
    (dead,) = rig.on("t.deadletter")
    assert decoded(dead, DEAD_LETTER)["reason"] == "expired_prediction"


def test_the_sweep_expires_a_prediction_then_forgets_its_tombstone(rig: Rig) -> None:
    rig.put(P)
    other = CODEC.encode(PREDICTION, prediction(event_id="evt-0002"))
    rig.put(other, key=b"evt-0002", part=0)
    rig.loop.owned = {PART}  # as after an assignment: this worker owns PART only
    writes = len(rig.producer.committed)

    rig.now = NOW + TTL - 1
    rig.sweep()  # nothing due yet
    assert len(rig.producer.committed) == writes and len(rig.steps) == 2

    rig.now = expired_at = swept(NOW + TTL)
    rig.sweep()
    tomb = rig.entry()
    assert tomb is not None and tomb.state is JoinState.EXPIRED_PREDICTION
    assert tomb.deadline_ms == expired_at + TTL
    assert rig.on(CHANGELOG)[-1] == Sent(CHANGELOG, EKEY, tomb.to_bytes(), PART, [])
    (dead,) = rig.on("t.deadletter")
    record = decoded(dead, DEAD_LETTER)
    assert (record["reason"], record["raw"], record["model"]) == ("expired_prediction", P, "churn")
    assert record["source_partition"] == PART
    assert rig.steps[-1].kinds == ["expired_prediction"]
    assert rig.entry(0, b"evt-0002") is not None  # not ours: left to its owner

    rig.now = swept(tomb.deadline_ms)
    rig.sweep()
    assert rig.entry() is None
    assert rig.on(CHANGELOG)[-1] == Sent(CHANGELOG, EKEY, None, PART, [])
    assert rig.on("t.outcomes") == []
    rig.put(L)  # a label after the tombstone is gone is held again (an orphan, in time)
    held = rig.entry()
    assert held is not None and held.state is JoinState.WAITING_FOR_PREDICTION


@pytest.mark.parametrize(("held", "reason", "topic"), [
    (P, "expired_prediction", "t.predictions"), (L, "orphan_label", "t.labels"),
])  # fmt: skip
def test_a_swept_dead_letter_names_the_record_it_carries(
    rig: Rig, held: bytes, reason: str, topic: str
) -> None:
    """The sweep gives up a held prediction or label long after it was read: its dead
    letter still names the topic, partition, offset, timestamp and headers it came with
    (issue 25: an orphan label named the predictions topic and offset -1)."""
    hdrs = [("driftline-trace-id", b"4bf92f3577b34da6a3ce929d0e0e4736"), ("app", b"shop")]
    rig.offsets = {"t.predictions": 41, "t.labels": 97}
    rig.put(held, headers=hdrs)
    rig.now = swept(NOW + TTL)
    assert rig.sweep()
    (dead,) = rig.on("t.deadletter")
    d = decoded(dead, DEAD_LETTER)
    offset = 41 if topic == "t.predictions" else 97
    assert (d["reason"], d["raw"], d["model"]) == (reason, held, "churn")
    assert (d["source_topic"], d["source_partition"], d["source_offset"]) == (topic, PART, offset)
    assert (d["source_key"], d["source_timestamp_ms"]) == (KEY, NOW)
    assert d["headers"] == [{"key": k, "value": v} for k, v in hdrs]
    connect = dict(dead.headers)
    assert connect[h.DLQ_TOPIC] == topic.encode() and connect[h.DLQ_OFFSET] == str(offset).encode()


def test_entries_of_the_previous_release_are_migrated_inside_the_transaction(rig: Rig) -> None:
    """A store restored from the previous release's changelog (keyed by event_id): the
    loop sees it at assignment, and the batch that joins an old held prediction writes
    the new key and deletes the old one in its own transaction."""
    fixture = json.loads((Path(__file__).parents[2] / "fixtures" / "join" /
                          "previous-release-changelog.json").read_text())  # fmt: skip
    rig.loop.joiner.ttl_of = lambda model: fixture["ttl_ms"]
    changes = {bytes.fromhex(r["key"]): None if r["value"] is None else bytes.fromhex(r["value"])
               for r in fixture["changelog"]}  # fmt: skip
    rig.loop.store.write(PART, changes, len(fixture["changelog"]))
    rig.loop.rebuild({0, 1, 2})
    assert rig.loop.legacy == {PART: 7}  # seven event_ids: held, joined, given up
    rig.now = fixture["t0"] + 100
    lab = CODEC.encode(LABEL, label(event_id="e-held-lean"))
    assert rig.put(lab, key=b"e-held-lean")
    (outcome,) = rig.on("t.outcomes")
    assert decoded(outcome, OUTCOME)["event_id"] == "e-held-lean"
    new = entry_key("churn", b"e-held-lean")
    assert [(r.key, r.value is None) for r in rig.on(CHANGELOG)] == [
        (b"e-held-lean", True), (new, False),
    ]  # fmt: skip
    assert rig.loop.store.get(PART, b"e-held-lean") is None
    assert rig.entry(key=b"e-held-lean") is not None
    assert rig.entry(key=b"e-held-lean").state is JoinState.JOINED  # type: ignore[union-attr]
    assert rig.loop.legacy == {PART: 6}
    rig.now = fixture["t0"] + 3 * fixture["ttl_ms"]  # every old entry is due
    assert rig.sweep()
    assert rig.loop.legacy == {}  # no second lookup from now on
    left = [k for k, _ in rig.loop.store.items(PART) if not is_names_key(k)]
    assert left and all(split_key(k)[0] is not None for k in left)
    rig.loop.rebuild({0, 1, 2})
    assert rig.loop.legacy == {}


def test_a_sweep_commits_the_positions_so_a_paused_zombie_cannot_commit_it(rig: Rig) -> None:
    """A sweep reads nothing, yet its transaction commits the current positions: they
    carry the group generation, so a worker that lost the partition while paused is
    fenced instead of publishing a second expiry. Before any fetch there are no
    positions, and the sweep waits."""
    rig.put(P)
    rig.now = swept(NOW + TTL)
    rig.consumer.fetched = False
    assert rig.sweep() is False and rig.on("t.deadletter") == []
    rig.consumer.fetched = True
    assert rig.sweep()
    assert len(rig.on("t.deadletter")) == 1
    assert {(tp.topic, tp.partition, tp.offset) for tp in rig.producer.offsets[-1]} == {
        (t, p, 7) for t in ("t.predictions", "t.labels") for p in range(3)
    }


def test_undecodable_input_is_dead_lettered_and_the_loop_goes_on(rig: Rig) -> None:
    rig.put(b"\x00garbage", P)
    (dead,) = rig.on("t.deadletter")
    assert decoded(dead, DEAD_LETTER)["reason"] == "undecodable"
    assert decoded(dead, DEAD_LETTER)["raw"] == b"\x00garbage"
    held = rig.entry()
    assert held is not None and held.state is JoinState.WAITING_FOR_LABEL


def test_an_unexpected_error_is_dead_lettered_not_dropped(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = rig.loop.joiner.on_message
    calls = 0

    def flaky(*args: Any) -> Step:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return real(*args)

    monkeypatch.setattr(rig.loop.joiner, "on_message", flaky)
    rig.put(P, L)
    (dead,) = rig.on("t.deadletter")
    d = decoded(dead, DEAD_LETTER)
    assert (d["reason"], d["stage"], d["raw"]) == ("internal_error", "join", P)
    assert "a bug" in d["detail"]
    held = rig.entry()  # the label that followed was handled normally
    assert held is not None and held.state is JoinState.WAITING_FOR_PREDICTION


def test_rocksdb_state_and_its_changelog_offset_survive_a_reopen(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "join")
    Rig(store).put(P)
    store.close()
    again = RocksStore(tmp_path / "join")
    raw = again.get(PART, EKEY)
    assert raw is not None and JoinEntry.from_bytes(raw).state is JoinState.WAITING_FOR_LABEL
    # the entry and the names record of its (lean) prediction's features
    names = LeanPredictions.names_key(JoinEntry.from_bytes(raw).payload)
    assert again.next_offset(PART) == 2 and again.count([PART]) == 2
    assert [k for k, _ in again.items(PART)] == [EKEY, names]
    again.reset(PART)
    assert again.get(PART, EKEY) is None and again.next_offset(PART) == 0
    again.close()


def test_the_worker_monitor_sees_the_prediction_and_the_outcome(rig: Rig) -> None:
    monitors = Monitors(ModelsConfig())
    app = create_app(SETTINGS, "t-monitor-unit")
    sent: list[tuple[str, bytes]] = []

    def send(topic: str, key: bytes, value: bytes, hdrs: list[tuple[str, bytes]]) -> None:
        sent.append((topic, key))

    observe = install(app, CODEC, monitors, SETTINGS.topic, 60.0, send)
    rig.put(P, L)
    asyncio.run(observe(rig.steps, rig.now))
    mon = monitors.by_model["churn"]
    ((_, bucket),) = mon.expiry.pending.items()  # the prediction, counted at its arrival
    assert (sum(bucket.units.values()), bucket.joined) == (1, 1)  # and its outcome
    assert list(mon.trackers) == [prediction()["version"]]


class _Watermarks:
    """A consumer whose get_watermark_offsets fails with ``errors`` first."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.calls = 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        self.calls += 1
        if self.errors:
            raise KafkaException(CKafkaError(self.errors.pop(0)))
        return 3, 9


def test_restore_waits_for_a_new_changelog_to_get_its_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("driftline.streams.join_loop.time.sleep", lambda s: None)
    tp = TopicPartition(CHANGELOG, PART)
    c = _Watermarks(CKafkaError.NOT_LEADER_FOR_PARTITION, CKafkaError.LEADER_NOT_AVAILABLE,
                    CKafkaError._UNKNOWN_PARTITION)  # fmt: skip
    assert join_module.watermarks(c, tp, time.monotonic() + 60) == (3, 9)  # type: ignore[arg-type]
    assert c.calls == 4
    with pytest.raises(KafkaError, match="watermarks"):  # not a leader question: no retry
        join_module.watermarks(_Watermarks(CKafkaError.TOPIC_AUTHORIZATION_FAILED), tp, 1e12)  # type: ignore[arg-type]
    with pytest.raises(KafkaError, match="watermarks"):  # the deadline has passed
        join_module.watermarks(_Watermarks(CKafkaError.NOT_LEADER_FOR_PARTITION), tp, 0)  # type: ignore[arg-type]


def test_the_worker_collects_cyclic_garbage_less_often() -> None:
    from driftline.streams.app import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # start-up objects are not scanned again
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
