"""Per-partition access to a Faust table's store, for the join.

Faust's own ``table[key] = value`` takes the partition from the *current event*: wrong
for a batch from ``take_events`` and impossible in a timer (the expiry sweep). The
join therefore reads and writes each key in a partition it names, through one adapter
per store kind (:func:`partitions_of` picks it):

* :class:`MemoryPartitions` (``memory://``): one dict for all partitions. Each key's
  partition goes into the store's ``_key_partition`` map, as Faust's changelog recovery
  does, so the keys of a partition given away are dropped after a rebalance.
* :class:`RocksPartitions` (``rocksdb://``, served by rocksdict): one RocksDB per
  partition, through the store's ``_db_for_partition``. State may exceed memory, and it
  survives a restart on disk: recovery replays only the changelog records after the
  offset the store persisted.

Nothing here caches a database handle: Faust closes a partition's database when it is
revoked and must be able to.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any, Protocol

from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore

__all__ = ["MemoryPartitions", "Partitions", "RocksPartitions", "partitions_of"]


class Partitions(Protocol):
    """A table's store seen one partition at a time (keys and values are bytes)."""

    persists: bool
    """True when the store keeps state on disk and remembers its changelog offset."""

    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def put(self, partition: int, key: bytes, value: bytes) -> None: ...

    def delete(self, partition: int, key: bytes) -> None: ...

    def items(self, partitions: Collection[int]) -> Iterator[tuple[int, bytes, bytes]]:
        """Every (partition, key, value) held for ``partitions``."""
        ...

    def count(self, partitions: Collection[int]) -> int:
        """How many keys ``partitions`` hold (RocksDB: its estimate)."""
        ...


class MemoryPartitions:
    """:class:`Partitions` over Faust's in-memory store."""

    persists = False

    def __init__(self, store: Any) -> None:
        self.data: dict[bytes, Any] = store.data
        self.partition_of: dict[bytes, int] = store._key_partition

    def get(self, partition: int, key: bytes) -> bytes | None:
        value = self.data.get(key)
        return value if isinstance(value, bytes) else None

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.partition_of[key] = partition

    def delete(self, partition: int, key: bytes) -> None:
        self.data.pop(key, None)
        self.partition_of.pop(key, None)

    def items(self, partitions: Collection[int]) -> Iterator[tuple[int, bytes, bytes]]:
        for key, p in list(self.partition_of.items()):
            value = self.data.get(key)
            if p in partitions and isinstance(value, bytes):
                yield p, key, value

    def count(self, partitions: Collection[int]) -> int:
        return len(self.data)


class RocksPartitions:
    """:class:`Partitions` over Faust's RocksDB store (one database per partition)."""

    persists = True

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, partition: int, key: bytes) -> bytes | None:
        value = self.store._db_for_partition(partition).get(key)
        return value if isinstance(value, bytes) else None

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.store._db_for_partition(partition).put(key, value)

    def delete(self, partition: int, key: bytes) -> None:
        self.store._db_for_partition(partition).delete(key)

    def items(self, partitions: Collection[int]) -> Iterator[tuple[int, bytes, bytes]]:
        offset_key = self.store.offset_key
        for p in sorted(partitions):
            for key, value in self.store._db_for_partition(p).items():
                if key != offset_key:
                    yield p, key, value

    def count(self, partitions: Collection[int]) -> int:
        total = 0
        for p in partitions:
            db = self.store._db_for_partition(p)
            total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        return total


def partitions_of(store: Any) -> Partitions:
    """The adapter for ``store`` (a table's ``data``); TypeError for other stores."""
    if isinstance(store, MemoryStore):
        return MemoryPartitions(store)
    if isinstance(store, RocksDBStore) and store.use_rocksdict:
        return RocksPartitions(store)
    raise TypeError(f"the join needs memory:// or rocksdb:// with rocksdict, not {store!r}")
