"""Incidents: the monitor's alerts folded into one incident per model and cause, each with
a ``firing`` -> ``resolved`` lifecycle.

The alert rules (:mod:`driftline.core.watch.alerts`) judge a model again at every tick:
each judgement that finds a cause bad on one scope (a segment, or ``all``) is an alert
dict, each that does not is a :class:`Check`, healthy when the statistic is back within
the clearing threshold (half the alerting one by default), else still recovering. Per
model and cause, :class:`Incidents` turns them into records for the alerts topic:

* the first alert opens the incident and is published as ``firing`` (this pages);
* later alerts of the same cause are folded into it: their segment and version are
  listed in the incident, nothing is published, unless the severity rises from warning
  to critical (published again as ``firing``, same incident id);
* it is published as ``resolved`` once ``all`` has been healthy in ``clear_checks``
  judgements since its last alert (a recovering judgement neither counts nor resets;
  an alert resets) and no segment alerted in the last ``clear_checks`` judgements of
  ``all``, with how long it lasted and the evidence that it cleared. An incident of
  segments alone (``all`` never alerted) needs each of them healthy as many times,
  unless no longer judged at all (too few outcomes) for as long.

So a segment raises an incident of its own only when ``all`` is healthy (then the
incident lists that segment alone); while ``all`` is degraded, the segments are folded
into its incident. Flapping around the threshold (bad, recovering, bad, ...) stays one
incident, and a worker that restarts rebuilds its open incidents from the alerts topic
(:meth:`Incidents.restore`) so one still firing is not published (paged) again.

Alert kinds the monitor does not judge again (a model error, a refused artifact or
models file, a failed training run, a rejected candidate, a promotion or rollback) are
*notices*: published as they happen, with ``state`` null.

>>> inc = Incidents("churn", clear_checks=2)
>>> bad = {"alert_id": "a1", "model": "churn", "version": "v3", "segment": "all",
...        "kind": "performance_degradation", "severity": "warning",
...        "message": "accuracy fell", "evidence": {"value": 0.8}, "created_at_ms": 0}
>>> [r["state"] for r in inc.observe(0, alerts=[bad])]
['firing']
>>> inc.observe(1_000, alerts=[{**bad, "segment": "plan=pro"}])  # folded in
[]
>>> ok = [Check("performance_degradation", s, True, "v3", f"{s} back", {"value": 0.9})
...       for s in ("all", "plan=pro")]
>>> inc.observe(2_000, checks=ok)
[]
>>> [(r["state"], r["duration_ms"], r["segments"]) for r in inc.observe(3_000, checks=ok)]
[('resolved', 3000, ['all', 'plan=pro'])]
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CAUSES",
    "FIRING",
    "NOTICES",
    "NOTICE_FIELDS",
    "PRIMARY",
    "RESOLVED",
    "Check",
    "Incident",
    "Incidents",
    "duration_text",
    "incident_key",
    "open_incidents",
]

CAUSES = (
    "performance_degradation",
    "concept_drift",
    "feature_drift",
    "prediction_drift",
    "numerical_instability",
    "skew_rate",
    "expired_label_rate",
    "estimated_performance_degradation",
)
"""Alert kinds the monitor judges again at every tick: each is an incident cause."""

NOTICES = (
    "model_error",
    "artifact_rejected",
    "config_rejected",
    "training_failed",
    "candidate_rejected",
    "promoted",
    "rolled_back",
)
"""Alert kinds that are events, not conditions (``state`` null): nothing judges them
again, so nothing could resolve them. (The scorer's ``numerical_instability`` for one
event that returned a non-finite output is a notice too: ``state`` tells them apart.)"""

PRIMARY = "all"
FIRING, RESOLVED = "firing", "resolved"
NOTICE_FIELDS: Mapping[str, Any] = {
    "incident_key": None,
    "incident_id": None,
    "state": None,
    "opened_at_ms": None,
    "resolved_at_ms": None,
    "duration_ms": None,
    "segments": None,
    "versions": None,
}
"""The incident fields of a notice (Alert v2): all null."""
_RANK = {"info": 0, "warning": 1, "critical": 2}
_NAMESPACE = uuid.UUID("0b6c8a7e-3f44-4d0e-9a0e-5d8f2f6f1c21")


def incident_key(model: str, cause: str) -> str:
    """The stable key of a model's incidents of one cause: ``model/cause``."""
    return f"{model}/{cause}"


@dataclass(frozen=True)
class Check:
    """A judgement of ``kind`` on ``scope`` that raised no alert: ``healthy`` when it is
    back within the clearing threshold (``message`` and ``evidence`` say so with the
    numbers), else recovering."""

    kind: str
    scope: str
    healthy: bool
    version: str | None
    message: str
    evidence: Mapping[str, Any]


