"""What the trainer does with one model's outcomes as they arrive: the online challenger
learns them, the champion and its challengers are compared on them, and both turn into
registry records. Pure and clock-injected: the trainer reads the outcomes topic and
publishes (``driftline.consumers.live``); the in-process loop bench calls the same.

A :class:`LiveModel` is fed the registry's state (:meth:`LiveModel.on_registry`) and
every outcome of its model with its position on the outcomes topic
(:meth:`LiveModel.on_outcome`); :meth:`LiveModel.step` returns what to publish:

* the online learner's checkpoint when due (:mod:`driftline.core.lifecycle.online`;
  its first one also enters the registry as a challenger);
* the records of a promotion, rollback or end of probation decided on live paired
  evidence (:mod:`driftline.core.lifecycle.promotion`), with an Alert that says why.
  A model whose promotion is ``manual`` gets the alert only: a person approves.

It also watches the champion's errors with the concept drift detector the monitor uses
(:class:`~driftline.core.watch.concept_drift.ConceptDriftDetector`): an alarm restarts
the paired evidence; its change point is :attr:`LiveModel.latest_change_ms` and the event
time of the outcome that raised it :attr:`LiveModel.latest_alarm_ms`, which the trainer
uses to hold back a candidate trained only on data from before it
(:func:`~driftline.core.lifecycle.answer.hold_stale`).

>>> from driftline.core.lifecycle.registry import Registry
>>> from driftline.core.model.config import LiveConfig, ModelConfig, OnlineConfig
>>> cfg = ModelConfig("m", online=OnlineConfig(factory="hoeffding_tree", checkpoint_every=20),
...                   live=LiveConfig(min_pairs=10))
>>> live = LiveModel(cfg, key=b"k", host="h", code="c")
>>> champion = {"model": "m", "version": "v1", "stage": "champion", "task": "classification",
...     "stage_changed_at_ms": 0, "stage_changed_by": "t", "stage_reason": "r",
...     "created_at_ms": 0, "feature_spec": [{"name": "x", "type": "integer"}],
...     "lineage": {}, "artifact": {"sha256": "a"}, "metrics": {}}
>>> reg = Registry.from_records([champion])
>>> live.on_registry(reg, now_ms=0)
>>> for i in range(30):
...     live.on_outcome({"event_id": f"e{i}", "model": "m", "version": "v1", "event_time_ms": i,
...         "features": {"x": i % 2}, "prediction": False, "label": i % 2 == 1,
...         "segment": {}, "challengers": []}, ("o", 0, i))
>>> out = live.step(reg, now_ms=30)
>>> [(r["version"], r["stage"]) for r in out.records]
[('online-1', 'checkpoint'), ('online-1', 'challenger')]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.core.errors import StageError
from driftline.core.lifecycle import reservoir
from driftline.core.lifecycle.answer import alert
from driftline.core.lifecycle.online import ONLINE_PREFIX, OnlineLearner, Store, is_online
from driftline.core.lifecycle.promotion import (
    Decision,
    Promoter,
    decision_records,
    is_probation,
)
from driftline.core.lifecycle.registry import Registry, restage
from driftline.core.model.config import ModelConfig
from driftline.core.watch.concept_drift import ConceptDriftDetector

__all__ = ["LiveModel", "LiveOutput", "decision_alert"]

LIVE_STAGES = ("challenger", "champion")
"""Stages in which an online version is resumed (else a new learner starts)."""


@dataclass
class LiveOutput:
    """What one :meth:`LiveModel.step` asks to publish, in order."""

    records: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    decision: Decision | None = None
    """The decision the records carry out, if any (to :meth:`LiveModel.refused` if they
    cannot be published)."""


ALERT_KINDS = {
    "promote": ("live_promotion", "info"),
    "rollback": ("live_rollback", "warning"),
    "end_probation": ("probation_ended", "info"),
}


def decision_alert(decision: Decision, *, enacted: bool, now_ms: int) -> dict[str, Any]:
    """The Alert that reports a live decision (or, when not ``enacted``, asks a person
    to approve it)."""
    kind, severity = ALERT_KINDS[decision.action]
    message = decision.reason
    if not enacted:
        kind, severity = "challenger_better", "warning"
        message = (
            f"{decision.version} is better than the champion {decision.replaces} on live "
            f"evidence; promotion is manual: approve it with `driftline models approve "
            f"{decision.model} {decision.version}`. {decision.reason}"
        )
    return alert(
        decision.model,
        decision.version,
        kind,
        severity,
        message[:500],
        {k: v for k, v in decision.evidence.items() if v is not None},
        now_ms=now_ms,
        alert_id=f"{decision.model}/{decision.action}/{decision.version}/{now_ms}",
    )


class LiveModel:
    """The live side of one model's lifecycle (see the module docstring)."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        key: bytes,
        host: str,
        code: str,
        inline_max_bytes: int = 512_000,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.key = key
        self.host = host
        self.code = code
        self.inline_max_bytes = inline_max_bytes
        self.store = store
        self.task = config.task
        self.promoter = Promoter(config.name, config.task, config.live)
        self.learner: OnlineLearner | None = None
        self.detector: ConceptDriftDetector | None = None
        self.champion: Mapping[str, Any] | None = None
        self.latest_change_ms: int | None = None
        """Event time where the latest concept drift of the champion began."""
        self.latest_alarm_ms: int | None = None
        """Event time of the outcome at which the latest concept-drift alarm fired (the
        change point above is estimated to a checkpoint's stretch: it can fall before
        rows that are still of the old concept)."""
        self.alarms = 0
        self._entered = False
        self._resumed: dict[tuple[str, int], int] | None = None

    # -- inputs -----------------------------------------------------------------------

    def on_registry(self, reg: Registry, now_ms: int) -> None:
        """The registry's state of the model (call after every registry change)."""
        name = self.config.name
        champion = reg.champion(name)
        if champion is not None and (
            self.champion is None or champion["version"] != self.champion["version"]
        ):
            self.task = str(champion["task"])
            self.detector = ConceptDriftDetector(name, champion["version"], self.task)
            self.promoter.task = self.task
        self.champion = champion
        challengers = [
            r for r in reg.versions(name) if r["stage"] == "challenger"
        ]  # fmt: skip
        probation = next((r["version"] for r in challengers if is_probation(r)), None)
        self.promoter.on_registry(
            None if champion is None else champion["version"],
            [r["version"] for r in challengers],
            probation,
        )
        if self.config.online is not None and champion is not None:
            self._learner(reg, now_ms)

    def _learner(self, reg: Registry, now_ms: int) -> None:
        """Resume the online version the registry holds, or start a new one."""
        assert self.config.online is not None
        name = self.config.name
        live = [
            r for r in reg.versions(name) if is_online(r["version"]) and r["stage"] in LIVE_STAGES
        ]  # fmt: skip
        own = None if self.learner is None else self.learner.version
        mine = next((r for r in live if r["version"] == own), None)
        if mine is not None and self.learner is not None:
            self._entered = True
            if int(mine["lineage"].get("rows") or 0) <= self.learner.learned:
                return
            record = mine  # a newer state of it (a registry read further than at start)
        elif live:
            record = live[-1]
        else:
            record = None
        if record is not None:
            self.learner = OnlineLearner.resume(record, self.key, self.config.online)
            self._resumed = dict(self.learner.next_offsets)
            self._entered = True
            return
        if self.learner is not None and not self._entered:
            return  # started, its first checkpoint not yet published
        numbers = [
            int(m.group(1))
            for r in reg.versions(name)
            if (m := re.fullmatch(re.escape(ONLINE_PREFIX) + r"(\d+)", r["version"]))
        ]
        # a new learner first learns the champion's training sample: it does not start cold
        champion = reg.champion(name)
        self.learner = OnlineLearner.start(
            name, self.task, self.config.online, number=max(numbers, default=0) + 1,
            started_at_ms=now_ms,
            earlier=reservoir.decode(None if champion is None else champion.get("training_sample")),
            earlier_version=None if champion is None else champion["version"],
        )  # fmt: skip
        self._entered = False

    def on_outcome(
        self, outcome: Mapping[str, Any], position: tuple[str, int, int], replay: bool = False
    ) -> None:
        """One outcome of the model, read at ``position`` (topic, partition, offset).
        With ``replay``, an outcome read again for a learner resumed behind the reader
        (:meth:`take_resumed`): the learner learns it if its state does not hold it yet;
        the evidence and the drift detector have seen it already."""
        if self.learner is not None:
            self.learner.learn(outcome, position)
        if replay:
            return
        self.promoter.on_outcome(outcome)
        champion = self.champion
        if (
            self.detector is not None
            and champion is not None
            and outcome.get("version") == champion["version"]
        ):
            event = self.detector.update_outcome(outcome)
            if event is not None:
                self.alarms += 1
                self.latest_change_ms = event.change_time_ms or int(outcome["event_time_ms"])
                self.latest_alarm_ms = int(outcome["event_time_ms"])
                self.promoter.on_alarm()

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        """Where the learner's state stands on the outcomes topic: (topic, partition) to
        the next offset to learn (empty: no learner or none learnt yet)."""
        return {} if self.learner is None else dict(self.learner.next_offsets)

    def take_resumed(self) -> dict[tuple[str, int], int]:
        """Where a learner resumed from the registry since the last call stands (as
        :attr:`positions`; empty if none was): a reader already past it reads from there
        again, with ``replay``, so that the learner skips nothing."""
        resumed, self._resumed = self._resumed, None
        return resumed or {}

    # -- outputs ----------------------------------------------------------------------

    def checkpoint_due(self, now_ms: int) -> bool:
        """Whether :meth:`step` would publish the learner's checkpoint now (by count, or
        by time alone while the learner is the champion the scorer serves)."""
        learner, champion = self.learner, self.champion
        if learner is None or champion is None:
            return False
        return learner.checkpoint_due(now_ms, serving=champion["version"] == learner.version)

    def step(self, reg: Registry, now_ms: int, decide: bool = True) -> LiveOutput:
        """What to publish now: a checkpoint when due, then a decision if one is due.
        With ``decide`` false, the checkpoint alone: no stage change (the learner's entry
        as challenger and the decisions wait)."""
        out = LiveOutput()
        learner, champion = self.learner, self.champion
        if learner is not None and champion is not None and self.checkpoint_due(now_ms):
            record = learner.checkpoint(
                now_ms, self.key, champion["feature_spec"], score_class=self.config.positive_class,
                code=self.code, host=self.host, inline_max_bytes=self.inline_max_bytes,
                store=self.store,
            )  # fmt: skip
            out.records.append(record)
            if not self._entered and decide:
                why = f"online learner of {learner.config.factory}, learning every outcome"
                first = {**record, "stage": "candidate"}
                out.records.append(restage(first, "challenger", by="trainer", reason=why,
                                           now_ms=now_ms))  # fmt: skip
                self._entered = True
        if not self.config.live.enabled or not decide:
            return out
        decision = self.promoter.decide()
        if decision is None:
            return out
        enacted = self.config.promotion == "auto"
        if enacted:
            try:
                out.records += decision_records(reg, decision, by="trainer", now_ms=now_ms)
            except StageError:
                self.promoter.drop()
                return out
            out.decision = decision
        out.alerts.append(decision_alert(decision, enacted=enacted, now_ms=now_ms))
        return out

    def refused(self) -> None:
        """The records of the last step's decision could not be published."""
        self.promoter.drop()
