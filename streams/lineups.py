"""The versions the worker serves, kept in step with the registry topic.

:class:`driftline.kafka.registry_follower.RegistryFollower` reads the registry on a
thread (from the beginning, no consumer group: every worker reads all of it) and folds
each ModelVersion into its :class:`~driftline.core.lifecycle.registry.Registry`; after
each batch, :class:`Lineups` loads the champion and every challenger of each model
(:meth:`Lineups.lineup`; a retired model has none, see :meth:`Lineups.retired`) through
:func:`driftline.core.model.estimators.load_version`, which checks the artifact's digest
and HMAC signature before unpickling. A refused artifact is never served: it raises an
``artifact_rejected`` alert and the previous version keeps serving: the one this worker
served, or, for a worker that starts with a refused champion on the registry, the
latest earlier champion whose artifact it can verify
(:meth:`~driftline.core.lifecycle.registry.Registry.previous_champions`). Lookups from the
scorer read one dict that is replaced whole, so they need no lock. The version gauges
and the refused-artifact counter are the worker's Prometheus metrics, kept here.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from driftline.core.errors import ArtifactError
from driftline.core.lifecycle.importance import ranked
from driftline.core.lifecycle.registry import Registry
from driftline.core.model.estimators import ServedModel, load_version
from driftline.core.wire.codec import Codec
from driftline.kafka.registry_follower import RegistryFollower
from driftline.settings import Settings
from driftline.streams import telemetry as m

log = logging.getLogger("driftline.streams.registry")  # the name logs have always shown

Lineup = tuple[ServedModel | None, tuple[ServedModel, ...]]
"""A model's champion and its challengers (oldest first), as served now."""


def _v(served: ServedModel | None) -> str:
    return "none" if served is None else served.version


def _vs(challengers: tuple[ServedModel, ...]) -> str:
    return ", ".join(c.version for c in challengers) or "none"


def rejected_alert(record: dict[str, Any], exc: ArtifactError, now_ms: int) -> dict[str, Any]:
    """The Alert for a version whose artifact a worker refused to load."""
    return {
        "alert_id": str(
            uuid.uuid5(
                uuid.NAMESPACE_URL, f"rejected/{record['model']}/{record['version']}/{exc.reason}"
            )
        ),
        "model": record["model"],
        "version": record["version"],
        "segment": None,
        "kind": "artifact_rejected",
        "severity": "critical",
        "message": (
            f"Refused to serve {record['model']} version {record['version']} as "
            f"{record['stage']}: {exc.reason} ({exc}); the previous version keeps serving."
        ),
        "evidence": {"reason": exc.reason, "stage": record["stage"]},
        "created_at_ms": now_ms,
    }


