"""The join's changelog restore against the real broker: it reads up to the end the
changelog had when the partitions were assigned, and waits for a transaction still open
below it (the previous owner's last batch) to be committed or aborted."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from driftline.core.join.joiner import Joiner
from driftline.core.join.keys import is_legacy_key, split_key
from driftline.core.join.leanentry import is_names_key
from driftline.core.join.rules import JoinEntry, JoinState
from driftline.core.wire.codec import default_codec
from driftline.kafka import admin
from driftline.kafka.clients import producer_config
from driftline.settings import Settings
from driftline.streams.join_loop import JoinLoop
from driftline.streams.joinstore import MemoryStore
from tests.integration import harness


def _loop(settings: Settings, group_id: str) -> JoinLoop:
    joiner = Joiner(default_codec(), {"churn": "classification"}.get, lambda model: 60_000,
                    settings.topic("predictions"), settings.topic("labels"))  # fmt: skip
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


FIXTURE = Path(__file__).parents[1] / "fixtures" / "join" / "previous-release-changelog.json"


def test_a_changelog_of_the_previous_release_is_restored_and_migrated(
    settings: Settings, group_id: str
) -> None:
    """The previous release's changelog (keyed by event_id, entry formats 1 and 2, written
    by its own code: tests/fixtures/join/) on a real changelog topic: a restarted worker
    of this release joins its held predictions and labels, keeps its tombstones (a second
    label is a duplicate), expires the rest with their exact bytes, and leaves a
    changelog whose every record a restore reads back as the same state."""
    fixture = json.loads(FIXTURE.read_text())
    t0, ttl = fixture["t0"], fixture["ttl_ms"]
    s = settings.model_copy(update={"data_partitions": 1})
    admin.apply(s)
    codec = default_codec()
    tasks = {"churn": "classification", "fraud": "classification"}
    joiner = Joiner(codec, tasks.get, lambda m: ttl, s.topic("predictions"), s.topic("labels"))
    loop = JoinLoop(s, joiner, MemoryStore(), group_id=f"{group_id}-join", sweep_every_s=0.2)
    loop.ensure_changelog()
    p = Producer(producer_config(s, "test-previous-release"))
    for r in fixture["changelog"]:
        value = None if r["value"] is None else bytes.fromhex(r["value"])
        p.produce(loop.changelog, value, bytes.fromhex(r["key"]), partition=0)
    assert p.flush(30) == 0
    clock = [t0 + 100]
    loop.clock = lambda: clock[0]
    held = codec.decode(bytes.fromhex(fixture["inputs"]["held_label"])).value
    later = codec.encode("io.driftline.Prediction", {
        **codec.decode(bytes.fromhex(fixture["inputs"]["held_lean"])).value,
        "event_id": "e-held-label"})  # fmt: skip
    with harness.Background(loop.run):
        harness.produce(s, "labels", harness.encoded("io.driftline.Label", [
            {**held, "event_id": "e-held-lean", "label_time_ms": t0 + 500},
            {**held, "event_id": "e-joined", "label_time_ms": t0 + 600},
        ]))  # fmt: skip
        harness.produce(s, "predictions", [(b"e-held-label", later)])
        outcomes = harness.collect(s, "outcomes", lambda g: len(g) >= 2)
        dead = harness.collect(s, "deadletter", lambda g: len(g) >= 1)
        assert sorted(o["event_id"] for o in outcomes) == ["e-held-label", "e-held-lean"]
        assert [(d["reason"], d["source_key"]) for d in dead] == [("duplicate_label", b"e-joined")]
        assert "previous release" in dead[0]["detail"]
        clock[0] = t0 + 2 * ttl  # every old entry is due: held ones expire, tombstones go
        dead = harness.collect(s, "deadletter", lambda g: len(g) >= 3)
    expired = {d["source_key"]: d for d in dead if d["reason"] == "expired_prediction"}
    assert set(expired) == {b"e-held-whole", b"e-fraud"}, [d["reason"] for d in dead]
    assert expired[b"e-held-whole"]["raw"] == bytes.fromhex(fixture["inputs"]["held_whole"])
    assert expired[b"e-fraud"]["model"] == "fraud"
    assert {d["source_topic"] for d in expired.values()} == {s.topic("predictions")}
    # what the changelog holds now, as a restore reads it: no key of the previous
    # release is left; the given-up predictions' tombstones are under their models' keys
    again = JoinLoop(s, joiner, MemoryStore(), group_id=f"{group_id}-join")
    again.restore([0])
    state = dict(again.store.items(0))
    entries = {k for k in state if not is_names_key(k)}
    assert entries and not [k for k in entries if is_legacy_key(k)]
    assert {split_key(k) for k in entries} == {
        ("churn", b"e-held-whole"), ("fraud", b"e-fraud")}  # fmt: skip
    assert {JoinEntry.from_bytes(state[k]).state for k in entries} == {
        JoinState.EXPIRED_PREDICTION}  # fmt: skip
