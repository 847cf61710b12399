"""One step of the join agent: decode a prediction or label, check it, apply the join
rules (:mod:`driftline.core.join.rules`) and say what to publish and store. Pure; the Faust
agent (``driftline.streams.join_loop``) only moves bytes.

Every message ends in exactly one place: a stored entry, an Outcome, or a dead letter
with stage ``join`` and a reason (undecodable, too_large, wrong_record, key_mismatch,
unknown_model, label_type_mismatch, non_finite, duplicate_label, duplicate_prediction,
late_label, late_prediction, expired_prediction, orphan_label, model_mismatch). A prediction and a
label of different models do not join: the one that arrives second is dead-lettered as
model_mismatch and the held one waits on. Externally produced predictions are accepted:
their envelope is checked, their features are kept as given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from driftline.core.errors import CodecError, DriftlineError, ValidationError
from driftline.core.join import rules
from driftline.core.join.leanentry import LeanPredictions
from driftline.core.wire.codec import Codec
from driftline.core.wire.deadletter import Origin, dead_letter
from driftline.core.wire.envelope import (
    MAX_LABEL_BYTES,
    MAX_PREDICTION_BYTES,
    LabelSpec,
    check_envelope,
    check_label,
    check_size,
)
from driftline.core.wire.headers import build as record_headers

Lookup = Callable[[bytes], bytes | None]
"""A store read of the message's partition: key -> value (None: absent)."""

PREDICTION = "io.driftline.Prediction"
LABEL = "io.driftline.Label"
OUTCOME = "io.driftline.Outcome"
DEAD_LETTER = "io.driftline.DeadLetter"


@dataclass(frozen=True, slots=True)
class Out:
    """A record to publish: topic name (without prefix), key, value, headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    record: dict[str, Any] | None = None
    """The value as a dict, for in-process consumers (the monitor)."""


@dataclass(slots=True)
class Step:
    """What one message or expiry did: the entry to store (None: delete; ``keep``: leave
    as is), the records to publish, and the kinds to count."""

    entry: bytes | None
    keep: bool
    outputs: list[Out] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    label_delays_ms: list[int] = field(default_factory=list)
    deadline_ms: int | None = None
    prediction: dict[str, Any] | None = None
    """A prediction seen for the first time (not a duplicate), for the monitor."""
    extra: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Other records to store in the same partition (a new names record)."""


