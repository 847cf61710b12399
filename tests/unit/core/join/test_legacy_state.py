"""The join state the previous release left (keyed by event_id alone, entry formats 1 and
2), restored from a changelog that release wrote (tests/fixtures/join/): every held
prediction and label still joins its own model, expires with its own bytes, and the old
tombstones are honoured; each migrated entry moves to its model's key in the same step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driftline.core.join.joiner import DEAD_LETTER, LABEL, OUTCOME, PREDICTION, Joiner
from driftline.core.join.keys import entry_key, is_legacy_key, split_key
from driftline.core.join.leanentry import is_names_key
from driftline.core.join.rules import JoinEntry, JoinState, build_outcome
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import Origin
from tests.unit.core.join.joinsteps import apply

FIXTURE = json.loads(
    (
        Path(__file__).parents[3] / "fixtures" / "join" / "previous-release-changelog.json"
    ).read_text()
)
T0, TTL = FIXTURE["t0"], FIXTURE["ttl_ms"]
CODEC = default_codec()
INPUTS = {name: bytes.fromhex(v) for name, v in FIXTURE["inputs"].items()}
PREDICTIONS, LABELS = "t.predictions", "t.labels"


def restored() -> dict[bytes, bytes]:
    """The store a restore of the fixture's changelog builds (the last record wins)."""
    store: dict[bytes, bytes] = {}
    for r in FIXTURE["changelog"]:
        key = bytes.fromhex(r["key"])
        if r["value"] is None:
            store.pop(key, None)
        else:
            store[key] = bytes.fromhex(r["value"])
    return store


def joiner() -> Joiner:
    tasks = {"churn": "classification", "fraud": "classification"}
    return Joiner(CODEC, tasks.get, lambda m: TTL, PREDICTIONS, LABELS)


def entries(store: dict[bytes, bytes]) -> dict[tuple[str | None, str], JoinState]:
    """(model or None for a legacy key, event_id) -> state."""
    return {
        (split_key(k)[0], split_key(k)[1].decode()): JoinEntry.from_bytes(v).state
        for k, v in store.items() if not is_names_key(k)
    }  # fmt: skip


def label(event_id: str, model: str = "churn", value: bool = True) -> bytes:
    return CODEC.encode(LABEL, {"event_id": event_id, "model": model, "label": value,
                                "label_time_ms": T0 + 2_000})  # fmt: skip


def prediction(event_id: str, model: str = "churn") -> bytes:
    held = CODEC.decode(INPUTS["held_lean"]).value
    return CODEC.encode(PREDICTION, {**held, "event_id": event_id, "model": model})


def test_the_fixture_is_the_previous_release_state() -> None:
    store = restored()
    formats = {k: v[0] >> 4 for k, v in store.items() if not is_names_key(k)}
    assert all(is_legacy_key(k) for k in formats)
    assert sorted(set(formats.values())) == [1, 2]  # whole entries and tombstones; lean
    assert entries(store) == {
        (None, "e-held-lean"): JoinState.WAITING_FOR_LABEL,
        (None, "e-held-whole"): JoinState.WAITING_FOR_LABEL,
        (None, "e-held-label"): JoinState.WAITING_FOR_PREDICTION,
        (None, "e-joined"): JoinState.JOINED,
        (None, "e-expired"): JoinState.EXPIRED_PREDICTION,
        (None, "e-orphan"): JoinState.ORPHANED_LABEL,
        (None, "e-fraud"): JoinState.WAITING_FOR_LABEL,
    }
    assert CODEC.decode(INPUTS["held_lean"]).writer_version == 1  # a Prediction v1


