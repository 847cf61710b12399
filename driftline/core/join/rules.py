"""Join each prediction to its delayed label: a pure state machine per model and event_id.

The join agent keeps one :class:`JoinEntry` per model and event_id in a changelogged
table (keys: :mod:`driftline.core.join.keys`; one upstream event may be scored by any
number of models, and each prediction joins the label of its own model) and feeds
every prediction, label and expiry through :func:`on_prediction`,
:func:`on_label` and :func:`expire`, which return the new entry (None: delete the
key) and what to publish; :class:`ExpiryIndex` finds the entries due. States::

    (none) --prediction--> WAITING_FOR_LABEL      --label------> JOINED       + Joined
    (none) --label-------> WAITING_FOR_PREDICTION --prediction-> JOINED       + Joined
    WAITING_FOR_LABEL      --deadline--> EXPIRED_PREDICTION + ExpiredPrediction
    WAITING_FOR_PREDICTION --deadline--> ORPHANED_LABEL     + OrphanLabel
    JOINED, EXPIRED_PREDICTION, ORPHANED_LABEL (tombstones) --deadline--> (none)

A tombstone keeps no payload; it makes a second label a DuplicateLabel, a label
after expiry a LateLabel, a second prediction a DuplicatePrediction and a
prediction after its label was given up a LatePrediction (a duplicate says what held
its key: ``held``). Every message is in
exactly one emission: nothing is dropped silently.

TTL clock: processing time, the ``now_ms`` the agent passes in, measured from
when the entry was stored. Event time would make expiry wait for a watermark that
stalls on an idle partition and let a bogus event timestamp keep an entry forever
or expire it at once; processing time bounds the store at arrival rate x TTL
whatever the data says, and a backlog read after downtime still joins. (The cost:
a replay of old topics joins what arrives within TTL of each other in the replay.)
A tombstone lives another ``ttl_ms`` from when it was made, so every key is held
at most 2 x TTL (plus the sweep's lag) and "exactly one Joined per event_id"
holds within that horizon (per model and event_id); a label arriving later still is
held and ends as an
OrphanLabel, counted like every other. Transitions first apply an expiry that is
due, so results do not depend on how often the agent sweeps.

>>> entry, out = on_prediction(None, b"p", event_time_ms=0, now_ms=10, ttl_ms=100)
>>> entry.state.name, out
('WAITING_FOR_LABEL', ())
>>> entry, out = on_label(entry, b"l", label_time_ms=50, now_ms=60, ttl_ms=100)
>>> entry.state.name, out
('JOINED', (Joined(prediction=b'p', label=b'l'),))
>>> on_label(entry, b"l", label_time_ms=50, now_ms=70, ttl_ms=100)[1]
(DuplicateLabel(payload=b'l', held=<JoinState.JOINED: 3>),)
>>> expire(entry, now_ms=160)
(None, ())
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from driftline.core.errors import CodecError, ConfigError, ValidationError
from driftline.core.join.expiry import ExpiryIndex

__all__ = [
    "Duplicate", "DuplicateLabel", "DuplicatePrediction", "Emission", "ExpiredPrediction",
    "ExpiryIndex", "JoinEntry", "JoinState", "Joined", "LateLabel", "LatePrediction", "OrphanLabel",
    "build_outcome", "deadline_ms", "expire", "on_label", "on_prediction",
]  # fmt: skip


class JoinState(IntEnum):
    """Where an event_id is in the join."""

    WAITING_FOR_LABEL = 1  # prediction held
    WAITING_FOR_PREDICTION = 2  # label held
    JOINED = 3  # tombstone
    EXPIRED_PREDICTION = 4  # tombstone: the prediction's TTL passed without a label
    ORPHANED_LABEL = 5  # tombstone: the label's TTL passed without a prediction


_WAITING_FOR_LABEL = JoinState.WAITING_FOR_LABEL
_WAITING_FOR_PREDICTION = JoinState.WAITING_FOR_PREDICTION
_JOINED = JoinState.JOINED
_EXPIRED_PREDICTION = JoinState.EXPIRED_PREDICTION
_ORPHANED_LABEL = JoinState.ORPHANED_LABEL
_STATES = {int(s): s for s in JoinState}

# Entry formats (the header byte's high nibble). 1 and 2 were written by the previous
# release, and 1 still is for tombstones; 3 and 4 hold a record with its origin.
_WHOLE = 1  # the payload is the held record's Avro bytes
_LEAN_V1 = 2  # the payload is a Prediction v1 in lean form (driftline.core.join.leanentry)
_WHOLE_WITH_ORIGIN = 3  # an origin block (driftline.core.join.origins), then Avro bytes
_LEAN_WITH_ORIGIN = 4  # an origin block, then a current Prediction in lean form
_FORMATS = {_WHOLE, _LEAN_V1, _WHOLE_WITH_ORIGIN, _LEAN_WITH_ORIGIN}
# first byte: format << 4 | state; then deadline_ms, time_ms, ttl_ms; then (formats 3
# and 4) the origin block's length as an Avro long and the block; then the payload
_HEADER = struct.Struct(">Bqqq")
_SMALL = tuple(bytes([n << 1]) for n in range(64))


def _length(n: int) -> bytes:
    """``n >= 0`` as an Avro long."""
    if n < 64:
        return _SMALL[n]
    u, out = n << 1, bytearray()
    while u > 0x7F:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n >> 1, pos


@dataclass(frozen=True, slots=True)
class JoinEntry:
    """The join's state for one model and event_id; serialized by :meth:`to_bytes`.

    ``time_ms`` is the prediction's event time (WAITING_FOR_LABEL and the
    tombstones of a seen prediction) or the label time (WAITING_FOR_PREDICTION,
    ORPHANED_LABEL). ``payload`` is the held Avro prediction or label, empty in
    tombstones; with ``lean`` it is a held prediction in the lean form of
    :mod:`driftline.core.join.leanentry`. ``origin`` is the held record's origin
    block (:mod:`driftline.core.join.origins`): where it was read, for its dead letter;
    None in tombstones and in entries the previous release wrote (formats 1 and 2,
    whose lean form holds a Prediction v1: :attr:`legacy_lean`).
    """

    state: JoinState
    deadline_ms: int
    time_ms: int
    ttl_ms: int
    payload: bytes = b""
    lean: bool = False
    origin: bytes | None = None

    HEADER_BYTES: ClassVar[int] = _HEADER.size

    def to_bytes(self) -> bytes:
        """``HEADER_BYTES`` (25) bytes of header, the origin block with its length
        (when there is one), then the payload.

        >>> e = JoinEntry(JoinState.WAITING_FOR_LABEL, 100, 5, 90, b"avro")
        >>> len(e.to_bytes()), JoinEntry.from_bytes(e.to_bytes()) == e
        (29, True)
        >>> e = JoinEntry(JoinState.WAITING_FOR_LABEL, 100, 5, 90, b"avro", origin=b"\\x02\\x00")
        >>> len(e.to_bytes()), JoinEntry.from_bytes(e.to_bytes()) == e
        (32, True)
        """
        origin = self.origin
        if origin is None:
            fmt = _LEAN_V1 if self.lean else _WHOLE
            head = _HEADER.pack(fmt << 4 | self.state, self.deadline_ms, self.time_ms, self.ttl_ms)
            return head + self.payload
        fmt = _LEAN_WITH_ORIGIN if self.lean else _WHOLE_WITH_ORIGIN
        head = _HEADER.pack(fmt << 4 | self.state, self.deadline_ms, self.time_ms, self.ttl_ms)
        return b"".join((head, _length(len(origin)), origin, self.payload))

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinEntry:
        """Read what :meth:`to_bytes` wrote; CodecError if it is not such bytes."""
        if len(data) < _HEADER.size:
            raise CodecError(f"join entry of {len(data)} bytes is shorter than its header")
        tag, deadline, time_ms, ttl = _HEADER.unpack_from(data)
        state = _STATES.get(tag & 0x0F)
        fmt = tag >> 4
        if fmt not in _FORMATS or state is None:
            raise CodecError(f"join entry header byte {tag:#04x}: unknown format or state")
        lean = fmt in (_LEAN_V1, _LEAN_WITH_ORIGIN)
        if lean and state is not _WAITING_FOR_LABEL:
            raise CodecError(f"join entry in state {state.name} cannot hold a lean prediction")
        origin = None
        pos = _HEADER.size
        if fmt >= _WHOLE_WITH_ORIGIN:
            if state >= _JOINED:
                raise CodecError(f"join entry in state {state.name} carries an origin")
            try:
                b = data[pos]
                n, pos = (b >> 1, pos + 1) if b < 0x80 else _read_length(data, pos)
            except IndexError:
                raise CodecError("join entry: its origin block is cut") from None
            if pos + n > len(data):
                raise CodecError("join entry: its origin block is cut")
            origin = bytes(data[pos : pos + n])
            pos += n
        payload = bytes(data[pos:])
        if payload and state >= _JOINED:
            raise CodecError(f"join entry in state {state.name} carries a payload")
        return cls(state, deadline, time_ms, ttl, payload, lean, origin)

    @property
    def legacy_lean(self) -> bool:
        """A lean prediction written by the previous release (a Prediction v1)."""
        return self.lean and self.origin is None

    @property
    def is_tombstone(self) -> bool:
        """True for JOINED, EXPIRED_PREDICTION and ORPHANED_LABEL."""
        return self.state >= _JOINED


@dataclass(frozen=True, slots=True)
class Joined:
    """The label met its prediction: build and publish the Outcome."""

    prediction: bytes
    label: bytes
    kind: ClassVar[str] = "joined"


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A second message for a key already held, joined or given up: ``payload`` is the
    second one, ``held`` the state of the entry that holds the key."""

    payload: bytes
    held: JoinState
    kind: ClassVar[str]


