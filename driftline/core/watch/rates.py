"""Rates whose numerator and denominator count the same events, judged once settled.

The monitor alerts on two ratios of counts. Each is over one set of events, counted once
in the denominator and, if it failed, once in the numerator, in the same bucket:

* **expired-label rate** (:class:`ExpiryRate`): of the predictions that reached the join
  in a span of *arrival time*, the share whose label did not come within the TTL. A
  prediction is bucketed by when the join first held it, the instant its TTL counts from
  (:mod:`driftline.core.join.rules`; the join reports it with the outcome or expiry as
  ``Step.settled``), and its outcome or expiry is counted in that same bucket. A bucket
  is judged once *settled*: closed (no prediction can still arrive in it) and every
  prediction in it joined or expired. Arrival + TTL bounds when that happens, whatever
  the data says; outcomes that all come early settle it early.

  Why arrival and not event time: the TTL runs from arrival, so "older than the TTL"
  is only true of arrival time. Event times are the upstream's: arbitrarily late or
  wrong, and a backlog read after downtime brings hours of old event times at once, so
  a bucket of event time is never known to be complete. The prediction's own
  ``predicted_at_ms`` would do in steady state, but after a restart the join reads
  predictions made long before it holds them, and their TTL starts then.

* **skew rate** (:class:`SkewRate`): of the events the scorer handled in a span of its
  batch time, the share it dead-lettered (decode, validation or model failures). The
  scorer reports each committed batch whole (events scored per version, events refused
  per reason), so a bucket is settled once a later batch was reported, or ``close_ms``
  after its end when the scorer is idle.

Each judgement that settles new buckets gives a :class:`Window`: the newest settled
buckets, back to the first that brings it to ``window_events`` events or to a span of
``max_span_ms``. It names its span and the versions that served its predictions, and
its rate is exactly ``hits / total`` of the events in that span: nothing is cleared or
reset between windows, and nothing that belongs to a judged bucket is added to a later
one. What cannot be placed is counted, never mixed in (``Window.left_out``): outcomes
and expiries of predictions that reached the join before this monitor started
(a restarted worker), and anything that comes for a bucket already judged.

One worker's monitor sees the partitions that worker owns: after a rebalance, outcomes
of predictions that arrived at another worker are counted as ``unmatched`` where they
can be told apart (more settled than seen in a bucket), and their bucket's predictions
that moved away are ``unresolved`` at the timeout (docs/architecture.md, known limit).

>>> rate = ExpiryRate(ttl_ms=5_000, bucket_ms=1_000, close_ms=2_000, window_events=3)
>>> for t in (100, 200, 300):
...     rate.add_prediction(t, "v1")
>>> rate.add_joined(100, "v1"); rate.add_joined(200, "v1"); rate.add_expired(300, "v1")
>>> rate.judge(now_ms=1_050) is None  # [0, 1000) is not closed: a prediction may still come
True
>>> rate.add_prediction(1_100, "v2")  # the join's clock passed 1000: [0, 1000) is closed
>>> w = rate.judge(now_ms=1_150)
>>> (w.start_ms, w.end_ms, w.hits, w.total, w.served_by())
(100, 1000, 1, 3, 'v1 (3)')
>>> rate.add_joined(300, "v1")  # a second fate for a prediction of a judged bucket
>>> dict(rate.left_out)
{'settled_late': 1}
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["ALL_VERSIONS", "WINDOWS", "ExpiryRate", "SkewRate", "Window", "rate_snapshot",
           "wilson_lower"]  # fmt: skip

ALL_VERSIONS = "all"
"""The ``version`` of a rate's MetricSnapshot: a window spans every version that served
it (its ``counts`` say how many events each), as segment ``all`` spans every segment."""

WINDOWS = {"expired_label_rate": "arrived:settled", "skew_rate": "scored:settled"}
"""The ``window`` of each rate's MetricSnapshot (and Prometheus label): the time axis its
events are bucketed on, judged once settled; the span is in window_start/end_ms."""


@dataclass(frozen=True, slots=True)
class Window:
    """What one judgement counted: ``hits`` of ``total`` events in ``[start_ms, end_ms)``.

    ``versions`` are (version, events) of the window, most first: the versions that
    served its predictions (expiry) or scored its events (skew). ``hits_by_version``:
    expired predictions per version (expiry only: a refused event has no version).
    ``reasons``: dead letters per reason (skew). ``unresolved``: predictions neither
    joined nor expired here by their bucket's deadline (left out of ``total``).
    ``left_out``: outcomes, expiries or events that could not be placed in their bucket
    since this rate started (see the module docstring), by why.
    """

    kind: str
    start_ms: int
    end_ms: int
    total: int
    hits: int
    versions: tuple[tuple[str, int], ...] = ()
    hits_by_version: tuple[tuple[str, int], ...] = ()
    reasons: tuple[tuple[str, int], ...] = ()
    unresolved: int = 0
    left_out: tuple[tuple[str, int], ...] = ()

    @property
    def rate(self) -> float:
        """``hits / total`` (0 for an empty window)."""
        return self.hits / self.total if self.total else 0.0

    def served_by(self) -> str:
        """The versions of the window as text: ``v1 (800), v2 (200)``."""
        return ", ".join(f"{v} ({n})" for v, n in self.versions) or "no version"


def rate_snapshot(model: str, window: Window, now_ms: int) -> dict[str, Any]:
    """The MetricSnapshot dict of a judged rate window: ``metrics`` holds the rate,
    ``count`` its denominator, ``counts`` the numerator, the events per version and
    what was left out.

    >>> w = Window("expired_label_rate", 0, 10_000, 50, 5, (("v1", 50),), (("v1", 5),))
    >>> snap = rate_snapshot("churn", w, now_ms=99)
    >>> snap["window"], snap["count"], snap["metrics"], snap["counts"]
    ('arrived:settled', 50, {'expired_label_rate': 0.1}, {'hits': 5, 'events.v1': 50, \
'hits.v1': 5, 'unresolved': 0})
    """
    counts: dict[str, int] = {"hits": window.hits}
    counts.update({f"events.{v}": n for v, n in window.versions})
    counts.update({f"hits.{v}": n for v, n in window.hits_by_version})
    counts.update({f"reason.{r}": n for r, n in window.reasons})
    if window.kind == "expired_label_rate":
        counts["unresolved"] = window.unresolved
    counts.update({f"left_out.{why}": n for why, n in window.left_out})
    return {
        "model": model,
        "version": ALL_VERSIONS,
        "segment": "all",
        "window": WINDOWS[window.kind],
        "window_start_ms": window.start_ms,
        "window_end_ms": window.end_ms,
        "emitted_at_ms": now_ms,
        "count": window.total,
        "metrics": {window.kind: window.rate},
        "baseline": {},
        "counts": counts,
    }


def wilson_lower(hits: int, total: int, z: float) -> float:
    """One-sided lower confidence bound of a proportion (Wilson score interval).

    >>> round(wilson_lower(30, 100, 1.645), 3), round(wilson_lower(0, 10, 1.645), 3)
    (0.231, 0.0)
    """
    if total <= 0:
        return 0.0
    p = hits / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, (centre - margin) / (1 + z2 / total))


@dataclass(slots=True)
class _Bucket:
    units: Counter[str] = field(default_factory=Counter)  # version -> events
    hits: Counter[str] = field(default_factory=Counter)  # version -> expired (expiry)
    joined: int = 0  # expiry
    reasons: Counter[str] = field(default_factory=Counter)  # skew: dead letters by reason
    refused: int = 0  # skew: dead-lettered events

    @property
    def total(self) -> int:
        return sum(self.units.values()) + self.refused


class _Buckets:
    """Buckets of one time axis, judged in order once settled (see the module doc)."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        *,
        bucket_ms: int = 10_000,
        close_ms: int = 30_000,
        window_events: int = 1_000,
        max_span_ms: int = 3_600_000,
    ) -> None:
        for name, value in [
            ("bucket_ms", bucket_ms),
            ("window_events", window_events),
            ("max_span_ms", max_span_ms),
        ]:
            if value < 1:
                raise ValueError(f"{name} must be >= 1, not {value!r}")
        if close_ms < 0:
            raise ValueError(f"close_ms must be >= 0, not {close_ms!r}")
        self.bucket_ms = bucket_ms
        self.close_ms = close_ms
        self.window_events = window_events
        self.max_span_ms = max_span_ms
        self.pending: dict[int, _Bucket] = {}
        self.settled: deque[tuple[int, _Bucket]] = deque()
        self.judged_to: int | None = None
        """Every bucket index below it is judged: nothing more is added to it."""
        self.start_ms: int | None = None
        """When this rate started counting (the first time it saw)."""
        self.watermark = -(2**62)
        """The newest time its source reported: buckets that end by it are closed."""
        self.left_out: Counter[str] = Counter()

    def seen(self, t_ms: int) -> None:
        """The source reported time ``t_ms`` (a join batch's clock, a scorer batch's)."""
        if self.start_ms is None:
            self.start_ms = t_ms
        if t_ms > self.watermark:
            self.watermark = t_ms

    def _bucket(self, t_ms: int, create: bool, why: str) -> _Bucket | None:
        """The pending bucket of ``t_ms``; None (and ``why`` counted) if it is judged."""
        i = t_ms // self.bucket_ms
        if self.judged_to is not None and i < self.judged_to:
            self.left_out[why] += 1
            return None
        bucket = self.pending.get(i)
        if bucket is None and create:
            bucket = self.pending[i] = _Bucket()
        return bucket

    def _closed_below(self, now_ms: int) -> int:
        """The first bucket index not closed at ``now_ms``."""
        return max(self.watermark, now_ms - self.close_ms) // self.bucket_ms

    def _complete(self, i: int, bucket: _Bucket, now_ms: int) -> bool:
        return True

    def judge(self, now_ms: int) -> Window | None:
        """Settle what can be settled; the window ending with the newest settled bucket,
        or None when no bucket with events settled."""
        closed = self._closed_below(now_ms)
        moved = False
        for i in sorted(self.pending):
            if i >= closed or not self._complete(i, self.pending[i], now_ms):
                break
            self.settled.append((i, self.pending.pop(i)))
            self.judged_to = i + 1
            moved = True
        else:
            if self.judged_to is None or closed > self.judged_to:
                self.judged_to = closed
        if not moved:
            return None
        newest = self.settled[-1][0]
        while self.settled and (newest - self.settled[0][0]) * self.bucket_ms >= self.max_span_ms:
            self.settled.popleft()
        return self._window()

    def _window(self) -> Window:
        parts: list[tuple[int, _Bucket]] = []
        total = 0
        newest = self.settled[-1][0]
        for i, bucket in reversed(self.settled):
            if (newest - i) * self.bucket_ms >= self.max_span_ms:
                break
            parts.append((i, bucket))
            total += self._total(bucket)
            if total >= self.window_events:
                break
        units: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        joined = refused = 0
        for _, b in parts:
            units.update(b.units)
            hits.update(b.hits)
            reasons.update(b.reasons)
            joined += b.joined
            refused += b.refused
        start = parts[-1][0] * self.bucket_ms
        if self.start_ms is not None:
            start = max(start, self.start_ms)
        return self._make(start, (newest + 1) * self.bucket_ms, units, hits, reasons,
                          joined, refused)  # fmt: skip

    def _total(self, bucket: _Bucket) -> int:
        raise NotImplementedError

    def _make(
        self, start: int, end: int, units: Counter[str], hits: Counter[str],
        reasons: Counter[str], joined: int, refused: int,
    ) -> Window:  # fmt: skip
        raise NotImplementedError


