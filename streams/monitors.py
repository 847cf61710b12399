"""The monitor: predictions, outcomes and dead letters in; metric snapshots, alerts and
retrain triggers out. All judgement is in driftline.core.watch.monitor.

The join agent already decodes every prediction and builds every outcome, so it hands
them to the monitor in process (:func:`install` returns that hook) instead of the monitor
reading the predictions and outcomes topics again: that halves the Faust events per
input, and Faust's per-event cost is what bounds a worker. The scorer's dead letters
arrive through a thread-safe inbox. A worker's monitor thus sees the predictions and
outcomes of the partitions it owns: with one worker, all of them. (Several workers each
watch their share; repartitioning by model is the follow-up noted in
docs/architecture.md.) A timer ticks the monitors: snapshots, feature drift, rate alerts
and clock-driven retrain reasons. Each monitor follows its model's champion as the
registry names it (a champion of another task rebuilds it, see
:class:`~driftline.core.watch.monitor.ModelMonitor`), and a reloaded models file
reconfigures them (:meth:`Monitors.reconfigure`).

Alerts are incidents (driftline.core.watch.incidents): the monitors publish one when it
opens, escalates or resolves; :meth:`Monitors.restore` gives them the incidents still
open on the alerts topic when the worker starts (streams/incidents.py), so a restarted
worker does not page again for one still firing.

The rates count each event on one time axis (driftline.core.watch.rates): a prediction
at the join's clock when it first held it, its outcome or expiry at that same arrival
(the join's ``Step.settled``); the scorer's events at the clock of the batch that
committed them, scored and refused together.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

import faust

from driftline.core.join.joiner import Step
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.watch.incidents import FIRING
from driftline.core.watch.monitor import Emit, ModelMonitor
from driftline.core.watch.rates import ALL_VERSIONS
from driftline.core.wire.codec import Codec
from driftline.core.wire.headers import build as record_headers
from driftline.streams import telemetry as m
from driftline.streams.incidents import IncidentGauge

log = logging.getLogger(__name__)

ScorerBatch = tuple[int, Counter[tuple[str, str]], list[dict[str, Any]]]
"""A committed scorer batch: its clock, events scored per (model, version), dead letters."""

RECORD = {
    "metrics": "io.driftline.MetricSnapshot",
    "alerts": "io.driftline.Alert",
    "retrain": "io.driftline.RetrainTrigger",
}


def now_ms() -> int:
    return int(time.time() * 1000)


class Monitors:
    """One ModelMonitor per model, fed in order; registry changes are queued by the
    registry thread and applied on the event loop."""

    def __init__(self, models: ModelsConfig, window_size: int = 1_000) -> None:
        self.models = models
        self.window_size = window_size
        self.by_model: dict[str, ModelMonitor] = {}
        self.versions: deque[dict[str, Any]] = deque()
        self.scorer_inbox: deque[ScorerBatch] = deque(maxlen=100_000)
        """Committed scorer batches, from the scorer's thread; deque appends are
        thread-safe, and one item per batch keeps its two sides together."""

    def get(self, model: str, task: str | None = None) -> ModelMonitor:
        mon = self.by_model.get(model)
        if mon is None:
            config = self.models.get(model) or ModelConfig(model, task=task or "classification")
            mon = self.by_model[model] = ModelMonitor(config, window_size=self.window_size)
        return mon

    def reconfigure(self, models: ModelsConfig) -> None:
        """A reloaded models file (on the event loop): each monitor takes its model's new
        configuration; a model the file no longer names keeps monitoring with defaults for
        its champion's task."""
        self.models = models
        for name, mon in self.by_model.items():
            config = models.get(name) or ModelConfig(name, task=mon.task)
            if config != mon.config:
                mon.reconfigure(config)

    def sync_versions(self, now: int) -> None:
        while self.versions:
            record = self.versions.popleft()
            self.get(record["model"], record.get("task")).on_version(record, now)
        while self.scorer_inbox:
            self.observe_scorer_batch(*self.scorer_inbox.popleft())

    def on_scorer_batch(
        self, now_ms: int, scored: Counter[tuple[str, str]], dead: list[dict[str, Any]]
    ) -> None:
        """The scorer's ``on_batch`` hook (its thread): queue the batch for the loop."""
        self.scorer_inbox.append((now_ms, scored, dead))

    def observe_scorer_batch(
        self, at_ms: int, scored: Counter[tuple[str, str]], dead: list[dict[str, Any]]
    ) -> None:
        """One committed scorer batch into every model's skew rate (also the models
        with no event in it: a later batch closes their earlier buckets)."""
        by_model: dict[str, tuple[Counter[str], Counter[str]]] = {}
        for (model, version), n in scored.items():
            by_model.setdefault(model, (Counter(), Counter()))[0][version] += n
        for record in dead:
            whose = record.get("model")
            if whose:
                by_model.setdefault(whose, (Counter(), Counter()))[1][record["reason"]] += 1
        for name in by_model:
            self.get(name)
        for name, mon in self.by_model.items():
            versions, reasons = by_model.get(name) or (Counter(), Counter())
            mon.observe_scorer_batch(at_ms, versions, reasons)

    def observe_dead(self, record: dict[str, Any], settled: tuple[str, int] | None = None) -> None:
        model = record.get("model")
        if model:
            self.get(model).observe_dead_letter(record, settled)

    def restore(self, open_by_model: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The incidents still open on the alerts topic (per model, the newest record of
        each), into each model's monitor; returns the records restored."""
        out = []
        for model, records in sorted(open_by_model.items()):
            mon = self.get(model)
            for r in records:
                mon.incidents.restore(r)
                out.append(r)
        return out


class Recent:
    """What the status page shows, kept in memory: the latest snapshot per model, version,
    segment and window; each version's rolling metrics over time (count window, all
    segments); the last alerts and retrain triggers; the incidents, open and recently
    resolved (the record that opened each and its latest). Bounded; fed by the monitor's
    ``on_emit`` hook on the event loop, read there by the web views.

    >>> r = Recent(points=2)
    >>> for t in (1, 2, 3):
    ...     r.add(Emit("metrics", "m", {"model": "m", "version": "v1", "segment": "all",
    ...                "window": "count:1000", "emitted_at_ms": t, "metrics": {"accuracy": t / 4}}))
    >>> [t for t, _ in r.history[("m", "v1")]]
    [2, 3]
    >>> r.add(Emit("alerts", "m", {"kind": "concept_drift"}))
    >>> [a["kind"] for a in r.alerts]
    ['concept_drift']

    After a restart, :meth:`restore` folds in the last known state read back from the
    metrics, alerts and retrain topics (``driftline.streams.restore``); a snapshot so
    restored stays marked in :attr:`restored` until a fresh one of the same key arrives.
    >>> r.add(Emit("alerts", "m", {"kind": "skew_rate", "incident_id": "i1", "state": "firing"}))
    >>> r.add(Emit("alerts", "m", {"kind": "skew_rate", "incident_id": "i1", "state": "resolved"}))
    >>> [(i["first"]["state"], i["last"]["state"]) for i in r.incidents.values()]
    [('firing', 'resolved')]
    """

    def __init__(self, points: int = 720, keep: int = 50, versions_per_model: int = 8) -> None:
        self.points = points
        self.keep = keep
        self.versions_per_model = versions_per_model
        self.snapshots: dict[SnapshotKey, dict[str, Any]] = {}
        self.history: dict[tuple[str, str], deque[tuple[int, dict[str, float]]]] = {}
        self.alerts: deque[dict[str, Any]] = deque(maxlen=keep)
        self.triggers: deque[dict[str, Any]] = deque(maxlen=keep)
        self.restored: set[SnapshotKey] = set()
        """Keys whose snapshot was read back from the metrics topic, not emitted since."""
        self.restored_at_ms: int | None = None
        self.keep = keep
        self.incidents: dict[str, dict[str, dict[str, Any]]] = {}
        """By incident id, in the order they opened: ``first`` and ``last`` record."""

    def add(self, emit: Emit) -> None:
        v = emit.value
        if emit.topic == "alerts" and v.get("incident_id"):
            self.alerts.append(v)
            seen = self.incidents.setdefault(v["incident_id"], {"first": v, "last": v})
            seen["last"] = v
            if len(self.incidents) > self.keep:  # forget the oldest resolved one
                done = [k for k, i in self.incidents.items() if i["last"]["state"] != FIRING]
                del self.incidents[(done or list(self.incidents))[0]]
        elif emit.topic == "alerts":
            self.alerts.append(v)
        elif emit.topic == "retrain":
            self.triggers.append(v)
        elif emit.topic == "metrics":
            self.restored.discard(snapshot_key(v))
            self._metrics(v)

    def _metrics(self, v: dict[str, Any]) -> None:
        key = (v["model"], v["version"])
        if v["version"] == ALL_VERSIONS:  # a rate over every version: not a version
            self.snapshots[snapshot_key(v)] = v
            return
        if key not in self.history:
            self._make_room(v["model"])
            self.history[key] = deque(maxlen=self.points)
        self.snapshots[snapshot_key(v)] = v
        if v["segment"] == "all" and v["window"].startswith("count"):
            self.history[key].append((v["emitted_at_ms"], dict(v["metrics"])))

    def restore(
        self,
        snapshots: Iterable[dict[str, Any]],
        alerts: Iterable[dict[str, Any]] = (),
        triggers: Iterable[dict[str, Any]] = (),
        at_ms: int | None = None,
    ) -> int:
        """Fold in the last known state, read in any order: per key the newest snapshot
        (and the charted history) unless this worker has emitted that key itself; the
        ``keep`` newest alerts and triggers (by ``created_at_ms``, one per id) with those
        it holds. Returns how many snapshot keys are marked restored.

        >>> r = Recent()
        >>> old = {"model": "m", "version": "v1", "segment": "all", "window": "count:9",
        ...        "emitted_at_ms": 1, "metrics": {"accuracy": 0.5}}
        >>> r.restore([dict(old, emitted_at_ms=2), old], at_ms=5)
        1
        >>> r.add(Emit("metrics", "m", dict(old, emitted_at_ms=6)))
        >>> r.restored, [t for t, _ in r.history[("m", "v1")]]
        (set(), [1, 2, 6])
        """
        fresh = set(self.snapshots) - self.restored
        since = {k: h[0][0] for k, h in self.history.items() if h}  # first point emitted here
        for v in sorted(snapshots, key=lambda v: v["emitted_at_ms"]):
            key = snapshot_key(v)
            if key not in fresh:
                self._metrics(v)
                self.restored.add(key)
            elif v["segment"] == "all" and v["window"].startswith("count"):
                hist = self.history.get(key[:2])  # emitted since: only its earlier points
                if hist is not None and v["emitted_at_ms"] < since.get(key[:2], 0):
                    hist.append((v["emitted_at_ms"], dict(v["metrics"])))
        for hist in self.history.values():  # restored points may predate fresh ones
            if any(a[0] > b[0] for a, b in zip(hist, list(hist)[1:], strict=False)):
                ordered = sorted(hist, key=lambda p: p[0])
                hist.clear()
                hist.extend(ordered)
        self.alerts = _newest([*alerts, *self.alerts], "alert_id", self.keep)
        self.triggers = _newest([*triggers, *self.triggers], "trigger_id", self.keep)
        self.restored_at_ms = at_ms
        return len(self.restored)

    def _make_room(self, model: str) -> None:
        """Forget the version of ``model`` emitted longest ago once it has too many."""
        mine = [k for k in self.history if k[0] == model]
        while len(mine) >= self.versions_per_model:
            old = min(mine, key=lambda k: self.history[k][-1][0] if self.history[k] else 0)
            mine.remove(old)
            del self.history[old]
            for k in [k for k in self.snapshots if k[:2] == old]:
                del self.snapshots[k]
                self.restored.discard(k)


SnapshotKey = tuple[str, str, str, str]
"""model, version, segment, window."""


def snapshot_key(v: Mapping[str, Any]) -> SnapshotKey:
    return (v["model"], v["version"], v["segment"], v["window"])


def _newest(records: list[dict[str, Any]], id_field: str, n: int) -> deque[dict[str, Any]]:
    """The ``n`` newest of ``records`` by creation time, one per id (the last seen)."""
    by_id = {r.get(id_field) or id(r): r for r in records}
    ordered = sorted(by_id.values(), key=lambda r: r.get("created_at_ms") or 0)
    return deque(ordered[-n:], maxlen=n)


INCIDENTS = IncidentGauge()
"""The worker's ``driftline_incident_firing`` (one per process, like the metrics)."""


def export(emit: Emit) -> None:
    """Mirror what a monitor publishes into Prometheus."""
    v = emit.value
    if emit.topic == "metrics" and v["segment"] == "all":
        for name, value in v["metrics"].items():
            m.MODEL_METRIC.labels(v["model"], v["version"], "all", v["window"], name).set(value)
            if name.startswith(("psi.", "ks.")):
                stat, feature = name.split(".", 1)
                m.DRIFT_SCORE.labels(v["model"], v["version"], feature, stat).set(value)
        for name, value in v.get("baseline", {}).items():
            m.MODEL_BASELINE.labels(v["model"], v["version"], name).set(value)
    elif emit.topic == "alerts":
        m.ALERTS.labels(v["model"], v["kind"], v["severity"]).inc()
        if v["kind"].endswith("drift") and v.get("state") == FIRING:
            m.DRIFT_DETECTIONS.labels(v["model"], v["kind"]).inc()
        INCIDENTS.update(v)
    elif emit.topic == "retrain":
        m.RETRAIN_TRIGGERS.labels(v["model"]).inc()


def log_alert(alert: dict[str, Any]) -> None:
    """One INFO line per alert record published: ``incident firing:`` (opened or
    escalated), ``incident resolved:`` or ``alert:`` (a notice), then model, version,
    kind, severity and its message."""
    state = alert.get("state")
    what = "alert" if state is None else f"incident {state}"
    log.info("%s: %s %s %s %s: %s", what, alert["model"], alert.get("version") or "-",
             alert["kind"], alert["severity"], alert["message"])  # fmt: skip


Observe = Callable[[list[Step], int], Coroutine[Any, Any, None]]
Send = Callable[[str, bytes, bytes, list[tuple[str, bytes]]], None]
"""``send(topic, key, value, headers)``: hand a record to a producer without waiting."""


def install(
    app: faust.App,
    codec: Codec,
    monitors: Monitors,
    topic: Callable[[str], str],
    tick_every_s: float,
    send: Send,
    on_emit: Callable[[Emit], None] | None = None,
    rates_only: bool = False,
) -> Observe:
    """Add the monitor's tick timer to ``app``; returns the hook that takes the join's
    committed steps. Snapshots, alerts and triggers go out through ``send``, which must
    not block: a producer waiting on a broker must not stall the monitor, and through it
    the join. ``rates_only``: a worker without the join (``--role score``) ticks only the
    rates its scorer feeds (:meth:`ModelMonitor.tick_rates`); the join's worker does the
    rest, retrain triggers included, so none is raised twice."""

    async def publish(emits: list[Emit]) -> None:
        for e in emits:
            value = codec.encode(RECORD[e.topic], e.value)
            hdrs = record_headers(RECORD[e.topic], e.value.get("created_at_ms"), None)
            send(topic(e.topic), e.model.encode(), value, hdrs)
            export(e)
            if e.topic == "alerts":
                log_alert(e.value)
            if on_emit is not None:
                on_emit(e)

    async def observe(steps: list[Step], now: int) -> None:
        monitors.sync_versions(now)
        emits: list[Emit] = []
        n = 0
        # the batch's predictions first, per model in one call (they all arrived at
        # ``now``, before any outcome of theirs), then outcomes and dead letters in order
        predictions: dict[str, list[tuple[dict[str, Any], int | None]]] = {}
        for step in steps:
            p = step.prediction
            if p is not None:
                # a prediction refused on arrival (build_outcome's key_mismatch or
                # model_mismatch, a safety net now that entries are keyed by model and
                # event_id) is not held, so it never joins or expires: not a unit of the
                # expiry rate
                kinds = step.kinds
                held = not kinds or ("model_mismatch" not in kinds and "key_mismatch" not in kinds)
                mine = predictions.get(p["model"])
                if mine is None:
                    mine = predictions[p["model"]] = []
                mine.append((p, now if held else None))
        for model, items in predictions.items():
            monitors.get(model).observe_predictions(items)
            n += len(items)
        for step in steps:
            for out in step.outputs:
                v = out.record
                if v is None:
                    continue
                n += 1
                if out.topic == "outcomes":
                    emits += monitors.get(v["model"]).observe_outcome(v, now, step.settled)
                elif out.topic == "deadletter":
                    monitors.observe_dead(v, step.settled)
        for mon in monitors.by_model.values():
            mon.join_seen(now)
        m.EVENTS_IN.labels("monitor").inc(n)
        if emits:
            await publish(emits)

    @app.timer(tick_every_s, name="driftline-monitor-tick")  # type: ignore[untyped-decorator]
    async def tick() -> None:
        now = now_ms()
        monitors.sync_versions(now)
        for mon in list(monitors.by_model.values()):
            await publish(mon.tick_rates(now) if rates_only else mon.tick(now))
        INCIDENTS.prune()

    return observe
