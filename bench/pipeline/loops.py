"""The two in-process loops, each draining a pre-filled features topic.

(a1) :class:`driftline.streams.scorer.ScorerLoop` itself, with a
:class:`~driftline.core.model.scoring.Scoring` over the loaded champion: decode, envelope and
spec check, predict, encode, produce, then per batch flush and a synchronous commit
(at-least-once).

(b) A plain confluent-kafka loop written here: ``consume(1000)``, the single-object
header checked by hand, fastavro's schemaless reader, ``Spec.check``,
``predict_proba_one``, fastavro's schemaless writer behind the same header,
``produce`` with linger, offsets auto-committed (no delivery wait: at-most/at-least
once depending on timing, as such loops usually are).

Both are timed from the start of the first non-empty batch to the end of the batch that
completes the backlog; CPU is ``getrusage(RUSAGE_SELF)`` over the same window (all
threads of the process, librdkafka's included).
"""

from __future__ import annotations

import resource
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from confluent_kafka import Consumer, Message, Producer
from fastavro import schemaless_reader, schemaless_writer

from driftline.core.model.estimators import ServedModel
from driftline.core.model.scoring import Scoring
from driftline.core.wire.codec import MARKER, default_codec
from driftline.kafka.clients import consumer_config, producer_config
from driftline.settings import Settings
from driftline.streams.scorer import ScorerLoop


@dataclass
class Run:
    """One drained backlog: events, wall seconds and CPU seconds over the window."""

    events: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.events * 1e6 if self.events else 0.0


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Window:
    """Start and end of the measured window, marked by the loop under test."""

    def __init__(self) -> None:
        self.t0 = self.c0 = 0.0
        self.t1 = self.c1 = 0.0
        self.started = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.t0, self.c0 = time.perf_counter(), cpu_seconds()

    def end(self) -> None:
        self.t1, self.c1 = time.perf_counter(), cpu_seconds()

    def run(self, events: int) -> Run:
        return Run(events, self.t1 - self.t0, self.c1 - self.c0)


def scoring_for(champion: ServedModel, passthrough: bool = True) -> Scoring:
    """The worker's Scoring, with a fixed champion instead of the registry follower."""
    served = (champion, None)
    return Scoring(
        default_codec(), lambda _model: served, lambda m: m == champion.name,
        passthrough=passthrough,
    )  # fmt: skip


