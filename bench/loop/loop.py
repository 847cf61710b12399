"""Driftline's closed loop in one process, driven by the real core objects (no Kafka).

Per event ``i`` (the simulated clock reads ``i`` ms: the demo replays 1,000 events/s):

1. the served champion scores the event through ``ServedModel.predict_one`` (the scorer's
   path) and the Prediction goes to ``ModelMonitor.observe_prediction`` (feature drift);
2. the label of event ``i - delay`` arrives: ``join.build_outcome`` makes the Outcome,
   which goes to ``ModelMonitor.observe_outcome`` and to the outcome store;
3. every ``tick_every`` outcomes the monitor ticks (the worker's timer);
4. a RetrainTrigger is answered by the function the trainer consumer calls,
   ``driftline.core.lifecycle.answer.answer_trigger`` (training set of its window, train,
   gate against the champion, decide, stage records), on the outcomes of its window
   (event time from ``window_start_ms``, newest ``last_n``); the records reach the
   registry and the monitor ``serve_lag`` events later, and a new champion serves from
   then on;
5. with an ``[online]`` section or live promotion on (the trainer's live loop,
   :class:`driftline.core.lifecycle.live.LiveModel`): every outcome also goes to the
   LiveModel, every challenger scores each event in shadow (its prediction travels in the
   Outcome), and what the LiveModel publishes (checkpoints, promotions, rollbacks)
   reaches the registry ``serve_lag`` events later, like an answer. A trigger's answer is
   derived again on the registry as it stands when it arrives (``restage_answer``);
6. on arrival a would-be champion trained only on data from before the latest
   concept-drift alarm is held back (``hold_stale``, as the trainer does): the alarm is the
   LiveModel's where there is one, else the detector replayed over the champion's
   outcomes of the window and since.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.core.join.rules import build_outcome
from driftline.core.lifecycle.answer import (
    Answer,
    answer_trigger,
    hold_stale,
    latest_alarm_ms,
    restage_answer,
)
from driftline.core.lifecycle.live import LiveModel
from driftline.core.lifecycle.registry import Registry
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.model.estimators import ServedModel, load_version
from driftline.core.watch.concept_drift import DriftEvent
from driftline.core.watch.monitor import Emit, ModelMonitor
from driftline.demo.run import MODEL, Options, _segment, models_toml
from driftline.demo.synthetic import Row

KEY = b"bench-loop"


def demo_config(kind: str, **retrain: Any) -> ModelConfig:
    """The model config ``driftline demo`` writes for ``kind`` (same factory, parameters,
    gate and retrain policy), with ``retrain`` settings overridden if given."""
    opts = Options()
    config = ModelsConfig.from_toml(models_toml(kind, opts.min_rows, opts.max_rows))[MODEL]
    if not retrain:
        return config
    return dataclasses.replace(config, retrain={**config.retrain, **retrain})


def as_outcome_row(r: Row) -> dict[str, Any]:
    """An Outcome-like dict of a stream row (what the bootstrap and the baselines train on)."""
    return {
        "features": r.features,
        "label": r.label,
        "event_time_ms": r.index,
        "segment": _segment(r),
        "event_id": f"e{r.index:07d}",
    }


class _Monitor(ModelMonitor):
    """The real monitor; records every concept-drift event the detector raises (alerts
    are rate-limited, so they would undercount the detector's alarms)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.alarms: list[DriftEvent] = []

    def _drift(self, events: list[DriftEvent], now_ms: int) -> list[Emit]:
        self.alarms += [e for e in events if e.kind == "concept_drift"]
        return super()._drift(events, now_ms)


@dataclass
class LoopResult:
    """What one closed-loop run did."""

    correct: list[bool]
    """Per replayed event: did the served model predict its label."""
    triggers: list[dict[str, Any]] = field(default_factory=list)
    trigger_at: list[int] = field(default_factory=list)
    """Event index at which each trigger fired."""
    stages: list[tuple[int, str, str]] = field(default_factory=list)
    """(event index served from, version, stage) of each trained candidate."""
    alarms: list[int] = field(default_factory=list)
    """Event time (index) of the outcome at which each concept-drift alarm fired."""
    feature_alarms: int = 0
    train_rows: list[int] = field(default_factory=list)
    live: list[tuple[int, str, str]] = field(default_factory=list)
    """(event index, action, version) of each live decision (promote, rollback,
    end_probation) and each online learner's entry (enter)."""
    incidents: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(event index, record) of every incident record the monitor published (firing,
    escalated, resolved)."""
    old_rule: list[bool] = field(default_factory=list)
    """Per answered trigger: would the gate's rule before its confidence bound (point
    estimate, any number of held-out rows) have passed the candidate."""
    served: list[tuple[int, str]] = field(default_factory=list)
    """(event index, version) each time the served version changes (the first entry:
    the first event's)."""

    def incident_counts(self) -> dict[str, int]:
        """Incidents opened and resolved, and those still firing at the end."""
        opened = {r["incident_id"] for _, r in self.incidents if r["state"] == "firing"}
        resolved = {r["incident_id"] for _, r in self.incidents if r["state"] == "resolved"}
        return {"opened": len(opened), "resolved": len(resolved),
                "firing_at_end": len(opened - resolved)}  # fmt: skip

    @property
    def retrains(self) -> int:
        return len(self.triggers)

    @property
    def promotions(self) -> int:
        return sum(1 for _, _, s in self.stages if s == "champion")

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / max(1, len(self.correct))


class Loop:
    """One model's closed loop over a stream (see the module docstring)."""

    def __init__(
        self,
        config: ModelConfig,
        warm: list[Row],
        *,
        delay: int,
        tick_every: int = 1_000,
        serve_lag: int = 0,
        live: bool = True,
        step_every: int = 50,
    ) -> None:
        self.config = config
        self.models = ModelsConfig({config.name: config})
        self.delay = delay
        self.tick_every = tick_every
        self.serve_lag = serve_lag
        self.registry = Registry()
        self.monitor = _Monitor(config)
        now = warm[-1].index if warm else 0
        _, records = bootstrap(
            [as_outcome_row(r) for r in warm], config, key=KEY, by="bench",
            reason=f"first {len(warm)} events", now_ms=now, code="bench", host="bench",
        )  # fmt: skip
        self.step_every = step_every
        self.live: LiveModel | None = None
        if live and (config.online is not None or config.live.enabled):
            self.live = LiveModel(config, key=KEY, host="bench", code="bench")
        self.shadow: dict[str, ServedModel] = {}
        self.served: ServedModel = self._publish(records, now) or self._champion_model()
        self.frozen = self.served
        self.outcomes: list[dict[str, Any]] = []
        self.times: list[int] = []  # event times of self.outcomes (arrival order = time order)
        self.due: deque[tuple[int, list[dict[str, Any]] | _Pending]] = deque()

    def _champion_model(self) -> ServedModel:
        champion = self.registry.champion(self.config.name)
        assert champion is not None
        return load_version(champion, KEY)

    def _publish(self, records: list[dict[str, Any]], now: int) -> ServedModel | None:
        """Apply records to the registry and the monitor; the new champion, if any."""
        new = None
        for rec in records:
            self.registry.apply(rec)
            if rec["stage"] != "checkpoint":
                self.monitor.on_version(rec, now)
            if rec["stage"] == "champion":
                new = rec
        name = self.config.name
        if self.live is not None:
            self.live.on_registry(self.registry, now)
            shadow: dict[str, ServedModel] = {}
            for r in self.registry.challengers(name):
                old = self.shadow.get(r["version"])
                same = old is not None and old.sha256 == r["artifact"]["sha256"]
                shadow[r["version"]] = old if old is not None and same else load_version(r, KEY)
            self.shadow = shadow
            champion = self.registry.champion(name)
            if new is None and champion is not None and is_online_checkpoint(records, champion):
                new = self.registry.get(name, champion["version"])  # its newest state serves
        return None if new is None else load_version(new, KEY)

    def run(self, rows: list[Row]) -> LoopResult:
        """Replay ``rows`` (the events after the warm-up) through the loop."""
        res = LoopResult(correct=[])
        pending: deque[dict[str, Any]] = deque()
        name, since_tick = self.config.name, 0
        for r in rows:
            i = r.index
            while self.due and self.due[0][0] <= i:
                _, what = self.due.popleft()
                if isinstance(what, _Pending):  # a trigger's answer, restaged on arrival
                    what = self._arrive(what, i, res)
                new = self._publish(what, i)
                if new is not None:
                    self.served = new
            value, scores = self.served.predict_one(r.features)
            res.correct.append(value == r.label)
            shadow = []
            for version, model in self.shadow.items():
                if version != self.served.version:
                    v, s = model.predict_one(r.features)
                    shadow.append({"version": version, "prediction": v, "scores": s})
            prediction = {
                "event_id": f"e{i:07d}", "model": name, "version": self.served.version,
                "event_time_ms": i, "predicted_at_ms": i, "prediction": value,
                "scores": scores, "features": r.features, "segment": _segment(r),
                "label": r.label, "challengers": shadow,
            }  # fmt: skip
            self.monitor.observe_prediction(prediction)
            if not res.served or res.served[-1][1] != self.served.version:
                res.served.append((i, self.served.version))
            pending.append(prediction)
            emits: list[Emit] = []
            while pending and pending[0]["event_time_ms"] <= i - self.delay:
                p = pending.popleft()
                label = {"event_id": p["event_id"], "model": name, "label": p["label"],
                         "label_time_ms": i}  # fmt: skip
                outcome = build_outcome(p, label)
                self.outcomes.append(outcome)
                self.times.append(p["event_time_ms"])
                emits += self.monitor.observe_outcome(outcome, i)
                if self.live is not None:
                    n = len(self.outcomes)
                    self.live.on_outcome(outcome, ("outcomes", 0, n - 1))
                    if n % self.step_every == 0:
                        self._live_step(i, res)
                since_tick += 1
                if since_tick >= self.tick_every:
                    since_tick = 0
                    emits += self.monitor.tick(i)
            for e in emits:
                if e.topic == "alerts" and e.value["kind"] in ("feature_drift", "prediction_drift"):
                    res.feature_alarms += 1
                if e.topic == "alerts" and e.value.get("state") is not None:
                    res.incidents.append((i, e.value))
                if e.topic == "retrain":
                    self._answer(e.value, i, res)
        res.alarms = [a.detected_at_ms for a in self.monitor.alarms]
        return res

    def _answer(self, trigger: Mapping[str, Any], now: int, res: LoopResult) -> None:
        """What the trainer does for one trigger: the outcomes of its window, then
        ``answer.answer_trigger`` (the trainer consumer's own decision)."""
        start, end, last_n = trigger["window_start_ms"], trigger["window_end_ms"], trigger["last_n"]
        lo = 0 if start is None else bisect.bisect_left(self.times, start)
        hi = len(self.times) if end is None else bisect.bisect_left(self.times, end)
        if last_n is not None:
            lo = max(lo, hi - last_n)
        champion = self.registry.champion(self.config.name)
        answer = answer_trigger(
            trigger, self.outcomes[lo:hi], self.registry, self.models, key=KEY,
            clock_ms=lambda: now, code="bench", host="bench", probation=self._probation(),
        )  # fmt: skip
        at = now + self.serve_lag
        then = None if champion is None else champion["version"]
        self.due.append((at, _Pending(answer, then, self.outcomes[lo:hi], len(res.stages))))
        res.triggers.append(dict(trigger))
        res.trigger_at.append(now)
        res.stages.append((at, answer.version or "-", answer.stage))
        res.train_rows.append(0 if answer.run is None else answer.run.train_rows)
        res.old_rule.append(answer.verdict is not None and _old_rule(answer.verdict, self.config))

    def _arrive(self, p: _Pending, now: int, res: LoopResult) -> list[dict[str, Any]]:
        """What the trainer publishes for an answer once trained: restaged on the registry
        as it stands (with a live loop), then held back if stale (``hold_stale``, the
        latest concept-drift alarm from the live loop's detector, else the same detector
        over the champion's outcomes of the window and since, as the trainer does)."""
        answer = p.answer
        if self.live is not None:
            answer = restage_answer(answer, self.registry, champion_then=p.champion_then,
                                    now_ms=now, probation=self._probation())  # fmt: skip
        if answer.stage == "champion" and answer.trained_until_ms is not None:
            live = self._probation()
            cut = bisect.bisect_right(self.times, answer.trained_until_ms)
            after = [] if live else self.outcomes[cut:]
            if self.live is not None:
                alarm = self.live.latest_alarm_ms
            else:
                alarm = latest_alarm_ms([*p.window, *after], self.config.name, p.champion_then,
                                        self.config.task)  # fmt: skip
            answer = hold_stale(answer, self.registry, alarm_ms=alarm, live=live,
                                post_alarm_rows=after, key=KEY, now_ms=now,
                                probation=live)  # fmt: skip
        at, version, _ = res.stages[p.index]
        res.stages[p.index] = (at, version, answer.stage)
        return answer.records

    def _probation(self) -> bool:
        return self.live is not None and self.config.live.enabled

    def _live_step(self, now: int, res: LoopResult) -> None:
        """What the trainer's live loop publishes now; it serves ``serve_lag`` later."""
        assert self.live is not None
        out = self.live.step(self.registry, now)
        if not out.records:
            return
        if out.decision is not None:
            res.live.append((now, out.decision.action, out.decision.version))
        elif any(r["stage"] == "challenger" for r in out.records):
            res.live.append((now, "enter", out.records[-1]["version"]))
        if self.serve_lag == 0:
            new = self._publish(out.records, now)
            if new is not None:
                self.served = new
        else:
            self.due.append((now + self.serve_lag, out.records))


@dataclass
class _Pending:
    """A trigger's answer on its way to the registry."""

    answer: Answer
    champion_then: str | None
    window: list[dict[str, Any]]
    """The outcomes it trained on (the trainer's window read)."""
    index: int
    """Its entry in ``LoopResult.stages``."""


def is_online_checkpoint(records: list[dict[str, Any]], champion: Mapping[str, Any]) -> bool:
    """Whether ``records`` hold a checkpoint of the serving ``champion``."""
    return any(r["stage"] == "checkpoint" and r["version"] == champion["version"] for r in records)


def _old_rule(verdict: Mapping[str, Any], config: ModelConfig) -> bool:
    """Whether the gate before its confidence bound would have passed this verdict: the
    same checks but the held-out minimum, and the point estimate of the gain."""
    checks = {c: ok for c, ok in verdict["checks"].items() if c not in ("holdout", "improvement")}
    gain = verdict["candidate_metrics"].get("gain", 0.0)
    return all(checks.values()) and gain > config.gate.min_improvement
