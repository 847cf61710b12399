"""The worker loops' transactions on a replicated cluster (driftline/kafka/txn.py, issue 26): the
timeouts that grow with the replication factor, the stuck send_offsets_to_transaction
waited for less and less patiently in a row, and stuck renewals that do not count as
fencing. Fakes only; the fault harness on three nodes runs the real thing
(tests/integration/test_cluster.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from confluent_kafka import TopicPartition

from driftline.kafka import clients
from driftline.kafka import txn as txn_module
from driftline.kafka.txn import Transactions, deliver_s, group_settings, transactional_producer
from driftline.settings import Settings
from tests.unit.streams.fakemsg import Msg


@pytest.mark.parametrize(
    ("settings", "txn_ms", "session_ms", "deliver"),
    [
        (Settings(), 10_000, 6_000, 10.0),
        (Settings(replication_factor=2), 30_000, 20_000, 25.0),
        (Settings(replication_factor=3), 30_000, 20_000, 25.0),
        (
            Settings(
                replication_factor=3, transaction_timeout_ms=60_000, session_timeout_ms=12_000
            ),
            60_000,
            12_000,
            55.0,
        ),
        (Settings(transaction_timeout_ms=5_000), 5_000, 6_000, 10.0),
    ],
)
def test_timeouts_follow_the_replication_factor_unless_set(
    settings: Settings, txn_ms: int, session_ms: int, deliver: float
) -> None:
    assert transactional_producer(settings, "scorer", "t")["transaction.timeout.ms"] == txn_ms
    assert group_settings(settings)["session.timeout.ms"] == session_ms
    assert deliver_s(settings) == deliver


def test_every_client_reconnects_within_a_second_and_writes_to_every_in_sync_replica() -> None:
    s = Settings(replication_factor=3)
    for conf in (clients.producer_config(s, "p"), clients.consumer_config(s, "c", "g"),
                 clients.admin_config(s)):  # fmt: skip
        assert conf["reconnect.backoff.max.ms"] == 1_000
    producer = clients.producer_config(s, "p")
    assert (producer["acks"], producer["enable.idempotence"]) == ("all", True)
    assert "message.timeout.ms" not in producer  # librdkafka's 5 min outlasts a failover


@dataclass
class Producer:
    """A transactional producer whose send_offsets hangs while ``hang`` is set."""

    hang: threading.Event
    waits: list[float] = field(default_factory=list)
    commits: int = 0
    inits: int = 0

    def init_transactions(self, timeout: float) -> None:
        self.inits += 1

    def begin_transaction(self) -> None:
        pass

    def flush(self, timeout: float = 0) -> int:
        return 0

    def send_offsets_to_transaction(self, offsets: Any, meta: Any, timeout: float) -> None:
        self.waits.append(timeout)
        while self.hang.is_set():
            threading.Event().wait(0.01)

    def commit_transaction(self, timeout: float) -> None:
        self.commits += 1

    def purge(self, in_queue: bool = True, in_flight: bool = True) -> None:
        pass


@dataclass
class Consumer:
    seeks: list[int] = field(default_factory=list)

    def consumer_group_metadata(self) -> object:
        return object()

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp.offset)


def test_stuck_offsets_are_waited_for_twice_as_long_in_a_row_until_a_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each stuck call replaces every lane's producer; the next wait doubles (up to
    STUCK_MAX_S), and a committed batch brings it back to STUCK_S. Stuck renewals never
    end the thread, however many: they are not a second live worker fencing this one."""
    monkeypatch.setattr(txn_module, "STUCK_S", 0.05)
    monkeypatch.setattr(txn_module, "STUCK_MAX_S", 0.2)
    hang = threading.Event()
    hang.set()
    made: list[Producer] = []

    def make(lane: int) -> Producer:
        made.append(Producer(hang))
        return made[-1]

    consumer = Consumer()
    txn = Transactions(make, consumer, "t-stuck-row")  # type: ignore[arg-type]
    txn.init()
    waits = []
    for _ in range(txn_module.RENEWALS_PER_MINUTE + 2):
        waits.append(txn.stuck_s)
        assert not txn.run([Msg("t.labels", 0, 5)], lambda: None)  # type: ignore[list-item]
    assert waits == [0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert consumer.seeks == [5] * len(waits)  # each time, the batch is read again
    assert len(made) == 2 + 2 * len(waits)  # every lane's producer, each time
    assert len(txn.fenced) == 0
    hang.clear()
    assert txn.run([Msg("t.labels", 0, 5)], lambda: None)  # type: ignore[list-item]
    assert txn.stuck_s == 0.05
    # the call's own timeout is below the wait, for a librdkafka that keeps it
    assert all(w < 0.2 for p in made for w in p.waits)


def test_the_joins_restore_asks_again_when_a_dying_leaders_handle_is_destroyed() -> None:
    """Seen in the fault harness on three nodes: a leader SIGKILLed while the join
    restored a changelog partition made get_watermark_offsets fail with _DESTROY_BROKER
    (the broker left the client's metadata under the request), which ended the join's
    thread and restarted the worker. It is asked again, as for a partition with no
    leader yet."""
    import time

    from confluent_kafka import KafkaError as CKafkaError
    from confluent_kafka import KafkaException

    from driftline.streams.join_loop import watermarks

    class Flaky:
        calls = 0

        def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
            self.calls += 1
            if self.calls == 1:
                raise KafkaException(CKafkaError(CKafkaError._DESTROY_BROKER, "gone"))
            return (0, 42)

    c = Flaky()
    assert watermarks(c, TopicPartition("t-changelog", 2), time.monotonic() + 5) == (0, 42)  # type: ignore[arg-type]
    assert c.calls == 2


@pytest.mark.parametrize(
    ("calls", "ceiling", "wait"),
    [
        ([], 3.0, 3.0),  # nothing observed yet: the plain wait
        ([0.005] * 19, 3.0, 3.0),  # too few to size by
        ([0.005] * 20, 3.0, 0.5),  # the usual ~5 ms calls: the floor
        ([0.004] * 200 + [0.09] * 3, 3.0, 0.9),  # a slow tail of 1.5 %: 10 x its p99
        ([0.005] * 99 + [2.0], 3.0, 0.5),  # one call in a hundred is not the p99
        ([0.4] * 50, 3.0, 3.0),  # a loaded machine's slow calls: never above the plain wait
        ([0.4] * 50, 12.0, 4.0),  # ... which doubles after a stuck call
    ],
)
def test_the_quick_wait_is_ten_times_the_observed_p99_between_a_floor_and_the_plain_wait(
    calls: list[float], ceiling: float, wait: float
) -> None:
    assert txn_module.quick_wait_s(calls, ceiling) == wait


@pytest.mark.parametrize(
    ("known", "looks", "lost", "after"),
    [
        ({1, 2, 3}, [{1, 2, 3}], [set()], {1, 2, 3}),
        ({1, 2, 3}, [{1, 3}], [{2}], {1, 2, 3}),  # n2 fenced: left the metadata
        ({1, 2, 3}, [{1, 3}, {1, 2, 3}], [{2}, set()], {1, 2, 3}),  # and back
        ({1, 3}, [{1, 2, 3}, {1, 3}], [set(), {2}], {1, 2, 3}),  # joined, then left: counts
        (set(), [{1, 2}], [set()], {1, 2}),  # a view made before any look learns
    ],
)
def test_a_producers_view_loses_the_brokers_that_left_the_cluster_since_it_was_made(
    known: set[int], looks: list[set[int]], lost: list[set[int]], after: set[int]
) -> None:
    view = txn_module.BrokerView(known)
    assert [view.lost(now) for now in looks] == lost
    assert view.known == after


@dataclass
class Cluster:
    """The brokers in the metadata, and how often a producer asked for it."""

    brokers: set[int] = field(default_factory=lambda: {1, 2, 3})
    looks: int = 0


@dataclass
class Meta:
    brokers: dict[int, object]


@dataclass
class Seen(Producer):
    """A producer that answers metadata from ``cluster``."""

    cluster: Cluster = field(default_factory=Cluster)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Meta:
        self.cluster.looks += 1
        return Meta({b: object() for b in self.cluster.brokers})


class Retried:
    def __init__(self) -> None:
        self.whys: list[str] = []

    def phase(self, loop: str, phase: str, seconds: float) -> None:
        pass

    def retried(self, loop: str, why: str) -> None:
        self.whys.append(why)


def _loop(
    hang: threading.Event, cluster: Cluster
) -> tuple[Transactions, list[Seen], Consumer, Retried]:
    made: list[Seen] = []

    def make(lane: int) -> Seen:
        made.append(Seen(hang, cluster=cluster))
        return made[-1]

    consumer, seen = Consumer(), Retried()
    txn = Transactions(make, consumer, "t-gone", observer=seen)  # type: ignore[arg-type]
    txn.init()
    return txn, made, consumer, seen


def test_no_metadata_request_while_no_client_reported_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The steady state (any load) costs nothing: one look at the start, none per batch;
    a transient error of a loop's consumer (it may be the only client to see a broker
    die) starts the looks, as a producer's error does."""
    from confluent_kafka import KafkaError as CKafkaError

    from driftline.kafka.txn import usable

    monkeypatch.setattr(txn_module, "CONSUMER_ALARM", [-txn_module.ALARM_S])
    monkeypatch.setattr(txn_module, "CHECK_EVERY_S", 0.0)
    cluster = Cluster()
    txn, made, _, _ = _loop(threading.Event(), cluster)
    for off in range(50):
        assert txn.run([Msg("t.labels", 0, off)], lambda: None)  # type: ignore[list-item]
    assert cluster.looks == 1
    assert len(made) == 2

    class Failed:
        def error(self) -> CKafkaError:
            return CKafkaError(CKafkaError._TRANSPORT, "n2: Disconnected")

    assert not usable(Failed())  # type: ignore[arg-type]
    cluster.brokers = {1, 3}
    assert txn.run([Msg("t.labels", 0, 50)], lambda: None)  # type: ignore[list-item]
    assert cluster.looks == 3 and txn.early == 1  # before the batch and before its offsets