class MeasuredScorer(ScorerLoop):
    """ScorerLoop that marks the measured window and stops after ``target`` events.

    ``before``: as the scorer was before the throughput work (docs/benchmarks-history.md): the
    Prediction's features and segment encoded again instead of passed through as bytes,
    and ``consume(batch_size, poll_timeout_s)``, which waits for a full batch or the
    whole timeout.
    """

    def __init__(
        self, settings: Settings, champion: ServedModel, target: int | None, before: bool = False
    ) -> None:
        super().__init__(
            settings, scoring_for(champion, passthrough=not before), default_codec(),
            group_id=f"bench-a1-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        self.before = before
        self.target = target
        self.window = _Window()
        self.stop = threading.Event()

    def next_batch(self) -> list[Message]:
        if self.before:
            return self.consumer.consume(self.batch_size, self.poll_timeout_s)
        return super().next_batch()

    def process(self, msgs: list[Message]) -> None:
        self.window.start()
        super().process(msgs)
        self.window.end()
        if self.target is not None and self.processed >= self.target:
            self.stop.set()


def run_scorer(settings: Settings, champion: ServedModel, target: int, before: bool = False) -> Run:
    """(a1): ScorerLoop drains ``target`` events on this thread."""
    loop = MeasuredScorer(settings, champion, target, before)
    loop.run(loop.stop)
    return loop.window.run(loop.processed)


def run_scorer_until(
    settings: Settings, champion: ServedModel, done: threading.Event, before: bool = False
) -> tuple[threading.Thread, MeasuredScorer]:
    """(a1) on a thread until ``done`` is set (latency runs)."""
    loop = MeasuredScorer(settings, champion, None, before)
    loop.stop = done
    t = threading.Thread(target=loop.run, args=(done,), name="a1", daemon=True)
    t.start()
    return t, loop


class RawLoop:
    """(b): the plain confluent-kafka loop doing the same per-event work."""

    def __init__(self, settings: Settings, champion: ServedModel, out_topic: str) -> None:
        codec = default_codec()
        fe = codec.schemas.current("io.driftline.FeatureEvent")
        pr = codec.schemas.current("io.driftline.Prediction")
        self.fe_schema = fe.schema
        self.fe_header = MARKER + fe.fingerprint
        self.pr_schema = pr.schema
        self.pr_header = MARKER + pr.fingerprint
        self.champion = champion
        self.topic_in = settings.topic("features")
        self.topic_out = out_topic
        self.consumer = Consumer(
            consumer_config(
                settings, "bench-raw", f"bench-b-{uuid.uuid4().hex[:8]}",
                **{"enable.auto.offset.store": True},
            )
        )  # fmt: skip
        self.producer = Producer(producer_config(settings, "bench-raw", **{"linger.ms": 5}))
        self.window = _Window()
        self.processed = 0
        self.bad = 0

    def work(self, msg: Message) -> bytes | None:
        raw = msg.value() or b""
        if raw[:10] != self.fe_header:
            return None
        body = BytesIO(raw)
        body.seek(10)
        event: Any = schemaless_reader(body, self.fe_schema, None)
        features = event["features"]
        self.champion.spec.check(features)
        proba = self.champion.model.predict_proba_one(features)
        best = max(proba, key=proba.__getitem__)
        out = BytesIO()
        out.write(self.pr_header)
        schemaless_writer(
            out,
            self.pr_schema,
            {
                "event_id": event["event_id"],
                "model": event["model"],
                "version": self.champion.version,
                "event_time_ms": event["event_time_ms"],
                "predicted_at_ms": int(time.time() * 1000),
                "prediction": best,
                "scores": {str(c): p for c, p in proba.items()},
                "features": features,
                "segment": event["segment"],
                "latency_us": 0,
                "served_by": "bench-raw",
            },
        )
        return out.getvalue()

    def run(self, stop: threading.Event, target: int | None = None) -> Run:
        self.consumer.subscribe([self.topic_in])
        produce, work = self.producer.produce, self.work
        try:
            while not stop.is_set():
                msgs = self.consumer.consume(1000, 0.05)
                if not msgs:
                    continue
                self.window.start()
                for msg in msgs:
                    if msg.error() is not None:
                        continue
                    try:
                        value = work(msg)
                    except Exception:  # a real loop would dead-letter it; none happen here
                        value = None
                    if value is None:
                        self.bad += 1
                        continue
                    while True:
                        try:
                            produce(self.topic_out, value, msg.key())
                            break
                        except BufferError:
                            self.producer.poll(0.05)
                self.producer.poll(0)
                self.processed += len(msgs)
                if target is not None and self.processed >= target:
                    self.producer.flush(30)
                    self.window.end()
                    break
                self.window.end()
        finally:
            self.producer.flush(30)
            self.consumer.close()
        return self.window.run(self.processed)


def run_raw(settings: Settings, champion: ServedModel, out_topic: str, target: int) -> Run:
    return RawLoop(settings, champion, out_topic).run(threading.Event(), target)


def run_raw_until(
    settings: Settings, champion: ServedModel, out_topic: str, done: threading.Event
) -> threading.Thread:
    loop = RawLoop(settings, champion, out_topic)
    t = threading.Thread(target=loop.run, args=(done,), name="b", daemon=True)
    t.start()
    return t


class PlainJoin:
    """(b2)'s join: reads the plain loop's predictions, decodes each with fastavro and
    holds it in a dict of pending predictions by event_id (no store, no changelog, no
    transaction), as the worker's join holds the predictions of the throughput runs."""

    def __init__(self, settings: Settings, topic: str) -> None:
        pr = default_codec().schemas.current("io.driftline.Prediction")
        self.schema, self.header = pr.schema, MARKER + pr.fingerprint
        self.topic = topic
        self.consumer = Consumer(
            consumer_config(
                settings, "bench-raw-join", f"bench-b2-{uuid.uuid4().hex[:8]}",
                **{"enable.auto.offset.store": True},
            )
        )  # fmt: skip
        self.pending: dict[str, dict[str, Any]] = {}
        self.done = 0

    def run(self, target: int, stop: threading.Event) -> None:
        self.consumer.subscribe([self.topic])
        try:
            while self.done < target and not stop.is_set():
                for msg in self.consumer.consume(1000, 0.05):
                    raw = msg.value() or b""
                    if msg.error() is not None or raw[:10] != self.header:
                        continue
                    body = BytesIO(raw)
                    body.seek(10)
                    p: Any = schemaless_reader(body, self.schema, None)
                    self.pending[p["event_id"]] = p
                    self.done += 1
        finally:
            self.consumer.close()


def run_raw_join(settings: Settings, champion: ServedModel, out_topic: str, target: int) -> Run:
    """(b2): the plain loop (b) and, on a second thread of the same process, the plain join
    of its predictions; from (b)'s first batch until the join holds ``target``
    predictions. ``out_topic`` must be empty."""
    join = PlainJoin(settings, out_topic)
    stop = threading.Event()
    t = threading.Thread(target=join.run, args=(target, stop), name="b2-join", daemon=True)
    t.start()
    loop = RawLoop(settings, champion, out_topic)
    try:
        loop.run(threading.Event(), target)
        t.join(600)
    finally:
        stop.set()
    end_t, end_c = time.perf_counter(), cpu_seconds()
    return Run(join.done, end_t - loop.window.t0, end_c - loop.window.c0)


Runner = Callable[[], Run]
