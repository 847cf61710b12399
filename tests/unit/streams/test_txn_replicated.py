"""The worker loops' transactions on a replicated cluster (driftline/kafka/txn.py, issue 26): the
timeouts that grow with the replication factor, the stuck send_offsets_to_transaction
waited for less and less patiently in a row, and stuck renewals that do not count as
fencing. Fakes only; the fault harness on three nodes runs the real thing
(tests/integration/test_cluster.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from driftline.kafka import clients
from driftline.kafka import txn as txn_module
from driftline.kafka.txn import Transactions, deliver_s, group_settings, transactional_producer
from driftline.settings import Settings


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


@dataclass
class Msg:
    off: int

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "t.labels"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.off


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
        assert not txn.run([Msg(5)], lambda: None)  # type: ignore[list-item]
    assert waits == [0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert consumer.seeks == [5] * len(waits)  # each time, the batch is read again
    assert len(made) == 2 + 2 * len(waits)  # every lane's producer, each time
    assert len(txn.fenced) == 0
    hang.clear()
    assert txn.run([Msg(5)], lambda: None)  # type: ignore[list-item]
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