@dataclass(frozen=True, slots=True)
class DuplicateLabel(Duplicate):
    """A second label for a model's event_id already joined, held or given up."""

    kind: ClassVar[str] = "duplicate_label"


@dataclass(frozen=True, slots=True)
class DuplicatePrediction(Duplicate):
    """A second prediction for a model's event_id already held, joined or expired."""

    kind: ClassVar[str] = "duplicate_prediction"


@dataclass(frozen=True, slots=True)
class LateLabel:
    """A label for a prediction already published as expired.

    ``event_time_ms`` is the prediction's event time, so the label's delay is known.
    """

    payload: bytes
    event_time_ms: int
    kind: ClassVar[str] = "late_label"


@dataclass(frozen=True, slots=True)
class LatePrediction:
    """A prediction for a label already published as an orphan."""

    payload: bytes
    kind: ClassVar[str] = "late_prediction"


@dataclass(frozen=True, slots=True)
class ExpiredPrediction:
    """A prediction whose label did not come within its TTL."""

    payload: bytes
    kind: ClassVar[str] = "expired_prediction"


@dataclass(frozen=True, slots=True)
class OrphanLabel:
    """A label whose prediction did not come within its TTL."""

    payload: bytes
    kind: ClassVar[str] = "orphan_label"


Emission = (
    Joined | DuplicateLabel | DuplicatePrediction | LateLabel | LatePrediction
    | ExpiredPrediction | OrphanLabel
)  # fmt: skip
Result = tuple[JoinEntry | None, tuple[Emission, ...]]