CHURN = {"churn": "classification"}
# (name, topic, message, kinds, what the event_id's entries are after it)
CASES: list[tuple[str, str, bytes, list[str], dict[str | None, JoinState]]] = [
    ("label for a lean prediction", LABELS, label("e-held-lean"), ["joined"],
     {"churn": JoinState.JOINED}),
    ("label for a whole prediction", LABELS, label("e-held-whole"), ["joined"],
     {"churn": JoinState.JOINED}),
    ("prediction for a held label", PREDICTIONS, prediction("e-held-label"), ["joined"],
     {"churn": JoinState.JOINED}),
    ("second label for an event joined before the upgrade", LABELS, label("e-joined"),
     ["duplicate_label"], {None: JoinState.JOINED}),
    ("second prediction for an event joined before the upgrade", PREDICTIONS,
     prediction("e-joined"), ["duplicate_prediction"], {None: JoinState.JOINED}),
    ("another model's prediction, while the old tombstone lives", PREDICTIONS,
     prediction("e-joined", "fraud"), ["duplicate_prediction"], {None: JoinState.JOINED}),
    ("label after the prediction expired", LABELS, label("e-expired"), ["late_label"],
     {None: JoinState.EXPIRED_PREDICTION}),
    ("prediction after the label was orphaned", PREDICTIONS, prediction("e-orphan"),
     ["late_prediction"], {None: JoinState.ORPHANED_LABEL}),
    ("another model's label for an event fraud holds", LABELS, label("e-fraud"), [],
     {None: JoinState.WAITING_FOR_LABEL, "churn": JoinState.WAITING_FOR_PREDICTION}),
    ("its own model's label", LABELS, label("e-fraud", "fraud"), ["joined"],
     {"fraud": JoinState.JOINED}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("topic", "message", "kinds", "after"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_message_meets_the_state_of_the_previous_release(
    topic: str, message: bytes, kinds: list[str], after: dict[str | None, JoinState]
) -> None:
    store = restored()
    before = entries(store)
    event_id = CODEC.decode(message).value["event_id"]
    origin = Origin(topic, 0, 77, event_id.encode(), T0 + 50, [("k", b"v")])
    step = joiner().on_message(origin, message, T0 + 50, store.get, legacy=True)
    assert step.kinds == kinds
    apply(store, step)
    now = entries(store)
    assert {m: s for (m, e), s in now.items() if e == event_id} == after
    assert {k: s for k, s in now.items() if k[1] != event_id} == {
        k: s for k, s in before.items() if k[1] != event_id
    }  # no other event_id's entries changed
    for out in step.outputs:
        record = out.record
        assert record is not None
        if out.topic == "outcomes":
            held = {"e-held-lean": "held_lean", "e-held-whole": "held_whole",
                    "e-fraud": "fraud_held"}.get(event_id)  # fmt: skip
            pred = CODEC.decode(INPUTS[held] if held else message).value
            lab = CODEC.decode(message if held else INPUTS["held_label"]).value
            expected = build_outcome(pred, lab)
            assert CODEC.decode(out.value, expect=OUTCOME).value == expected
            assert expected["challengers"] == []
        else:
            dead = CODEC.decode(out.value, expect=DEAD_LETTER).value
            assert (dead["raw"], dead["source_offset"], dead["source_topic"]) == (
                message,
                77,
                topic,
            )
            if dead["reason"].startswith("duplicate_"):
                assert "previous release" in dead["detail"] and "joined" in dead["detail"]


def test_without_the_legacy_lookup_an_old_entry_is_not_seen() -> None:
    """Partitions the loop found no legacy keys in skip the second lookup."""
    store = restored()
    origin = Origin(LABELS, 0, 1, b"e-held-lean", T0, [])
    step = joiner().on_message(origin, label("e-held-lean"), T0 + 50, store.get)
    assert step.kinds == []  # held as a new label: the old entry was not looked up


def sweep(j: Joiner, store: dict[bytes, bytes], now: int) -> list[dict[str, Any]]:
    dead = []
    for key, value in list(store.items()):
        if not is_names_key(key) and JoinEntry.from_bytes(value).deadline_ms <= now:
            step = j.on_expire(0, key, value, now, store.get)
            apply(store, step)
            dead += [CODEC.decode(o.value, expect=DEAD_LETTER).value for o in step.outputs]
    return dead


def test_the_sweep_gives_up_old_entries_with_their_own_bytes_and_topic() -> None:
    store, j = restored(), joiner()
    dead = sweep(j, store, T0 + TTL)
    got = {(d["reason"], d["source_key"].decode(), d["model"]) for d in dead}
    assert got == {
        ("expired_prediction", "e-held-lean", "churn"),
        ("expired_prediction", "e-held-whole", "churn"),
        ("expired_prediction", "e-fraud", "fraud"),
        ("orphan_label", "e-held-label", "churn"),
    }
    raws = {d["source_key"].decode(): d["raw"] for d in dead}
    assert raws["e-held-lean"] == INPUTS["held_lean"]  # the Prediction v1, byte for byte
    assert raws["e-held-whole"] == INPUTS["held_whole"]
    assert raws["e-held-label"] == INPUTS["held_label"]
    for d in dead:  # the previous release kept no offset nor headers; the topic is right
        topic = LABELS if d["reason"] == "orphan_label" else PREDICTIONS
        assert (d["source_topic"], d["source_partition"], d["source_offset"]) == (topic, 0, -1)
        assert d["headers"] == []
    # held entries became tombstones of their model; old tombstones due were deleted
    assert entries(store) == {
        ("churn", "e-held-lean"): JoinState.EXPIRED_PREDICTION,
        ("churn", "e-held-whole"): JoinState.EXPIRED_PREDICTION,
        ("fraud", "e-fraud"): JoinState.EXPIRED_PREDICTION,
        ("churn", "e-held-label"): JoinState.ORPHANED_LABEL,
        (None, "e-joined"): JoinState.JOINED,  # made at T0 + 10: not due yet
    }
    origin = Origin(LABELS, 0, 5, b"e-held-lean", T0, [])
    late = j.on_message(origin, label("e-held-lean"), T0 + TTL + 1, store.get, legacy=True)
    assert late.kinds == ["late_label"]
    assert sweep(j, store, T0 + 3 * TTL) == []
    assert entries(store) == {}
    assert [k for k in store if not is_names_key(k)] == []
    assert entry_key("churn", b"x") not in store
