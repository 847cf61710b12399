"""Follow the registry topic (from its beginning, no consumer group) into a Registry.

One follower for every reader of the registry: the worker follows it on a thread
(:meth:`RegistryFollower.run`, with a callback after each batch that loads the served
versions, ``streams.lineups``), the trainer, its live loop and the CLI catch up with it
when they need it (:meth:`RegistryFollower.catch_up`, :func:`read_registry`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message, TopicPartition

from driftline.core.errors import DriftlineError
from driftline.core.lifecycle.registry import Registry, StageChange
from driftline.core.wire.codec import Codec, default_codec
from driftline.kafka.helpers import Offsets, consume_to_end, reader, take_batch
from driftline.settings import Settings

log = logging.getLogger("driftline.registry")

MODEL_VERSION = "io.driftline.ModelVersion"


class RegistryFollower:
    """Follows the registry topic from its beginning into :attr:`registry`.

    ``on_change(record)`` is called for each record that changed a version's stage.
    :attr:`offsets` keeps the registry offset of the newest record of each (model,
    version), for the worker's log lines. The partitions are looked up on first use,
    so a follower can be built (and fed by :meth:`apply`) without a broker.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        *,
        codec: Codec | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic("registry")
        self.registry = registry if registry is not None else Registry()
        self.codec = codec if codec is not None else default_codec()
        self.on_change = on_change
        self.offsets: dict[tuple[str, str], int] = {}
        """Registry offset of the newest record of each (model, version)."""
        self.ready = threading.Event()
        """Set by :meth:`run` once caught up with the registry's end at its start."""
        self.consumer = reader(settings, "registry", **{"enable.partition.eof": True})
        self.position: dict[tuple[str, int], int] = {}
        self.complete = False
        """Whether the last :meth:`catch_up` reached the end it was asked for (else it
        stopped short: the broker away, a transaction left open)."""
        self._parts: list[int] | None = None
        self._admin: Offsets | None = None

    def _assign(self) -> list[int]:
        """The registry's partitions, assigned from offset 0 on first use."""
        if self._parts is None:
            self._admin = Offsets(self.settings)
            self._parts = self._admin.partitions(self.topic)
            self.consumer.assign([TopicPartition(self.topic, p, 0) for p in self._parts])
            self.position = dict.fromkeys(((self.topic, p) for p in self._parts), 0)
        return self._parts

    def apply(self, key: bytes | None, value: bytes | None, offset: int = -1) -> StageChange | None:
        """Fold one registry record (a tombstone when ``value`` is None) into the
        registry; the stage change it made, if any. An unreadable record is logged and
        skipped."""
        try:
            if value is None:  # a tombstone: model/version deleted
                model, _, version = (key or b"").decode().partition("/")
                if version and not version.endswith("@checkpoint"):  # a checkpoint's: stays
                    self.registry.delete(model, version)
                return None
            record = self.codec.decode(value, expect=MODEL_VERSION).value
            self.offsets[(record["model"], record["version"])] = offset
            change = self.registry.apply(record)
            if change is not None and self.on_change is not None:
                self.on_change(record)
            return change
        except DriftlineError as exc:
            log.error("registry: skipped an unreadable record at offset %s with key %r: %s",
                      offset, key, exc)  # fmt: skip
            return None

    def _apply_message(self, msg: Message, changes: list[StageChange]) -> None:
        change = self.apply(msg.key(), msg.value(), msg.offset() or 0)
        if change is not None:
            changes.append(change)

    def catch_up(self, idle_s: float = 5.0) -> list[StageChange]:
        """Apply every record up to the registry's current end; the changes they made."""
        parts = self._assign()
        assert self._admin is not None
        ends = self._admin.query([(self.topic, p) for p in parts], "latest")
        todo = {tp: end for tp, end in ends.items() if end > self.position[tp]}
        changes: list[StageChange] = []
        if todo:
            reached = consume_to_end(
                self.consumer,
                todo,
                lambda m: self._apply_message(m, changes),
                starts=self.position,
                idle_s=idle_s,
            )
            for tp, off in reached.items():
                self.position[tp] = max(self.position[tp], off)
        self.complete = all(self.position[tp] >= end for tp, end in todo.items())
        return changes

    def run(
        self,
        stop: threading.Event,
        on_batch: Callable[[], None] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """Follow the topic until ``stop`` (the worker's registry thread), then close.
        ``on_batch()`` after each batch of records; :attr:`ready` is set once caught up
        with the end the registry had at the start, and ``on_ready()`` called then (not
        when the registry was empty)."""
        parts = self._assign()
        highs = {
            p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)[1]
            for p in parts
        }
        if all(high <= 0 for high in highs.values()):
            self.ready.set()
        try:
            while not stop.is_set():
                msgs = take_batch(self.consumer, 500, 0.2)  # a new version serves at once
                applied = False
                for msg in msgs:
                    if msg.error() is None:
                        self.apply(msg.key(), msg.value(), msg.offset() or 0)
                        applied = True
                if applied and on_batch is not None:
                    on_batch()
                if not self.ready.is_set():
                    tps = [TopicPartition(self.topic, p) for p in parts]
                    at = {tp.partition: tp.offset for tp in self.consumer.position(tps)}
                    if all(at[p] >= high for p, high in highs.items()):
                        self.ready.set()
                        if on_ready is not None:
                            on_ready()
        finally:
            self.consumer.close()

    def close(self) -> None:
        self.consumer.close()


def read_registry(settings: Settings) -> Registry:
    """The registry as the topic holds it now."""
    follower = RegistryFollower(settings)
    try:
        follower.catch_up()
        return follower.registry
    finally:
        follower.close()
