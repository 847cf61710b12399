"""Driftline's exception tree. Every error Driftline raises derives from one root::

    DriftlineError
    ├── ConfigError                  bad settings or arguments
    ├── CodecError                   a value could not be encoded or decoded
    │   ├── NotSingleObjectError     no 0xC3 0x01 marker, or too short for a header
    │   ├── UnknownSchemaError       fingerprint of no published schema version
    │   ├── CorruptBodyError         truncated or malformed Avro body, or bytes left over
    │   ├── SchemaMismatchError      a record does not fit the schema it is written with
    │   └── WrongRecordError         a known schema, but not the record the caller expected
    ├── ValidationError              a decoded event breaks its model's feature spec
    └── KafkaError                   a Kafka operation failed (keeps the client's error code)

Subsystems add their own subclasses next to their code; the root stays here.
"""

from __future__ import annotations


class DriftlineError(Exception):
    """Root of every error Driftline raises."""


class ConfigError(DriftlineError):
    """Settings or arguments are invalid."""


class CodecError(DriftlineError):
    """A value could not be encoded or decoded.

    ``reason`` is the dead-letter reason code for this failure.
    """

    reason = "undecodable"


class NotSingleObjectError(CodecError):
    """The bytes do not start with the Avro single-object marker 0xC3 0x01."""


class UnknownSchemaError(CodecError):
    """The fingerprint names no published version of any known schema."""

    reason = "unknown_schema"


class CorruptBodyError(CodecError):
    """The Avro body is truncated or malformed for the writer's schema."""


class SchemaMismatchError(CodecError):
    """A record does not fit the schema it is being written with."""

    reason = "schema_mismatch"


class WrongRecordError(CodecError):
    """The bytes hold a published record, but not the one the caller expected.

    Distinct from ``unknown_schema`` (a reader missing a schema version: upgrade the
    reader) because the fix differs: a producer writes to the wrong topic.
    """

    reason = "wrong_record"


class ValidationError(DriftlineError):
    """A decoded event breaks its model's feature spec.

    ``reason`` is the dead-letter reason code (missing_feature, type_mismatch, ...).
    """

    def __init__(self, reason: str, detail: str, model: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.model = model


class KafkaError(DriftlineError):
    """A Kafka operation failed. ``code`` keeps the client's error code name, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message if code is None else f"{message} [{code}]")
        self.code = code


class ModelError(DriftlineError):
    """A model raised or produced output that cannot be served.

    ``reason`` is the dead-letter reason code: model_error, non_finite_output or
    no_champion. ``model`` and ``version`` say whose output it was, when known.
    """

    def __init__(
        self, reason: str, detail: str, model: str | None = None, version: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.model = model
        self.version = version


class ArtifactError(DriftlineError):
    """A model artifact was refused before or while loading it.

    ``reason`` is one of ``digest_mismatch`` (the bytes are not the ones the record
    names), ``bad_signature`` (the digest was not signed with the registry key),
    ``missing_artifact`` (no inline bytes and no readable uri) or ``undeserializable``
    (signed bytes that do not load as a model, or an unknown format).
    """

    REASONS = ("digest_mismatch", "bad_signature", "missing_artifact", "undeserializable")

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StageError(DriftlineError):
    """A registry stage change that the promotion rules do not allow."""
