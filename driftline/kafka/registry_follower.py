"""Follow the registry topic (from its beginning, no consumer group) into a Registry."""

from __future__ import annotations

import logging

from confluent_kafka import Message, TopicPartition

from driftline.core.errors import CodecError
from driftline.core.lifecycle.registry import Registry, StageChange
from driftline.core.wire.codec import default_codec
from driftline.kafka.helpers import Offsets, consume_to_end, reader
from driftline.settings import Settings

log = logging.getLogger("driftline.registry")


class RegistryFollower:
    """Follows the registry topic from its beginning into a :class:`Registry`."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.topic = settings.topic("registry")
        self.registry = registry if registry is not None else Registry()
        self.consumer = reader(settings, "registry", **{"enable.partition.eof": True})
        self.offsets = Offsets(settings)
        self._parts = self.offsets.partitions(self.topic)
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in self._parts])
        self.position = dict.fromkeys(((self.topic, p) for p in self._parts), 0)

    def _apply(self, msg: Message, changes: list[StageChange]) -> None:
        value = msg.value()
        if value is None:  # a tombstone: model/version deleted
            model, _, version = (msg.key() or b"").decode().partition("/")
            if not version.endswith("@checkpoint"):  # a checkpoint's: its version stays
                self.registry.delete(model, version)
            return
        try:
            record = default_codec().decode(value, expect="ModelVersion").value
        except CodecError as exc:
            log.error("registry offset %s: %s", msg.offset(), exc)
            return
        change = self.registry.apply(record)
        if change is not None:
            changes.append(change)

    def catch_up(self, idle_s: float = 5.0) -> list[StageChange]:
        """Apply every record up to the registry's current end; the changes they made."""
        ends = self.offsets.query([(self.topic, p) for p in self._parts], "latest")
        todo = {tp: end for tp, end in ends.items() if end > self.position[tp]}
        changes: list[StageChange] = []
        if todo:
            reached = consume_to_end(
                self.consumer,
                todo,
                lambda m: self._apply(m, changes),
                starts=self.position,
                idle_s=idle_s,
            )
            for tp, off in reached.items():
                self.position[tp] = max(self.position[tp], off)
        return changes

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