@dataclass
class _Scope:
    healthy: int = 0
    """Healthy judgements since its last alert."""
    seen: int = 0
    """The primary scope's judgement count when this scope was last judged."""
    bad_at: int = 0
    """The primary scope's judgement count at its last alert."""
    last: Check | None = None


@dataclass
class Incident:
    """One open incident of a model and cause."""

    model: str
    cause: str
    incident_id: str
    opened_at_ms: int
    severity: str
    version: str | None
    """The version the incident opened on."""
    segments: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    alerts: int = 1
    """Alerts folded into it (the one that opened it included)."""
    judged: int = 0
    """Judgements of the primary scope since it opened."""
    scopes: dict[str, _Scope] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return incident_key(self.model, self.cause)

    def fields(self, state: str, now_ms: int | None = None) -> dict[str, Any]:
        """The Alert fields that place a record in this incident (``now_ms``: when it
        resolved)."""
        return {
            "incident_key": self.key,
            "incident_id": self.incident_id,
            "state": state,
            "opened_at_ms": self.opened_at_ms,
            "resolved_at_ms": now_ms,
            "duration_ms": None if now_ms is None else max(0, now_ms - self.opened_at_ms),
            "segments": list(self.segments),
            "versions": list(self.versions),
        }

    def _add(self, scope: str, version: str | None) -> _Scope:
        if scope not in self.segments:
            self.segments.append(scope)
        if version and version not in self.versions:
            self.versions.append(version)
        return self.scopes.setdefault(scope, _Scope(seen=self.judged))

    def cleared(self, clear_checks: int) -> bool:
        """Whether the incident resolves: its lead scopes (``all`` once it alerted, else
        the segments that did) healthy ``clear_checks`` times since their last alert (a
        lead segment no longer judged for as long counts as healthy), and no other
        segment alerted in the last ``clear_checks`` judgements of ``all``."""
        primary = self.scopes.get(PRIMARY)
        if primary is None or primary.healthy < clear_checks:
            return False
        lead = PRIMARY in self.segments
        for name, s in self.scopes.items():
            quiet = self.judged - s.bad_at >= clear_checks
            if name == PRIMARY or (lead and quiet):
                continue
            if s.healthy < clear_checks and not (quiet and self.judged - s.seen >= clear_checks):
                return False
        return True


