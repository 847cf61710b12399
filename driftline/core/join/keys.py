"""The join store's keys: one entry per model and event_id.

One upstream event may be scored by any number of models, each prediction joining the
label of its own model, so an entry's key names both. The previous release keyed the
store by the event_id alone; its keys stay readable (:func:`split_key` returns no model
for them) while the join migrates them (see :mod:`driftline.core.join.joiner`).

A key is ``ENTRY_PREFIX``, the model's UTF-8 bytes with their length before them (an
Avro long), then the event_id's UTF-8 bytes (the Kafka key). The length makes the split
unambiguous whatever a model name holds (the envelope checks only that the model is
known, not its characters), so no model name can produce another model's key. 0xFE
never occurs in UTF-8, so a key of this release never equals a key of the previous
one (a bare event_id); names records start with 0xFF
(:data:`driftline.core.join.leanentry.NAMES_PREFIX`).

>>> key = entry_key("churn", b"e-1")
>>> key, split_key(key), split_key(b"e-1")
(b'\\xfe\\nchurne-1', ('churn', b'e-1'), (None, b'e-1'))
>>> entry_key("a", b"bc") != entry_key("ab", b"c")
True
"""

from __future__ import annotations

from driftline.core.errors import CodecError
from driftline.core.join.leanentry import NAMES_PREFIX, read_long, zigzag

__all__ = ["ENTRY_PREFIX", "entry_key", "is_legacy_key", "split_key"]

ENTRY_PREFIX = b"\xfe"
"""First byte of an entry key of this release: the store format's version marker."""


_PREFIXES: dict[str, bytes] = {}


def entry_key(model: str, event_id: bytes) -> bytes:
    """The store key of ``model``'s entry for ``event_id`` (the Kafka key's bytes)."""
    prefix = _PREFIXES.get(model)
    if prefix is None:
        name = model.encode()
        prefix = b"".join((ENTRY_PREFIX, zigzag(len(name)), name))
        if len(_PREFIXES) < 4_096:  # models are few; a flood of names is not kept
            _PREFIXES[model] = prefix
    return prefix + event_id


def split_key(key: bytes) -> tuple[str | None, bytes]:
    """(model, event_id) of an entry key; (None, key) for a key of the previous
    release, which was the event_id alone. CodecError for a damaged key."""
    if key[:1] != ENTRY_PREFIX:
        return None, key
    try:
        b = key[1]
        n, pos = ((b >> 1) ^ -(b & 1), 2) if b < 0x80 else read_long(key, 1)
        end = pos + n
        if n < 0 or end > len(key):
            raise IndexError("model name out of bounds")
        return key[pos:end].decode(), key[end:]
    except (IndexError, UnicodeDecodeError) as exc:
        raise CodecError(f"join store key {key[:40]!r}: {exc}") from exc


def is_legacy_key(key: bytes) -> bool:
    """True for an entry key of the previous release (a bare event_id).

    >>> is_legacy_key(b"e-1"), is_legacy_key(entry_key("m", b"e-1")), is_legacy_key(NAMES_PREFIX)
    (True, False, False)
    """
    return key[:1] != ENTRY_PREFIX and not key.startswith(NAMES_PREFIX)