def test_a_producer_that_may_cache_a_coordinator_on_a_gone_broker_is_replaced_between_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """librdkafka #5511: after a broker left the metadata, a producer's offsets call may
    wait for it for good. The loop replaces such a producer before its next batch
    begins: nothing aborted, nothing read again, and the batch commits."""
    from confluent_kafka import KafkaError as CKafkaError

    monkeypatch.setattr(txn_module, "CHECK_EVERY_S", 0.0)
    hang, cluster = threading.Event(), Cluster()
    txn, made, consumer, seen = _loop(hang, cluster)
    assert txn.run([Msg("t.labels", 0, 1)], lambda: None)  # type: ignore[list-item]
    txn.on_error(CKafkaError(CKafkaError._TRANSPORT, "n2: Disconnected"))
    assert txn.run([Msg("t.labels", 0, 2)], lambda: None)  # type: ignore[list-item]  # n2 not fenced yet
    assert len(made) == 2
    cluster.brokers = {1, 3}  # fenced: gone from the metadata
    hang.set()  # the old producers' offsets calls would hang now
    stale = list(made)
    fresh = [Seen(threading.Event(), cluster=cluster) for _ in range(2)]
    txn.make_producer = lambda lane: cast(Any, fresh[lane])
    assert txn.run([Msg("t.labels", 0, 3)], lambda: None)  # type: ignore[list-item]
    assert txn.run([Msg("t.labels", 0, 4)], lambda: None)  # type: ignore[list-item]
    assert [id(p) for p in txn.producers] == [id(p) for p in fresh]  # each lane once, early
    assert txn.early == 2
    assert consumer.seeks == [] and seen.whys == []
    assert sum(p.commits for p in stale) == 2 and sum(p.commits for p in fresh) == 2
    cluster.brokers = {1, 2, 3}  # n2 back: nothing more to replace
    assert txn.run([Msg("t.labels", 0, 5)], lambda: None)  # type: ignore[list-item]
    assert [id(p) for p in txn.producers] == [id(p) for p in fresh]