def deadline_ms(entry: JoinEntry) -> int:
    """When ``entry`` is due for :func:`expire` (processing time, ms)."""
    return entry.deadline_ms


def _check_ttl(ttl_ms: int) -> None:
    if ttl_ms <= 0:
        raise ConfigError(f"join TTL must be > 0 ms, got {ttl_ms}")


def expire(entry: JoinEntry, now_ms: int) -> Result:
    """Apply the deadline: unchanged before it; after it a held message is given up
    (tombstone + ExpiredPrediction/OrphanLabel) and a tombstone is deleted (None)."""
    if now_ms < entry.deadline_ms:
        return entry, ()
    state = entry.state
    if state is _WAITING_FOR_LABEL:
        tomb = JoinEntry(_EXPIRED_PREDICTION, now_ms + entry.ttl_ms, entry.time_ms, entry.ttl_ms)
        return tomb, (ExpiredPrediction(entry.payload),)
    if state is _WAITING_FOR_PREDICTION:
        tomb = JoinEntry(_ORPHANED_LABEL, now_ms + entry.ttl_ms, entry.time_ms, entry.ttl_ms)
        return tomb, (OrphanLabel(entry.payload),)
    return None, ()


def _arrive(entry: JoinEntry | None, now_ms: int, ttl_ms: int) -> Result:
    """The entry a message arriving at ``now_ms`` meets: ``entry`` given up first
    (:func:`expire`) when its deadline has passed."""
    _check_ttl(ttl_ms)
    if entry is not None and now_ms >= entry.deadline_ms:
        return expire(entry, now_ms)
    return entry, ()


