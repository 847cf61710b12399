"""The model registry as state: ModelVersion records applied in registry-topic order.

Every stage change is one ModelVersion record (the whole version, with its new stage,
``stage_changed_by`` and ``stage_reason``) published on the compacted registry topic
under the key ``model/version`` (:func:`registry_key`). :class:`Registry` folds them
into the current state; the functions below compute the records a stage change
publishes, in publish order. Stages::

    candidate ──▶ challenger ──▶ champion ──▶ archived ──▶ champion (rollback)
        │             │   │          │             │
        └──▶ rejected ◀┘   └─────────┴──▶ retired  └──▶ challenger

A model has at most one champion and ``max_challengers`` challengers (default
:data:`MAX_CHALLENGERS`, 3; the worker scores every one of them in shadow): a version
becoming champion archives the champion, and one challenger past the cap archives the
oldest challenger, saying so in its stage reason (the archive records are published
first). A rollback republishes an earlier version as champion. Who and why travel in
every record, so a manual approval is recorded like any other change.

A model is **retired** (:func:`retire`) by moving its champion and challengers (or, with
none, its newest version) to ``retired``: it is then served by no worker (its events are
dead-lettered as ``model_retired``) and left out of :meth:`Registry.models` (listings),
while every version stays on the topic. :func:`unretire` moves each retired version
back to the stage it left (``previous_stage``, ModelVersion v2), so the champion serves
again. A retired model's versions cannot enter a slot otherwise.

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
    "MAX_CHALLENGERS",
    "STAGES",
    "Registry",
    "StageChange",
    "approve",
    "promote",
    "registry_key",
    "restage",
    "retire",
    "rollback",
    "transition",
    "unretire",
]

STAGES = ("candidate", "challenger", "champion", "archived", "rejected", "retired")
SLOTS = ("champion", "challenger")
MAX_CHALLENGERS = 3
"""Challengers a model holds at most, unless the writer says otherwise
(``DRIFTLINE_MAX_CHALLENGERS``)."""
ALLOWED: dict[str, frozenset[str]] = {
    "candidate": frozenset({"challenger", "champion", "rejected", "archived"}),
    "challenger": frozenset({"champion", "archived", "rejected", "retired"}),
    "champion": frozenset({"archived", "retired"}),
    "archived": frozenset({"champion", "challenger"}),
    "rejected": frozenset(),
    "retired": frozenset(),
}
"""Stage changes allowed without ``force`` (a retired version leaves with :func:`unretire`)."""


def registry_key(model: str, version: str) -> str:
    """The registry topic key of a version: ``model/version``."""
    return f"{model}/{version}"


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
        self._champion: dict[str, str] = {}
        self._challengers: dict[str, list[str]] = {}  # in the order they became challenger
        self._champions: dict[str, list[str]] = {}  # versions in the order they became champion
        self._answered: dict[str, tuple[str, str]] = {}
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
        if stage not in STAGES:
            raise StageError(f"{registry_key(model, version)}: unknown stage {stage!r}")
        versions = self._versions.setdefault(model, {})
        old = versions.get(version)
        if old is not None and _fingerprint(old) == _fingerprint(record):
            return None
        versions[version] = dict(record)
        if stage == "champion":
            self._champion[model] = version
        elif self._champion.get(model) == version:
            del self._champion[model]
        challengers = self._challengers.setdefault(model, [])
        if stage == "challenger" and version not in challengers:
            challengers.append(version)
        elif stage != "challenger" and version in challengers:
            challengers.remove(version)
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
        if self._champion.get(model) == version:
            del self._champion[model]
        if version in self._challengers.get(model, []):
            self._challengers[model].remove(version)

    def models(self, *, retired: bool = False) -> list[str]:
        """Every model with a version, retired ones only if ``retired``."""
        return sorted(m for m in self._versions if retired or not self.retired(m))

    def retired(self, model: str) -> bool:
        """Whether ``model`` is retired: a version of it is, and none holds a slot."""
        found = self._versions.get(model, {}).values()
        return (
            any(r["stage"] == "retired" for r in found)
            and model not in self._champion
            and not self._challengers.get(model)
        )

    def retired_champion(self, model: str) -> dict[str, Any] | None:
        """For a retired ``model``, the version retired from the champion slot (the
        newest such): what labels of its earlier predictions are still checked against.
        None for a model that is not retired, or was retired without a champion."""
        if not self.retired(model):
            return None
        found = [
            r
            for r in self.versions(model)
            if r["stage"] == "retired" and r.get("previous_stage") == "champion"
        ]
        return max(found, key=lambda r: r["stage_changed_at_ms"]) if found else None

    def get(self, model: str, version: str) -> dict[str, Any] | None:
        return self._versions.get(model, {}).get(version)

    def versions(self, model: str) -> list[dict[str, Any]]:
        """Every version of ``model``, oldest first (by creation time, then first seen)."""
        found = list(self._versions.get(model, {}).values())
        return sorted(found, key=lambda r: r["created_at_ms"])

    def champion(self, model: str) -> dict[str, Any] | None:
        version = self._champion.get(model)
        return None if version is None else self.get(model, version)

    def challengers(self, model: str) -> list[dict[str, Any]]:
        """Every challenger of ``model``, in the order they became one (oldest first)."""
        found = (self.get(model, v) for v in self._challengers.get(model, []))
        return [r for r in found if r is not None]

    def challenger(self, model: str) -> dict[str, Any] | None:
        """The newest challenger of ``model`` (see :meth:`challengers` for all)."""
        found = self.challengers(model)
        return found[-1] if found else None

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
        current = self._champion.get(model)
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
        "previous_stage": record["stage"],
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
    max_challengers: int = MAX_CHALLENGERS,
) -> list[dict[str, Any]]:
    """The records that move ``model/version`` into ``stage``, in publish order: first
    the archiving of the champion it replaces, or of the oldest challengers past
    ``max_challengers``."""
    record = reg.get(model, version)
    if record is None:
        raise StageError(f"no version {registry_key(model, version)} in the registry")
    if max_challengers < 1:
        raise StageError(f"max_challengers must be >= 1, not {max_challengers}")
    if stage in SLOTS and reg.retired(model) and not force:
        raise StageError(
            f"model {model} is retired: `driftline models unretire {model}` first (or force)"
        )
    current = record["stage"]
    if current == stage:
        raise StageError(f"{registry_key(model, version)} is already {stage}")
    if stage not in ALLOWED.get(current, frozenset()) and not force:
        raise StageError(
            f"{registry_key(model, version)}: {current} -> {stage} is not allowed"
            + (" (use force)" if stage in SLOTS else "")
        )
    out = []
    holder = reg.champion(model)
    if stage == "champion" and holder is not None and holder["version"] != version:
        why = f"replaced by {version}: {reason}"
        out.append(restage(holder, "archived", by=by, reason=why, now_ms=now_ms))
    if stage == "challenger":
        others = [r for r in reg.challengers(model) if r["version"] != version]
        for old in others[: max(0, len(others) + 1 - max_challengers)]:
            why = (
                f"the oldest of {len(others)} challengers, archived for {version}"
                f" (at most {max_challengers}): {reason}"
            )
            out.append(restage(old, "archived", by=by, reason=why, now_ms=now_ms))
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


def retire(reg: Registry, model: str, *, by: str, reason: str, now_ms: int) -> list[dict[str, Any]]:
    """The records that retire ``model``: its challengers, then its champion (with
    neither, its newest version) move to ``retired``; every version stays on the topic."""
    versions = reg.versions(model)
    if not versions:
        raise StageError(f"no model {model} in the registry")
    if reg.retired(model):
        raise StageError(f"model {model} is retired already")
    champion = reg.champion(model)
    holders = [*reg.challengers(model), *([champion] if champion is not None else [])]
    why = f"model retired: {reason}"
    return [
        restage(r, "retired", by=by, reason=why, now_ms=now_ms) for r in holders or versions[-1:]
    ]


def unretire(
    reg: Registry,
    model: str,
    *,
    by: str,
    reason: str,
    now_ms: int,
    max_challengers: int = MAX_CHALLENGERS,
) -> list[dict[str, Any]]:
    """The records that bring a retired ``model`` back: each retired version returns to
    the stage it left (champion and challengers, at most ``max_challengers`` of them,
    the newest), any other to ``archived``. A version retired by a writer older than
    ModelVersion v2 (no ``previous_stage``) goes to ``archived``: then promote one."""
    if not reg.retired(model):
        raise StageError(f"model {model} is not retired")
    retired = sorted(
        (r for r in reg.versions(model) if r["stage"] == "retired"),
        key=lambda r: r["stage_changed_at_ms"],
    )
    champions = [r for r in retired if r.get("previous_stage") == "champion"]
    challengers = [r for r in retired if r.get("previous_stage") == "challenger"]
    keep = {r["version"] for r in [*champions[-1:], *challengers[-max_challengers:]]}
    why = f"model unretired: {reason}"
    out = []
    for r in retired:
        back = r.get("previous_stage") if r["version"] in keep else "archived"
        out.append(restage(r, str(back), by=by, reason=why, now_ms=now_ms))
    # archives first, then challengers, the champion last: a reader never sees two champions
    order = {"archived": 0, "challenger": 1, "champion": 2}
    return sorted(out, key=lambda r: order.get(r["stage"], 0))
