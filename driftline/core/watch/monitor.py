"""Everything Driftline watches about one model, put together; pure and clock-injected.

A :class:`ModelMonitor` takes the model's predictions (feature and prediction drift need
no labels), outcomes (rolling performance, concept drift), expired predictions and the
scorer's batches (expired-label and skew rates, over aligned windows:
:mod:`driftline.core.watch.rates`) and registry records (which version is champion), and
on each :meth:`tick` emits MetricSnapshot, Alert and RetrainTrigger dicts. The monitor agent
(``driftline.streams.monitors``) only decodes, routes and publishes.

It follows the champion the registry names, not only the models file: a champion of
another task (a model re-bootstrapped as a regressor) rebuilds the rules, retrain policy
and trackers for that task, and each version's outcomes are tracked with its own task. A
reloaded models file is applied by :meth:`ModelMonitor.reconfigure`, keeping the history
that still applies. Features named in ``[models.NAME.drift] exclude`` are not tested.

A **retired** model (its champion and challengers moved to the stage ``retired``, no
version left in a slot: ``driftline models retire``) is not monitored: nothing serves
it, its feature events are dead-lettered as ``model_retired`` and its triggers would be
refused, so it emits no snapshot, alert or trigger and ignores what still arrives (labels
of earlier predictions) until a version of it holds a slot again (``models unretire``);
its rates then start afresh. ``model_retired`` dead letters never count in the skew rate:
they are an operator's decision, not data the scorer could not take.

>>> from driftline.core.model.config import ModelConfig
>>> mon = ModelMonitor(ModelConfig("churn", retrain={"cooldown_ms": 0}))
>>> mon.observe_outcome({"model": "churn", "version": "v1", "event_time_ms": 1,
...     "prediction": True, "label": True, "scores": {"True": 0.9, "False": 0.1},
...     "segment": {}}, now_ms=1)
[]
>>> sorted({e.topic for e in mon.tick(now_ms=2)})
['metrics']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.core.model.config import ModelConfig
from driftline.core.watch.alerts import AlertRules
from driftline.core.watch.concept_drift import ConceptDriftDetector, DriftEvent
from driftline.core.watch.feature_drift import FeatureDriftMonitor, Row, drift_metrics
from driftline.core.watch.performance import PerformanceTracker
from driftline.core.watch.profile import ReferenceProfile, label_spec
from driftline.core.watch.rates import ExpiryRate, SkewRate, Window, rate_snapshot
from driftline.core.watch.retrain_policy import RetrainPolicy
from driftline.core.watch.window_stats import TASK_METRICS

PRIMARY_METRICS = {"classification": ("accuracy", "f1"), "regression": ("mae", "rmse")}
"""What degradation alerts and triggers watch unless the models file says otherwise: log
loss, for one, explodes on a confident tree's few wrong answers and alarms on noise."""

PRIME_MAX = 1_000
"""At most this many held-out outcomes start a new champion's error history."""

KEEP_VERSIONS = 3
"""Trackers kept for this many versions (the champion and the last ones still scored)."""


@dataclass(frozen=True, slots=True)
class Emit:
    """A record to publish: topic suffix (metrics, alerts, retrain) and value dict."""

    topic: str
    model: str
    value: dict[str, Any]


