"""Errors of the client library, under Driftline's one root::

DriftlineError
├── CodecError
│   ├── SchemaMismatchError       (core) a record does not fit its schema: raised by
│   │                             send_* before anything is queued
│   └── UndecodableMessageError   a subscribed message could not be decoded
└── KafkaError
    └── DeliveryError             the broker did not accept a message
"""

from __future__ import annotations

from driftline.core.errors import CodecError, KafkaError

__all__ = ["DeliveryError", "UndecodableMessageError"]


class DeliveryError(KafkaError):
    """A message was not delivered. ``code`` is librdkafka's error name (for example
    ``_MSG_TIMED_OUT``); ``topic`` and ``key`` say which message it was."""

    def __init__(
        self, message: str, code: str | None, topic: str, key: str | None, retriable: bool
    ) -> None:
        super().__init__(message, code)
        self.topic = topic
        self.key = key
        self.retriable = retriable


class UndecodableMessageError(CodecError):
    """A subscribed message could not be decoded into the expected record.

    ``reason`` is the codec's reason code (``undecodable``, ``unknown_schema``,
    ``wrong_record``, ``schema_mismatch``); ``__cause__`` is the codec error. The
    position and the raw bytes let a caller log, park or re-read the message.
    """

    def __init__(
        self,
        cause: CodecError,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
    ) -> None:
        super().__init__(f"{topic}[{partition}]@{offset}: {cause}")
        self.reason = cause.reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.__cause__ = cause
