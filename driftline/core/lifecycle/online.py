# mypy: disable-error-code="no-untyped-call"
# (river ships py.typed but leaves most of its estimators unannotated)
"""A challenger that learns from every outcome as the join produces it.

An :class:`OnlineLearner` holds one river estimator built by a factory of the models
file (``[models.NAME.online]``, :class:`~driftline.core.model.config.OnlineConfig`).
Each outcome of its model is *test-then-train*: the learner predicts the outcome's
features, scores that prediction against the label (its prequential accuracy or MAE),
then learns the row. It is served like any version: its :meth:`checkpoint` is a
ModelVersion record (stage ``challenger``, or ``champion`` once promoted) whose signed
artifact is the estimator as it is now, and the scorer, which follows the registry,
scores live traffic with it. Its version name (``online-<n>``) stays the same across
checkpoints, so its predictions, outcomes and metrics are one series; each checkpoint
has its own artifact digest.

**Exactly-once learning.** Every outcome is read with its topic, partition and offset.
The learner keeps, per partition, the offset after the last outcome it consumed, and a
checkpoint records those offsets (``lineage.data_ranges``: from where the learner
started to where its state stands). A learner resumed from a checkpoint
(:meth:`resume`) skips every outcome below them: an outcome is in a checkpoint's state
exactly when its offset is below the checkpoint's end offsets, so after a crash each
outcome is learnt once, and outcomes learnt after the last checkpoint are learnt again
into the restored state (which did not hold them).

**Cost.** ``learn_fraction`` < 1 learns a deterministic sample of the outcomes (by a
hash of the event id; every outcome still counts in the prequential score), for
learners too slow for the outcome rate (``river.forest.ARFClassifier`` learns a row in
1.2-1.5 ms: one core learns at most ~800 outcomes/s).

>>> from driftline.core.model.config import OnlineConfig
>>> learner = OnlineLearner.start("churn", "classification",
...     OnlineConfig(factory="hoeffding_tree", checkpoint_every=50), number=1,
...     started_at_ms=0)
>>> for i in range(120):
...     _ = learner.learn({"event_id": f"e{i}", "model": "churn", "features": {"x": i % 2},
...                        "label": i % 2 == 1, "event_time_ms": i, "segment": {}},
...                       ("o", 0, i))
>>> learner.version, learner.learned, learner.next_offsets
('online-1', 120, {('o', 0): 120})
>>> learner.checkpoint_due(now_ms=10)
True
>>> record = learner.checkpoint(now_ms=10, key=b"k", feature_spec=[])
>>> record["version"], record["stage"], record["lineage"]["rows"]
('online-1', 'checkpoint', 120)
>>> record["lineage"]["data_ranges"]
[{'topic': 'o', 'partition': 0, 'start_offset': 0, 'end_offset': 120}]
>>> again = OnlineLearner.resume(record, b"k", OnlineConfig(factory="hoeffding_tree"))
>>> again.learn({"event_id": "e5", "model": "churn", "features": {"x": 1}, "label": True,
...              "event_time_ms": 5, "segment": {}}, ("o", 0, 5))  # already in the state
False
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from driftline.core.errors import ConfigError
from driftline.core.lifecycle.registry import CHECKPOINT, ONLINE_PREFIX, is_online
from driftline.core.model.artifact import serialize
from driftline.core.model.config import OnlineConfig
from driftline.core.model.estimators import (
    ServedModel,
    artifact_record,
    build,
    is_finite_output,
    load_version,
)
from driftline.core.model.validation import Spec
from driftline.core.watch.profile import ReferenceProfile

__all__ = ["ONLINE_PREFIX", "OnlineLearner", "is_online"]

Position = tuple[str, int, int]
"""(topic, partition, offset) of an outcome."""
PROFILE_ROWS = 2_000
"""Rows (features and the learner's own predictions) a checkpoint's reference profile
is built from: the newest ones learnt."""
PROFILE_EVERY_MS = 60_000
"""A checkpoint rebuilds the profile at most this often; between, it repeats the last."""
Store = Callable[[str, str, bytes], str]
"""``(model, name, data) -> uri``: keeps an artifact too large to travel inline."""


def _sampled(event_id: str, fraction: float) -> bool:
    """Deterministic: the same event is in or out of the sample in every run."""
    if fraction >= 1:
        return True
    h = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")
    return h < fraction * 2**64


def _key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


class OnlineLearner:
    """One model's online challenger (see the module docstring)."""

    def __init__(
        self,
        model: str,
        task: str,
        config: OnlineConfig,
        estimator: Any,
        version: str,
        *,
        started_at_ms: int,
        start_offsets: Mapping[tuple[str, int], int] | None = None,
        next_offsets: Mapping[tuple[str, int], int] | None = None,
        learned: int = 0,
        earlier_rows: int = 0,
        earlier_version: str | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.config = config
        self.estimator = estimator
        self.version = version
        self.started_at_ms = started_at_ms
        self.start_offsets: dict[tuple[str, int], int] = dict(start_offsets or {})
        self.next_offsets: dict[tuple[str, int], int] = dict(next_offsets or {})
        self.learned = learned
        self.earlier_rows = earlier_rows
        """Rows of ``earlier_version``'s training sample learnt before any outcome."""
        self.earlier_version = earlier_version
        self.since_checkpoint = 0
        self.last_checkpoint_ms: int | None = None
        self._served = ServedModel(model, version, task, estimator, Spec(()), "{}")
        self._window: deque[float] = deque(maxlen=config.window)
        self._recent: deque[tuple[Mapping[str, Any], Any, dict[str, float]]] = deque(
            maxlen=PROFILE_ROWS
        )
        self._profile: tuple[int, str] | None = None
        """(when, JSON) of the reference profile the last checkpoints carried."""

    @classmethod
    def start(
        cls,
        model: str,
        task: str,
        config: OnlineConfig,
        *,
        number: int,
        started_at_ms: int,
        earlier: Sequence[Mapping[str, Any]] = (),
        earlier_version: str | None = None,
    ) -> OnlineLearner:
        """A fresh learner named ``online-<number>``. ``earlier`` rows (training examples,
        e.g. the champion ``earlier_version``'s training sample) are learnt first, in
        event-time order, so that the learner does not start cold: they are no outcomes
        (no offsets, not in ``learned``, no checkpoint due for them) and the checkpoints'
        lineage names them (``earlier_rows``, ``earlier_version``).

        >>> rows = [{"features": {"x": i % 2}, "label": i % 2 == 1, "event_time_ms": i}
        ...         for i in range(40)]
        >>> learner = OnlineLearner.start("m", "classification",
        ...     OnlineConfig(factory="hoeffding_tree"), number=1, started_at_ms=0,
        ...     earlier=rows, earlier_version="v1")
        >>> learner.learned, learner.earlier_rows, learner.next_offsets
        (0, 40, {})
        """
        estimator = build(config.factory, config.params, config.seed)
        seeded = 0
        for r in sorted(earlier, key=lambda r: r.get("event_time_ms") or 0):
            y = r.get("label")
            if y is None:
                continue
            x = {k: v for k, v in (r.get("features") or {}).items() if v is not None}
            estimator.learn_one(x, float(y) if task == "regression" else y)
            seeded += 1
        return cls(model, task, config, estimator, f"{ONLINE_PREFIX}{number}",
                   started_at_ms=started_at_ms, earlier_rows=seeded,
                   earlier_version=earlier_version if seeded else None)  # fmt: skip

    @classmethod
    def resume(cls, record: Mapping[str, Any], key: bytes, config: OnlineConfig) -> OnlineLearner:
        """The learner a checkpoint record describes (its artifact verified first)."""
        served = load_version(record, key)
        lineage = record["lineage"]
        ranges = lineage.get("data_ranges") or []
        return cls(
            record["model"], record["task"], config, served.model, record["version"],
            started_at_ms=int(lineage.get("started_at_ms") or record["created_at_ms"]),
            start_offsets={(r["topic"], r["partition"]): r["start_offset"] for r in ranges},
            next_offsets={(r["topic"], r["partition"]): r["end_offset"] for r in ranges},
            learned=int(lineage.get("rows") or 0),
            earlier_rows=int(lineage.get("earlier_rows") or 0),
            earlier_version=lineage.get("earlier_version"),
        )  # fmt: skip

    # -- learning -------------------------------------------------------------------

    def learn(self, outcome: Mapping[str, Any], position: Position | None = None) -> bool:
        """Test then train on one outcome of the model; False when ``position`` is already
        in the learner's state (or the outcome has no label)."""
        if position is not None:
            topic, partition, offset = position
            tp = (topic, partition)
            if offset < self.next_offsets.get(tp, -1):
                return False
            self.next_offsets[tp] = offset + 1
            self.start_offsets.setdefault(tp, offset)
        y = outcome.get("label")
        if y is None:
            return False
        features = outcome.get("features") or {}
        value, scores = self._served.predict_one(features)
        if value is not None and is_finite_output(value, scores):
            self._recent.append((features, value, scores))
            if self.task == "classification":
                self._window.append(float(_key(value) == _key(y)))
            else:
                self._window.append(abs(float(value) - float(y)))
        if _sampled(str(outcome.get("event_id", "")), self.config.learn_fraction):
            x = {k: v for k, v in features.items() if v is not None}
            self.estimator.learn_one(x, float(y) if self.task == "regression" else y)
            self.learned += 1
            self.since_checkpoint += 1
        return True

    @property
    def prequential(self) -> dict[str, float]:
        """Test-then-train score over the last ``config.window`` outcomes."""
        if not self._window:
            return {}
        mean = sum(self._window) / len(self._window)
        name = "accuracy" if self.task == "classification" else "mae"
        return {name: mean, "count": float(len(self._window))}

    # -- checkpoints ----------------------------------------------------------------

    def checkpoint_due(self, now_ms: int, *, serving: bool = False) -> bool:
        """Whether to checkpoint now: ``checkpoint_every`` rows learnt since the last
        one, but not sooner than ``checkpoint_min_ms`` after it; or anything learnt and
        ``checkpoint_max_ms`` passed. While the learner is ``serving`` (the champion: the
        scorer serves its newest checkpoint), every ``checkpoint_min_ms`` with anything
        learnt: what it learnt serves that much sooner, whatever the rows' count.

        >>> from driftline.core.model.config import OnlineConfig
        >>> learner = OnlineLearner.start("m", "classification", OnlineConfig(
        ...     factory="hoeffding_tree", checkpoint_every=500, checkpoint_min_ms=250),
        ...     number=1, started_at_ms=0)
        >>> learner.last_checkpoint_ms, learner.since_checkpoint = 1_000, 100
        >>> [learner.checkpoint_due(t) for t in (1_200, 1_300)]
        [False, False]
        >>> [learner.checkpoint_due(t, serving=True) for t in (1_200, 1_300)]
        [False, True]
        """
        if self.since_checkpoint == 0:
            return False
        last = self.last_checkpoint_ms
        if last is None:
            return self.since_checkpoint >= self.config.checkpoint_every
        waited = now_ms - last
        if waited >= self.config.checkpoint_max_ms:
            return True
        if waited < self.config.checkpoint_min_ms:
            return False
        return serving or self.since_checkpoint >= self.config.checkpoint_every

    def checkpoint(
        self,
        now_ms: int,
        key: bytes,
        feature_spec: Sequence[Mapping[str, Any]],
        *,
        score_class: str | None = None,
        code: str = "",
        host: str | None = None,
        inline_max_bytes: int = 512_000,
        store: Store | None = None,
    ) -> dict[str, Any]:
        """The learner as a checkpoint record (a ModelVersion record in the pseudo-stage
        ``checkpoint``, see driftline.core.lifecycle.registry): its signed artifact as it
        is now and the outcome offsets its state holds. It never changes the version's
        stage: the first time, publish :func:`~driftline.core.lifecycle.registry.restage`
        of it as a challenger too. An artifact over ``inline_max_bytes`` goes to
        ``store`` under a name with its digest, so a reader of an older record never
        reads newer bytes. The reference profile (for drift, once it serves) is of the
        newest rows learnt and the learner's predictions of them, rebuilt at most every
        ``PROFILE_EVERY_MS``."""
        blob = serialize(self.estimator, canonical=False)  # a snapshot, several a second
        self.since_checkpoint = 0
        self.last_checkpoint_ms = now_ms
        artifact = artifact_record(blob, key)
        if len(blob) > inline_max_bytes:
            if store is None:
                raise ConfigError(f"online artifact of {len(blob)} bytes is too large to "
                                  "travel inline and no artifact store is set")  # fmt: skip
            name = f"{self.version}-{artifact['sha256'][:16]}"
            artifact = artifact_record(blob, key, uri=store(self.model, name, blob))
        ranges = [
            {"topic": t, "partition": p, "start_offset": self.start_offsets.get((t, p), end),
             "end_offset": end}
            for (t, p), end in sorted(self.next_offsets.items())
        ]  # fmt: skip
        cfg = self.config
        return {
            "model": self.model,
            "version": self.version,
            "stage": CHECKPOINT,
            "stage_changed_at_ms": now_ms,
            "stage_changed_by": "online-learner",
            "stage_reason": f"{self.learned} outcomes learnt online by {cfg.factory}",
            "created_at_ms": self.started_at_ms,
            "task": self.task,
            "factory": cfg.factory,
            "feature_spec": [dict(f) for f in feature_spec],
            "metrics": self.prequential,
            "segment_metrics": {},
            "reference_profile": self._reference_profile(now_ms, feature_spec, score_class),
            "lineage": {
                "trigger_id": None,
                "trigger_key": None,
                "training_run_id": str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"online/{self.model}/{self.version}")
                ),
                "data_ranges": ranges,
                "rows": self.learned,
                "holdout_rows": None,
                "code_version": code,
                "params": {k: v if isinstance(v, str) else repr(v) for k, v in cfg.params.items()},
                "seed": cfg.seed,
                "champion_version": None,
                "started_at_ms": self.started_at_ms,
                "finished_at_ms": now_ms,
                "host": host if host is not None else socket.gethostname(),
                "step_ms": {},
                "earlier_rows": self.earlier_rows,
                "earlier_version": self.earlier_version,
            },
            "gate": None,
            "artifact": artifact,
        }

    def _reference_profile(
        self, now_ms: int, spec: Sequence[Mapping[str, Any]], score_class: str | None
    ) -> str:
        if self._profile is None or now_ms - self._profile[0] >= PROFILE_EVERY_MS:
            rows = list(self._recent)
            classify = self.task == "classification"
            profile = ReferenceProfile.build(
                (f for f, _, _ in rows),
                spec,
                predictions=[p for _, p, _ in rows] if rows else None,
                scores=[s for _, _, s in rows] if rows and classify else None,
                task=self.task,
                score_class=score_class,
            )
            self._profile = (now_ms, profile.to_json())
        return self._profile[1]