class ModelMonitor:
    """Rolling performance, drift, alerts and retrain policy of one model."""

    def __init__(self, config: ModelConfig, *, window_size: int = 1_000) -> None:
        self.config = config
        self.window_size = window_size
        self.task = config.task
        """The champion's task (the models file's until a champion is known)."""
        self.classes: tuple[str, ...] = ()
        """The champion's classes, as its profile names them (empty: unknown)."""
        self.version_tasks: dict[str, str] = {}
        self._for_task()
        self.champion: Mapping[str, Any] | None = None
        self.detector: ConceptDriftDetector | None = None
        self.features: FeatureDriftMonitor | None = None
        self.pending_outcomes = 0
        self.due: int | None = None
        """Outcome count at which the policy can fire without waiting for a tick."""
        self.expiry = ExpiryRate(config.join_ttl_ms)
        self.skew = SkewRate()
        self._slots: set[str] = set()
        """Versions in the champion or a challenger slot."""
        self._retired: set[str] = set()
        """Versions in the stage ``retired``."""

    @property
    def champion_version(self) -> str | None:
        return None if self.champion is None else str(self.champion["version"])

    @property
    def retired(self) -> bool:
        """Whether the model is retired: a version of it is, and none holds a slot (as
        :meth:`driftline.core.lifecycle.registry.Registry.retired` says)."""
        return bool(self._retired) and not self._slots

    def _for_task(self) -> None:
        """Rules, retrain policy and trackers for ``self.task`` (a fresh start)."""
        watch = list(PRIMARY_METRICS[self.task])
        self.rules = AlertRules(watch=watch)
        self.policy = self._policy()
        self.trackers: dict[str, PerformanceTracker] = {}

    def _policy(self) -> RetrainPolicy:
        retrain = dict(self.config.retrain)
        if not set(retrain.get("watch") or ()) <= set(TASK_METRICS[self.task]):
            retrain.pop("watch")  # metrics of the file's task, not of the champion's
        return RetrainPolicy(
            self.config.name, **{"watch": list(PRIMARY_METRICS[self.task]), **retrain}
        )

    def _feature_monitor(self, record: Mapping[str, Any]) -> FeatureDriftMonitor:
        profile = ReferenceProfile.from_json(record["reference_profile"])
        return FeatureDriftMonitor(
            self.config.name, record["version"], profile, exclude=self.config.drift.exclude
        )

    def reconfigure(self, config: ModelConfig) -> None:
        """A reloaded models file: the new settings, keeping what still applies (the
        retrain policy's state, the trackers unless ``positive_class`` changed, the
        feature-drift window unless ``drift`` changed, the rates' buckets)."""
        old, self.config = self.config, config
        if self.champion is None and config.task != self.task:
            self.task = config.task
            self._for_task()
            return
        if config.retrain != old.retrain:
            state = self.policy.state
            self.policy = self._policy()
            self.policy.state = state
        if config.drift != old.drift and self.champion is not None:
            self.features = self._feature_monitor(self.champion)
        if config.positive_class != old.positive_class:
            self.trackers = {}
        if config.join_ttl_ms != old.join_ttl_ms:  # buckets not yet judged wait the new TTL
            self.expiry.ttl_ms = config.join_ttl_ms

    # -- inputs -----------------------------------------------------------------------

    def on_version(self, record: Mapping[str, Any], now_ms: int) -> None:
        """A ModelVersion record of this model (in registry order)."""
        version, stage = str(record["version"]), record["stage"]
        was_retired = self.retired
        self._slots.discard(version)
        self._retired.discard(version)
        if stage in ("champion", "challenger"):
            self._slots.add(version)
        elif stage == "retired":
            self._retired.add(version)
        if was_retired != self.retired:  # retired or back: the rates start afresh
            self.expiry = ExpiryRate(self.config.join_ttl_ms)
            self.skew = SkewRate()
        task = str(record.get("task") or self.task)
        self.version_tasks[str(record["version"])] = task
        if len(self.version_tasks) > 100:
            del self.version_tasks[next(iter(self.version_tasks))]
        champion = record["stage"] == "champion" and record["version"] != self.champion_version
        if champion and task != self.task:  # a champion of another task: start over
            self.task = task
            self._for_task()
        lineage = record.get("lineage") or {}
        self.policy.on_version(
            record["version"], record["stage"], record["created_at_ms"], now_ms,
            trigger_id=lineage.get("trigger_id"),
        )  # fmt: skip
        if champion:
            self.champion = record
            self.classes = label_spec(record).classes
            self.detector = ConceptDriftDetector(self.config.name, record["version"], self.task)
            accuracy = (record.get("metrics") or {}).get("accuracy")
            held_out = int((record.get("lineage") or {}).get("holdout_rows") or 0)
            if accuracy is not None and 0 <= accuracy <= 1 and held_out:
                self.detector.prime(1 - accuracy, min(held_out, PRIME_MAX), now_ms)
            self.features = self._feature_monitor(record)
        self.due = self.policy.due_outcomes(now_ms)

    def observe_prediction(
        self, prediction: Mapping[str, Any], arrived_ms: int | None = None
    ) -> None:
        """A Prediction: feeds feature and prediction drift of the champion, and, with
        ``arrived_ms`` (when the join first held it), the expired-label rate."""
        if self.retired:
            return
        if arrived_ms is not None:
            self.expiry.add_prediction(arrived_ms, prediction["version"])
        if self.features is not None and prediction["version"] == self.champion_version:
            self.features.update(
                prediction["features"], prediction["prediction"], prediction["scores"]
            )

    def observe_predictions(
        self, predictions: Sequence[tuple[Mapping[str, Any], int | None]]
    ) -> None:
        """:meth:`observe_prediction` for each (prediction, arrived_ms) of one batch, in
        order; the champion's feature statistics are counted once for the batch
        (:meth:`FeatureDriftMonitor.update_many`), and not at all when nothing watches
        them (no champion profile yet, or another version's predictions)."""
        if self.retired:
            return
        rows: list[Row] = []
        champion = self.champion_version if self.features is not None else None
        expiry = self.expiry
        for prediction, arrived_ms in predictions:
            version = prediction["version"]
            if arrived_ms is not None:
                expiry.add_prediction(arrived_ms, version)
            if version == champion:
                rows.append((prediction["features"], prediction["prediction"],
                             prediction["scores"]))  # fmt: skip
        if rows and self.features is not None:
            self.features.update_many(rows)

    def observe_dead_letter(
        self, dead: Mapping[str, Any], settled: tuple[str, int] | None = None
    ) -> None:
        """A DeadLetter of this model from the join: an expired prediction counts in the
        expired-label rate, in the bucket of its arrival (``settled``: the join step's
        (version, arrival ms)). The scorer's dead letters reach the skew rate with the
        rest of their batch (:meth:`observe_scorer_batch`)."""
        if self.retired:
            return
        expired = dead["stage"] == "join" and dead["reason"] == "expired_prediction"
        if settled is not None and expired:
            self.expiry.add_expired(settled[1], settled[0])

    def observe_scorer_batch(
        self, at_ms: int, scored: Mapping[str, int], refused: Mapping[str, int]
    ) -> None:
        """A committed scorer batch of this model (its clock ``at_ms``): events scored
        per version and dead-lettered per reason, for the skew rate (``model_retired``
        left out: see the module docstring)."""
        if self.retired:
            return
        refused = {why: n for why, n in refused.items() if why != "model_retired"}
        self.skew.add_batch(at_ms, scored, refused)

    def join_seen(self, now_ms: int) -> None:
        """The join committed a batch at ``now_ms``: no prediction can reach it earlier."""
        self.expiry.seen(now_ms)

    def observe_outcome(
        self, outcome: Mapping[str, Any], now_ms: int, settled: tuple[str, int] | None = None
    ) -> list[Emit]:
        """An Outcome: rolling metrics of its version, concept drift of the champion; with
        ``settled`` (the join step's (version, arrival ms)), the expired-label rate."""
        if self.retired:
            return []
        version = outcome["version"]
        if settled is not None:
            self.expiry.add_joined(settled[1], settled[0])
        tracker = self.trackers.get(version)
        if tracker is None:
            tracker = self._tracker(version)
        tracker.update(outcome)
        self.pending_outcomes += 1
        out = self._when_due(now_ms)
        if self.detector is None or version != self.champion_version:
            return out
        event = self.detector.update_outcome(outcome)
        if event is None:
            return out
        # the policy places the change point by its outcome count: bring it up to date
        self.policy.observe_outcomes(self.pending_outcomes, now_ms)
        self.pending_outcomes = 0
        return out + self._drift([event], now_ms)

    def _when_due(self, now_ms: int) -> list[Emit]:
        """Fire a count-driven retrain reason on the outcome that makes it due."""
        if self.due is None or self.policy.outcomes + self.pending_outcomes < self.due:
            return []
        self.policy.observe_outcomes(self.pending_outcomes, now_ms)
        self.pending_outcomes = 0
        out = self._trigger(self.policy.tick(now_ms))
        due = self.policy.due_outcomes(now_ms)
        self.due = None if due is not None and due <= self.policy.outcomes else due
        return out

    # -- outputs ----------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Emit]:
        """Snapshots, feature drift, rate alerts and the clock-driven retrain reasons
        (nothing for a retired model)."""
        if self.retired:
            return []
        out: list[Emit] = []
        self.policy.observe_outcomes(self.pending_outcomes, now_ms)
        self.pending_outcomes = 0
        drift_values: dict[str, float] = {}
        if self.features is not None and self.features.count:
            results = self.features.evaluate()
            drift_values = drift_metrics(results)
            out += self._drift(self.features.events(results, now_ms), now_ms)
        baseline, seg_baselines = self._baselines()
        for version, tracker in self.trackers.items():
            champion = version == self.champion_version
            for snap in tracker.snapshot(
                now_ms,
                baseline if champion else None,
                seg_baselines if champion else None,
            ):
                if champion and snap["segment"] == "all" and snap["window"].startswith("count"):
                    snap["metrics"].update(drift_values)
                out.append(Emit("metrics", self.config.name, snap))
                if champion:
                    out += self._alerts(self.rules.check_snapshot(snap, now_ms))
                    if snap["segment"] == "all":
                        out += self._trigger(self.policy.observe_snapshot(snap, now_ms))
        out += self._rates(now_ms)
        out += self._trigger(self.policy.tick(now_ms))
        self.due = self.policy.due_outcomes(now_ms)
        return out

    def tick_rates(self, now_ms: int) -> list[Emit]:
        """Only the rate snapshots and alerts of :meth:`tick` (skew and expired-label
        rates): what a worker that scores but does not join can judge (its scorer's
        batches feed the skew rate); no snapshot of performance or drift, no trigger."""
        return [] if self.retired else self._rates(now_ms)

    def request(self, now_ms: int, requested_by: str) -> list[Emit]:
        """A retrain asked for by a person (``driftline retrain``); none for a retired
        model."""
        if self.retired:
            return []
        out = self._trigger(self.policy.request(now_ms, requested_by))
        self.due = self.policy.due_outcomes(now_ms)
        return out

    def _rates(self, now_ms: int) -> list[Emit]:
        """Skew and expired-label rates of the windows that settled since the last tick:
        a snapshot each, and an alert when above the threshold."""
        out: list[Emit] = []
        name = self.config.name
        skew = self.skew.judge(now_ms)
        if skew is not None:
            out += self._rate(skew, self.rules.check_skew(name, skew, now_ms), now_ms)
        expiry = self.expiry.judge(now_ms)
        if expiry is not None:
            out += self._rate(expiry, self.rules.check_expired(name, expiry, now_ms), now_ms)
        return out

    def _rate(self, window: Window, alerts: list[dict[str, Any]], now_ms: int) -> list[Emit]:
        snap = Emit("metrics", self.config.name, rate_snapshot(self.config.name, window, now_ms))
        return [snap, *self._alerts(alerts)]

    def _drift(self, events: list[DriftEvent], now_ms: int) -> list[Emit]:
        out = self._alerts(self.rules.check_drift(events, now_ms))
        for e in events:
            out += self._trigger(self.policy.observe_drift(e, now_ms))
        self.due = self.policy.due_outcomes(now_ms)
        return out

    def _alerts(self, alerts: list[dict[str, Any]]) -> list[Emit]:
        return [Emit("alerts", self.config.name, a) for a in alerts]

    def _trigger(self, trigger: dict[str, Any] | None) -> list[Emit]:
        return [] if trigger is None else [Emit("retrain", self.config.name, trigger)]

    def _tracker(self, version: str) -> PerformanceTracker:
        if len(self.trackers) >= KEEP_VERSIONS:
            oldest = next(v for v in self.trackers if v != self.champion_version)
            del self.trackers[oldest]
        task = self.version_tasks.get(version, self.task)
        positive = self.config.positive_class if task == "classification" else None
        if positive is not None and self.classes and positive not in self.classes:
            positive = None  # the champion has no such class: macro averages
        tracker = PerformanceTracker(
            self.config.name, version, task, positive=positive, window_size=self.window_size,
        )  # fmt: skip
        self.trackers[version] = tracker
        return tracker

    def _baselines(self) -> tuple[dict[str, float], dict[str, Mapping[str, float]]]:
        if self.champion is None:
            return {}, {}
        return dict(self.champion["metrics"]), dict(self.champion.get("segment_metrics") or {})
