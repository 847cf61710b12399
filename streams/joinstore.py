"""The join's local state: one bytes entry per event_id, per partition.

The changelog topic (compacted, partitioned like predictions and labels) is the state's
source of truth; the store is its local copy. The join writes a batch's changes here
only after the transaction that carried them to the changelog committed, so the store
never holds what an aborted batch wrote.

* :class:`MemoryStore` (``memory://``): dicts, rebuilt from the changelog on every
  assignment.
* :class:`RocksStore` (``rocksdb://``, rocksdict): one database per partition under the
  data directory, holding the entries and the next changelog offset to read; a batch is
  one atomic write. A restarted worker reads only the changelog records after that
  offset, so state may exceed memory and restarts stay fast.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = ["MemoryStore", "RocksStore", "Store", "open_store"]

OFFSET_KEY = b"__driftline\x00changelog-offset__"


class Store(Protocol):
    """Per-partition bytes state with the changelog offset it has applied."""

    persists: bool

    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def write(self, partition: int, changes: Mapping[bytes, bytes | None], offset: int) -> None:
        """Apply ``changes`` (None deletes) and record ``offset`` as the next changelog
        offset to read for ``partition``, atomically."""
        ...

    def next_offset(self, partition: int) -> int:
        """The changelog offset to restore ``partition`` from (0: from the start)."""
        ...

    def reset(self, partition: int) -> None:
        """Forget everything held for ``partition``."""
        ...

    def release(self, partition: int) -> None:
        """``partition`` went to another worker: free what it holds in memory."""
        ...

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]: ...

    def count(self, partitions: Collection[int]) -> int:
        """Entries held for ``partitions`` (RocksDB: its estimate)."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """:class:`Store` in dicts; nothing survives the process.

    >>> s = MemoryStore()
    >>> s.write(0, {b"a": b"1", b"b": b"2"}, 2); s.write(0, {b"a": None}, 3)
    >>> s.get(0, b"a"), s.get(0, b"b"), s.next_offset(0), s.count([0, 1])
    (None, b'2', 3, 1)
    """

    persists = False

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}

    def get(self, partition: int, key: bytes) -> bytes | None:
        part = self.data.get(partition)
        return None if part is None else part.get(key)

    def write(self, partition: int, changes: Mapping[bytes, bytes | None], offset: int) -> None:
        part = self.data.setdefault(partition, {})
        for key, value in changes.items():
            if value is None:
                part.pop(key, None)
            else:
                part[key] = value
        self.offsets[partition] = offset

    def next_offset(self, partition: int) -> int:
        return self.offsets.get(partition, 0)

    def reset(self, partition: int) -> None:
        self.data.pop(partition, None)
        self.offsets.pop(partition, None)

    release = reset

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        yield from list(self.data.get(partition, {}).items())

    def count(self, partitions: Collection[int]) -> int:
        return sum(len(self.data.get(p, {})) for p in partitions)

    def close(self) -> None:
        self.data.clear()
        self.offsets.clear()


class RocksStore:
    """:class:`Store` in one RocksDB per partition (``<dir>/join-<partition>.db``)."""

    persists = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._dbs: dict[int, Any] = {}

    def _db(self, partition: int) -> Any:  # rocksdict is untyped
        db = self._dbs.get(partition)
        if db is None:
            from rocksdict import Options, Rdict

            db = Rdict(str(self.path(partition)), options=Options(raw_mode=True))
            self._dbs[partition] = db
        return db

    def path(self, partition: int) -> Path:
        return self.directory / f"join-{partition}.db"

    def get(self, partition: int, key: bytes) -> bytes | None:
        value = self._db(partition).get(key)
        return value if isinstance(value, bytes) else None

    def write(self, partition: int, changes: Mapping[bytes, bytes | None], offset: int) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(OFFSET_KEY, str(offset).encode())
        self._db(partition).write(batch)

    def next_offset(self, partition: int) -> int:
        raw = self._db(partition).get(OFFSET_KEY)
        return int(raw) if isinstance(raw, bytes) else 0

    def reset(self, partition: int) -> None:
        from rocksdict import Rdict

        self.release(partition)
        Rdict.destroy(str(self.path(partition)))

    def release(self, partition: int) -> None:
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db(partition).items():
            if key != OFFSET_KEY:
                yield key, value

    def count(self, partitions: Collection[int]) -> int:
        total = 0
        for p in partitions:
            estimate = self._db(p).property_int_value("rocksdb.estimate-num-keys")
            total += max(0, int(estimate or 0) - 1)  # minus the offset key
        return total

    def close(self) -> None:
        for p in list(self._dbs):
            self.release(p)


def open_store(kind: str, directory: Path) -> Store:
    """The store named by ``DRIFTLINE_TABLE_STORE`` (``memory://`` or ``rocksdb://``)."""
    if kind.startswith("memory"):
        return MemoryStore()
    if kind.startswith("rocksdb"):
        return RocksStore(directory)
    raise ValueError(f"the join needs memory:// or rocksdb://, not {kind!r}")
