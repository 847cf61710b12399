"""Read a model's outcomes for a retrain trigger's window, with their exact offsets.

The reader keeps what it read: per partition, one contiguous span of offsets and the
records decoded at them (every model's; at most ``cache_messages`` in all, the newest
kept). A later window reads from Kafka only the offsets its span lacks (the outcomes
that arrived since, or older ones it now reaches back to) and takes the rest from the
span: a Kafka log never changes at an offset once read (read_committed: a reader sees a
transaction's records only once it is decided), so the rows are the same as a full
read's, without reading and decoding the same messages trigger after trigger.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message, TopicPartition

from driftline.core.errors import CodecError
from driftline.core.wire.codec import default_codec
from driftline.kafka.helpers import Offsets, consume_to_end, reader
from driftline.settings import Settings

log = logging.getLogger("driftline.outcomes")


@dataclass
class OutcomeRead:
    """Outcomes of one model read from the outcomes topic, and what was read for them."""

    rows: list[dict[str, Any]]
    ranges: list[dict[str, Any]]
    """Per partition, the offsets of the rows kept: [first, last + 1)."""
    messages: int = 0
    """Messages read from Kafka for it."""
    undecodable: int = 0
    seconds: float = 0.0
    starts: dict[int, int] = field(default_factory=dict)
    cached: int = 0
    """Messages of its offsets taken from what the reader had read before."""


@dataclass
class _Span:
    """What the reader holds of one partition: the records at offsets [lo, hi), in
    order (``None``: undecodable), each outcome with its topic, partition and offset."""

    lo: int
    hi: int
    offsets: list[int] = field(default_factory=list)
    values: list[dict[str, Any] | None] = field(default_factory=list)

    def add(self, offset: int, value: dict[str, Any] | None) -> None:
        self.offsets.append(offset)
        self.values.append(value)

    def between(self, start: int, end: int) -> tuple[list[int], list[dict[str, Any] | None]]:
        i, j = bisect.bisect_left(self.offsets, start), bisect.bisect_left(self.offsets, end)
        return self.offsets[i:j], self.values[i:j]

    def keep_newest(self, n: int) -> None:
        """Drop all but the newest ``n`` records (``lo`` moves up past the dropped)."""
        if len(self.offsets) <= n:
            return
        cut = len(self.offsets) - n
        self.lo = self.offsets[cut] if n > 0 else self.hi
        del self.offsets[:cut], self.values[:cut]


class OutcomeReader:
    """Reads a model's outcomes for a trigger's window with ``assign()`` (no group)."""

    def __init__(self, settings: Settings, cache_messages: int = 60_000) -> None:
        self.topic = settings.topic("outcomes")
        self.consumer = reader(
            settings, "outcomes", **{"fetch.max.bytes": 52_428_800, "enable.partition.eof": True}
        )
        self.offsets = Offsets(settings)
        self.cache_messages = cache_messages
        """Records kept between reads, over every partition (0: none kept)."""
        self._spans: dict[int, _Span] = {}

    def _starts(self, parts: list[int], start_ms: int | None) -> dict[int, int]:
        """Per partition, the first offset at or after ``start_ms`` (Kafka timestamps: an
        outcome's is at or after its event time), or the earliest one."""
        found = self.offsets.query(
            [(self.topic, p) for p in parts], "earliest" if start_ms is None else start_ms
        )
        return {p: off for (_, p), off in found.items()}

    def _fetch(self, ranges: Mapping[int, tuple[int, int]], got: OutcomeRead) -> dict[int, _Span]:
        """Read [start, end) of each partition from Kafka into a new span, which reaches
        as far as the reader got (``hi``: its position, past any aborted records and
        transaction markers)."""
        codec = default_codec()
        spans = {p: _Span(start, start) for p, (start, _) in ranges.items()}

        def handle(m: Message) -> None:
            got.messages += 1
            try:
                value: dict[str, Any] | None = codec.decode(
                    m.value() or b"", expect="Outcome"
                ).value
            except CodecError:
                got.undecodable += 1
                value = None
            if value is not None:
                value.update(topic=m.topic(), partition=m.partition(), offset=m.offset())
            spans[m.partition() or 0].add(m.offset() or 0, value)

        if not ranges:
            return spans
        tps = [TopicPartition(self.topic, p, s) for p, (s, _) in ranges.items()]
        self.consumer.assign(tps)
        try:
            nxt = consume_to_end(
                self.consumer,
                {(self.topic, p): e for p, (_, e) in ranges.items()},
                handle,
                starts={(self.topic, p): s for p, (s, _) in ranges.items()},
            )
            positions = self.consumer.position(tps)
        finally:
            self.consumer.unassign()
        for tp in positions:
            span = spans[tp.partition]
            span.hi = max(nxt[(self.topic, tp.partition)], tp.offset, span.lo)
        return spans

    def _scan(self, model: str, starts: Mapping[int, int], ends: Mapping[int, int]) -> OutcomeRead:
        """The outcomes of ``model`` at offsets [starts[p], ends[p]) of each partition p:
        the offsets past the reader's span are read from Kafka, the rest taken from it
        (a window that starts before the span or past its end is read whole)."""
        rows: list[dict[str, Any]] = []
        got = OutcomeRead(rows, [], starts=dict(starts))
        todo = {p: e for p, e in ends.items() if 0 <= starts[p] < e}
        for p in todo:
            span = self._spans.get(p)
            if span is not None and not span.lo <= starts[p] <= span.hi:
                del self._spans[p]
        held = {p: self._spans[p].hi for p in todo if p in self._spans}
        fetch = {p: (held.get(p, starts[p]), e) for p, e in todo.items() if e > held.get(p, -1)}
        for p, tail in self._fetch(fetch, got).items():
            span = self._spans.setdefault(p, _Span(tail.lo, tail.lo))
            span.offsets += tail.offsets
            span.values += tail.values
            span.hi = tail.hi
        for p, e in todo.items():
            offsets, values = self._spans[p].between(starts[p], e)
            if p in held:  # those below where the span stood were held, not read now
                got.cached += bisect.bisect_left(offsets, held[p])
            rows += [dict(v) for v in values if v is not None and v["model"] == model]
        if self._spans:
            keep = self.cache_messages // len(self._spans)
            for span in self._spans.values():
                span.keep_newest(keep)
        return got

    def read(
        self,
        model: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        last_n: int | None = None,
    ) -> OutcomeRead:
        """Outcomes of ``model`` with event time in [start_ms, end_ms), at most the newest
        ``last_n`` of them (by event time). The end is each partition's end when called.

        Without ``start_ms``, ``last_n`` reads back from the end, widening the look-back
        until it holds ``last_n`` rows of the model or reaches the beginning.
        """
        t0 = time.monotonic()
        parts = self.offsets.partitions(self.topic)
        ends = {
            p: off
            for (_, p), off in self.offsets.query(
                [(self.topic, p) for p in parts], "latest"
            ).items()
        }
        base = self._starts(parts, start_ms)
        lookback = last_n if last_n is not None and start_ms is None else None
        while True:
            starts = dict(base)
            if lookback is not None:
                starts = {p: max(base[p], ends[p] - lookback) for p in parts}
            got = self._scan(model, starts, ends)
            in_window = [
                r
                for r in got.rows
                if (start_ms is None or r["event_time_ms"] >= start_ms)
                and (end_ms is None or r["event_time_ms"] < end_ms)
            ]
            if lookback is None or len(in_window) >= lookback or starts == base:
                break
            lookback *= 4
        got.rows = _newest(in_window, last_n)
        got.ranges = list(_ranges(self.topic, got.rows))
        got.seconds = time.monotonic() - t0
        if not got.rows:
            log.warning(
                "%s: no outcomes of %s in %s: read %d messages, starts %s, ends %s",
                self.topic,
                model,
                (start_ms, end_ms, last_n),
                got.messages,
                starts,
                ends,
            )
        return got

    def close(self) -> None:
        self.consumer.close()


def _newest(rows: list[dict[str, Any]], last_n: int | None) -> list[dict[str, Any]]:
    """The rows in event-time order (ties by partition and offset), at most the last N."""
    rows = sorted(rows, key=lambda r: (r["event_time_ms"], r["partition"], r["offset"]))
    return rows if last_n is None else rows[-last_n:] if last_n > 0 else []


def _ranges(topic: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    bounds: dict[int, list[int]] = {}
    for r in rows:
        b = bounds.setdefault(r["partition"], [r["offset"], r["offset"]])
        b[0], b[1] = min(b[0], r["offset"]), max(b[1], r["offset"])
    for p in sorted(bounds):
        yield {
            "topic": topic,
            "partition": p,
            "start_offset": bounds[p][0],
            "end_offset": bounds[p][1] + 1,
        }
