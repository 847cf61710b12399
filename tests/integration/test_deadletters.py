"""Dead letters name their true origin (issue 25) and can be replayed, on the real broker.

The join runs in process (streams/join_loop.py, as the worker runs it); model ``short``
has a 1.5 s TTL, the others one that no pair can outlast; the join's clock is the
test's, so the expiry and the tombstones after it do not depend on the machine's speed.
One record of each reason the join dead-letters is produced with headers; every dead
letter must name the topic, partition, offset, key and headers of the record it carries
and carry its exact bytes: the orphan label and the expired prediction too, which the
expiry sweep gives up long after they were read. Then ``driftline deadletters replay``
puts one of each back on its source topic, key, value and headers unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from click.testing import CliRunner
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from driftline.cli import cli
from driftline.core.join.joiner import Joiner
from driftline.core.wire.codec import MARKER, default_codec
from driftline.core.wire.envelope import LabelSpec
from driftline.core.wire.headers import build as build_headers
from driftline.core.wire.headers import for_confluent
from driftline.kafka import admin
from driftline.kafka.clients import consumer_config, producer_config
from driftline.procs import env_for
from driftline.settings import Settings
from driftline.streams.join_loop import JoinLoop
from driftline.streams.joinstore import MemoryStore
from tests.integration import harness
from tests.integration.harness import value_of
from tests.unit.core.examples import known

CODEC = default_codec()
TTL = 1_500
T0 = 1_700_000_000_000
FLAG = LabelSpec("classification", frozenset({"boolean"}), ("False", "True"), "flag v1")
"""A model whose champion predicts booleans (the worker's task_of gives its LabelSpec)."""
TASKS: dict[str, str | LabelSpec] = {
    "churn": "classification", "price": "regression", "short": "classification", "flag": FLAG,
}  # fmt: skip
TTLS = {"short": TTL}


def ttl_of(model: str) -> int:
    return TTLS.get(model, 600_000)


Record = tuple[str, bytes | None, bytes]  # topic (short name), key, value


def prediction(event_id: str, model: str = "churn", at: int = 0) -> Record:
    value = CODEC.encode("io.driftline.Prediction", {
        "event_id": event_id, "model": model, "version": "v1", "event_time_ms": T0,
        "predicted_at_ms": T0 + at, "prediction": True, "scores": {"True": 0.7, "False": 0.3},
        "features": {"x1": 0.5, "plan": "pro"}, "segment": {"plan": "pro"},
        "latency_us": 40, "served_by": "driftline"})  # fmt: skip
    return "predictions", event_id.encode(), value


def label(event_id: str, value: Any = True, model: str = "churn", key: bytes | None = None,
          at: int = 0) -> Record:  # fmt: skip
    record = {"event_id": event_id, "model": model, "label": value, "label_time_ms": T0 + at}
    raw = CODEC.encode("io.driftline.Label", record)
    return "labels", event_id.encode() if key is None else key, raw


# reason -> the record whose dead letter it is (first phase: read at once)
AT_ONCE: dict[str, Record] = {
    "undecodable": ("labels", b"u-1", b"\x00garbage"),
    "unknown_schema": ("predictions", b"u-2", MARKER + b"\xff" * 8 + b"\x00"),
    "wrong_record": ("labels", b"u-3", CODEC.encode("io.driftline.FeatureEvent", {
        "event_id": "u-3", "model": "churn", "event_time_ms": T0, "features": {}})),
    "too_large": label("u-4", "x" * 70_000),
    "key_mismatch": label("u-5", key=b"another-key"),
    "missing_key": ("predictions", None, prediction("u-6")[2]),
    "invalid_event_id": label("", key=b""),
    "unknown_model": label("u-8", model="nope"),
    "label_type_mismatch": label("u-9", 1.5),
    "non_finite": label("u-10", float("nan"), model="price"),
    "label_type_mismatch (a boolean champion)": label("u-11", "True", model="flag"),
}  # fmt: skip
REFUSED_LABELS = {"label_type_mismatch", "non_finite"}
"""Labels of a known model that its champion refuses: their dead letters name it."""


def produce(s: Settings, records: list[Record], hdrs: Callable[[int], list[tuple[str, bytes]]]
            ) -> list[tuple[str, int, int, list[tuple[str, bytes]]]]:  # fmt: skip
    """Produce ``records`` in order, each with ``hdrs(i)``; (topic, partition, offset,
    headers) of each, as delivered."""
    p = Producer(producer_config(s, "test"))
    got: dict[int, tuple[str, int, int]] = {}
    for i, (topic, key, value) in enumerate(records):

        def done(err: Any, msg: Any, i: int = i) -> None:
            assert err is None, err
            got[i] = (msg.topic(), msg.partition(), msg.offset())

        p.produce(s.topic(topic), value, key, headers=for_confluent(hdrs(i)), on_delivery=done)
        p.flush(30)  # one at a time: the order of the script is the order of the topics
    return [(*got[i], hdrs(i)) for i in range(len(records))]


def headers(i: int) -> list[tuple[str, bytes]]:
    return [*build_headers("io.driftline.Label", T0 + i, f"{i:032x}"), ("app", b"shop-%d" % i)]


def dead_letters(s: Settings, n: int) -> list[dict[str, Any]]:
    got = harness.collect(s, "deadletter", lambda g: len(g) >= n, timeout=90)
    assert len(got) == n, sorted(f"{d['reason']} {d['source_key']!r}: {d['detail']}" for d in got)
    return got


def test_every_join_dead_letter_names_its_origin_and_replays_to_it(
    settings: Settings, group_id: str
) -> None:
    s = settings
    admin.apply(s)
    joiner = Joiner(CODEC, TASKS.get, ttl_of, s.topic("predictions"), s.topic("labels"))
    loop = JoinLoop(s, joiner, MemoryStore(), group_id=f"{group_id}-join", sweep_every_s=0.2)
    clock = [int(time.time() * 1000)]  # the join's processing time, moved by the test alone
    loop.clock = lambda: clock[0]
    first: list[Record] = [
        *AT_ONCE.values(),
        prediction("d-1"),
        label("d-1"),
        label("d-1", False, at=1),  # duplicate_label
        prediction("d-2"),
        prediction("d-2", at=1),  # duplicate_prediction
        label("d-2"),
        prediction("x-1", "short"),  # expired_prediction, then its label is late
        label("o-1", model="short"),  # orphan_label, then its prediction is late
    ]
    later: list[Record] = [label("x-1", model="short", at=5), prediction("o-1", "short", at=5)]
    reason_of = {**{i: r for i, r in enumerate(AT_ONCE)}, len(AT_ONCE) + 2: "duplicate_label",
                 len(AT_ONCE) + 4: "duplicate_prediction", len(AT_ONCE) + 6: "expired_prediction",
                 len(AT_ONCE) + 7: "orphan_label", len(first): "late_label",
                 len(first) + 1: "late_prediction"}  # fmt: skip
    records = first + later
    with harness.Background(loop.run):
        sent = produce(s, first, headers)
        dead_letters(s, len(AT_ONCE) + 2)
        deadline = time.monotonic() + 60
        while len(loop.index) < 4 and time.monotonic() < deadline:  # d-1, d-2, x-1, o-1
            time.sleep(0.05)
        assert len(loop.index) == 4, f"the join holds {len(loop.index)} keys, not 4"
        clock[0] += TTL + 1_000  # past the expiry index's 1 s bucket: x-1 and o-1 expire; their
        dead_letters(s, len(AT_ONCE) + 4)  # tombstones live until the clock moves again
        sent += produce(s, later, lambda i: headers(len(first) + i))
        dead = dead_letters(s, len(reason_of))
    reason_of = {i: name.split(" ")[0] for i, name in reason_of.items()}  # the reason itself
    assert sorted(d["reason"] for d in dead) == sorted(reason_of.values())
    for i, reason in reason_of.items():
        (d,) = [d for d in dead if d["raw"] == records[i][2] and d["reason"] == reason]
        if reason in REFUSED_LABELS:  # refused by its model's champion: names that model
            assert d["model"] == CODEC.decode(records[i][2]).value["model"], reason
        topic, partition, offset, hdrs = sent[i]
        assert d["stage"] == "join", reason
        assert (d["source_topic"], d["source_partition"], d["source_offset"]) == (
            topic, partition, offset), reason  # fmt: skip
        assert d["source_key"] == records[i][1], reason
        assert d["headers"] == [{"key": k, "value": v} for k, v in hdrs], reason
        assert d["raw"] == records[i][2], reason
        assert d["source_timestamp_ms"] is not None, reason

    # one of each back on its source topic: key, value and headers unchanged
    ends = {t: harness.offsets(s, s.topic(t)) for t in ("predictions", "labels")}
    result = CliRunner().invoke(cli, ["deadletters", "replay", "--stage", "join", "--dry-run"],
                                env=env_for(s), catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"would replay {len(reason_of)} records" in result.stdout
    assert harness.offsets(s, s.topic("labels")) == ends["labels"]  # nothing produced
    result = CliRunner().invoke(cli, ["deadletters", "replay", "--stage", "join"],
                                env=env_for(s), catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"replayed {len(reason_of)} records" in result.stdout
    back = read_after(s, ends, len(reason_of))
    for i, reason in reason_of.items():
        topic, partition, _, hdrs = sent[i]
        key, value = records[i][1], records[i][2]
        match = [m for m in back if m[2] == value]
        assert match, reason
        assert match[0][:2] == (topic, partition), reason
        assert match[0][3:] == (key, hdrs), reason

    only = CliRunner().invoke(cli, ["deadletters", "replay", "--reason", "orphan_label",
                                    "--source-topic", "labels"], env=env_for(s),
                              catch_exceptions=False)  # fmt: skip
    assert "replayed 1 records (orphan_label 1)" in only.stdout, only.output


Replayed = tuple[str, int, bytes, bytes | None, list[tuple[str, bytes]]]


def read_after(s: Settings, ends: dict[str, dict[int, int]], n: int) -> list[Replayed]:
    """The records produced on predictions and labels after ``ends``: (topic, partition,
    value, key, headers)."""
    c = Consumer(consumer_config(s, "test", f"replayed-{time.time_ns()}",
                                 **{"enable.auto.commit": False}))  # fmt: skip
    c.assign([TopicPartition(s.topic(t), p, ends[t].get(p, OFFSET_END))
              for t in ends for p in ends[t]])  # fmt: skip
    got: list[Replayed] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                if m.error() is None:
                    headers = cast(list[tuple[str, bytes]], m.headers() or [])  # as produced
                    got.append((known(m.topic()), known(m.partition()), value_of(m), m.key(),
                                list(headers)))  # fmt: skip
    finally:
        c.close()
    assert len(got) == n, got
    return got
