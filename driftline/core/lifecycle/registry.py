"""The model registry as state: ModelVersion records applied in registry-topic order.

Every stage change is one ModelVersion record (the whole version, with its new stage,
``stage_changed_by`` and ``stage_reason``) published on the compacted registry topic
under the key ``model/version`` (:func:`registry_key`). :class:`Registry` folds them
into the current state; the functions below compute the records a stage change
publishes, in publish order. Stages::

    candidate ──▶ challenger ──▶ champion ──▶ archived ──▶ champion (rollback)
        │             │                          │
        └──▶ rejected ◀┘                         └──▶ challenger

A model has at most one champion and one challenger: a version moving into either
slot archives the one that held it (the archive record is published first). A
rollback republishes an earlier version as champion. Who and why travel in every
record, so a manual approval is recorded like any other change.

An online learner's state changes between stage changes: each of its checkpoints is a
record with the pseudo-stage ``checkpoint`` under its own key (``model/version@checkpoint``,
:func:`record_key`). It carries the version's new artifact, lineage and metrics and
never changes the stage, so a checkpoint published while a promotion was in flight
cannot undo it, and compaction keeps the newest of each kind. :meth:`Registry.get` gives
the stage record with the newest state of the two (by ``lineage.finished_at_ms``).

The topic is compacted: it keeps the *last* record per key, so it always holds every
version and its current stage, but older stage changes of a version disappear
once the log cleaner runs. The full history lives in the SQL view (stage_history),
which the projector fills as records arrive; rebuilding the view from the topic
restores every version and its current stage, and the history the topic still holds.

>>> reg = Registry()
>>> v1 = {"model": "churn", "version": "v1", "stage": "champion", "gate": None,
...       "stage_changed_at_ms": 1, "stage_changed_by": "ana", "stage_reason": "bootstrap",
...       "created_at_ms": 1, "lineage": {"trigger_id": None}}
>>> reg.apply(v1).stage
'champion'
>>> v2 = dict(v1, version="v2", stage="candidate", stage_changed_by="trainer",
...           lineage={"trigger_id": "t-1", "trigger_key": "k-1"})
>>> reg.apply(v2).previous is None
True
>>> [(r["version"], r["stage"]) for r in promote(reg, "churn", "v2", by="bo", reason="better",
...                                                now_ms=5)]
[('v1', 'archived'), ('v2', 'champion')]
>>> for r in promote(reg, "churn", "v2", by="bo", reason="better", now_ms=5):
...     _ = reg.apply(r)
>>> reg.champion("churn")["version"], reg.answered("k-1")["version"]
('v2', 'v2')
>>> [(r["version"], r["stage"]) for r in rollback(reg, "churn", by="ana", reason="v2 drifts",
...                                                 now_ms=9)]
[('v2', 'archived'), ('v1', 'champion')]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from driftline.core.errors import StageError

__all__ = [
    "CHECKPOINT",
    "PROBATION",
    "STAGES",
    "Registry",
    "StageChange",
    "approve",
    "is_probation",
    "promote",
    "record_key",
    "registry_key",
    "restage",
    "rollback",
    "transition",
]

STAGES = ("candidate", "challenger", "champion", "archived", "rejected")
CHECKPOINT = "checkpoint"
"""The pseudo-stage of an online learner's checkpoint record (not a stage)."""
STATE_FIELDS = (
    "artifact", "lineage", "metrics", "segment_metrics", "reference_profile", "feature_spec",
)  # fmt: skip
"""What a checkpoint updates."""
PROBATION = "probation: "
"""How the stage reason of a champion replaced by a promotion starts: it stays a
challenger, scored in shadow, for a probation window. The record itself says so, so a
restarted trainer knows it too."""
SLOTS = ("champion", "challenger")
ALLOWED: dict[str, frozenset[str]] = {
    "candidate": frozenset({"challenger", "champion", "rejected", "archived"}),
    "challenger": frozenset({"champion", "archived", "rejected"}),
    "champion": frozenset({"archived", "challenger"}),
    "archived": frozenset({"champion", "challenger"}),
    "rejected": frozenset(),
}
"""Stage changes allowed without ``force``."""


def registry_key(model: str, version: str) -> str:
    """The registry topic key of a version: ``model/version``."""
    return f"{model}/{version}"


def record_key(record: Mapping[str, Any]) -> str:
    """The registry topic key of a record: ``model/version``, or
    ``model/version@checkpoint`` for a checkpoint."""
    key = registry_key(record["model"], record["version"])
    return key + "@checkpoint" if record["stage"] == CHECKPOINT else key