class Incidents:
    """The open incidents of one model, fed by :meth:`observe`.

    Parameters
    ----------
    model
        The model's name.
    clear_checks
        Healthy judgements each scope needs, since its last alert, to resolve.

    """

    def __init__(self, model: str, *, clear_checks: int = 3) -> None:
        if clear_checks < 1:
            raise ValueError(f"clear_checks must be >= 1, not {clear_checks!r}")
        self.model = model
        self.clear_checks = clear_checks
        self.open: dict[str, Incident] = {}
        """Open incidents by cause."""
        self.folded = 0
        """Alerts folded into an open incident instead of being published."""

    def observe(
        self, now_ms: int, alerts: Iterable[Mapping[str, Any]] = (), checks: Sequence[Check] = ()
    ) -> list[dict[str, Any]]:
        """One round of judgements: ``alerts`` (bad) first, then ``checks``; the records
        to publish (firing, escalated, resolved, and notices unchanged)."""
        alerts = list(alerts)
        rounds = {a["kind"] for a in alerts if (a.get("segment") or PRIMARY) == PRIMARY}
        rounds |= {c.kind for c in checks if c.scope == PRIMARY}
        for cause in rounds & set(self.open):  # 'all' judged in this round
            self.open[cause].judged += 1
        out: list[dict[str, Any]] = []
        for alert in alerts:
            out += self._alert(alert, now_ms, alert["kind"] in rounds)
        for r in out:  # a firing record lists every scope and version of its round
            inc = self.open.get(r["kind"])
            if r["state"] == FIRING and inc is not None:
                r.update(segments=list(inc.segments), versions=list(inc.versions))
        touched: set[str] = set()
        for check in checks:
            inc = self.open.get(check.kind)
            if inc is None:
                continue
            if check.scope not in inc.scopes and check.scope != PRIMARY:
                continue  # a segment that never alerted: nothing to clear
            scope = inc.scopes.setdefault(check.scope, _Scope())
            scope.seen = inc.judged
            if check.healthy:
                scope.healthy += 1
                scope.last = check
            touched.add(check.kind)
        for cause in sorted(touched):
            inc = self.open[cause]
            if inc.cleared(self.clear_checks):
                out.append(self._resolve(inc, now_ms))
        return out

    def _alert(self, alert: Mapping[str, Any], now_ms: int, judged: bool) -> list[dict[str, Any]]:
        """One alert; ``judged``: 'all' was judged in its round (counted already, unless
        the alert opens the incident)."""
        cause = alert["kind"]
        if cause not in CAUSES:
            return [{**alert, **NOTICE_FIELDS}]
        scope = alert.get("segment") or PRIMARY
        version = alert.get("version")
        inc = self.open.get(cause)
        if inc is None:
            opened = int(alert.get("created_at_ms") or now_ms)
            inc = self.open[cause] = Incident(
                self.model, cause,
                str(uuid.uuid5(_NAMESPACE, f"{incident_key(self.model, cause)}|{opened}")),
                opened, alert["severity"], version,
            )  # fmt: skip
            inc.judged = int(judged)
            inc._add(scope, version).bad_at = inc.judged
            inc.scopes.setdefault(PRIMARY, _Scope(seen=inc.judged))
            return [{**alert, **inc.fields(FIRING)}]
        inc.alerts += 1
        s = inc._add(scope, version)
        s.healthy, s.seen, s.bad_at = 0, inc.judged, inc.judged
        if _RANK.get(alert["severity"], 0) > _RANK.get(inc.severity, 0):
            inc.severity = alert["severity"]
            return [{**alert, **inc.fields(FIRING)}]
        self.folded += 1
        return []

    def _resolve(self, inc: Incident, now_ms: int) -> dict[str, Any]:
        del self.open[inc.cause]
        primary = inc.scopes[PRIMARY].last
        assert primary is not None  # cleared() needs healthy judgements of it
        duration = max(0, now_ms - inc.opened_at_ms)
        others = [s for s in inc.segments if s != PRIMARY]
        where = f" (segments {', '.join(others)} too)" if others else ""
        return {
            "alert_id": str(uuid.uuid5(_NAMESPACE, f"{inc.incident_id}|resolved")),
            "model": inc.model,
            "version": primary.version,
            "segment": None,
            "kind": inc.cause,
            "severity": inc.severity,
            "message": (
                f"Resolved after {duration_text(duration)}: {primary.message}{where} "
                f"({self.clear_checks} healthy checks in a row; {inc.alerts} alerts folded)."
            ),
            "evidence": {
                **primary.evidence,
                "alerts": inc.alerts,
                "healthy_checks": self.clear_checks,
            },
            "created_at_ms": now_ms,
            **inc.fields(RESOLVED, now_ms),
        }

    def restore(self, record: Mapping[str, Any]) -> None:
        """Apply one published incident record (in topic order), to rebuild the open
        incidents after a restart: a firing one opens (or escalates) it, a resolved one
        closes it. Records of other models and notices are ignored."""
        cause, state = record["kind"], record.get("state")
        if record["model"] != self.model or cause not in CAUSES or state is None:
            return
        if state == RESOLVED:
            inc = self.open.get(cause)
            if inc is not None and inc.incident_id == record.get("incident_id"):
                del self.open[cause]
            return
        inc = self.open.get(cause)
        if inc is None or inc.incident_id != record.get("incident_id"):
            opened = int(record.get("opened_at_ms") or record["created_at_ms"])
            inc = self.open[cause] = Incident(
                self.model, cause, str(record.get("incident_id")), opened,
                record["severity"], record.get("version"),
            )  # fmt: skip
        elif _RANK.get(record["severity"], 0) > _RANK.get(inc.severity, 0):
            inc.severity = record["severity"]
        for scope in record.get("segments") or [record.get("segment") or PRIMARY]:
            inc._add(scope, None)
        for version in record.get("versions") or [record.get("version")]:
            if version and version not in inc.versions:
                inc.versions.append(version)
        inc.scopes.setdefault(PRIMARY, _Scope())


def open_incidents(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per model, the newest record of each incident still open after ``records`` (alerts
    in topic order): what a restarted worker gives :meth:`Incidents.restore`.

    >>> fire = {"model": "m", "kind": "concept_drift", "state": "firing",
    ...         "incident_id": "i1", "severity": "warning", "created_at_ms": 1}
    >>> sorted(open_incidents([fire, {**fire, "incident_id": "i0", "state": "resolved"}]))
    ['m']
    >>> open_incidents([fire, {**fire, "state": "resolved"}])
    {}
    """
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        if r.get("state") is None or r["kind"] not in CAUSES:
            continue
        key = (r["model"], r["kind"])
        if r["state"] == RESOLVED:
            if key in last and last[key].get("incident_id") == r.get("incident_id"):
                del last[key]
        else:
            last[key] = dict(r)
    out: dict[str, list[dict[str, Any]]] = {}
    for (model, _), r in last.items():
        out.setdefault(model, []).append(r)
    return out


def duration_text(ms: int) -> str:
    """``3 s``, ``2 min 5 s``, ``1 h 4 min`` (whole seconds, rounded down).

    >>> [duration_text(x) for x in (400, 3_000, 125_000, 3_840_000, 90_000_000)]
    ['0 s', '3 s', '2 min 5 s', '1 h 4 min', '25 h 0 min']
    """
    s = ms // 1000
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
