"""The real join (Joiner, rules, expiry sweeps) in processing time, feeding a ModelMonitor
the way the worker does (streams/monitors.py), and the true rates computed apart from
both, for the rate tests (test_rates.py, test_monitor.py).

A stream is a list of :class:`Event`: when its prediction reaches the join, the version
that made it, and when its label reaches the join (None: never). The truth of a window
``[start, end)`` of arrival time is computed from that list alone: its predictions are
those that arrived in it, and one expired when its label never came or came at or after
its arrival + TTL (the join expires a prediction at its deadline, and a label arriving
then finds it expired).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.core.join.expiry import ExpiryIndex
from driftline.core.join.joiner import LABEL, PREDICTION, Joiner, Step
from driftline.core.model.config import ModelConfig
from driftline.core.watch.monitor import Emit, ModelMonitor
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import Origin
from tests.unit.core.examples import label, prediction

CODEC = default_codec()
MODEL = "churn"


@dataclass(frozen=True)
class Event:
    event_id: str
    arrived_ms: int
    version: str
    label_ms: int | None


@dataclass(frozen=True)
class Truth:
    predictions: int
    expired: int
    by_version: dict[str, int]


def truth(events: Iterable[Event], ttl_ms: int, start: int, end: int) -> Truth:
    """The predictions that reached the join in ``[start, end)`` and how many expired."""
    mine = [e for e in events if start <= e.arrived_ms < end]
    expired = sum(e.label_ms is None or e.label_ms - e.arrived_ms >= ttl_ms for e in mine)
    return Truth(len(mine), expired, dict(Counter(e.version for e in mine)))


def route(monitor: ModelMonitor, steps: Sequence[Step], now: int) -> list[Emit]:
    """What streams/monitors.py's ``observe`` does with a committed join batch."""
    emits: list[Emit] = []
    for step in steps:
        if step.prediction is not None:
            held = "model_mismatch" not in step.kinds and "key_mismatch" not in step.kinds
            monitor.observe_prediction(step.prediction, now if held else None)
        for out in step.outputs:
            v = out.record
            if v is None:
                continue
            if out.topic == "outcomes":
                emits += monitor.observe_outcome(v, now, step.settled)
            elif out.topic == "deadletter":
                monitor.observe_dead_letter(v, step.settled)
    monitor.join_seen(now)
    return emits


class JoinSim:
    """One join partition and its monitor, driven batch by batch in processing time."""

    def __init__(self, monitor: ModelMonitor, ttl_ms: int, sweep_ms: int = 1_000) -> None:
        self.monitor = monitor
        self.joiner = Joiner(CODEC, {MODEL: "classification"}.get, lambda m: ttl_ms,
                             "t.predictions", "t.labels")  # fmt: skip
        self.store: dict[bytes, bytes] = {}
        self.index = ExpiryIndex[bytes](bucket_ms=sweep_ms)
        self.offset = 0
        self.emits: list[Emit] = []

    def _apply(self, step: Step) -> None:
        """What the join loop does with a step: its entry under ``step.key`` (the model
        and event_id), its extra records."""
        for k, v in step.extra:
            if v is None:
                self.store.pop(k, None)
            else:
                self.store[k] = v
        key = step.key
        if step.keep or key is None:
            return
        if step.entry is None:
            self.store.pop(key, None)
        else:
            self.store[key] = step.entry
            if step.deadline_ms is not None:
                self.index.add(key, step.deadline_ms)

    def batch(self, now: int, messages: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Join ``messages`` ((topic, key, value)) at ``now``, then sweep what is due."""
        steps: list[Step] = []
        for topic, key, raw in messages:
            origin = Origin(f"t.{topic}", 0, self.offset, key, None, [])
            self.offset += 1
            step = self.joiner.on_message(origin, raw, now, self.store.get)
            self._apply(step)
            steps.append(step)
        for key in self.index.due(now):
            stored = self.store.get(key)
            if stored is None:
                continue
            step = self.joiner.on_expire(0, key, stored, now, self.store.get)
            self._apply(step)
            steps.append(step)
        if steps:
            self.emits += route(self.monitor, steps, now)

    def tick(self, now: int) -> None:
        self.emits += self.monitor.tick(now)


def encoded_prediction(e: Event) -> bytes:
    value = prediction(event_id=e.event_id, version=e.version, event_time_ms=e.arrived_ms,
                       predicted_at_ms=e.arrived_ms)  # fmt: skip
    return CODEC.encode(PREDICTION, value)


def encoded_label(e: Event) -> bytes:
    assert e.label_ms is not None
    return CODEC.encode(LABEL, label(event_id=e.event_id, label_time_ms=e.label_ms))


def run(
    events: Sequence[Event], ttl_ms: int, *, tick_ms: int = 1_000, batch_ms: int = 100,
    until_ms: int | None = None, monitor: ModelMonitor | None = None,
) -> JoinSim:  # fmt: skip
    """Drive ``events`` through a :class:`JoinSim`: a join batch every ``batch_ms`` (with
    whatever arrived since the last one: the batch's clock is its arrival time), a
    monitor tick every ``tick_ms`` (a multiple of ``batch_ms``), until every label and
    expiry is done. Batches in which nothing can happen are left out (a sweep runs each
    second while the join holds entries), which changes no result: the join applies a
    due expiry itself."""
    mon = monitor or ModelMonitor(ModelConfig(MODEL, join_ttl_ms=ttl_ms))
    sim = JoinSim(mon, ttl_ms)
    arrivals: dict[int, list[tuple[str, bytes, bytes]]] = {}
    for e in events:
        at = -(-e.arrived_ms // batch_ms) * batch_ms  # the first batch at or after it
        arrivals.setdefault(at, []).append(("predictions", e.event_id.encode(),
                                            encoded_prediction(e)))  # fmt: skip
    for e in events:
        if e.label_ms is not None:
            at = -(-e.label_ms // batch_ms) * batch_ms
            arrivals.setdefault(at, []).append(("labels", e.event_id.encode(), encoded_label(e)))
    times = sorted(arrivals)
    first = times[0] if times else 0
    end = until_ms if until_ms is not None else (times[-1] if times else 0) + 3 * ttl_ms + 120_000
    t, next_tick, at = first, first, 0
    while t <= end:
        sim.batch(t, arrivals.get(t, []))
        if t >= next_tick:
            sim.tick(t)
            next_tick += tick_ms
        # the next moment anything happens: an arrival, a tick, a sweep while entries wait
        while at < len(times) and times[at] <= t:
            at += 1
        later = [next_tick, times[at] if at < len(times) else end + 1]
        if len(sim.index):
            later.append(t + 1_000)
        t = -(-max(min(later), t + 1) // batch_ms) * batch_ms
    return sim


def aligned(events: Iterable[Event], batch_ms: int = 100) -> list[Event]:
    """``events`` with their times moved to the batch that reads them (what ``run`` does):
    the join's clock is the batch's."""

    def up(t: int) -> int:
        return -(-t // batch_ms) * batch_ms

    return [
        Event(
            e.event_id, up(e.arrived_ms), e.version, None if e.label_ms is None else up(e.label_ms)
        )
        for e in events
    ]


def of(emits: Iterable[Emit], topic: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [e.value for e in emits if e.topic == topic and kind in (None, e.value.get("kind"))]


def rate_snapshots(emits: Iterable[Emit], metric: str) -> list[dict[str, Any]]:
    return [s for s in of(emits, "metrics") if metric in s["metrics"]]
