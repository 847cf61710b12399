"""How a retrain trigger is answered, as data: given the trigger, the outcomes of its
window and the registry as it stands, :func:`answer_trigger` looks the model's config up,
builds the training set, trains and gates a candidate, decides its stage and returns
the records and alerts to publish. Pure apart from the clock, the host name and an
artifact store callback; the trainer consumer (``driftline.consumers.trainer``) only
reads, calls it and publishes, and the in-process loop bench calls the same function.

Steps, in order:

1. the config: the models file's, else one that retrains like the champion
   (:func:`config_for`); a retired model is refused (stage ``refused``, a
   ``training_refused`` alert);
2. the champion's artifact is loaded once: a refused one raises an ``artifact_rejected``
   alert and the candidate is gated without it;
3. the training set: the trigger's window of the outcomes (event time from
   ``window_start_ms`` to ``window_end_ms``, the newest ``last_n``), time-ordered and
   deduplicated (:mod:`~driftline.core.lifecycle.trainset`);
4. a window of fewer than the model's ``retrain.min_rows`` rows is completed with
   earlier rows: the newest rows of the champion's training sample
   (:mod:`~driftline.core.lifecycle.reservoir`) older than the window, up to
   ``min_rows`` in all; learnt first, never held out. A window that starts at a change
   point is not completed (its point is to leave the old concept out). A training set
   still short of ``min_rows`` is refused (stage ``refused``, a ``training_refused``
   alert, no version) unless the trigger is forced (``evidence["force"]``, ``driftline
   retrain --force``) or its window starts at a change point (the policy counted those
   rows: a few may fall just outside the window by event time);
5. :func:`~driftline.core.lifecycle.training.train` (split, learn, serialize, sign,
   profile, gate against the champion);
6. :func:`~driftline.core.lifecycle.training.decide`: champion (passed, promotion
   ``auto``), challenger (passed, ``manual``) or rejected; then the stage records
   (:func:`~driftline.core.lifecycle.training.stage_records`: the champion it replaces,
   or the oldest challengers past ``max_challengers``, archived first) and, for a
   rejected candidate, a ``candidate_rejected`` alert. Where the live loop runs
   (``probation``) and the champion is an online learner, which has learnt the held-out
   rows, a candidate that passes every check but the comparison with it becomes a
   challenger: live paired evidence decides;
7. a candidate that may serve (champion or challenger) gets its permutation importance
   on the held-out rows (:func:`~driftline.core.lifecycle.training.add_importance`: what
   the monitor ranks feature drift by, the status page and ``driftline models show``
   print); a rejected one never serves and is published without it (it cost a third of
   an answer: features x 5 repeats x up to 500 rows of predictions).

No stale answers (:func:`hold_stale`, applied when the answer is published, after
:func:`restage_answer`): a would-be champion whose training window ends before the
model's latest concept-drift alarm is not promoted on its offline gate alone. Where a
live loop decides (``probation``) it enters as a challenger: the live loop restarts its
paired evidence at each alarm, so the evidence that decides is post-alarm. Without one it
is gated again on the outcomes since the alarm when there are at least the gate's
``min_holdout_rows`` of them, else rejected; the reason names both times.

>>> stage_reason("champion", {"summary": "passed: ..."})
'gate passed, promotion auto'
>>> a = alert("churn", None, "training_failed", "critical", "Training failed.", {"k": 1}, now_ms=5)
>>> a["kind"], a["severity"], a["evidence"], a["created_at_ms"]
('training_failed', 'critical', {'k': 1}, 5)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from driftline.core.errors import ArtifactError, ConfigError
from driftline.core.lifecycle import reservoir
from driftline.core.lifecycle.gate import run_gate, time_split
from driftline.core.lifecycle.registry import MAX_CHALLENGERS, Registry, is_online
from driftline.core.lifecycle.training import (
    Store,
    TrainingRun,
    add_importance,
    decide,
    stage_records,
    train,
)
from driftline.core.lifecycle.trainset import build_frame, examples, window
from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.model.estimators import load_version
from driftline.core.watch.concept_drift import ConceptDriftDetector
from driftline.core.watch.incidents import NOTICE_FIELDS
from driftline.core.watch.retrain_policy import MIN_ROWS

__all__ = [
    "Answer",
    "alert",
    "answer_trigger",
    "at_change_point",
    "config_for",
    "earlier_rows",
    "failure_alert",
    "hold_stale",
    "latest_alarm_ms",
    "stage_reason",
    "stale_rule",
]


@dataclass
class Answer:
    """What answering one trigger produced: publish ``records`` (in order) on the registry
    topic and ``alerts`` on the alerts topic."""

    config: ModelConfig
    run: TrainingRun | None
    """None when the trigger was refused (too few rows)."""
    stage: str
    """champion, challenger, rejected, or refused (nothing trained)."""
    records: list[dict[str, Any]]
    """The candidate, then the records that set its stage (archives first)."""
    alerts: list[dict[str, Any]]
    trained_until_ms: int | None = None
    """Event time where the candidate's training window ends: its newest row, else the
    trigger's ``window_end_ms`` (None: unknown)."""

    @property
    def version(self) -> str | None:
        return None if self.run is None else str(self.run.record["version"])

    @property
    def verdict(self) -> dict[str, Any] | None:
        return None if self.run is None else self.run.verdict


