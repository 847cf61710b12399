"""What the sync and asyncio producers share: building records and their messages.

Everything that can fail on a bad record fails here, before a message is queued.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
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
    """Configuration, codec, message building and the produce call shared by both
    producers (arguments: see :class:`~driftline.client.producer.Producer`)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        app: str = "client",
        codec: Codec | None = None,
        config: Mapping[str, Any] | None = None,
        queue_full_timeout: float = 30.0,
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
        self.app = app
        self.queue_full_timeout = queue_full_timeout
        self._started()

    def _started(self) -> None:
        """Called once the producer exists (the asyncio one starts its poll thread)."""

    def _offer(
        self, out: Outgoing, callback: Callable[[Any, Any], None], deadline: float, now: float
    ) -> bool:
        """Produce ``out``; False while the local queue is full (the caller lets
        librdkafka send, then offers again), a KafkaError once ``now`` is past
        ``deadline`` (``queue_full_timeout`` after the first offer)."""
        try:
            self._producer.produce(
                out.topic, out.value, out.key, on_delivery=callback, headers=out.headers
            )
            return True
        except BufferError:
            if now >= deadline:
                raise KafkaError(
                    f"local producer queue still full after {self.queue_full_timeout} s",
                    "_QUEUE_FULL",
                ) from None
            return False
        except KafkaException as exc:
            raise wrap(exc, f"cannot send to {out.topic}") from exc

    @staticmethod
    def _confirmed(left: int, timeout: float) -> None:
        """Before ``close`` releases the producer: a KafkaError (the producer stays
        open) if ``left`` messages are still unconfirmed after ``timeout`` seconds."""
        if left:
            raise KafkaError(f"{left} messages still unconfirmed after {timeout} s", "_TIMED_OUT")

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
