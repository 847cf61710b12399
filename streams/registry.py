"""Follow the compacted registry topic and keep the served versions loaded.

A thread reads the registry from the beginning (no consumer group: every worker reads
all of it), folds each ModelVersion into :class:`driftline.core.lifecycle.registry.Registry`, and
loads the champion and challenger of each model through
:func:`driftline.core.model.estimators.load_version`, which checks the artifact's digest and
HMAC signature before unpickling. A refused artifact is never served: it raises an
``artifact_rejected`` alert and the previous version keeps serving: the one this worker
served, or, for a worker that starts with a refused champion on the registry, the
latest earlier champion whose artifact it can verify
(:meth:`~driftline.core.lifecycle.registry.Registry.previous_champions`). Lookups from the
scorer read one dict that is replaced whole, so they need no lock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from driftline.core.wire.codec import Codec
from driftline.core.errors import ArtifactError, DriftlineError
from driftline.core.model.estimators import ServedModel, load_version
from driftline.core.lifecycle.registry import Registry
from driftline.kafka.clients import confluent_common
from driftline.settings import Settings
from driftline.streams import telemetry as m

log = logging.getLogger(__name__)

MODEL_VERSION = "io.driftline.ModelVersion"
Served = tuple[ServedModel | None, ServedModel | None]


def _v(served: ServedModel | None) -> str:
    return "none" if served is None else served.version


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


class RegistryFollower:
    """Keeps ``served[model] = (champion, challenger)`` in step with the registry topic."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.topic = settings.topic("registry")
        self.codec = codec
        self.key = settings.signing_key.get_secret_value().encode()
        self.on_alert = on_alert
        self.on_change = on_change
        self.registry = Registry()
        self.served: dict[str, Served] = {}
        self._cache: dict[tuple[str, str, str], ServedModel] = {}
        self._refused: set[tuple[str, str, str]] = set()
        self._offsets: dict[tuple[str, str], int] = {}
        """Registry offset of the newest record of each (model, version)."""
        self.ready = threading.Event()
        conf = confluent_common(settings, "registry")
        conf.update(
            {
                "group.id": f"{settings.group('registry')}-unused",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.consumer = Consumer(conf)

    def versions(self, model: str) -> Served:
        """(champion, challenger) served now for ``model``."""
        return self.served.get(model, (None, None))

    def run(self, stop: threading.Event) -> None:
        """Follow the topic until ``stop``; ``ready`` is set once caught up at start."""
        tp = TopicPartition(self.topic, 0, OFFSET_BEGINNING)
        self.consumer.assign([tp])
        _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=30)
        if high <= 0:
            self.ready.set()
        try:
            while not stop.is_set():
                msgs = self.consumer.consume(500, 0.2)
                for msg in msgs:
                    if msg.error() is None:
                        self._apply(msg.key(), msg.value(), msg.offset() or 0)
                if msgs:
                    self._reload()
                if not self.ready.is_set():
                    pos = self.consumer.position([TopicPartition(self.topic, 0)])[0].offset
                    if pos >= high:
                        self.ready.set()
                        self.announce()
        finally:
            self.consumer.close()

    def announce(self) -> None:
        """One INFO line per model: what this worker serves once caught up (the switches
        replayed while catching up are not logged, each later switch is)."""
        for model, (champion, challenger) in sorted(self.served.items()):
            log.info(
                "registry: serving %s champion %s%s (registry offset %s)", model,
                _v(champion), "" if challenger is None else f", challenger {challenger.version}",
                self._offset(model, champion),
            )  # fmt: skip

    def _offset(self, model: str, served: ServedModel | None) -> str:
        at = None if served is None else self._offsets.get((model, served.version))
        return "?" if at is None else str(at)

    def _apply(self, key: bytes | None, value: bytes | None, offset: int = -1) -> None:
        try:
            if value is None:
                if key and b"/" in key:
                    model, version = key.decode().split("/", 1)
                    self.registry.delete(model, version)
                return
            record = self.codec.decode(value, expect=MODEL_VERSION).value
            self._offsets[(record["model"], record["version"])] = offset
            change = self.registry.apply(record)
            if change is not None and self.on_change is not None:
                self.on_change(record)
        except DriftlineError as exc:
            log.error("registry: skipped an unreadable record with key %r: %s", key, exc)

    def _log_switch(self, model: str, old: Served, new: Served) -> None:
        """One INFO line per champion (or challenger) switch, with the registry offset of
        the record that made it."""
        for i, stage in enumerate(("champion", "challenger")):
            before, after = old[i], new[i]
            if _v(before) != _v(after):
                log.info(
                    "registry: %s %s %s -> %s (registry offset %s)", model, stage,
                    _v(before), _v(after), self._offset(model, after if after else before),
                )  # fmt: skip

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
        served: dict[str, Served] = {}
        for model in self.registry.models():
            previous = self.served.get(model, (None, None))
            record = self.registry.champion(model)
            champion = self._load(record)
            if champion is None:
                # a refused artifact, or the moment between "old champion archived" and
                # "new champion" when they arrive apart: keep serving the last good one
                champion = previous[0]
            if champion is None and record is not None:  # refused, and nothing served yet
                champion = self._fallback(model)
            challenger = self._load(self.registry.challenger(model))
            served[model] = (champion, challenger)
            if self.ready.is_set():
                self._log_switch(model, previous, (champion, challenger))
            for stage, s in (("champion", champion), ("challenger", challenger)):
                if s is not None:
                    m.MODEL_VERSION_INFO.labels(model, s.version, stage).set(1)
            for stage, old in (("champion", previous[0]), ("challenger", previous[1])):
                new = champion if stage == "champion" else challenger
                if old is not None and (new is None or new.version != old.version):
                    m.MODEL_VERSION_INFO.labels(model, old.version, stage).set(0)
        self.served = served