def answer_trigger(
    trigger: Mapping[str, Any],
    rows: Iterable[Mapping[str, Any]],
    registry: Registry,
    models: ModelsConfig,
    *,
    key: bytes,
    clock_ms: Callable[[], int],
    run_id: str | None = None,
    data_ranges: Sequence[Mapping[str, Any]] = (),
    inline_max_bytes: int = 512_000,
    store: Store | None = None,
    started_at_ms: int | None = None,
    step_ms: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    code: str | None = None,
    host: str | None = None,
    max_challengers: int = MAX_CHALLENGERS,
    probation: bool = False,
) -> Answer:
    """Answer ``trigger`` (a RetrainTrigger dict) from ``rows``, Outcome-like dicts holding
    (at least) its window, against ``registry`` as it stands (see the module docstring).

    ``clock_ms()`` gives the version's creation time, then the stage changes' (at least
    1 ms later) and the alerts'. With ``probation`` (a live loop watches the model), a
    champion replaced by a promotion stays in shadow on probation instead of being
    archived, so live evidence can roll the promotion back. Raises what training raises
    (no rows, an unknown model, an artifact too large with no ``store``); the caller
    answers that with :func:`failure_alert`.
    """
    model = trigger["model"]
    run_id = run_id or str(uuid.uuid4())
    champion = registry.champion(model)
    if registry.retired(model):
        config = config_for(models, model, _newest(registry, model))
        message = (
            f"Trigger {trigger['trigger_id']} of {model} was not trained: the model is "
            f"retired (driftline models unretire {model})."
        )
        evidence = {"trigger_id": trigger["trigger_id"], "reason": "model_retired"}
        refused = alert(model, None, "training_refused", "warning", message, evidence,
                        now_ms=clock_ms())  # fmt: skip
        return Answer(config, None, "refused", [], [refused])
    config = config_for(models, model, champion)
    alerts: list[dict[str, Any]] = []
    if champion is not None:
        try:
            load_version(champion, key)
        except ArtifactError as exc:
            message = (
                f"The champion's artifact was refused ({exc.reason}); the candidate is "
                "gated without a comparison."
            )
            alerts.append(
                alert(model, champion["version"], "artifact_rejected", "critical", message,
                      {"reason": exc.reason}, now_ms=clock_ms())
            )  # fmt: skip
    t = time.perf_counter()
    start, end, last_n = trigger["window_start_ms"], trigger["window_end_ms"], trigger["last_n"]
    data = examples(window(build_frame(rows), start, end, last_n))
    steps = {**(step_ms or {}), "frame": round((time.perf_counter() - t) * 1000, 3)}
    min_rows = int(config.retrain.get("min_rows", MIN_ROWS))
    forced = bool((trigger.get("evidence") or {}).get("force"))
    earlier: list[dict[str, Any]] = []
    if len(data) < min_rows and champion is not None and not at_change_point(trigger):
        earlier = earlier_rows(champion, data, min_rows - len(data))
    if len(data) + len(earlier) < min_rows and not forced and not at_change_point(trigger):
        message = (
            f"Trigger {trigger['trigger_id']} of {model} was not trained: its window holds "
            f"{len(data)} rows ({len(earlier)} earlier ones could complete it), fewer than "
            f"min_rows ({min_rows}); retrain with --force to train on them anyway."
        )
        evidence = {
            "trigger_id": trigger["trigger_id"],
            "rows": len(data),
            "earlier_rows": len(earlier),
            "min_rows": min_rows,
        }
        refused = alert(model, None, "training_refused", "warning", message, evidence,
                        now_ms=clock_ms())  # fmt: skip
        return Answer(config, None, "refused", [], [*alerts, refused])
    run = train(
        data, config, key=key, now_ms=clock_ms(), trigger=trigger, run_id=run_id,
        champion=champion, data_ranges=data_ranges,
        existing_versions=[r["version"] for r in registry.versions(model)],
        code=code, host=host, inline_max_bytes=inline_max_bytes, store=store,
        started_at_ms=started_at_ms, step_ms=steps, progress=progress,
        earlier=earlier, earlier_version=None if champion is None else champion["version"],
        importance=False,
    )  # fmt: skip
    record, verdict = run.record, run.verdict
    stage = decide(verdict, config.promotion, config.gate.min_improvement)
    reason = stage_reason(stage, verdict)
    if champion is not None and is_online(champion["version"]) and probation:
        # an online champion has learnt the held-out rows: the comparison with it says
        # nothing. A candidate that passes every other check waits in shadow, and live
        # paired evidence decides (the live loop runs: ``probation``)
        others = [ok for check, ok in verdict["checks"].items() if check != "improvement"]
        if all(others):
            stage = "challenger"
            reason = (
                f"the champion {champion['version']} learns online (it has learnt the "
                "held-out rows): enters as a challenger, live evidence decides"
            )
    if stage != "rejected":
        add_importance(run, config, time_split(data, config.gate.holdout_fraction)[1])
    later = stage_records(
        record,
        stage,
        current=[*([champion] if champion else []), *registry.challengers(model)],
        by="trainer",
        reason=reason,
        now_ms=max(clock_ms(), record["stage_changed_at_ms"] + 1),
        max_challengers=max_challengers,
        replaced="probation" if probation else "archived",
    )
    if stage == "rejected":
        message = f"Candidate {record['version']} was rejected: {verdict['summary']}"
        evidence = {"trigger_id": trigger["trigger_id"], "training_run_id": run_id}
        alerts.append(
            alert(model, record["version"], "candidate_rejected", "info", message, evidence,
                  now_ms=clock_ms())
        )  # fmt: skip
    newest = max((r["event_time_ms"] for r in data if r.get("event_time_ms") is not None),
                 default=end)  # fmt: skip
    return Answer(config, run, stage, [record, *later], alerts, trained_until_ms=newest)


