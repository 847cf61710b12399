"""What the sync and asyncio producers share: building records and their messages.

Everything that can fail on a bad record fails here, before a message is queued.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka import Producer as _KafkaProducer

from driftline.client.records import FeatureEvent, FeatureValue, Label, Record
from driftline.core.errors import ConfigError, KafkaError, ValidationError
from driftline.core.wire import headers
from driftline.core.wire.codec import Codec, default_codec
from driftline.core.wire.envelope import MAX_EVENT_ID_CHARS
from driftline.kafka.clients import producer_config
from driftline.settings import Settings

__all__ = ["Outgoing", "ProducerBase", "now_ms"]


def now_ms() -> int:
    """Wall-clock time, ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready for ``produce``."""

    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


class ProducerBase:
    """Configuration, codec and message building shared by both producers."""

    def __init__(
        self,
        settings: Settings | None,
        app: str,
        codec: Codec | None,
        config: Mapping[str, Any] | None,
    ) -> None:
        if not app:
            raise ConfigError("app must be a non-empty name")
        self.settings = settings if settings is not None else Settings()
        self.codec = codec if codec is not None else default_codec()
        conf = producer_config(self.settings, f"client-{app}", **dict(config or {}))
        if "logger" not in (config or {}):  # an application keeps librdkafka's own logging
            del conf["logger"]
        try:
            self._producer = _KafkaProducer(conf)
        except KafkaException as exc:
            raise wrap(exc, "cannot create the producer") from exc
        self._closed = False

    def _release(self) -> None:
        """Destroy the librdkafka handle (its connections and threads); call once the
        queue is empty, as ``close`` would otherwise flush again without a bound."""
        if not self._closed:
            self._closed = True
            self._producer.close()

    def __len__(self) -> int:
        """Messages queued or in flight, not yet confirmed."""
        return len(self._producer)

    def topic(self, record: Record, topic: str | None) -> str:
        """Full topic name: the record's own topic, or ``topic``, under the prefix."""
        return self.settings.topic(topic if topic is not None else record.TOPIC)

    def prepare(self, record: Record, topic: str | None, trace_id: str | None) -> Outgoing:
        """Encode ``record`` and build its headers; raises before anything is queued."""
        if self._closed:
            raise KafkaError("the producer is closed")
        if not isinstance(record, Record):
            raise TypeError(f"expected a driftline.client record, got {type(record).__name__}")
        value = self.codec.encode(record.SCHEMA, record.to_dict())  # SchemaMismatchError
        key = record.key()
        event_id = getattr(record, "event_id", None)
        if event_id is not None and not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
            raise ValidationError(
                "invalid_event_id",
                f"event_id must be 1 to {MAX_EVENT_ID_CHARS} characters, got {len(event_id)}",
            )
        hdrs: list[tuple[str, str | bytes | None]] = [
            *headers.build(
                record.SCHEMA,
                record.time_ms(),
                trace_id if trace_id is not None else headers.new_trace_id(),
            )
        ]
        return Outgoing(self.topic(record, topic), key, value, hdrs)

    @staticmethod
    def feature_event(
        model: str,
        features: Mapping[str, FeatureValue],
        event_id: str | None,
        event_time_ms: int | None,
        segment: Mapping[str, str] | None,
        source: str | None = None,
    ) -> FeatureEvent:
        return FeatureEvent(
            event_id=event_id if event_id is not None else str(uuid.uuid4()),
            model=model,
            event_time_ms=event_time_ms if event_time_ms is not None else now_ms(),
            features=features,
            segment=segment if segment is not None else {},
            source=source,
        )

    @staticmethod
    def label(model: str, event_id: str, label: FeatureValue, label_time_ms: int | None) -> Label:
        return Label(
            event_id=event_id,
            model=model,
            label=label,
            label_time_ms=label_time_ms if label_time_ms is not None else now_ms(),
        )


def wrap(exc: KafkaException, what: str) -> KafkaError:
    """A confluent-kafka exception as Driftline's KafkaError, keeping the error code."""
    err = exc.args[0] if exc.args else None
    if err is None or not hasattr(err, "name"):
        return KafkaError(f"{what}: {exc}")
    return KafkaError(f"{what}: {err.str()}", code=err.name())