def is_probation(record: Mapping[str, Any] | None) -> bool:
    """Whether ``record`` is a previous champion on probation (a challenger)."""
    return (
        record is not None
        and record["stage"] == "challenger"
        and str(record["stage_reason"]).startswith(PROBATION)
    )


def _newer_state(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether record ``a`` holds a newer learnt state than ``b``."""
    return int((a.get("lineage") or {}).get("finished_at_ms") or 0) > int(
        (b.get("lineage") or {}).get("finished_at_ms") or 0
    )


@dataclass(frozen=True)
class StageChange:
    """A version entering a stage; ``previous`` is None for a version seen first."""

    model: str
    version: str
    stage: str
    previous: str | None
    by: str
    reason: str
    at_ms: int


def _fingerprint(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        record["stage"],
        record["stage_changed_at_ms"],
        record["stage_changed_by"],
        record["stage_reason"],
    )


class Registry:
    """Current versions, stages and slots of every model; apply records in topic order."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, dict[str, Any]]] = {}
        self._slots: dict[str, dict[str, str]] = {slot: {} for slot in SLOTS}
        self._champions: dict[str, list[str]] = {}  # versions in the order they became champion
        self._answered: dict[str, tuple[str, str]] = {}
        self._checkpoints: dict[tuple[str, str], dict[str, Any]] = {}
        self.changes: list[StageChange] = []
        """Every change applied, in order (what this process saw, not what compaction kept)."""

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Registry:
        reg = cls()
        for r in records:
            reg.apply(r)
        return reg

    def apply(self, record: Mapping[str, Any]) -> StageChange | None:
        """Fold one record in; the change it makes, or None for a repeat of the last one."""
        model, version, stage = record["model"], record["version"], record["stage"]
        if stage == CHECKPOINT:
            old_state = self._checkpoints.get((model, version))
            if old_state is None or _newer_state(record, old_state):
                self._checkpoints[(model, version)] = dict(record)
            return None
        if stage not in STAGES:
            raise StageError(f"{registry_key(model, version)}: unknown stage {stage!r}")
        versions = self._versions.setdefault(model, {})
        old = versions.get(version)
        if old is not None and _fingerprint(old) == _fingerprint(record):
            if old["artifact"].get("sha256") != record["artifact"].get("sha256"):
                # an online learner's checkpoint: new state, same stage
                versions[version] = dict(record)
            return None
        versions[version] = dict(record)
        for slot, holders in self._slots.items():
            if stage == slot:
                holders[model] = version
            elif holders.get(model) == version:
                del holders[model]
        if stage == "champion":
            self._champions.setdefault(model, []).append(version)
        lineage = record.get("lineage") or {}
        for k in (lineage.get("trigger_key"), lineage.get("trigger_id")):
            if k:
                self._answered.setdefault(k, (model, version))
        change = StageChange(
            model,
            version,
            stage,
            None if old is None else old["stage"],
            record["stage_changed_by"],
            record["stage_reason"],
            record["stage_changed_at_ms"],
        )
        self.changes.append(change)
        return change

    def delete(self, model: str, version: str) -> None:
        """Forget a version (a tombstone on the registry topic)."""
        self._versions.get(model, {}).pop(version, None)
        self._checkpoints.pop((model, version), None)
        for holders in self._slots.values():
            if holders.get(model) == version:
                del holders[model]

    def models(self) -> list[str]:
        return sorted(self._versions)

    def get(self, model: str, version: str) -> dict[str, Any] | None:
        """The version's stage record, with the state of a newer checkpoint if any."""
        record = self._versions.get(model, {}).get(version)
        if record is None:
            return None
        state = self._checkpoints.get((model, version))
        if state is None or not _newer_state(state, record):
            return record
        return {**record, **{k: state[k] for k in STATE_FIELDS if k in state}}

    def versions(self, model: str) -> list[dict[str, Any]]:
        """Every version of ``model``, oldest first (by creation time, then first seen)."""
        found = [self.get(model, v) for v in self._versions.get(model, {})]
        return sorted((r for r in found if r is not None), key=lambda r: r["created_at_ms"])

    def champion(self, model: str) -> dict[str, Any] | None:
        version = self._slots["champion"].get(model)
        return None if version is None else self.get(model, version)

    def challenger(self, model: str) -> dict[str, Any] | None:
        version = self._slots["challenger"].get(model)
        return None if version is None else self.get(model, version)

    def answered(self, trigger_key: str) -> dict[str, Any] | None:
        """The version trained for a trigger (by idempotency key or trigger id), if any."""
        found = self._answered.get(trigger_key)
        return None if found is None else self.get(*found)

    def previous_champion(self, model: str) -> dict[str, Any] | None:
        """The latest earlier champion that is archived now: the default rollback target.

        Falls back to the newest archived version that passed its gate (or was
        bootstrapped) when compaction has removed the champion records.
        """
        return next(self.previous_champions(model), None)

    def previous_champions(self, model: str) -> Iterator[dict[str, Any]]:
        """Every rollback target, best first: the earlier champions that are archived now,
        latest first, then the other archived versions that passed their gate (or were
        bootstrapped), newest first. A worker that refuses the current champion's
        artifact serves the first of these it can verify."""
        current = self._slots["champion"].get(model)
        seen: set[str] = set()
        for version in self._champions.get(model, [])[::-1]:
            rec = self.get(model, version)
            if rec is None or version == current or version in seen:
                continue
            if rec["stage"] == "archived":
                seen.add(version)
                yield rec
        for old in self.versions(model)[::-1]:
            gate = old.get("gate")
            if old["version"] in seen or old["version"] == current:
                continue
            if old["stage"] == "archived" and (gate is None or gate.get("passed")):
                yield old


def restage(
    record: Mapping[str, Any], stage: str, *, by: str, reason: str, now_ms: int
) -> dict[str, Any]:
    """A copy of ``record`` in ``stage``, set by ``by`` for ``reason`` at ``now_ms``."""
    if stage not in STAGES:
        raise StageError(f"unknown stage {stage!r}; one of {STAGES}")
    if not by or not reason:
        raise StageError("a stage change needs who (by) and why (reason)")
    return {
        **record,
        "stage": stage,
        "stage_changed_at_ms": now_ms,
        "stage_changed_by": by,
        "stage_reason": reason,
    }


def transition(
    reg: Registry,
    model: str,
    version: str,
    stage: str,
    *,
    by: str,
    reason: str,
    now_ms: int,
    force: bool = False,
) -> list[dict[str, Any]]:
    """The records that move ``model/version`` into ``stage``, in publish order."""
    record = reg.get(model, version)
    if record is None:
        raise StageError(f"no version {registry_key(model, version)} in the registry")
    current = record["stage"]
    if current == stage:
        raise StageError(f"{registry_key(model, version)} is already {stage}")
    if stage not in ALLOWED.get(current, frozenset()) and not force:
        raise StageError(
            f"{registry_key(model, version)}: {current} -> {stage} is not allowed"
            + (" (use force)" if stage in SLOTS else "")
        )
    out = []
    if stage in SLOTS:
        holder = reg.champion(model) if stage == "champion" else reg.challenger(model)
        if holder is not None and holder["version"] != version:
            why = f"replaced by {version}: {reason}"
            out.append(restage(holder, "archived", by=by, reason=why, now_ms=now_ms))
    out.append(restage(record, stage, by=by, reason=reason, now_ms=now_ms))
    return out


def promote(
    reg: Registry, model: str, version: str, *, by: str, reason: str, now_ms: int, **kw: Any
) -> list[dict[str, Any]]:
    """Make ``version`` the champion (archiving the current one)."""
    return transition(reg, model, version, "champion", by=by, reason=reason, now_ms=now_ms, **kw)


def approve(
    reg: Registry, model: str, version: str, *, by: str, reason: str, now_ms: int
) -> list[dict[str, Any]]:
    """A person approves a version that passed its gate and waits (manual promotion)."""
    record = reg.get(model, version)
    if record is None:
        raise StageError(f"no version {registry_key(model, version)} in the registry")
    gate = record.get("gate")
    if record["stage"] not in ("candidate", "challenger") or not (gate and gate.get("passed")):
        raise StageError(
            f"{registry_key(model, version)} is {record['stage']}"
            f"{'' if gate and gate.get('passed') else ' and did not pass its gate'}: "
            "only a candidate or challenger that passed its gate can be approved"
        )
    return promote(reg, model, version, by=by, reason=f"approved: {reason}", now_ms=now_ms)


def rollback(
    reg: Registry,
    model: str,
    version: str | None = None,
    *,
    by: str,
    reason: str,
    now_ms: int,
) -> list[dict[str, Any]]:
    """Republish an earlier version (default: the previous champion) as champion."""
    if version is None:
        target = reg.previous_champion(model)
        if target is None:
            raise StageError(f"model {model} has no earlier champion to roll back to")
        version = target["version"]
    return promote(reg, model, version, by=by, reason=f"rollback: {reason}", now_ms=now_ms)