def _most(counts: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(((k, n) for k, n in counts.items() if n), key=lambda kv: (-kv[1], kv[0])))


class ExpiryRate(_Buckets):
    """Expired-label rate over predictions bucketed by their arrival in the join.

    ``ttl_ms`` is the model's join TTL: a bucket whose predictions are not all joined
    or expired ``ttl_ms + close_ms`` after its end is judged anyway, the rest counted
    as ``unresolved`` (they moved to another worker, or the TTL was changed).
    """

    kind: ClassVar[str] = "expired_label_rate"

    def __init__(self, ttl_ms: int, **kw: int) -> None:
        super().__init__(**kw)
        if ttl_ms < 1:
            raise ValueError(f"ttl_ms must be >= 1, not {ttl_ms!r}")
        self.ttl_ms = ttl_ms

    def add_prediction(self, arrived_ms: int, version: str) -> None:
        """A prediction the join holds from ``arrived_ms`` (its first arrival)."""
        self.seen(arrived_ms)
        bucket = self._bucket(arrived_ms, True, "predictions_late")
        if bucket is not None:
            bucket.units[version] += 1

    def add_joined(self, arrived_ms: int, version: str) -> None:
        """The prediction that arrived at ``arrived_ms`` was joined to its label."""
        bucket = self._settling(arrived_ms)
        if bucket is not None:
            bucket.joined += 1

    def add_expired(self, arrived_ms: int, version: str) -> None:
        """The prediction that arrived at ``arrived_ms`` expired without a label."""
        bucket = self._settling(arrived_ms)
        if bucket is not None:
            bucket.hits[version] += 1

    def _settling(self, arrived_ms: int) -> _Bucket | None:
        """The bucket an outcome or expiry of a prediction arrived at ``arrived_ms``
        counts in, or None (counted in ``left_out``)."""
        if self.start_ms is None or arrived_ms < self.start_ms:
            self.left_out["settled_before_start"] += 1
            return None
        bucket = self._bucket(arrived_ms, False, "settled_late")
        if bucket is None:
            if self.judged_to is None or arrived_ms // self.bucket_ms >= self.judged_to:
                self.left_out["settled_unmatched"] += 1
            return None
        if bucket.joined + sum(bucket.hits.values()) >= bucket.total:
            self.left_out["settled_unmatched"] += 1
            return None
        return bucket

    def _complete(self, i: int, bucket: _Bucket, now_ms: int) -> bool:
        if bucket.joined + sum(bucket.hits.values()) >= bucket.total:
            return True
        return now_ms >= (i + 1) * self.bucket_ms + self.ttl_ms + self.close_ms

    def _total(self, bucket: _Bucket) -> int:
        return bucket.joined + sum(bucket.hits.values())

    def _make(
        self, start: int, end: int, units: Counter[str], hits: Counter[str],
        reasons: Counter[str], joined: int, refused: int,
    ) -> Window:  # fmt: skip
        expired = sum(hits.values())
        return Window(
            self.kind, start, end, joined + expired, expired, _most(units), _most(hits),
            unresolved=sum(units.values()) - joined - expired, left_out=_most(self.left_out),
        )  # fmt: skip


class SkewRate(_Buckets):
    """Dead-letter (skew) rate over the scorer's events, bucketed by its batch time."""

    kind: ClassVar[str] = "skew_rate"

    def add_batch(self, at_ms: int, scored: Mapping[str, int], refused: Mapping[str, int]) -> None:
        """A committed scorer batch of time ``at_ms``: events scored per version, events
        dead-lettered per reason."""
        self.seen(at_ms)
        if not any(scored.values()) and not any(refused.values()):
            return
        bucket = self._bucket(at_ms, True, "batches_late")
        if bucket is None:
            return
        bucket.units.update(scored)
        bucket.reasons.update(refused)
        bucket.refused += sum(refused.values())

    def _total(self, bucket: _Bucket) -> int:
        return bucket.total

    def _make(
        self, start: int, end: int, units: Counter[str], hits: Counter[str],
        reasons: Counter[str], joined: int, refused: int,
    ) -> Window:  # fmt: skip
        return Window(
            self.kind, start, end, sum(units.values()) + refused, refused, _most(units),
            reasons=_most(reasons), left_out=_most(self.left_out),
        )  # fmt: skip
