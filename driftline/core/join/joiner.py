"""One step of the join: decode a prediction or label, check it, apply the join rules
(:mod:`driftline.core.join.rules`) to the entry of its model and event_id, and say what to
publish and store. Pure; the join loop (``driftline.streams.join_loop``) only moves bytes.

Every message ends in exactly one place: a stored entry, an Outcome, or a dead letter
with stage ``join`` and a reason (undecodable, too_large, wrong_record, key_mismatch,
unknown_model, label_type_mismatch, non_finite, duplicate_label, duplicate_prediction,
late_label, late_prediction, expired_prediction, orphan_label). Entries are keyed by model
and event_id (:mod:`driftline.core.join.keys`): one event scored by several models gives
each model's prediction its own entry, joined by the label of the same model, and a label
of one model never meets another model's prediction. Externally produced predictions are
accepted: their envelope is checked, their features are kept as given. A label is checked
against its model's champion (task and class types, a
:class:`~driftline.core.wire.envelope.LabelSpec`); one refused (label_type_mismatch,
non_finite) is dead-lettered naming that model and the labels record it was.

A dead letter names the record it carries: topic, partition, offset, timestamp and
headers. A held prediction or label keeps its own (:mod:`driftline.core.join.origins`),
so an ``expired_prediction`` or ``orphan_label`` raised by the expiry sweep names the
predictions or labels record it was, not the message that happened to be read. A
``duplicate_label`` or ``duplicate_prediction`` says which model holds the event_id and
in what state (held prediction, held label, joined, expired, orphaned).

**Entries of the previous release** (keyed by the event_id alone, formats 1 and 2, no
origin) are migrated lazily, inside the batches' transactions. Where the loop found such
keys at assignment (``legacy=True``), a message whose model has no entry yet looks up
its event_id's legacy entry: a held prediction or label of the same model is that
model's entry, so the step's result goes to the new key and the legacy key is deleted
in the same step; one of another model is left to that model. A legacy tombstone says
no model: it is honoured for every model until it expires (one TTL at most), so a
second label for an event joined before the upgrade is still a duplicate_label, as it
was. The sweep expires legacy entries as before and moves the tombstone of a held one
to its model's key. Their dead letters name the right topic and partition, offset -1
and no headers (the previous release did not keep them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from driftline.core.errors import CodecError, DriftlineError, ValidationError
from driftline.core.join import origins, rules
from driftline.core.join.keys import entry_key, split_key
from driftline.core.join.leanentry import LeanPredictions, Packed
from driftline.core.join.onepass import OnePass
from driftline.core.join.rules import JoinEntry, JoinState
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
    """What one message or expiry did: the entry to store under ``key`` (None: delete;
    ``keep``: leave as is; no ``key``: nothing to store), the records to publish, and
    the kinds to count."""

    entry: bytes | None
    keep: bool
    outputs: list[Out] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    label_delays_ms: list[int] = field(default_factory=list)
    deadline_ms: int | None = None
    prediction: dict[str, Any] | None = None
    """A prediction seen for the first time (not a duplicate), for the monitor."""
    extra: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    """Other records to store in the same partition (None deletes): a new names record,
    the legacy key of a migrated entry."""
    key: bytes | None = None
    """The store key of ``entry``: its model and event_id."""
    settled: tuple[str, int] | None = None
    """(version, arrival ms) of the prediction this step joined or expired: when the join
    first held it (in its model's entry), the instant its TTL counts from. The monitor
    counts the outcome or the expiry in the bucket of that model it counted the
    prediction in (:mod:`driftline.core.watch.rates`)."""


_WAITING_FOR_LABEL = JoinState.WAITING_FOR_LABEL


class Joiner:
    """Applies the join rules to raw messages.

    ``task_of(model)`` gives a model's task, or the LabelSpec of its champion (task, class
    types and classes) that its labels are checked against (None: unknown model);
    ``ttl_of(model)`` its join TTL in ms. ``predictions_topic`` and ``labels_topic`` are
    the full names of the topics the held records came from (their dead letters name
    them). With ``lean`` (the default) a prediction is held in the lean form of
    :mod:`driftline.core.join.leanentry`, whose names records the store keeps; else whole.
    """

    MAX_NAMES = 4_096
    """Distinct feature-name lists this process adds to the store; beyond, held whole."""

    def __init__(
        self,
        codec: Codec,
        task_of: Callable[[str], str | LabelSpec | None],
        ttl_of: Callable[[str], int],
        predictions_topic: str,
        labels_topic: str,
        *,
        lean: bool = True,
    ) -> None:
        self.codec = codec
        self.task_of = task_of
        self.ttl_of = ttl_of
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic
        self.lean = LeanPredictions.for_codec(codec)
        """Reads lean entries (of this release and the previous one)."""
        self.hold_lean = lean and self.lean is not None
        self.onepass = None if self.lean is None else OnePass(self.lean)
        """Reads a current-version Prediction and its lean form in one walk."""
        self._names: dict[bytes, bytes] = {}  # names record key -> value, as stored

    def on_message(
        self, origin: Origin, raw: bytes | None, now_ms: int, lookup: Lookup,
        legacy: bool = False,
    ) -> Step:  # fmt: skip
        """Handle one message from the predictions or labels topic; ``lookup`` reads the
        store of its partition, where ``legacy`` says entries of the previous release
        may be left."""
        known: str | None = None  # the model, once the envelope names a known one
        # a current-version Prediction is read once, with its lean form
        fast = None if self.onepass is None or not raw else self.onepass.read(raw)
        packed: Packed | None = None
        try:
            if fast is not None:
                record, packed = fast
                name = PREDICTION
            else:
                decoded = self.codec.decode(raw or b"")
                record, name = decoded.value, decoded.name
            if name not in (PREDICTION, LABEL):
                raise CodecError(f"expected a Prediction or Label, got {name}")
            if name == LABEL:
                check_size(raw or b"", MAX_LABEL_BYTES, "a Label")
            else:
                check_size(raw or b"", MAX_PREDICTION_BYTES, "a Prediction")
            check_envelope(record, origin.key, lambda m: self.task_of(m) is not None)
            model = known = record["model"]
            task = self.task_of(model) or "classification"
            if name == LABEL:
                check_label(record["label"], task)
            event_id = origin.key
            assert event_id is not None  # check_envelope refused a missing key
            key = entry_key(model, event_id)
            stored = lookup(key)
            entry = None if stored is None else JoinEntry.from_bytes(stored)
            old_key = None
            if entry is None and legacy:
                entry, old_key = self._legacy(event_id, model, lookup)
        except DriftlineError as exc:
            reason = "wrong_record" if "expected a Prediction" in str(exc) else exc_reason(exc)
            # a label refused by its model's champion (label_type_mismatch, non_finite)
            # names that model; a record with no known model names none
            return self._dead(origin, raw, reason, str(exc), known, now_ms)
        ttl = self.ttl_of(model)
        assert raw is not None
        extra: list[tuple[bytes, bytes | None]] = []
        is_prediction = name == PREDICTION
        if is_prediction:
            new, emitted = rules.on_prediction(entry, raw, record["event_time_ms"], now_ms, ttl)
        else:
            new, emitted = rules.on_label(entry, raw, record["label_time_ms"], now_ms, ttl)
        if new is not None and new is not entry and new.payload is raw:  # held from now
            new = self._hold(new, raw, origin, is_prediction, lookup, extra, packed)
        step = self._step(origin, key, new, entry, emitted, model, now_ms, raw, lookup, record,
                          legacy_entry=old_key is not None)  # fmt: skip
        if old_key is not None and not step.keep:  # migrated: the result is under ``key``
            extra.append((old_key, None))
        step.extra = extra
        if is_prediction and not any(
            e.kind in ("duplicate_prediction", "late_prediction") for e in emitted
        ):
            step.prediction = record
        return step

    def internal_error(self, origin: Origin, raw: bytes | None, detail: str, now_ms: int) -> Step:
        """A dead letter for a message whose handling failed unexpectedly (a bug): the
        loop turns what raised into this, so that no message is dropped."""
        return self._dead(origin, raw, "internal_error", detail, None, now_ms)

    def on_expire(
        self, partition: int, key: bytes, stored: bytes, now_ms: int, lookup: Lookup
    ) -> Step:
        """Apply the deadline to the entry stored under ``key`` in ``partition``."""
        entry = JoinEntry.from_bytes(stored)
        model, event_id = split_key(key)
        new, emitted = rules.expire(entry, now_ms)
        legacy = model is None
        if legacy and emitted:
            model = self._model_of(entry)
        target = key
        if legacy and model is not None and new is not None and new is not entry:
            target = entry_key(model, event_id)  # a held legacy entry's tombstone moves
        origin = Origin(self.predictions_topic, partition, -1, event_id, None, [])
        step = self._step(origin, target, new, entry, emitted, model, now_ms, None, lookup)
        if target is not key:
            step.extra.append((key, None))
        return step

    def _legacy(
        self, event_id: bytes, model: str, lookup: Lookup
    ) -> tuple[JoinEntry | None, bytes | None]:
        """The previous release's entry for ``event_id``, when it is ``model``'s (a
        tombstone counts for every model), and its key."""
        stored = lookup(event_id)
        if stored is None:
            return None, None
        entry = JoinEntry.from_bytes(stored)
        if entry.is_tombstone or self._model_of(entry) == model:
            return entry, event_id
        return None, None

    def _version_of(self, entry: JoinEntry) -> str:
        """The version of a held prediction ("" if it cannot be read)."""
        try:
            if entry.lean and self.lean is not None:
                return str(self.lean.fields(entry.payload, entry.legacy_lean)["version"])
            return str(self.codec.decode(entry.payload).value["version"])
        except (DriftlineError, KeyError):
            return ""

    def _model_of(self, entry: JoinEntry) -> str | None:
        """The model of a held prediction or label (its dead letter names it)."""
        try:
            if entry.lean and self.lean is not None:
                return str(self.lean.fields(entry.payload, entry.legacy_lean)["model"])
            return str(self.codec.decode(entry.payload).value["model"])
        except (DriftlineError, KeyError):
            return None

    def _held_origin(self, entry: JoinEntry, partition: int, event_id: bytes) -> Origin:
        """Where the record ``entry`` holds was read (offset -1 and no headers for an
        entry of the previous release, which did not keep them)."""
        topic = self.predictions_topic if entry.state is _WAITING_FOR_LABEL else self.labels_topic
        if entry.origin is None:
            return Origin(topic, partition, -1, event_id, None, [])
        offset, timestamp, headers = origins.unpack(entry.origin, entry.time_ms)
        return Origin(topic, partition, offset, event_id, timestamp, headers)

    # -- held records -------------------------------------------------------------------

    def _hold(
        self, new: JoinEntry, raw: bytes, origin: Origin, is_prediction: bool, lookup: Lookup,
        extra: list[tuple[bytes, bytes | None]], packed: Packed | None = None,
    ) -> JoinEntry:  # fmt: skip
        """``new``, which holds ``raw`` from now on, with its origin and, for a prediction
        that can be, in lean form (a names record the store lacks goes to ``extra``;
        ``packed``: the lean form, when the prediction was read with it)."""
        block = origins.pack(origin.offset, origin.timestamp_ms, origin.headers, new.time_ms)
        payload = None
        if is_prediction and self.hold_lean:
            payload = self._lean(raw, lookup, extra, packed)
        # (the constructor, not dataclasses.replace: twice as fast)
        if payload is None:
            return JoinEntry(new.state, new.deadline_ms, new.time_ms, new.ttl_ms, raw, False, block)
        return JoinEntry(new.state, new.deadline_ms, new.time_ms, new.ttl_ms, payload, True, block)

    def _lean(
        self, raw: bytes, lookup: Lookup, extra: list[tuple[bytes, bytes | None]],
        packed: Packed | None = None,
    ) -> bytes | None:  # fmt: skip
        """The lean form of the prediction ``raw`` (``packed``, when read already), or
        None when it is held whole."""
        assert self.lean is not None
        if packed is None:
            packed = self.lean.pack(raw)
        if packed is None:
            return None
        have = self._names.get(packed.key)
        stored = lookup(packed.key)
        if stored is None:
            if have is None and len(self._names) >= self.MAX_NAMES:
                return None
            extra.append((packed.key, packed.names))
        elif stored != packed.names:  # two name lists with one digest: hold it whole
            return None
        self._names[packed.key] = packed.names
        return packed.payload

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

    def _whole(self, entry: JoinEntry, event_id: bytes, lookup: Lookup | None) -> bytes:
        """A held lean prediction's Avro bytes (for its dead letter or its Outcome)."""
        assert self.lean is not None
        names = self._names_of(entry.payload, lookup)
        return self.lean.prediction(entry.payload, event_id, names, entry.legacy_lean)

    # -- outputs ------------------------------------------------------------------------

    def _step(
        self,
        origin: Origin,
        key: bytes,
        new: JoinEntry | None,
        old: JoinEntry | None,
        emitted: tuple[rules.Emission, ...],
        model: str | None,
        now_ms: int,
        arrived: bytes | None = None,
        lookup: Lookup | None = None,
        arrived_record: dict[str, Any] | None = None,
        legacy_entry: bool = False,
    ) -> Step:
        keep = new is old
        step = Step(
            None if new is None else (b"" if keep else new.to_bytes()),
            keep,
            deadline_ms=None if new is None or keep else new.deadline_ms,
            key=key,
        )
        event_id = origin.key or b""
        # the arrival of the prediction this step joins or expires: the held one's (its
        # TTL counts from it), else now (the prediction is the message that arrived)
        waiting = old is not None and old.state is _WAITING_FOR_LABEL
        since = old.deadline_ms - old.ttl_ms if waiting else now_ms  # type: ignore[union-attr]
        for e in emitted:
            step.kinds.append(e.kind)
            if isinstance(e, rules.Joined):
                assert old is not None
                held = old if e.prediction is old.payload else None
                ok = self._joined(origin, e, step, arrived, model, now_ms, lookup,
                                  arrived_record, held)  # fmt: skip
                if not ok:
                    # the message that arrived is dead-lettered; the held one waits on
                    step.entry, step.keep, step.deadline_ms = b"", True, None
                else:
                    step.settled = (step.outputs[-1].record["version"], since)  # type: ignore[index]
            elif isinstance(e, rules.ExpiredPrediction | rules.OrphanLabel):
                assert old is not None  # the entry that held the record given up
                payload = e.payload
                if isinstance(e, rules.ExpiredPrediction):
                    step.settled = (self._version_of(old), since)
                    if old.lean:
                        payload = self._whole(old, event_id, lookup)
                where = self._held_origin(old, origin.partition, event_id)
                detail = _DETAILS[e.kind]
                step.outputs.append(self._dead_out(where, payload, e.kind, detail, model, now_ms))
            else:
                detail = _DETAILS[e.kind]
                if isinstance(e, rules.Duplicate):
                    detail = duplicate_detail(e, model, legacy_entry)
                step.outputs.append(self._dead_out(origin, e.payload, e.kind, detail, model,
                                                   now_ms))  # fmt: skip
        return step

    def _joined(
        self, origin: Origin, e: rules.Joined, step: Step, arrived: bytes | None,
        model: str | None, now_ms: int, lookup: Lookup | None = None,
        decoded: dict[str, Any] | None = None, held: JoinEntry | None = None,
    ) -> bool:  # fmt: skip
        """Publish the Outcome; False when the pair does not match (the message that
        arrived is then dead-lettered, and the held one is kept). ``decoded`` is the
        message that arrived, decoded already. ``held`` is the entry that held the
        prediction (None: the prediction is the message that arrived); when it is lean,
        the Outcome's bytes are spliced from it and the label's (no decode or encode of
        the features), and its ``record`` for the monitor has no ``features``."""
        value = prediction = None
        if held is not None and held.lean:
            assert self.lean is not None and origin.key is not None
            names = self._names_of(e.prediction, lookup)
            spliced = self.lean.joined(e.prediction, origin.key, names, e.label,
                                       held.legacy_lean)  # fmt: skip
            if spliced is None:  # a label of an older schema: the general path
                e = rules.Joined(self._whole(held, origin.key, lookup), e.label)
            else:
                value, fields = spliced
                prediction = {"event_id": origin.key.decode(), **fields}
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


_HELD: dict[JoinState, str] = {
    JoinState.WAITING_FOR_LABEL: "its prediction is held, waiting for the label",
    JoinState.WAITING_FOR_PREDICTION: "its label is held, waiting for the prediction",
    JoinState.JOINED: "joined (the outcome was published)",
    JoinState.EXPIRED_PREDICTION: "its prediction expired without a label",
    JoinState.ORPHANED_LABEL: "its label was given up as an orphan",
}


def duplicate_detail(e: rules.Duplicate, model: str | None, legacy: bool = False) -> str:
    """The dead-letter detail of a real duplicate: who holds the event_id, in what state.

    >>> e = rules.DuplicateLabel(b"l", JoinState.JOINED)
    >>> duplicate_detail(e, "churn")
    "a second label of model 'churn' for this event_id: model 'churn' holds it, joined (the outcome was published)"
    """  # noqa: E501
    what = "label" if isinstance(e, rules.DuplicateLabel) else "prediction"
    holder = (
        "an entry of the previous release (keyed by the event_id alone, its model not "
        "recorded)" if legacy else f"model {model!r}"
    )  # fmt: skip
    return (
        f"a second {what} of model {model!r} for this event_id: {holder} holds it, {_HELD[e.held]}"
    )


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
