"""What a subscriber yields, and the types of its options.

>>> start_ms("latest") is None, start_ms(1_700_000_000_000)
(True, 1700000000000)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

from driftline.client.records import Record
from driftline.core.errors import ConfigError

__all__ = ["CommitMode", "OnError", "Received", "Start", "check_options", "start_ms"]

R = TypeVar("R", bound=Record)
Start = Literal["earliest", "latest"] | int | datetime
CommitMode = Literal["auto", "manual", "none"]
OnError = Literal["raise", "skip_and_count"]


@dataclass(frozen=True, slots=True)
class Received(Generic[R]):
    """One decoded record and where it was read.

    ``timestamp_ms`` is the Kafka timestamp; ``headers`` are decoded as text (see
    :mod:`driftline.core.wire.headers`); ``writer_version`` is the schema version the
    producer wrote (the record is always read into the current one).
    """

    record: R
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    headers: Mapping[str, str]
    writer_version: int


def start_ms(start: Start) -> int | None:
    """The start as ms since the epoch, None for earliest/latest; checks it."""
    if isinstance(start, datetime):
        if start.tzinfo is None:
            raise ConfigError("start: give a timezone-aware datetime (or ms since the epoch)")
        return int(start.timestamp() * 1000)
    if isinstance(start, bool) or not isinstance(start, int | str):
        raise ConfigError(f"start must be 'earliest', 'latest', ms or a datetime: {start!r}")
    if isinstance(start, int):
        if start < 0:
            raise ConfigError(f"start: a timestamp is ms since the epoch, >= 0: {start}")
        return start
    if start not in ("earliest", "latest"):
        raise ConfigError(f"start must be 'earliest', 'latest', ms or a datetime: {start!r}")
    return None


def check_options(
    record_type: object, app: str, commit: str, on_error: str, batch_size: int
) -> None:
    """Refuse bad subscriber options with ConfigError, before any consumer exists."""
    if not (isinstance(record_type, type) and issubclass(record_type, Record)):
        raise ConfigError(f"record_type must be a driftline.client record class: {record_type!r}")
    if not app:
        raise ConfigError("app must be a non-empty name")
    if commit not in ("auto", "manual", "none"):
        raise ConfigError(f"commit must be 'auto', 'manual' or 'none': {commit!r}")
    if on_error not in ("raise", "skip_and_count"):
        raise ConfigError(f"on_error must be 'raise' or 'skip_and_count': {on_error!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1: {batch_size}")