def _newest(registry: Registry, model: str) -> dict[str, Any] | None:
    versions = registry.versions(model)
    return versions[-1] if versions else None


def at_change_point(trigger: Mapping[str, Any]) -> bool:
    """Whether the trigger's window starts at a change point the policy placed (its rows
    are the post-change ones, counted by the policy)."""
    evidence = trigger.get("evidence") or {}
    return trigger.get("window_start_ms") is not None and "post_change_rows" in evidence


def earlier_rows(
    champion: Mapping[str, Any], window: Sequence[Mapping[str, Any]], n: int
) -> list[dict[str, Any]]:
    """At most ``n`` rows of the champion's training sample older than every row of the
    ``window`` (by event time), the newest of them, oldest first."""
    first = min((r["event_time_ms"] for r in window), default=None)
    rows = [
        r
        for r in reservoir.decode(champion.get("training_sample"))
        if first is None or (r["event_time_ms"] is not None and r["event_time_ms"] < first)
    ]
    rows.sort(key=lambda r: r["event_time_ms"] or 0)
    return rows[-n:] if n > 0 else []


def config_for(models: ModelsConfig, model: str, champion: Mapping[str, Any] | None) -> ModelConfig:
    """The models file's config of ``model``; else one that retrains like its champion
    (task, factory, parameters and seed from the champion's record)."""
    cfg = models.get(model)
    if cfg is not None:
        return cfg
    if champion is None:
        raise ConfigError(f"model {model} is neither in the models file nor in the registry")
    lineage = champion["lineage"]
    return ModelConfig(
        model,
        task=champion["task"],
        factory=champion["factory"],
        params={k: _param(v) for k, v in lineage["params"].items()},
        seed=int(lineage["seed"]),
    )