@pytest.mark.parametrize("coordinator_gone", [True, False])
def test_an_offsets_call_begun_before_a_broker_left_is_waited_for_briefly(
    monkeypatch: pytest.MonkeyPatch, coordinator_gone: bool
) -> None:
    """A batch that began before the broker left: its offsets call is waited for the
    quick wait, not STUCK_S; a hang (the coordinator was on that broker) is given up,
    every lane replaced and the batch read again; a call that returns (the coordinator
    was elsewhere) commits as usual, nothing read again."""
    from confluent_kafka import KafkaError as CKafkaError

    monkeypatch.setattr(txn_module, "STUCK_S", 5.0)
    monkeypatch.setattr(txn_module, "QUICK_FLOOR_S", 0.05)
    monkeypatch.setattr(txn_module, "CHECK_EVERY_S", 0.0)
    hang, cluster = threading.Event(), Cluster()
    txn, made, consumer, seen = _loop(hang, cluster)
    for off in range(txn_module.QUICK_MIN_SAMPLES):
        assert txn.run([Msg("t.labels", 0, off)], lambda: None)  # type: ignore[list-item]
    txn.on_error(CKafkaError(CKafkaError._TRANSPORT, "n2: Connection refused"))

    def fenced_meanwhile() -> None:
        cluster.brokers = {1, 3}
        if coordinator_gone:
            hang.set()

    import time

    t0 = time.monotonic()
    committed = txn.run([Msg("t.labels", 0, 100)], fenced_meanwhile)  # type: ignore[list-item]
    took = time.monotonic() - t0
    hang.clear()
    assert took < 1.0  # the quick wait, far below STUCK_S's 5 s
    assert committed is not coordinator_gone
    if coordinator_gone:
        assert consumer.seeks == [100] and seen.whys == ["stuck"]
        assert len(made) == 4  # every lane's producer replaced
        assert txn.stuck_s == 10.0
    else:
        assert consumer.seeks == [] and seen.whys == []
        assert len(made) == 2
