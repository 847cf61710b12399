"""Read a model's outcomes for a retrain trigger's window, with their exact offsets."""

from __future__ import annotations

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
    undecodable: int = 0
    seconds: float = 0.0
    starts: dict[int, int] = field(default_factory=dict)


class OutcomeReader:
    """Reads a model's outcomes for a trigger's window with ``assign()`` (no group)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("outcomes")
        self.consumer = reader(
            settings, "outcomes", **{"fetch.max.bytes": 52_428_800, "enable.partition.eof": True}
        )
        self.offsets = Offsets(settings)

    def _starts(self, parts: list[int], start_ms: int | None) -> dict[int, int]:
        """Per partition, the first offset at or after ``start_ms`` (Kafka timestamps: an
        outcome's is at or after its event time), or the earliest one."""
        found = self.offsets.query(
            [(self.topic, p) for p in parts], "earliest" if start_ms is None else start_ms
        )
        return {p: off for (_, p), off in found.items()}

    def _scan(self, model: str, starts: Mapping[int, int], ends: Mapping[int, int]) -> OutcomeRead:
        rows: list[dict[str, Any]] = []
        got = OutcomeRead(rows, [], starts=dict(starts))
        codec = default_codec()

        def handle(m: Message) -> None:
            got.messages += 1
            try:
                value = codec.decode(m.value() or b"", expect="Outcome").value
            except CodecError:
                got.undecodable += 1
                return
            if value["model"] == model:
                value.update(topic=m.topic(), partition=m.partition(), offset=m.offset())
                rows.append(value)

        todo = {p: e for p, e in ends.items() if 0 <= starts[p] < e}
        self.consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in todo])
        try:
            consume_to_end(
                self.consumer,
                {(self.topic, p): e for p, e in todo.items()},
                handle,
                starts={(self.topic, p): starts[p] for p in todo},
            )
        finally:
            self.consumer.unassign()
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