class Lineups:
    """Keeps ``served[model] = (champion, challengers)`` in step with the registry topic,
    which :attr:`follower` reads."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.follower = RegistryFollower(settings, codec=codec, on_change=on_change)
        self.key = settings.signing_key.get_secret_value().encode()
        self.on_alert = on_alert
        self.served: dict[str, Lineup] = {}
        self._retired: dict[str, dict[str, Any] | None] = {}
        """Retired models and the version each retired from the champion slot (None: no
        champion then); replaced whole, like ``served``, so other threads need no lock."""
        self._cache: dict[tuple[str, str, str], ServedModel] = {}
        self._refused: set[tuple[str, str, str]] = set()

    @property
    def registry(self) -> Registry:
        """The registry as read so far."""
        return self.follower.registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self.follower.registry = registry

    @property
    def ready(self) -> threading.Event:
        """Set once caught up with the registry's end at the start."""
        return self.follower.ready

    def lineup(self, model: str) -> Lineup:
        """(champion, challengers) served now for ``model``: every challenger scores in
        shadow. A retired model has neither."""
        return self.served.get(model, (None, ()))

    def retired(self, model: str) -> bool:
        """Whether ``model`` is retired (its events are not scored: ``model_retired``);
        a lookup cheap enough for every event."""
        return model in self._retired

    def retired_champion(self, model: str) -> dict[str, Any] | None:
        """For a retired ``model``, the record of the version retired from the champion
        slot (:meth:`~driftline.core.lifecycle.registry.Registry.retired_champion`)."""
        return self._retired.get(model)

    def run(self, stop: threading.Event) -> None:
        """Follow the topic until ``stop``; ``ready`` is set once caught up at start."""
        self.follower.run(stop, on_batch=self._reload, on_ready=self.announce)

    def announce(self) -> None:
        """One INFO line per model: what this worker serves once caught up (the switches
        replayed while catching up are not logged, each later switch is); one per retired
        model, which it serves not at all."""
        for model, (champion, challengers) in sorted(self.served.items()):
            also = ""
            if challengers:
                also = f", challenger{'s' if len(challengers) > 1 else ''} {_vs(challengers)}"
            log.info(
                "registry: serving %s champion %s%s (registry offset %s)", model,
                _v(champion), also, self._offset(model, champion),
            )  # fmt: skip
        for model in sorted(self._retired):
            log.info("registry: %s is retired: not served (driftline models unretire %s)",
                     model, model)  # fmt: skip

    def _offset(self, model: str, served: ServedModel | None) -> str:
        at = None if served is None else self.follower.offsets.get((model, served.version))
        return "?" if at is None else str(at)

    def _log_switch(self, model: str, old: Lineup, new: Lineup) -> None:
        """One INFO line per champion switch; one per change of the challengers (the set
        before and after, with the registry offset of the newest record added, else of the
        newest one gone), then one per challenger that starts or stops scoring in shadow
        (with its own record's offset, and the stage a dropped one went to); one more when
        the model is retired (nothing served)."""
        (before, was), (after, now) = old, new
        if _v(before) != _v(after):
            log.info(
                "registry: %s champion %s -> %s (registry offset %s)", model,
                _v(before), _v(after), self._offset(model, after if after else before),
            )  # fmt: skip
        had, kept = {c.version for c in was}, {c.version for c in now}
        if had != kept:
            added = [c for c in now if c.version not in had] or list(was)
            offsets = [self._offset(model, c) for c in added]
            at = max(offsets, key=lambda o: int(o) if o.isdigit() else -1)
            label = "challengers" if max(len(was), len(now)) > 1 else "challenger"
            log.info(
                "registry: %s %s %s -> %s (registry offset %s)", model, label,
                _vs(was), _vs(now), at,
            )  # fmt: skip
        for c in was:
            if c.version not in kept:
                record = self.registry.get(model, c.version)
                log.info(
                    "registry: %s challenger %s dropped, now %s; %d in shadow"
                    " (registry offset %s)", model, c.version,
                    "gone" if record is None else record["stage"], len(now),
                    self._offset(model, c),
                )  # fmt: skip
        for c in now:
            if c.version not in had:
                log.info(
                    "registry: %s challenger %s added; %d in shadow (registry offset %s)",
                    model, c.version, len(now), self._offset(model, c),
                )  # fmt: skip
        if (before is not None or was) and after is None and self.registry.retired(model):
            log.info("registry: %s retired: not served, its events are dead-lettered "
                     "(model_retired)", model)  # fmt: skip

    def _load(self, record: dict[str, Any] | None) -> ServedModel | None:
        if record is None:
            return None
        ident = (record["model"], record["version"], record["artifact"]["sha256"])
        if ident in self._cache:
            return self._cache[ident]
        if ident in self._refused:
            return None
        try:
            served = load_version(record, self.key)
        except ArtifactError as exc:
            self._refused.add(ident)
            m.ARTIFACTS_REJECTED.labels(record["model"], exc.reason).inc()
            log.error("registry: refused %s/%s: %s", record["model"], record["version"], exc)
            if self.on_alert is not None:
                self.on_alert(rejected_alert(record, exc, int(time.time() * 1000)))
            return None
        for old in [k for k in self._cache if k[:2] == ident[:2]]:
            del self._cache[old]  # an online version's earlier checkpoint: not kept
        self._cache[ident] = served
        return served

    def _fallback(self, model: str) -> ServedModel | None:
        """The first earlier champion of ``model`` whose artifact verifies, if any."""
        for record in self.registry.previous_champions(model):
            served = self._load(record)
            if served is not None:
                log.warning(
                    "registry: champion of %s refused; serving the earlier champion %s",
                    model, served.version,
                )  # fmt: skip
                return served
        return None

    def _reload(self) -> None:
        served: dict[str, Lineup] = {}
        for model in self.registry.models():  # retired models are left out
            previous = self.served.get(model, (None, ()))
            record = self.registry.champion(model)
            champion = self._load(record)
            if champion is None:
                # a refused artifact, or the moment between "old champion archived" and
                # "new champion" when they arrive apart: keep serving the last good one
                champion = previous[0]
            if champion is None and record is not None:  # refused, and nothing served yet
                champion = self._fallback(model)
            loaded = (self._load(r) for r in self.registry.challengers(model))
            challengers = tuple(c for c in loaded if c is not None)
            served[model] = (champion, challengers)
        for model in sorted(set(served) | set(self.served)):  # with models retired since
            before, after = self.served.get(model, (None, ())), served.get(model, (None, ()))
            if self.ready.is_set():
                self._log_switch(model, before, after)
            self._label(model, before, after)
        retired = {
            model: self.registry.retired_champion(model)
            for model in self.registry.models(retired=True)
            if self.registry.retired(model)
        }
        # a model retired now is refused before it leaves `served`, and one back is served
        # before it stops being refused: no event of it is ever an unknown model
        self._retired = {**self._retired, **retired}
        self.served = served
        self._retired = retired

    @staticmethod
    def _label(model: str, old: Lineup, new: Lineup) -> None:
        """``driftline_model_version_info``: 1 for each version served now, 0 for one
        that stopped being served in its stage."""

        def roles(lineup: Lineup) -> set[tuple[str, str]]:
            champion, challengers = lineup
            out = {(c.version, "challenger") for c in challengers}
            return out | ({(champion.version, "champion")} if champion is not None else set())

        now = roles(new)
        for version, stage in now:
            m.MODEL_VERSION_INFO.labels(model, version, stage).set(1)
        for version, stage in roles(old) - now:
            m.MODEL_VERSION_INFO.labels(model, version, stage).set(0)
        Lineups._importance(model, old, new)

    @staticmethod
    def _importance(model: str, old: Lineup, new: Lineup) -> None:
        """``driftline_feature_importance`` for each version served now (from its
        lineage); a version no longer served loses its series."""

        def importances(lineup: Lineup) -> dict[str, list[tuple[str, float, float]]]:
            champion, challengers = lineup
            served = [*([champion] if champion is not None else []), *challengers]
            return {
                s.version: ranked((getattr(s, "record", None) or {}).get("lineage", {}).get(
                    "importance"))
                for s in served
            }  # fmt: skip

        now, before = importances(new), importances(old)
        for version, features in now.items():
            for feature, mean, _std in features:
                m.FEATURE_IMPORTANCE.labels(model, version, feature).set(mean)
        for version in before.keys() - now.keys():
            for feature, _mean, _std in before[version]:
                m.FEATURE_IMPORTANCE.remove(model, version, feature)
