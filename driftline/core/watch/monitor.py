"""Everything Driftline watches about one model, put together; pure and clock-injected.

A :class:`ModelMonitor` takes the model's predictions (feature and prediction drift need
no labels), outcomes (rolling performance, concept drift), expired predictions and the
scorer's batches (expired-label and skew rates, over aligned windows:
:mod:`driftline.core.watch.rates`) and registry records (which version is champion), and
on each :meth:`tick` emits MetricSnapshot, Alert and RetrainTrigger dicts. The monitor agent
(``driftline.streams.monitors``) only decodes, routes and publishes.

Each outcome also carries its challengers' predictions of the same event (Outcome v2's
``challengers``): every challenger version gets a tracker of its own, fed those predictions
against the same label, so its snapshots have the champion's windows, segments and metric
names, with its own validation metrics as baseline. Only the champion's snapshots and
outcomes reach the alert rules, the concept-drift detector and the retrain policy: a
challenger's metrics are shown and published, never judged. An outcome without challengers
costs nothing more.

Alerts are incidents (:mod:`driftline.core.watch.incidents`): every judgement of a tick
(performance on the count window of each segment of the champion, drift, the rates)
goes to the model's :class:`~driftline.core.watch.incidents.Incidents`, which publishes
an incident when it opens, escalates or resolves, and folds the rest into it.

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

from driftline.core.model.calibration import Calibration
from driftline.core.model.config import ModelConfig
from driftline.core.watch.alerts import AlertRules
from driftline.core.watch.concept_drift import ConceptDriftDetector, DriftEvent
from driftline.core.watch.estimate import PerformanceEstimator
from driftline.core.watch.feature_drift import FeatureDriftMonitor, Row, drift_metrics
from driftline.core.watch.incidents import PRIMARY, Check, Incidents
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
"""Trackers kept for this many versions (the champion and the last ones still scored), and
besides them for every version in a challenger slot."""


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
        self.last_drifting: list[str] = []
        """Features (and __prediction__, __score__) drifting at the last evaluation."""
        self.incidents = Incidents(config.name)
        self.quiet = 0
        """Outcomes of the champions since the last concept-drift alarm."""
        self._slots: set[str] = set()
        """Versions in the champion or a challenger slot."""
        self._retired: set[str] = set()
        """Versions in the stage ``retired``."""
        self._shadow: dict[str, tuple[dict[str, float], dict[str, Any]]] = {}
        """Challengers' validation metrics, overall and per segment: their baselines."""
        self.calibrations: dict[str, Calibration | None] = {}
        """Each version's calibration (ModelVersion v3), for its estimator."""
        self.importance: dict[str, Any] = {}
        """The champion's permutation importance per feature (lineage, v3)."""
        self.estimators: dict[str, PerformanceEstimator] = {}
        """CBPE per classifier version, fed by predictions (no labels needed)."""

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
        self.rules = AlertRules(watch=watch, cooldown_ms=0)  # incidents fold repeats
        self.policy = self._policy()
        self.trackers: dict[str, PerformanceTracker] = {}
        self.estimators = {}

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
            self.estimators = {}
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
        self._shadow.pop(version, None)
        if stage == "challenger":
            metrics = dict(record.get("metrics") or {})
            self._shadow[version] = (metrics, dict(record.get("segment_metrics") or {}))
        elif stage == "retired":
            self._retired.add(version)
        if was_retired != self.retired:  # retired or back: the rates start afresh
            self.expiry = ExpiryRate(self.config.join_ttl_ms)
            self.skew = SkewRate()
        task = str(record.get("task") or self.task)
        self.version_tasks[str(record["version"])] = task
        if len(self.version_tasks) > 100:
            del self.version_tasks[next(iter(self.version_tasks))]
        if "calibration" in record or version not in self.calibrations:
            self.calibrations[version] = Calibration.from_record(record.get("calibration"))
            if len(self.calibrations) > 100:
                del self.calibrations[next(iter(self.calibrations))]
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
            self.importance = dict(lineage.get("importance") or {})
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
        version = prediction["version"]
        if self.version_tasks.get(version, self.task) == "classification":
            estimator = self.estimators.get(version) or self._estimator(version)
            estimator.update(prediction)
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
        tasks, task, estimators = self.version_tasks, self.task, self.estimators
        for prediction, arrived_ms in predictions:
            version = prediction["version"]
            if arrived_ms is not None:
                expiry.add_prediction(arrived_ms, version)
            if tasks.get(version, task) == "classification":
                estimator = estimators.get(version) or self._estimator(version)
                estimator.update(prediction)
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
        """An Outcome: rolling metrics of its version and of each challenger it carries,
        concept drift of the champion; with ``settled`` (the join step's (version,
        arrival ms)), the expired-label rate."""
        if self.retired:
            return []
        version = outcome["version"]
        if settled is not None:
            self.expiry.add_joined(settled[1], settled[0])
        tracker = self.trackers.get(version)
        if tracker is None:
            tracker = self._tracker(version)
        tracker.update(outcome)
        challengers = outcome.get("challengers")
        if challengers:  # nothing to do, not even a loop, for an outcome without any
            self._observe_challengers(outcome, challengers)
        estimator = self.estimators.get(version)
        if estimator is not None:
            estimator.observe_outcome(outcome)
        self.pending_outcomes += 1
        out = self._when_due(now_ms)
        if self.detector is None or version != self.champion_version:
            return out
        event = self.detector.update_outcome(outcome)
        if event is None:
            self.quiet += 1
            return out
        self.quiet = 0
        # the policy places the change point by its outcome count: bring it up to date
        self.policy.observe_outcomes(self.pending_outcomes, now_ms)
        self.pending_outcomes = 0
        return out + self._drift([event], now_ms)

    def _observe_challengers(
        self, outcome: Mapping[str, Any], challengers: list[Mapping[str, Any]]
    ) -> None:
        """Each challenger's prediction of the outcome's event, against the same label, in
        that challenger's tracker: the same windows and metrics as the champion's. Never
        an input of the champion's detector, alert rules or retrain policy."""
        for c in challengers:
            version = c["version"]
            if version == outcome["version"]:
                continue  # a version cannot shadow itself: counted once
            tracker = self.trackers.get(version)
            if tracker is None:
                tracker = self._tracker(version)
            tracker.update({
                "event_time_ms": outcome["event_time_ms"], "prediction": c["prediction"],
                "label": outcome["label"], "scores": c.get("scores"),
                "segment": outcome.get("segment"),
            })  # fmt: skip

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
        """Snapshots, every judgement of the alert rules (into the incidents), rate
        snapshots and the clock-driven retrain reasons (nothing for a retired model).

        Performance is judged on the count window of each segment of the champion (its
        last ``window_size`` outcomes): the time window holds the same outcomes and
        older ones, so it lagged every recovery by up to its period. A segment other
        than 'all' is judged only against a baseline of its own measured on at least the
        gate's ``min_segment_samples`` held-out rows: the gate does not trust fewer, and
        on a stationary stream a 77-row baseline (0.896, give or take 0.035) put a
        segment 0.05 "below" it and opened incidents that meant nothing."""
        if self.retired:
            return []
        out: list[Emit] = []
        alerts: list[dict[str, Any]] = []
        checks: list[Check] = []
        self.policy.observe_outcomes(self.pending_outcomes, now_ms)
        self.pending_outcomes = 0
        drift_values: dict[str, float] = {}
        champion_version = self.champion_version
        if self.features is not None and self.features.count and champion_version:
            results = self.features.evaluate()
            drift_values = drift_metrics(results)
            self.last_drifting = [str(r.feature) for r in results if r.drifted]
            events = self.features.events(results, now_ms)
            alerts += self.rules.check_drift(events, now_ms, self.importance)
            checks += self.rules.checks_drift(self.config.name, champion_version, results)
            for e in events:
                out += self._trigger(self.policy.observe_drift(e, now_ms))
        baseline, seg_baselines = self._baselines()
        performance: Check | None = None  # the champion's on 'all', unless degraded
        for version, tracker in self.trackers.items():
            champion = version == champion_version
            # a challenger is compared with its own validation metrics, never judged
            base, seg_base = (
                (baseline, seg_baselines) if champion else self._shadow.get(version, (None, None))
            )
            for snap in tracker.snapshot(now_ms, base, seg_base):
                counted = snap["window"].startswith("count")
                if champion and snap["segment"] == PRIMARY and counted:
                    snap["metrics"].update(drift_values)
                out.append(Emit("metrics", self.config.name, snap))
                if champion and counted and self._judged(snap["segment"], seg_baselines):
                    bad = self.rules.check_snapshot(snap, now_ms)
                    judged = self.rules.checks_snapshot(snap)
                    alerts += bad
                    checks += judged
                    if snap["segment"] == PRIMARY:
                        perf = [c for c in judged if c.kind == "performance_degradation"]
                        performance = perf[0] if perf else None
                if champion and snap["segment"] == PRIMARY:
                    out += self._trigger(self.policy.observe_snapshot(snap, now_ms))
        if self.detector is not None:
            check = self.rules.check_concept(self.config.name, self.quiet, performance)
            checks += [] if check is None else [check]
        out += self._estimates(now_ms, baseline, seg_baselines, alerts, checks)
        out += self._rates(now_ms, alerts, checks)
        out += self._incidents(now_ms, alerts, checks)
        out += self._trigger(self.policy.tick(now_ms))
        self.due = self.policy.due_outcomes(now_ms)
        return out

    def _estimates(
        self,
        now_ms: int,
        baseline: dict[str, float],
        seg_baselines: dict[str, Mapping[str, float]],
        alerts: list[dict[str, Any]],
        checks: list[Check],
    ) -> list[Emit]:
        """Each classifier version's CBPE snapshots (window ``estimate:N``) and the checks
        of its closed chunks against their labels (``estimate-check:N``); on the
        champion's, the estimated-degradation alert (added to ``alerts``, for the
        incidents) and retrain reason."""
        out: list[Emit] = []
        for version, est in self.estimators.items():
            champion = version == self.champion_version
            for snap in est.snapshot(now_ms):
                if champion:
                    base = seg_baselines.get(snap["segment"], baseline)
                    snap["baseline"] = {k: v for k, v in base.items() if k != "count"}
                out.append(Emit("metrics", self.config.name, snap))
                if champion and snap["segment"] == PRIMARY:  # segments: shown, not judged
                    bad = self.rules.check_estimate(snap, now_ms)
                    alerts += bad
                    if not bad:
                        checks += self.rules.checks_estimate(snap)
                    if snap["segment"] == "all":
                        out += self._trigger(self.policy.observe_estimate(snap, now_ms))
            out += [Emit("metrics", self.config.name, c) for c in est.checks(now_ms)]
        return out

    def summary(self) -> dict[str, Any]:
        """Per model, at a glance: the champion's latest estimated and realized accuracy
        (segment 'all'), the estimator's mean absolute error so far, and the drifting
        features, most important first (from the last feature-drift evaluation)."""
        version = self.champion_version
        out: dict[str, Any] = {"model": self.config.name, "version": version}
        est = self.estimators.get(version or "")
        if est is not None:
            snaps = est.snapshot(0)
            if snaps:
                out["estimated"] = {k: v for k, v in snaps[0]["metrics"].items()}
        tracker = self.trackers.get(version or "")
        if tracker is not None:
            snaps = [s for s in tracker.snapshot(0, segments=["all"])
                     if s["window"].startswith("count")]  # fmt: skip
            if snaps:
                out["realized"] = dict(snaps[0]["metrics"])
        drifting = [f for f in self.last_drifting if not f.startswith("__")]  # features only
        imp = self.importance
        drifting.sort(key=lambda f: -float((imp.get(f) or {}).get("mean", 0.0)))
        out["drifting"] = [
            {"feature": f, "importance": (imp.get(f) or {}).get("mean")} for f in drifting
        ]
        return out

    def tick_rates(self, now_ms: int) -> list[Emit]:
        """Only the rate snapshots and incidents of :meth:`tick` (skew and expired-label
        rates): what a worker that scores but does not join can judge (its scorer's
        batches feed the skew rate); no snapshot of performance or drift, no trigger."""
        if self.retired:
            return []
        alerts: list[dict[str, Any]] = []
        checks: list[Check] = []
        out = self._rates(now_ms, alerts, checks)
        return out + self._incidents(now_ms, alerts, checks)

    def request(self, now_ms: int, requested_by: str) -> list[Emit]:
        """A retrain asked for by a person (``driftline retrain``); none for a retired
        model."""
        if self.retired:
            return []
        out = self._trigger(self.policy.request(now_ms, requested_by))
        self.due = self.policy.due_outcomes(now_ms)
        return out

    def _rates(self, now_ms: int, alerts: list[dict[str, Any]], checks: list[Check]) -> list[Emit]:
        """Skew and expired-label rates of the windows that settled since the last tick:
        a snapshot each; their judgements go to ``alerts`` and ``checks``."""
        out: list[Emit] = []
        name = self.config.name
        for kind, rate in (("skew_rate", self.skew), ("expired_label_rate", self.expiry)):
            window = rate.judge(now_ms)
            if window is None:
                continue
            out.append(Emit("metrics", name, rate_snapshot(name, window, now_ms)))
            check = self._rate_alerts(kind, window, now_ms)
            alerts += check
            if not check:
                judged = self.rules.check_rate(kind, name, window)
                checks += [] if judged is None else [judged]
        return out

    def _rate_alerts(self, kind: str, window: Window, now_ms: int) -> list[dict[str, Any]]:
        if kind == "skew_rate":
            return self.rules.check_skew(self.config.name, window, now_ms)
        return self.rules.check_expired(self.config.name, window, now_ms)

    def _drift(self, events: list[DriftEvent], now_ms: int) -> list[Emit]:
        out = self._incidents(now_ms, self.rules.check_drift(events, now_ms, self.importance), [])
        for e in events:
            out += self._trigger(self.policy.observe_drift(e, now_ms))
        self.due = self.policy.due_outcomes(now_ms)
        return out

    def _incidents(
        self, now_ms: int, alerts: list[dict[str, Any]], checks: list[Check]
    ) -> list[Emit]:
        """Alerts and checks through the incidents: what to publish on the alerts topic."""
        records = self.incidents.observe(now_ms, alerts, checks)
        return [Emit("alerts", self.config.name, r) for r in records]

    def _trigger(self, trigger: dict[str, Any] | None) -> list[Emit]:
        return [] if trigger is None else [Emit("retrain", self.config.name, trigger)]

    def _estimator(self, version: str) -> PerformanceEstimator:
        if len(self.estimators) >= KEEP_VERSIONS:
            oldest = next(v for v in self.estimators if v != self.champion_version)
            del self.estimators[oldest]
        calibration = self.calibrations.get(version)
        positive = self.config.positive_class
        classes = calibration.classes if calibration else self.classes
        if positive is not None and classes and str(positive) not in classes:
            positive = None
        est = PerformanceEstimator(
            self.config.name, version, calibration, positive=positive,
            window_size=self.window_size,
        )  # fmt: skip
        self.estimators[version] = est
        return est

    def _tracker(self, version: str) -> PerformanceTracker:
        shadows = len(self._slots - {self.champion_version})  # challengers: kept besides
        if len(self.trackers) >= KEEP_VERSIONS + shadows:
            slots = self._slots | {self.champion_version}
            oldest = next((v for v in self.trackers if v not in slots), None)
            if oldest is not None:
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

    def _judged(self, segment: str, seg_baselines: Mapping[str, Mapping[str, float]]) -> bool:
        """Whether the rules judge ``segment`` (see :meth:`tick`)."""
        if segment == PRIMARY:
            return True
        rows = (seg_baselines.get(segment) or {}).get("count") or 0
        return rows >= self.config.gate.min_segment_samples

    def _baselines(self) -> tuple[dict[str, float], dict[str, Mapping[str, float]]]:
        """The champion's held-out metrics on 'all' (with ``count``, its held-out rows,
        when the gate says, as each segment's baseline has) and per segment."""
        if self.champion is None:
            return {}, {}
        base = dict(self.champion["metrics"])
        gate = self.champion.get("gate") or {}
        rows = (gate.get("candidate_metrics") or {}).get("rows")
        if rows and "count" not in base:
            base["count"] = float(rows)
        return base, dict(self.champion.get("segment_metrics") or {})
