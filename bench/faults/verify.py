"""Read the output topics from the beginning and compare them with the ground truth."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bench.faults.workload import BASE_MS, first_label_time, index_of, kind
from driftline.core.wire.codec import default_codec
from driftline.kafka.clients import consumer_config
from driftline.settings import Settings

TOPICS = ("predictions", "outcomes", "deadletter")


def scan(
    s: Settings, topics: Sequence[str], isolation: str, app: str
) -> list[tuple[str, int, int, bytes, dict[str, Any]]]:
    """Every record of ``topics`` as (topic, partition, offset, key, decoded value), read
    from the beginning up to the end of each partition, by a fresh group of ``app``;
    ``isolation`` is read_committed or read_uncommitted."""
    codec = default_codec()
    c = Consumer(consumer_config(s, app, f"{app}-{uuid.uuid4().hex[:8]}",
                                 **{"enable.auto.commit": False, "enable.partition.eof": True,
                                    "isolation.level": isolation}))  # fmt: skip
    meta = c.list_topics(timeout=30).topics
    tps = [TopicPartition(s.topic(t), p, OFFSET_BEGINNING) for t in topics
           for p in meta[s.topic(t)].partitions]  # fmt: skip
    c.assign(tps)
    pending = {(tp.topic, tp.partition) for tp in tps}
    out: list[tuple[str, int, int, bytes, dict[str, Any]]] = []
    try:
        while pending:
            for m in c.consume(1000, 1.0):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard((m.topic(), m.partition()))
                    continue
                rec = codec.decode(m.value() or b"").value
                out.append(
                    (m.topic() or "", m.partition() or 0, m.offset() or 0, m.key() or b"", rec)
                )
    finally:
        c.close()
    return out


def read_all(
    s: Settings, isolation: str
) -> dict[str, list[tuple[int, int, bytes, dict[str, Any]]]]:
    """Every record of the output topics as (partition, offset, key, decoded value), in
    partition and offset order, read up to the end of each partition."""
    names = {s.topic(t): t for t in TOPICS}
    out: dict[str, list[tuple[int, int, bytes, dict[str, Any]]]] = {t: [] for t in TOPICS}
    for topic, partition, offset, key, rec in scan(s, TOPICS, isolation, "faults-verify"):
        out[names[topic]].append((partition, offset, key, rec))
    for recs in out.values():
        recs.sort(key=lambda r: (r[0], r[1]))
    return out


def kinds(
    topics: dict[str, list[tuple[int, int, bytes, dict[str, Any]]]],
) -> dict[str, Counter[str]]:
    """Records per kind (prediction, outcome, dead-letter reason) and model, then key."""
    got: dict[str, Counter[str]] = defaultdict(Counter)
    for name, what in (("predictions", "prediction"), ("outcomes", "outcome")):
        for _, _, key, rec in topics[name]:
            got[kind(what, rec["model"])][key.decode()] += 1
    for _, _, key, rec in topics["deadletter"]:
        reason = rec["reason"] if rec["stage"] == "join" else f"{rec['stage']}:{rec['reason']}"
        got[kind(reason, rec["model"])][key.decode(errors="replace")] += 1
    return got


@dataclass
class Row:
    kind: str
    expected: int
    got: int
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    uncommitted: int = 0
    lost_keys: list[str] = field(default_factory=list)  # the first few, for the report

    @property
    def bad(self) -> bool:
        return bool(self.lost or self.duplicated or self.unexpected or self.got != self.expected)


@dataclass
class Result:
    rows: list[Row] = field(default_factory=list)
    order_violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.bad for r in self.rows) and not self.order_violations


def order(topics: dict[str, list[tuple[int, int, bytes, dict[str, Any]]]]) -> list[str]:
    """Per-key (and per-partition) order: every outcome carries its event's first label
    of its own model; a key's dead letters follow their sources' offsets; each partition
    of predictions follows the order of its features, per model."""
    bad = []
    for p, off, key, rec in topics["outcomes"]:
        i, model = index_of(key), rec["model"]
        if rec["label_time_ms"] != first_label_time(i, model):
            k = rec["label_time_ms"] - first_label_time(i, model)
            bad.append(f"outcome {model} {key.decode()} at {p}/{off} joined label {k}, "
                       "not its model's first")  # fmt: skip
    last: dict[bytes, tuple[str, int]] = {}
    for p, off, key, rec in topics["deadletter"]:
        src = (rec["source_topic"], rec["source_offset"])
        if key in last and last[key][0] == src[0] and last[key][1] >= src[1]:
            bad.append(f"dead letters of {key.decode()}: source offset {src[1]} at {p}/{off} "
                       f"after {last[key][1]}")  # fmt: skip
        last[key] = src
    high: dict[tuple[int, str], int] = {}
    seen: set[tuple[bytes, str]] = set()
    for p, off, key, rec in topics["predictions"]:
        if (key, rec["model"]) in seen:
            continue
        seen.add((key, rec["model"]))
        t = rec["event_time_ms"] - BASE_MS
        where = (p, rec["model"])
        if t < high.get(where, -1):
            bad.append(f"prediction {rec['model']} {key.decode()} at {p}/{off} after event "
                       f"e{high[where]:07d}")  # fmt: skip
        high[where] = max(t, high.get(where, -1))
    return bad


def verify(s: Settings, expected: dict[str, Counter[str]]) -> Result:
    committed = read_all(s, "read_committed")
    got = kinds(committed)
    raw = kinds(read_all(s, "read_uncommitted"))
    res = Result()
    for what in [*expected, *sorted((set(got) | set(raw)) - set(expected))]:
        exp, g = expected.get(what, Counter()), got.get(what, Counter())
        row = Row(what, sum(exp.values()), sum(g.values()),
                  uncommitted=sum(raw.get(what, Counter()).values()))  # fmt: skip
        for k, n in exp.items():
            row.lost += max(0, n - g[k])
            row.duplicated += max(0, g[k] - n)
            if g[k] < n and len(row.lost_keys) < 10:
                row.lost_keys.append(k)
        row.unexpected = sum(n for k, n in g.items() if k not in exp)
        res.rows.append(row)
    res.order_violations = order(committed)
    return res
