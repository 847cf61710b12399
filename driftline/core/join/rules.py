"""Join each prediction to its delayed label: a pure state machine per event_id.

The join agent keeps one :class:`JoinEntry` per event_id in a changelogged table
and feeds every prediction, label and expiry through :func:`on_prediction`,
:func:`on_label` and :func:`expire`, which return the new entry (None: delete the
key) and what to publish; :class:`ExpiryIndex` finds the entries due. States::

    (none) --prediction--> WAITING_FOR_LABEL      --label------> JOINED       + Joined
    (none) --label-------> WAITING_FOR_PREDICTION --prediction-> JOINED       + Joined
    WAITING_FOR_LABEL      --deadline--> EXPIRED_PREDICTION + ExpiredPrediction
    WAITING_FOR_PREDICTION --deadline--> ORPHANED_LABEL     + OrphanLabel
    JOINED, EXPIRED_PREDICTION, ORPHANED_LABEL (tombstones) --deadline--> (none)

A tombstone keeps no payload; it makes a second label a DuplicateLabel, a label
after expiry a LateLabel, a second prediction a DuplicatePrediction and a
prediction after its label was given up a LatePrediction. Every message is in
exactly one emission: nothing is dropped silently.

TTL clock: processing time, the ``now_ms`` the agent passes in, measured from
when the entry was stored. Event time would make expiry wait for a watermark that
stalls on an idle partition and let a bogus event timestamp keep an entry forever
or expire it at once; processing time bounds the store at arrival rate x TTL
whatever the data says, and a backlog read after downtime still joins. (The cost:
a replay of old topics joins what arrives within TTL of each other in the replay.)
A tombstone lives another ``ttl_ms`` from when it was made, so every key is held
at most 2 x TTL (plus the sweep's lag) and "exactly one Joined per event_id"
holds within that horizon; a label arriving later still is held and ends as an
OrphanLabel, counted like every other. Transitions first apply an expiry that is
due, so results do not depend on how often the agent sweeps.

>>> entry, out = on_prediction(None, b"p", event_time_ms=0, now_ms=10, ttl_ms=100)
>>> entry.state.name, out
('WAITING_FOR_LABEL', ())
>>> entry, out = on_label(entry, b"l", label_time_ms=50, now_ms=60, ttl_ms=100)
>>> entry.state.name, out
('JOINED', (Joined(prediction=b'p', label=b'l'),))
>>> on_label(entry, b"l", label_time_ms=50, now_ms=70, ttl_ms=100)[1]
(DuplicateLabel(payload=b'l'),)
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
    "DuplicateLabel", "DuplicatePrediction", "Emission", "ExpiredPrediction", "ExpiryIndex",
    "JoinEntry", "JoinState", "Joined", "LateLabel", "LatePrediction", "OrphanLabel",
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

_FORMAT = 1
_LEAN = 2  # the payload is a prediction in lean form (driftline.core.join.leanentry)
# first byte: format << 4 | state; then deadline_ms, time_ms, ttl_ms; then the payload
_HEADER = struct.Struct(">Bqqq")


@dataclass(frozen=True, slots=True)
class JoinEntry:
    """The join's state for one event_id; serialized by :meth:`to_bytes`.

    ``time_ms`` is the prediction's event time (WAITING_FOR_LABEL and the
    tombstones of a seen prediction) or the label time (WAITING_FOR_PREDICTION,
    ORPHANED_LABEL). ``payload`` is the held Avro prediction or label, empty in
    tombstones; with ``lean`` it is a held prediction in the lean form of
    :mod:`driftline.core.join.leanentry` (header format 2).
    """

    state: JoinState
    deadline_ms: int
    time_ms: int
    ttl_ms: int
    payload: bytes = b""
    lean: bool = False

    HEADER_BYTES: ClassVar[int] = _HEADER.size

    def to_bytes(self) -> bytes:
        """``HEADER_BYTES`` (25) bytes of header, then the payload.

        >>> e = JoinEntry(JoinState.WAITING_FOR_LABEL, 100, 5, 90, b"avro")
        >>> len(e.to_bytes()), JoinEntry.from_bytes(e.to_bytes()) == e
        (29, True)
        """
        fmt = _LEAN if self.lean else _FORMAT
        head = _HEADER.pack(fmt << 4 | self.state, self.deadline_ms, self.time_ms, self.ttl_ms)
        return head + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinEntry:
        """Read what :meth:`to_bytes` wrote; CodecError if it is not such bytes."""
        if len(data) < _HEADER.size:
            raise CodecError(f"join entry of {len(data)} bytes is shorter than its header")
        tag, deadline, time_ms, ttl = _HEADER.unpack_from(data)
        state = _STATES.get(tag & 0x0F)
        fmt = tag >> 4
        if fmt not in (_FORMAT, _LEAN) or state is None:
            raise CodecError(f"join entry header byte {tag:#04x}: unknown format or state")
        if fmt == _LEAN and state is not _WAITING_FOR_LABEL:
            raise CodecError(f"join entry in state {state.name} cannot hold a lean prediction")
        payload = bytes(data[_HEADER.size :])
        if payload and state >= _JOINED:
            raise CodecError(f"join entry in state {state.name} carries a payload")
        return cls(state, deadline, time_ms, ttl, payload, fmt == _LEAN)

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
class DuplicateLabel:
    """A second label for an event_id already joined, held or given up."""

    payload: bytes
    kind: ClassVar[str] = "duplicate_label"


@dataclass(frozen=True, slots=True)
class DuplicatePrediction:
    """A second prediction for an event_id already held, joined or expired."""

    payload: bytes
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


def on_prediction(
    entry: JoinEntry | None, payload: bytes, event_time_ms: int, now_ms: int, ttl_ms: int
) -> Result:
    """A prediction arrived for the event_id whose entry is ``entry`` (None: none)."""
    _check_ttl(ttl_ms)
    before: tuple[Emission, ...] = ()
    if entry is not None and now_ms >= entry.deadline_ms:
        entry, before = expire(entry, now_ms)
    if entry is None:
        waiting = _WAITING_FOR_LABEL
        return JoinEntry(waiting, now_ms + ttl_ms, event_time_ms, ttl_ms, payload), before
    state = entry.state
    if state is _WAITING_FOR_PREDICTION:
        tomb = JoinEntry(_JOINED, now_ms + ttl_ms, event_time_ms, ttl_ms)
        return tomb, (*before, Joined(payload, entry.payload))
    late = state is _ORPHANED_LABEL
    return entry, (*before, LatePrediction(payload) if late else DuplicatePrediction(payload))


def on_label(
    entry: JoinEntry | None, payload: bytes, label_time_ms: int, now_ms: int, ttl_ms: int
) -> Result:
    """A label arrived for the event_id whose entry is ``entry`` (None: none)."""
    _check_ttl(ttl_ms)
    before: tuple[Emission, ...] = ()
    if entry is not None and now_ms >= entry.deadline_ms:
        entry, before = expire(entry, now_ms)
    if entry is None:
        waiting = _WAITING_FOR_PREDICTION
        return JoinEntry(waiting, now_ms + ttl_ms, label_time_ms, ttl_ms, payload), before
    state = entry.state
    if state is _WAITING_FOR_LABEL:
        tomb = JoinEntry(_JOINED, now_ms + ttl_ms, entry.time_ms, ttl_ms)
        return tomb, (*before, Joined(entry.payload, payload))
    if state is _EXPIRED_PREDICTION:
        return entry, (*before, LateLabel(payload, entry.time_ms))
    return entry, (*before, DuplicateLabel(payload))


def build_outcome(prediction: Mapping[str, Any], label: Mapping[str, Any]) -> dict[str, Any]:
    """The Outcome dict (schemas/outcome.v1.avsc) of a joined Prediction and Label.

    ``label_delay_ms`` is ``label_time_ms - event_time_ms`` and may be negative when
    clocks disagree. A label for another model or event_id is a ValidationError
    (``model_mismatch`` / ``key_mismatch``).

    >>> p = {"event_id": "e", "model": "m", "version": "v1", "event_time_ms": 1000,
    ...      "predicted_at_ms": 1005, "prediction": True, "scores": {"True": 0.9},
    ...      "features": {"x": 1.0}, "segment": {"region": "eu"}}
    >>> o = build_outcome(p, {"event_id": "e", "model": "m", "label": False,
    ...                       "label_time_ms": 4000})
    >>> o["label_delay_ms"], o["prediction"], o["label"]
    (3000, True, False)
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
    }
