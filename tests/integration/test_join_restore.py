"""The join's changelog restore against the real broker: it reads up to the end the
changelog had when the partitions were assigned, and waits for a transaction still open
below it (the previous owner's last batch) to be committed or aborted."""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Producer

from driftline.core.join.joiner import Joiner
from driftline.core.wire.codec import default_codec
from driftline.kafka.clients import producer_config
from driftline.settings import Settings
from driftline.streams.join_loop import JoinLoop
from driftline.streams.joinstore import MemoryStore


def _loop(settings: Settings, group_id: str) -> JoinLoop:
    joiner = Joiner(default_codec(), {"churn": "classification"}.get, lambda model: 60_000,
                    settings.topic("predictions"))  # fmt: skip
    return JoinLoop(settings, joiner, MemoryStore(), group_id=f"{group_id}-join")


def _restore_in_thread(loop: JoinLoop, part: int) -> tuple[threading.Thread, list[int]]:
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(loop.restore([part], timeout_s=60)))
    t.start()
    return t, got


def test_restore_waits_for_the_previous_owners_open_transaction(
    settings: Settings, group_id: str
) -> None:
    """Committed after the restore began: its records are restored (a restore that
    stopped at the last stable offset lost them, while the input offsets committed with
    them moved the new owner past the batch). Aborted: its records are not."""
    first = _loop(settings, group_id)
    first.ensure_changelog()
    changelog = first.changelog
    txn = {"transactional.id": f"test-{uuid.uuid4().hex[:8]}", "transaction.timeout.ms": 60_000}
    p = Producer(producer_config(settings, "test-owner", **txn))
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(changelog, b"v0", b"k0", partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    p.produce(changelog, b"v1", b"k1", partition=0)
    p.produce(changelog, b"v2", b"k2", partition=0)
    assert p.flush(30) == 0  # in the log, the transaction still open

    t, got = _restore_in_thread(first, 0)
    time.sleep(2.0)
    assert t.is_alive(), "the restore stopped at the last stable offset"
    p.commit_transaction(30)
    t.join(30)
    assert not t.is_alive() and got == [3]
    assert [first.store.get(0, k) for k in (b"k0", b"k1", b"k2")] == [b"v0", b"v1", b"v2"]

    p.begin_transaction()
    p.produce(changelog, b"v3", b"k3", partition=0)
    assert p.flush(30) == 0
    second = _loop(settings, group_id)
    t, got = _restore_in_thread(second, 0)
    time.sleep(2.0)
    assert t.is_alive()
    p.abort_transaction(30)
    t.join(30)
    assert not t.is_alive() and got == [3]
    assert second.store.get(0, b"k2") == b"v2" and second.store.get(0, b"k3") is None
