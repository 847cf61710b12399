"""A read_committed consumer that follows predictions, outcomes and dead letters as they
are published: it tells when every expected result has arrived, and when the pipeline
recovered after each fault (see :class:`Probe`)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.faults.workload import SEEN, index_of, kind
from driftline.core.wire.codec import Codec, default_codec
from driftline.kafka.clients import consumer_config
from driftline.settings import Settings

# librdkafka's log level for the harness's own clients: errors and below are left out,
# because the harness kills the broker on purpose and each client would print every
# refused reconnect while it is away (the report says whether the broker came back).
QUIET = 2


@dataclass
class Probe:
    """Recovery after a fault at ``t0`` (monotonic): the time until every partition of
    predictions holds a prediction of an event produced after the fault (index >=
    ``p``) and every partition of outcomes an outcome whose label was produced after it
    (index > ``lab``). A trainer's probe (``after_ms`` set) waits instead for an online
    checkpoint published after the fault (wall time ``after_ms``): the restarted trainer
    resumed its learner and learns again."""

    t0: float
    p: int
    lab: int
    waiting: set[tuple[str, int]] = field(default_factory=set)
    after_ms: int | None = None
    recovered_s: float | None = None
    last: str = ""  # the partition that recovered last

    def lagging(self) -> str:
        """The partitions that recovered last or not at all, for the report."""
        return self.last or " ".join(f"{t}/{p}" for t, p in sorted(self.waiting))


class Watcher:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.topics = {
            settings.topic(t): t for t in ("predictions", "outcomes", "deadletter", "registry")
        }
        self.seen: dict[str, set[str]] = {}  # kind and model -> keys
        self.dead: set[tuple[str, str]] = set()  # (reason and model, key)
        self.records = 0
        self.last_record = time.monotonic()
        self.probes: list[Probe] = []
        self.lock = threading.Lock()
        # (when, topic, partition, event index) of every prediction and outcome, for
        # bench.faults.timeline
        self.arrivals: list[tuple[float, str, int, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def probe(self, t0: float, p: int, lab: int) -> Probe:
        n = self.s.data_partitions
        pr = Probe(t0, p, lab, {(t, i) for t in ("predictions", "outcomes") for i in range(n)})
        with self.lock:
            self.probes.append(pr)
        return pr

    def probe_trainer(self, t0: float, after_ms: int) -> Probe:
        """A probe that recovers at the first online checkpoint published after
        ``after_ms`` (wall time)."""
        pr = Probe(t0, 0, 0, {("registry", 0)}, after_ms=after_ms)
        with self.lock:
            self.probes.append(pr)
        return pr

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)

    def _run(self) -> None:
        codec = default_codec()
        group = f"faults-watch-{uuid.uuid4().hex[:8]}"
        c = Consumer(consumer_config(self.s, "faults-watch", group, log_level=QUIET,
                                     **{"enable.auto.commit": False}))  # fmt: skip
        meta = c.list_topics(timeout=30).topics
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                  for t in self.topics for p in meta[t].partitions])  # fmt: skip
        try:
            while not self.done.is_set():
                msgs = c.consume(1000, 0.2)
                now = time.monotonic()
                with self.lock:
                    for m in msgs:
                        if m.error() is None:
                            self._on(codec, self.topics[m.topic() or ""], m.partition() or 0,
                                     m.key(), m.value() or b"", now)  # fmt: skip
        finally:
            c.close()

    def _on(
        self, codec: Codec, topic: str, part: int, key: bytes | None, value: bytes, now: float
    ) -> None:
        record = codec.decode(value).value
        if topic == "registry":  # not an output: the online learner's checkpoints
            for pr in self.probes:
                if (pr.after_ms is not None and pr.recovered_s is None
                        and record["stage"] == "checkpoint"
                        and record["stage_changed_at_ms"] > pr.after_ms):  # fmt: skip
                    pr.waiting.clear()
                    pr.recovered_s, pr.last = now - pr.t0, f"registry/{part}"
            return
        self.records += 1
        self.last_record = now
        k = (key or b"").decode(errors="replace")
        if topic == "deadletter":
            self.dead.add((kind(record["reason"], record["model"]), k))
            return
        self.seen.setdefault(kind(topic[:-1], record["model"]), set()).add(k)
        i = index_of(key)
        for pr in self.probes:
            after = i >= (pr.p if topic == "predictions" else pr.lab + 1)
            if after and pr.recovered_s is None and (topic, part) in pr.waiting:
                pr.waiting.discard((topic, part))
                if not pr.waiting:
                    pr.recovered_s, pr.last = now - pr.t0, f"{topic}/{part}"
        self.arrivals.append((now, topic, part, i))

    def complete(self, expected: dict[str, Counter[str]]) -> bool:
        """Has every expected (kind, id) been seen at least once?"""
        with self.lock:
            for what, ids in expected.items():
                if what.split(" ")[0] in SEEN:
                    if not ids.keys() <= self.seen.get(what, set()):
                        return False
                elif any((what, k) not in self.dead for k in ids):
                    return False
        return True