def on_prediction(
    entry: JoinEntry | None, payload: bytes, event_time_ms: int, now_ms: int, ttl_ms: int
) -> Result:
    """A prediction arrived for the event_id whose entry is ``entry`` (None: none)."""
    entry, before = _arrive(entry, now_ms, ttl_ms)
    if entry is None:
        held = JoinEntry(_WAITING_FOR_LABEL, now_ms + ttl_ms, event_time_ms, ttl_ms, payload)
        return held, before
    state = entry.state
    if state is _WAITING_FOR_PREDICTION:
        tomb = JoinEntry(_JOINED, now_ms + ttl_ms, event_time_ms, ttl_ms)
        return tomb, (*before, Joined(payload, entry.payload))
    late = state is _ORPHANED_LABEL
    dup = LatePrediction(payload) if late else DuplicatePrediction(payload, state)
    return entry, (*before, dup)


def on_label(
    entry: JoinEntry | None, payload: bytes, label_time_ms: int, now_ms: int, ttl_ms: int
) -> Result:
    """A label arrived for the event_id whose entry is ``entry`` (None: none)."""
    entry, before = _arrive(entry, now_ms, ttl_ms)
    if entry is None:
        held = JoinEntry(_WAITING_FOR_PREDICTION, now_ms + ttl_ms, label_time_ms, ttl_ms, payload)
        return held, before
    state = entry.state
    if state is _WAITING_FOR_LABEL:
        tomb = JoinEntry(_JOINED, now_ms + ttl_ms, entry.time_ms, ttl_ms)
        return tomb, (*before, Joined(entry.payload, payload))
    if state is _EXPIRED_PREDICTION:
        return entry, (*before, LateLabel(payload, entry.time_ms))
    return entry, (*before, DuplicateLabel(payload, state))


def build_outcome(prediction: Mapping[str, Any], label: Mapping[str, Any]) -> dict[str, Any]:
    """The Outcome dict (schemas/outcome.v1.avsc) of a joined Prediction and Label.

    ``label_delay_ms`` is ``label_time_ms - event_time_ms`` and may be negative when
    clocks disagree. ``challengers`` are the prediction's, an empty list when it had
    none. A label for another model or event_id is a ValidationError
    (``model_mismatch`` / ``key_mismatch``; the join's keys keep them apart, so this is
    a safety net).

    >>> p = {"event_id": "e", "model": "m", "version": "v1", "event_time_ms": 1000,
    ...      "predicted_at_ms": 1005, "prediction": True, "scores": {"True": 0.9},
    ...      "features": {"x": 1.0}, "segment": {"region": "eu"}}
    >>> o = build_outcome(p, {"event_id": "e", "model": "m", "label": False,
    ...                       "label_time_ms": 4000})
    >>> o["label_delay_ms"], o["prediction"], o["label"], o["challengers"]
    (3000, True, False, [])
    """
    if label["event_id"] != prediction["event_id"]:
        raise ValidationError(
            "key_mismatch", f"label for {label['event_id']!r}, prediction for "
            f"{prediction['event_id']!r}"
        )  # fmt: skip
    if label["model"] != prediction["model"]:
        raise ValidationError(
            "model_mismatch", f"event {prediction['event_id']!r}: label for model "
            f"{label['model']!r}, prediction by {prediction['model']!r}"
        )  # fmt: skip
    return {
        "event_id": prediction["event_id"],
        "model": prediction["model"],
        "version": prediction["version"],
        "event_time_ms": prediction["event_time_ms"],
        "predicted_at_ms": prediction["predicted_at_ms"],
        "label_time_ms": label["label_time_ms"],
        "label_delay_ms": label["label_time_ms"] - prediction["event_time_ms"],
        "prediction": prediction["prediction"],
        "scores": dict(prediction.get("scores", {})),
        "label": label["label"],
        "features": dict(prediction.get("features", {})),
        "segment": dict(prediction.get("segment", {})),
        "challengers": prediction.get("challengers") or [],
    }
