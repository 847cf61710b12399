"""A stand-in for confluent-kafka's Message: what the worker's loops read of a record."""

from __future__ import annotations

from dataclasses import dataclass

NOW = 1_800_000_000_000
"""The fixed clock of the worker tests, and a record's timestamp unless told."""


@dataclass
class Msg:
    """A record read without error at ``_topic[_partition]@_offset``, with a create-time
    timestamp of ``_timestamp_ms``."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None = None
    _value: bytes | None = None
    _headers: list[tuple[str, bytes]] | None = None
    _timestamp_ms: int = NOW

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> None:
        return None