def _param(text: str) -> Any:
    """A lineage parameter back as the models file gave it (JSON, else the string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def answered_by(registry: Registry, trigger: Mapping[str, Any]) -> dict[str, Any] | None:
    """The version that already answers ``trigger``, if any: found by the trigger's
    idempotency key (the same trigger sent again under a new id, by a monitor restarted
    mid-window), else by its id (the same trigger read again). The trainer skips such a
    trigger, so each is answered once."""
    by_key = registry.answered(trigger["idempotency_key"])
    return by_key if by_key is not None else registry.answered(trigger["trigger_id"])


def restage_answer(
    answer: Answer,
    registry: Registry,
    *,
    champion_then: str | None,
    now_ms: int,
    max_challengers: int = MAX_CHALLENGERS,
    probation: bool = False,
) -> Answer:
    """``answer`` (computed on a registry whose champion was ``champion_then``) with its
    stage records derived again on ``registry`` as it stands now: while a trigger trains,
    the live loop may have promoted or rolled back. A candidate gated against a champion
    that no longer is one enters as a challenger instead (live evidence decides).

    >>> from driftline.core.lifecycle.registry import Registry
    >>> from driftline.core.model.config import ModelConfig
    >>> base = {"model": "m", "gate": None, "stage_changed_at_ms": 1, "created_at_ms": 1,
    ...         "stage_changed_by": "t", "stage_reason": "r", "lineage": {}}
    >>> reg = Registry.from_records([{**base, "version": "online-1", "stage": "champion"},
    ...                              {**base, "version": "v1", "stage": "challenger"}])
    >>> candidate = {**base, "version": "v2", "stage": "candidate"}
    >>> old = Answer(ModelConfig("m"), None, "champion", [candidate], [])
    >>> new = restage_answer(old, reg, champion_then="v1", now_ms=5)
    >>> new.stage, [(r["version"], r["stage"]) for r in new.records]
    ('challenger', [('v2', 'candidate'), ('v2', 'challenger')])
    """
    if answer.stage not in ("champion", "challenger") or not answer.records:
        return answer
    candidate = answer.records[0]
    model = candidate["model"]
    champion = registry.champion(model)
    now_version = None if champion is None else champion["version"]
    stage, reason = answer.stage, candidate.get("stage_reason") or ""
    later = answer.records[1:]
    if later:
        reason = later[-1]["stage_reason"]
    if stage == "champion" and now_version != champion_then:
        stage = "challenger"
        reason = (
            f"gate passed against {champion_then}, which is no longer the champion "
            f"({now_version} is): enters as a challenger, live evidence decides"
        )
    records = stage_records(
        candidate, stage,
        current=[*([champion] if champion else []), *registry.challengers(model)],
        by="trainer", reason=reason, now_ms=now_ms, max_challengers=max_challengers,
        replaced="probation" if probation else "archived",
    )  # fmt: skip
    return replace(answer, stage=stage, records=[candidate, *records])


def latest_alarm_ms(
    rows: Iterable[Mapping[str, Any]], model: str, version: str | None, task: str
) -> int | None:
    """The event time of the outcome at which the latest concept-drift alarm on
    ``version`` fired, as the monitor's detector
    (:class:`~driftline.core.watch.concept_drift.ConceptDriftDetector`) sees it
    on the Outcome dicts of ``rows`` that ``version`` predicted, in event-time order,
    without the warm-up (the rows are a replay of a version already serving); None without
    an alarm. What a trainer with no live loop watching the model uses.

    >>> rows = [{"version": "v1", "event_time_ms": i, "prediction": True,
    ...          "label": i < 600 or i % 2 == 0} for i in range(1_200)]
    >>> 600 <= latest_alarm_ms(rows, "m", "v1", "classification") <= 700
    True
    >>> latest_alarm_ms(rows[:600], "m", "v1", "classification") is None
    True
    """
    if version is None:
        return None
    # a replay of a version already serving: no warm-up (alarms in the first outcomes
    # after a version switch are the monitor's worry); the history test still confirms each
    detector = ConceptDriftDetector(model, version, task, warmup=0)
    latest = None
    served = [r for r in rows if r.get("version") == version and r.get("event_time_ms") is not None]
    for r in sorted(served, key=lambda r: r["event_time_ms"]):
        event = detector.update_outcome(r)
        if event is not None:
            latest = int(r["event_time_ms"])
    return latest


def stale_rule(
    stage: str,
    trained_until_ms: int | None,
    alarm_ms: int | None,
    *,
    live: bool,
    post_alarm_rows: int,
    min_rows: int,
) -> str | None:
    """What becomes of an answer of ``stage`` whose training window ends at
    ``trained_until_ms`` when the model's latest concept-drift alarm fired at ``alarm_ms``
    (the event time of the outcome that raised it): None (it stands: not a would-be
    champion, or trained on data up to the alarm or later, or either time unknown),
    ``challenger`` (a live loop decides on
    post-alarm evidence), ``regate`` (gate it again on the ``post_alarm_rows`` outcomes
    since the alarm: at least ``min_rows``) or ``rejected`` (too few of them).

    >>> stale_rule("champion", 900, 1_000, live=False, post_alarm_rows=40, min_rows=200)
    'rejected'
    >>> stale_rule("champion", 1_200, 1_000, live=False, post_alarm_rows=40, min_rows=200) is None
    True
    """
    if stage != "champion" or trained_until_ms is None or alarm_ms is None:
        return None
    if trained_until_ms >= alarm_ms:
        return None
    if live:
        return "challenger"
    return "regate" if post_alarm_rows >= min_rows else "rejected"


def hold_stale(
    answer: Answer,
    registry: Registry,
    *,
    alarm_ms: int | None,
    live: bool,
    post_alarm_rows: Sequence[Mapping[str, Any]] = (),
    key: bytes,
    now_ms: int,
    max_challengers: int = MAX_CHALLENGERS,
    probation: bool = False,
) -> Answer:
    """``answer`` with :func:`stale_rule` applied against the model's latest concept-drift
    alarm (``alarm_ms``, the event time of the outcome that raised it) and ``registry`` as it
    stands: a would-be champion trained only on data from before the alarm enters as a
    challenger (``live``: a live loop decides), or is gated again on ``post_alarm_rows``
    (Outcome-like dicts; those at or after ``alarm_ms`` count) and promoted only if that
    gate passes, else rejected with a ``candidate_rejected`` alert. The stage record's
    reason names both times."""
    rows = [r for r in post_alarm_rows if alarm_ms is not None and r["event_time_ms"] >= alarm_ms]
    gate = answer.config.gate
    what = stale_rule(answer.stage, answer.trained_until_ms, alarm_ms, live=live,
                      post_alarm_rows=len(rows), min_rows=gate.min_holdout_rows)  # fmt: skip
    if what is None:
        return answer
    candidate = answer.records[0]
    model, version = candidate["model"], candidate["version"]
    champion = registry.champion(model)
    stale = (
        f"trained on data up to {answer.trained_until_ms}, before the latest concept-drift "
        f"alarm (at {alarm_ms})"
    )
    alerts = list(answer.alerts)
    if what == "challenger":
        stage, reason = "challenger", f"{stale}: enters as a challenger, live evidence decides"
    elif what == "regate":
        verdict = run_gate(candidate, champion, rows, gate, key=key).verdict
        passed = verdict["passed"]
        stage = "champion" if passed else "rejected"
        reason = (
            f"{stale}: gated again on {len(rows)} post-alarm outcomes, "
            f"{'passed' if passed else 'failed'}: {verdict['summary']}"
        )
    else:
        stage = "rejected"
        reason = (
            f"{stale}: dropped, only {len(rows)} post-alarm outcomes (the gate needs "
            f"{gate.min_holdout_rows})"
        )
    if stage == "rejected":
        alerts.append(
            alert(model, version, "candidate_rejected", "info",
                  f"Candidate {version} was rejected: {reason}"[:500],
                  {"reason": "stale", "trained_until_ms": answer.trained_until_ms,
                   "alarm_ms": alarm_ms, "post_alarm_rows": len(rows)}, now_ms=now_ms)
        )  # fmt: skip
    records = stage_records(
        candidate, stage,
        current=[*([champion] if champion else []), *registry.challengers(model)],
        by="trainer", reason=reason[:1000], now_ms=now_ms, max_challengers=max_challengers,
        replaced="probation" if probation else "archived",
    )  # fmt: skip
    return replace(answer, stage=stage, records=[candidate, *records], alerts=alerts)


def stage_reason(stage: str, verdict: Mapping[str, Any]) -> str:
    """Why the trainer moved a gated candidate to ``stage``."""
    if stage == "champion":
        return "gate passed, promotion auto"
    if stage == "challenger" and verdict["passed"]:
        return "gate passed, waiting for approval (promotion manual)"
    if stage == "challenger":
        return f"gate inconclusive, kept as a challenger in shadow: {verdict['summary']}"
    return f"gate: {verdict['summary']}"


def alert(
    model: str,
    version: str | None,
    kind: str,
    severity: str,
    message: str,
    evidence: Mapping[str, Any],
    *,
    now_ms: int,
    alert_id: str | None = None,
) -> dict[str, Any]:
    """An Alert record: a notice (no incident, ``state`` null); ``alert_id`` a fresh
    UUID unless the caller needs a deterministic one."""
    return {
        "alert_id": alert_id or str(uuid.uuid4()),
        "model": model,
        "version": version,
        "segment": None,
        "kind": kind,
        "severity": severity,
        "message": message,
        "evidence": dict(evidence),
        "created_at_ms": now_ms,
        **NOTICE_FIELDS,
    }


def failure_alert(
    trigger: Mapping[str, Any],
    run_id: str,
    error: BaseException,
    *,
    seconds: float,
    host: str,
    now_ms: int,
) -> dict[str, Any]:
    """The ``training_failed`` Alert answering a trigger whose run raised ``error``."""
    evidence = {
        "trigger_id": trigger["trigger_id"],
        "idempotency_key": trigger["idempotency_key"],
        "training_run_id": run_id,
        "error": f"{type(error).__name__}: {error}"[:1000],
        "seconds": round(seconds, 3),
        "host": host,
    }
    message = f"Training {trigger['model']} for trigger {trigger['trigger_id']} failed: {error}"
    return alert(
        trigger["model"], None, "training_failed", "critical", message[:500], evidence,
        now_ms=now_ms,
    )  # fmt: skip
