"""Hostile input through the real broker: over 10,000 generated bad messages (tests/hostile.py)
mixed with 2,000 good events and their labels, on the features and labels topics, with
one worker running. Every bad message must reach the deadletter topic exactly once with
its reason and its origin, every good event must be predicted and joined exactly once,
the worker must not restart, and both of its consumer groups must catch up."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from driftline.core.wire import headers as h
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import MAX_KEY_BYTES
from driftline.kafka.clients import producer_config
from driftline.settings import Settings
from tests import hostile as H
from tests.integration import harness
from tests.integration.churn import MODELS, start_pipeline
from tests.integration.harness import Process

GOOD = 2_000
BAD_FEATURES = 8_000
BAD_LABELS = 2_500
DUPLICATES = 50  # second labels of good events: duplicate_label
ORPHANS = 50  # labels of refused events: orphan_label once the join TTL passes
TTL_MS = 25_000
"""The join TTL of the run. The join (Faust, about 1,000 messages/s) works through ~7,000
predictions and labels: with the 8 s of tests/integration/churn.py, predictions read
early expired before their labels were read (processing-time TTL), as they should."""
CODEC = default_codec()


@dataclass
class Sent:
    """One produced message: where it landed and what must become of it."""

    topic: str
    key: bytes | None
    value: bytes | None
    reason: str | None  # None: a good message
    stage: str | None
    kind: str
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int = -1
    offset: int = -1


def produce(s: Settings, topic: str, messages: list[Sent]) -> None:
    """Produce ``messages`` in order; record where each landed."""
    # librdkafka refuses values over its own message.max.bytes (1,000,000) before the
    # broker sees them; allow up to the broker's limit.
    p = Producer(producer_config(s, "hostile", **{"message.max.bytes": 1_100_000}))
    errors: list[str] = []

    def report(m: Sent) -> Any:
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(f"{m.kind}: {err}")
            else:
                m.partition, m.offset = msg.partition(), msg.offset()

        return done

    for i, m in enumerate(messages):
        m.topic = s.topic(topic)
        while True:
            try:
                p.produce(m.topic, m.value, m.key, headers=list(m.headers),
                          on_delivery=report(m))  # fmt: skip
                break
            except BufferError:
                p.poll(0.1)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert errors == []


def sent(bad: H.Bad) -> Sent:
    return Sent("", bad.key, bad.value, bad.reason, bad.stage, bad.kind, bad.headers)


def good(topic_record: str, record: dict[str, Any]) -> Sent:
    key = record["event_id"].encode()
    return Sent("", key, CODEC.encode(topic_record, record), None, None, "good")


def wait_for_zero_lag(s: Settings, group: str, topics: list[str], timeout: float = 30) -> None:
    """Until ``group`` has committed past every record of ``topics`` (a read_committed
    reader's view: a transactional topic's commit markers are not records)."""
    deadline = time.monotonic() + timeout
    behind = [t for t in topics if not harness.consumed_all(s, t, group)]
    while behind and time.monotonic() < deadline:
        time.sleep(0.5)
        behind = [t for t in topics if not harness.consumed_all(s, t, group)]
    assert not behind, (group, behind)


@pytest.fixture
def pipeline(settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, str, Process]]:
    """The shared pipeline fixture (conftest.py), with the join TTL of this run."""
    models = MODELS.replace("join_ttl_ms = 8000", f"join_ttl_ms = {TTL_MS}")
    assert models != MODELS
    s, champion, proc = start_pipeline(settings, tmp_path, models=models)
    try:
        yield s, champion, proc
    finally:
        proc.stop()


def test_hostile_messages_are_dead_lettered_and_good_ones_flow(
    pipeline: tuple[Settings, str, Process],
) -> None:
    s, champion, proc = pipeline
    assert proc.proc is not None
    pid = proc.proc.pid
    rng = random.Random(20240607)

    events = [H.good_event(rng, f"g{i}") for i in range(GOOD)]
    bad_features = H.draw(rng, H.FEATURE_KINDS, BAD_FEATURES, H.RARE_FEATURES, 3)
    features = [good("io.driftline.FeatureEvent", e) for e in events]
    features += [sent(b) for b in bad_features]
    rng.shuffle(features)

    labels = [good("io.driftline.Label", H.good_label(rng, e["event_id"])) for e in events]
    labels += [sent(b) for b in H.draw(rng, H.LABEL_KINDS, BAD_LABELS, H.RARE_LABELS, 3, 10**6)]
    refused_ids = [b.event_id for b in bad_features if b.event_id is not None]
    orphans = [
        Sent("", eid.encode(), CODEC.encode("io.driftline.Label", H.good_label(rng, eid)),
             "orphan_label", "join", "orphan_label")
        for eid in rng.sample(refused_ids, ORPHANS)
    ]  # fmt: skip
    labels += orphans
    rng.shuffle(labels)
    duplicates = [
        Sent("", e["event_id"].encode(), CODEC.encode("io.driftline.Label", H.good_label(
            rng, e["event_id"])), "duplicate_label", "join", "duplicate_label")
        for e in rng.sample(events, DUPLICATES)
    ]  # fmt: skip

    t0 = time.monotonic()
    produce(s, "features", features)
    # Labels follow once the events are predicted (the join TTL runs on processing time).
    ids = {e["event_id"] for e in events}
    preds = harness.collect(s, "predictions", lambda got: len(got) >= GOOD, timeout=60)
    assert len(preds) >= GOOD, proc.tail()
    produce(s, "labels", labels)
    produce(s, "labels", duplicates)  # after the first label of their key, same partition
    everything = features + labels + duplicates
    bad = [m for m in everything if m.reason is not None]
    assert len(bad) >= 10_000

    # Every bad message is dead-lettered, exactly once.
    dead = harness.collect(s, "deadletter", lambda got: len(got) >= len(bad), timeout=120,
                           decode=False)  # fmt: skip
    assert len(dead) >= len(bad), (len(dead), len(bad), proc.tail())
    time.sleep(2)  # a second dead letter of any message would arrive by now
    dead = harness.collect(s, "deadletter", lambda got: len(got) > len(bad), timeout=5,
                           decode=False)  # fmt: skip
    by_origin = {(m.topic, m.partition, m.offset): m for m in bad if m.reason != "orphan_label"}
    by_orphan_key = {m.key: m for m in orphans}
    matched: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    for msg in dead:
        d = CODEC.decode(msg.value(), expect="io.driftline.DeadLetter").value
        hdrs = h.parse(msg.headers())
        if d["reason"] == "orphan_label":  # an expiry: its origin is the join's, not the label's
            m = by_orphan_key[d["source_key"]]
        else:
            origin = (d["source_topic"], d["source_partition"], d["source_offset"])
            assert origin in by_origin, (d["reason"], d["stage"], d["detail"][:200])
            m = by_origin[origin]
            assert hdrs[h.DLQ_TOPIC] == m.topic
            assert hdrs[h.DLQ_PARTITION] == str(m.partition)
            assert hdrs[h.DLQ_OFFSET] == str(m.offset)
        assert (d["reason"], d["stage"]) == (m.reason, m.stage), (m.kind, d["detail"][:300])
        assert hdrs[h.REASON] == hdrs[h.DLQ_REASON] == m.reason
        assert hdrs[h.DLQ_STAGE] == m.stage
        # what a dead letter cannot hold whole is cut, and its detail says so
        key = None if m.key is None else m.key[:MAX_KEY_BYTES]
        assert d["source_key"] == key and msg.key() == key
        if key != m.key:
            assert f"key cut to the first {MAX_KEY_BYTES} of {len(m.key or b'')}" in d["detail"]
        raw = m.value or b""
        if d["raw"] != raw:
            assert len(raw) > 900_000 and raw.startswith(d["raw"]), m.kind
            assert f"raw cut to the first {len(d['raw'])} of {len(raw)} bytes" in d["detail"]
        kept = [(x["key"], x["value"]) for x in d["headers"]]
        if kept != list(m.headers):
            assert kept == [] and "source headers left out" in d["detail"], m.kind
        matched[id(m)] += 1
        reasons[m.kind] += 1
    assert len(dead) == len(bad), (len(dead), len(bad))  # nothing twice, nothing extra
    assert len(matched) == len(bad) and set(matched.values()) == {1}

    # Every good event is predicted by the champion and joined, exactly once.
    preds = harness.collect(s, "predictions", lambda got: len(got) > GOOD, timeout=3)
    assert sorted(p["event_id"] for p in preds) == sorted(ids)
    assert {p["version"] for p in preds} == {champion}
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= GOOD, timeout=30)
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) > GOOD, timeout=3)
    assert sorted(o["event_id"] for o in outcomes) == sorted(ids)
    elapsed = time.monotonic() - t0

    # The same worker process did it all, without a crash, and its groups caught up.
    assert proc.running() and proc.proc.pid == pid, proc.tail()
    log = proc.log.read_text(errors="replace")
    for sign in ("Traceback", "Crashed", "Exception in thread", "Restarting"):
        assert sign not in log, proc.tail()
    app_id = f"{s.topic_prefix}worker".replace(".", "-")
    wait_for_zero_lag(s, f"{app_id}-scorer", [s.topic("features")])
    wait_for_zero_lag(s, f"{app_id}-join", [s.topic("predictions"), s.topic("labels")])
    assert elapsed < 90, elapsed
    assert set(reasons) == {m.kind for m in bad}  # every kind was produced and routed