class Joiner:
    """Applies the join rules to raw messages.

    ``task_of(model)`` gives a model's task, or the LabelSpec of its champion (task, class
    types and classes) that its labels are checked against (None: unknown model);
    ``ttl_of(model)`` its join TTL in ms. A prediction is held in the lean form of
    :mod:`driftline.core.join.leanentry` when the caller passes a ``lookup`` of the store
    (which finds and keeps the names records); without one it is held whole.
    """

    MAX_NAMES = 4_096
    """Distinct feature-name lists this process adds to the store; beyond, held whole."""

    def __init__(
        self,
        codec: Codec,
        task_of: Callable[[str], str | LabelSpec | None],
        ttl_of: Callable[[str], int],
        predictions_topic: str,
    ) -> None:
        self.codec = codec
        self.task_of = task_of
        self.ttl_of = ttl_of
        self.predictions_topic = predictions_topic
        self.lean = LeanPredictions.for_codec(codec)
        self._names: dict[bytes, bytes] = {}  # names record key -> value, as stored

    def on_message(
        self, origin: Origin, raw: bytes | None, stored: bytes | None, now_ms: int,
        lookup: Lookup | None = None,
    ) -> Step:  # fmt: skip
        """Handle one message from the predictions or labels topic."""
        try:
            decoded = self.codec.decode(raw or b"")
            record = decoded.value
            if decoded.name not in (PREDICTION, LABEL):
                raise CodecError(f"expected a Prediction or Label, got {decoded.name}")
            if decoded.name == LABEL:
                check_size(raw or b"", MAX_LABEL_BYTES, "a Label")
            else:
                check_size(raw or b"", MAX_PREDICTION_BYTES, "a Prediction")
            check_envelope(record, origin.key, lambda m: self.task_of(m) is not None)
            model = record["model"]
            task = self.task_of(model) or "classification"
            if decoded.name == LABEL:
                check_label(record["label"], task)
            entry = None if stored is None else rules.JoinEntry.from_bytes(stored)
        except DriftlineError as exc:
            reason = "wrong_record" if "expected a Prediction" in str(exc) else exc_reason(exc)
            return self._dead(origin, raw, reason, str(exc), None, now_ms)
        ttl = self.ttl_of(model)
        assert raw is not None
        extra: list[tuple[bytes, bytes]] = []
        if decoded.name == PREDICTION:
            new, emitted = rules.on_prediction(entry, raw, record["event_time_ms"], now_ms, ttl)
            if new is not None and new is not entry and new.payload is raw and lookup:
                new = self._held(new, raw, lookup, extra)
        else:
            new, emitted = rules.on_label(entry, raw, record["label_time_ms"], now_ms, ttl)
        step = self._step(origin, new, entry, emitted, model, now_ms, raw, lookup, record)
        step.extra = extra
        if decoded.name == PREDICTION and not any(
            e.kind in ("duplicate_prediction", "late_prediction") for e in emitted
        ):
            step.prediction = record
        return step

    def internal_error(self, origin: Origin, raw: bytes | None, detail: str, now_ms: int) -> Step:
        """A dead letter for a message whose handling failed unexpectedly (a bug): Faust
        acknowledges events whose handler raised, so the agent turns them into this."""
        return self._dead(origin, raw, "internal_error", detail, None, now_ms)

    def on_expire(
        self, origin: Origin, stored: bytes, now_ms: int, lookup: Lookup | None = None
    ) -> Step:
        """Apply the deadline to a stored entry (``origin`` names its key and partition)."""
        entry = rules.JoinEntry.from_bytes(stored)
        new, emitted = rules.expire(entry, now_ms)
        model = self._model_of(entry) if emitted else None
        return self._step(origin, new, entry, emitted, model, now_ms, None, lookup)

    def _model_of(self, entry: rules.JoinEntry) -> str | None:
        """The model of a held prediction or label (its dead letter names it)."""
        try:
            if entry.lean and self.lean is not None:
                return str(self.lean.fields(entry.payload)["model"])
            return str(self.codec.decode(entry.payload).value["model"])
        except (DriftlineError, KeyError):
            return None

    # -- lean predictions ---------------------------------------------------------------

    def _held(
        self, new: rules.JoinEntry, raw: bytes, lookup: Lookup, extra: list[tuple[bytes, bytes]]
    ) -> rules.JoinEntry:
        """``new`` holding the prediction ``raw`` in lean form when it can; its names
        record, if the store lacks it, goes to ``extra``."""
        packed = None if self.lean is None else self.lean.pack(raw)
        if packed is None:
            return new
        have = self._names.get(packed.key)
        stored = lookup(packed.key)
        if stored is None:
            if have is None and len(self._names) >= self.MAX_NAMES:
                return new
            extra.append((packed.key, packed.names))
        elif stored != packed.names:  # two name lists with one digest: hold it whole
            return new
        self._names[packed.key] = packed.names
        return replace(new, payload=packed.payload, lean=True)

    def _names_of(self, payload: bytes, lookup: Lookup | None) -> bytes:
        assert self.lean is not None
        key = self.lean.names_key(payload)
        names = self._names.get(key)
        if names is None:
            names = None if lookup is None else lookup(key)
            if names is None:
                raise CodecError(f"join store has no names record {key[-8:].hex()}")
            if len(self._names) < self.MAX_NAMES:
                self._names[key] = names
        return names

    def _whole(self, payload: bytes, key: bytes | None, lookup: Lookup | None) -> bytes:
        """A held lean prediction's Avro bytes (for its dead letter)."""
        assert self.lean is not None
        return self.lean.prediction(payload, key or b"", self._names_of(payload, lookup))

    def _step(
        self,
        origin: Origin,
        new: rules.JoinEntry | None,
        old: rules.JoinEntry | None,
        emitted: tuple[rules.Emission, ...],
        model: str | None,
        now_ms: int,
        arrived: bytes | None = None,
        lookup: Lookup | None = None,
        arrived_record: dict[str, Any] | None = None,
    ) -> Step:
        keep = new is old
        lean = old is not None and old.lean
        step = Step(
            None if new is None else (b"" if keep else new.to_bytes()),
            keep,
            deadline_ms=None if new is None or keep else new.deadline_ms,
        )
        for e in emitted:
            step.kinds.append(e.kind)
            if isinstance(e, rules.Joined):
                held_lean = lean and e.prediction is old.payload  # type: ignore[union-attr]
                ok = self._joined(origin, e, step, arrived, model, now_ms, lookup,
                                  arrived_record, held_lean)  # fmt: skip
                if not ok:
                    # the message that arrived is dead-lettered; the held one waits on
                    step.entry, step.keep, step.deadline_ms = b"", True, None
            else:
                payload: bytes = e.payload
                if lean and isinstance(e, rules.ExpiredPrediction):
                    payload = self._whole(payload, origin.key, lookup)
                detail = _DETAILS[e.kind]
                step.outputs.append(self._dead_out(origin, payload, e.kind, detail, model, now_ms))
        return step

    def _joined(
        self, origin: Origin, e: rules.Joined, step: Step, arrived: bytes | None,
        model: str | None, now_ms: int, lookup: Lookup | None = None,
        decoded: dict[str, Any] | None = None, lean: bool = False,
    ) -> bool:  # fmt: skip
        """Publish the Outcome; False when the pair does not match (the message that
        arrived is then dead-lettered, and the held one is kept). ``decoded`` is the
        message that arrived, decoded already. With ``lean`` the held prediction is in
        lean form: the Outcome's bytes are spliced from it and the label's (no decode or
        encode of the features), and its ``record`` for the monitor has no ``features``."""
        value = prediction = None
        if lean:
            assert self.lean is not None and origin.key is not None
            names = self._names_of(e.prediction, lookup)
            value = self.lean.outcome(e.prediction, origin.key, names, e.label)
            if value is None:  # a label of an older schema: the general path
                e = rules.Joined(self._whole(e.prediction, origin.key, lookup), e.label)
            else:
                prediction = {"event_id": origin.key.decode(), **self.lean.fields(e.prediction)}
        if prediction is None:
            if decoded is not None and arrived is e.prediction:
                prediction = decoded
            else:
                prediction = self.codec.decode(e.prediction, expect=PREDICTION).value
        if decoded is not None and arrived is e.label:
            label = decoded
        else:
            label = self.codec.decode(e.label, expect=LABEL).value
        try:
            outcome = rules.build_outcome(prediction, label)
        except ValidationError as exc:
            step.kinds[-1] = exc.reason
            raw = e.label if arrived is None else arrived
            step.outputs.append(self._dead_out(origin, raw, exc.reason, exc.detail, model, now_ms))
            return False
        if value is None:
            value = self.codec.encode(OUTCOME, outcome)
        else:
            del outcome["features"]  # they are in ``value``, never decoded
        step.label_delays_ms.append(outcome["label_delay_ms"])
        hdrs = record_headers(OUTCOME, outcome["event_time_ms"], None)
        step.outputs.append(Out("outcomes", origin.key, value, hdrs, outcome))
        return True

    def _dead(
        self, origin: Origin, raw: bytes | None, reason: str, detail: str, model: str | None,
        now_ms: int,
    ) -> Step:  # fmt: skip
        return Step(
            None, True, [self._dead_out(origin, raw, reason, detail, model, now_ms)], [reason]
        )

    def _dead_out(
        self, origin: Origin, raw: bytes | None, reason: str, detail: str, model: str | None,
        now_ms: int,
    ) -> Out:  # fmt: skip
        record, hdrs = dead_letter(
            origin, stage="join", reason=reason, detail=detail, raw=raw, model=model,
            now_ms=now_ms,
        )  # fmt: skip
        key = record["source_key"]  # the source key, cut if it is huge
        return Out("deadletter", key, self.codec.encode(DEAD_LETTER, record), hdrs, record)


def exc_reason(exc: BaseException) -> str:
    """The dead-letter reason code of a Driftline error."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else "invalid"


_DETAILS: dict[str, str] = {
    "duplicate_label": "a second label for an event already joined or whose label is held",
    "duplicate_prediction": "a second prediction for an event already held or joined",
    "late_label": "label arrived after its prediction's TTL expired",
    "late_prediction": "prediction arrived after its label's TTL expired",
    "expired_prediction": "no label arrived within the model's join TTL",
    "orphan_label": "no prediction arrived within the model's join TTL",
}
