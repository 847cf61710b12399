"""A time-bucketed index of keys by deadline, for sweeping expired state.

The join agent adds each entry's key at its deadline and, on a timer, asks for
the keys that are :meth:`ExpiryIndex.due`; see :mod:`driftline.core.join.rules`.

>>> index = ExpiryIndex[bytes](bucket_ms=1000)
>>> index.add(b"e1", 1500)
>>> index.due(2000)
[b'e1']
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from driftline.core.errors import ConfigError

__all__ = ["ExpiryIndex"]

K = TypeVar("K", bound=Hashable)


class ExpiryIndex(Generic[K]):
    """Keys by deadline, in buckets of ``bucket_ms``, so a sweep finds due keys cheaply.

    ``due(now)`` pops only buckets whose every deadline has passed, so an entry is
    swept at most ``bucket_ms`` after its deadline (transitions apply a due expiry
    themselves, so this lag changes no result). Memory is one set entry per key
    plus one heap slot per non-empty bucket. The index is not persisted: after a
    restart or rebalance the agent rebuilds it with :meth:`rebuild` by scanning its
    table once, ``rebuild((k, e.deadline_ms) for k, e in table.items())``. A key left in an old
    bucket (moved without :meth:`discard`) is harmless: :func:`expire` returns an
    entry that is not due unchanged.

    >>> index = ExpiryIndex[str](bucket_ms=10)
    >>> index.add("a", 15); index.add("b", 25)
    >>> index.due(18), index.due(19), len(index), index.due(40), len(index)
    ([], ['a'], 1, ['b'], 0)
    """

    __slots__ = ("_buckets", "_heap", "bucket_ms")

    def __init__(self, bucket_ms: int = 1000) -> None:
        if bucket_ms <= 0:
            raise ConfigError(f"bucket_ms must be > 0, got {bucket_ms}")
        self.bucket_ms = bucket_ms
        self._buckets: dict[int, set[K]] = {}
        self._heap: list[int] = []

    @classmethod
    def rebuild(cls, deadlines: Iterable[tuple[K, int]], bucket_ms: int = 1000) -> ExpiryIndex[K]:
        """An index of every ``(key, deadline_ms)``, e.g. of a join table's entries."""
        index = cls(bucket_ms)
        for key, deadline in deadlines:
            index.add(key, deadline)
        return index

    def add(self, key: K, deadline: int) -> None:
        """Index ``key`` as due at ``deadline`` (ms)."""
        bucket = deadline // self.bucket_ms
        keys = self._buckets.get(bucket)
        if keys is None:
            keys = self._buckets[bucket] = set()
            heapq.heappush(self._heap, bucket)
        keys.add(key)

    def discard(self, key: K, deadline: int) -> None:
        """Forget ``key`` at ``deadline`` (no error if it is not there)."""
        keys = self._buckets.get(deadline // self.bucket_ms)
        if keys is not None:
            keys.discard(key)

    def due(self, now_ms: int) -> list[K]:
        """Remove and return the keys of every bucket wholly at or before ``now_ms``."""
        out: list[K] = []
        heap, buckets, width = self._heap, self._buckets, self.bucket_ms
        while heap and (heap[0] + 1) * width - 1 <= now_ms:
            out.extend(buckets.pop(heapq.heappop(heap)))
        return out

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._buckets.values())
