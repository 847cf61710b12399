"""Helpers the client integration tests share."""

from __future__ import annotations

import time
from typing import TypeVar

from aiokafka.partitioner import murmur2

from driftline.client import Received, Record, Subscriber

R = TypeVar("R", bound=Record)


def java_partition(key: str, partitions: int) -> int:
    """The partition the Java client (and aiokafka, so Faust) picks for ``key``."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def take(sub: Subscriber[R], n: int, timeout: float = 30.0) -> list[Received[R]]:
    """Exactly ``n`` records, or fail after ``timeout`` seconds."""
    out: list[Received[R]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(out)} of {n} records in {timeout} s"
        got = sub.poll(left)
        if got is not None:
            out.append(got)
    return out


def nothing_more(sub: Subscriber[R], wait: float = 1.0) -> bool:
    """True if no further record arrives within ``wait`` seconds."""
    return sub.poll(wait) is None
