"""Join rules: tables of event sequences and what each one must publish."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.core.errors import CodecError, ConfigError, ValidationError
from driftline.core.join.rules import (
    DuplicateLabel,
    DuplicatePrediction,
    Emission,
    ExpiredPrediction,
    Joined,
    JoinEntry,
    JoinState,
    LateLabel,
    LatePrediction,
    OrphanLabel,
    build_outcome,
    deadline_ms,
    expire,
    on_label,
    on_prediction,
)

TTL = 100
W, WP, J, EP, OL = (
    JoinState.WAITING_FOR_LABEL,
    JoinState.WAITING_FOR_PREDICTION,
    JoinState.JOINED,
    JoinState.EXPIRED_PREDICTION,
    JoinState.ORPHANED_LABEL,
)

# A step: ("P" prediction | "L" label, payload, now_ms) or ("X" sweep, None, now_ms).
Step = tuple[str, bytes | None, int]


def run(steps: list[Step]) -> tuple[JoinEntry | None, list[Emission]]:
    entry: JoinEntry | None = None
    out: list[Emission] = []
    for op, payload, now in steps:
        if op == "P":
            assert payload is not None
            entry, emitted = on_prediction(entry, payload, 7, now, TTL)
        elif op == "L":
            assert payload is not None
            entry, emitted = on_label(entry, payload, now, now, TTL)
        else:
            assert entry is not None
            entry, emitted = expire(entry, now)
        out.extend(emitted)
        if entry is not None:  # every entry survives its own serialization
            assert JoinEntry.from_bytes(entry.to_bytes()) == entry
    return entry, out


CASES: list[tuple[str, list[Step], JoinState | None, int | None, list[Emission]]] = [
    ("prediction waits", [("P", b"p", 0)], W, 100, []),
    ("label waits", [("L", b"l", 0)], WP, 100, []),
    ("prediction first", [("P", b"p", 0), ("L", b"l", 50)], J, 150, [Joined(b"p", b"l")]),
    ("label first", [("L", b"l", 0), ("P", b"p", 99)], J, 199, [Joined(b"p", b"l")]),
    (
        "duplicate label after join",
        [("P", b"p", 0), ("L", b"l", 10), ("L", b"l2", 20)],
        J,
        110,
        [Joined(b"p", b"l"), DuplicateLabel(b"l2", J)],
    ),
    (
        "duplicate label while waiting",
        [("L", b"l", 0), ("L", b"l2", 10), ("P", b"p", 20)],
        J,
        120,
        [DuplicateLabel(b"l2", WP), Joined(b"p", b"l")],
    ),
    (
        "duplicate prediction while waiting keeps the first",
        [("P", b"p", 0), ("P", b"p2", 10), ("L", b"l", 20)],
        J,
        120,
        [DuplicatePrediction(b"p2", W), Joined(b"p", b"l")],
    ),
    (
        "duplicate prediction after join",
        [("P", b"p", 0), ("L", b"l", 10), ("P", b"p2", 20)],
        J,
        110,
        [Joined(b"p", b"l"), DuplicatePrediction(b"p2", J)],
    ),
    ("not yet expired", [("P", b"p", 0), ("X", None, 99)], W, 100, []),
    (
        "expired prediction",
        [("P", b"p", 0), ("X", None, 100)],
        EP,
        200,
        [ExpiredPrediction(b"p")],
    ),
    (
        "late label after sweep",
        [("P", b"p", 0), ("X", None, 100), ("L", b"l", 150)],
        EP,
        200,
        [ExpiredPrediction(b"p"), LateLabel(b"l", 7)],
    ),
    (
        "late label without sweep expires first",
        [("P", b"p", 0), ("L", b"l", 100)],
        EP,
        200,
        [ExpiredPrediction(b"p"), LateLabel(b"l", 7)],
    ),
    (
        "duplicate prediction after expiry",
        [("P", b"p", 0), ("X", None, 120), ("P", b"p2", 130)],
        EP,
        220,
        [ExpiredPrediction(b"p"), DuplicatePrediction(b"p2", EP)],
    ),
    ("orphan label", [("L", b"l", 0), ("X", None, 100)], OL, 200, [OrphanLabel(b"l")]),
    (
        "prediction after orphan label",
        [("L", b"l", 0), ("X", None, 100), ("P", b"p", 150)],
        OL,
        200,
        [OrphanLabel(b"l"), LatePrediction(b"p")],
    ),
    (
        "label after orphan label",
        [("L", b"l", 0), ("P", b"p", 100)],
        OL,
        200,
        [OrphanLabel(b"l"), LatePrediction(b"p")],
    ),
    (
        "second label after orphan",
        [("L", b"l", 0), ("X", None, 100), ("L", b"l2", 110)],
        OL,
        200,
        [OrphanLabel(b"l"), DuplicateLabel(b"l2", OL)],
    ),
    (
        "joined tombstone expires",
        [("P", b"p", 0), ("L", b"l", 10), ("X", None, 110)],
        None,
        None,
        [Joined(b"p", b"l")],
    ),
    (
        "expired tombstone expires",
        [("P", b"p", 0), ("X", None, 100), ("X", None, 200)],
        None,
        None,
        [ExpiredPrediction(b"p")],
    ),
    (
        "label after tombstone is gone starts over",
        [("P", b"p", 0), ("L", b"l", 10), ("L", b"l2", 110)],
        WP,
        210,
        [Joined(b"p", b"l")],
    ),
    (
        "long gap: expiry, tombstone expiry, fresh wait in one call",
        [("P", b"p", 0), ("X", None, 100), ("L", b"l", 500)],
        WP,
        600,
        [ExpiredPrediction(b"p")],
    ),
    ("sweep before deadline is a no-op", [("L", b"l", 0), ("X", None, 50)], WP, 100, []),
]


@pytest.mark.parametrize(
    ("case", "steps", "state", "deadline", "emitted"), CASES, ids=[c[0] for c in CASES]
)
def test_join_rules(
    case: str,
    steps: list[Step],
    state: JoinState | None,
    deadline: int | None,
    emitted: list[Emission],
) -> None:
    entry, out = run(steps)
    assert out == emitted
    if state is None:
        assert entry is None
    else:
        assert entry is not None
        assert (entry.state, deadline_ms(entry)) == (state, deadline)
        assert entry.is_tombstone == (state >= JoinState.JOINED)
        assert (entry.payload == b"") == entry.is_tombstone


def test_exactly_one_joined_whatever_the_order() -> None:
    steps: list[Step] = [("L", b"l", 0), ("P", b"p", 1), ("L", b"l", 2), ("P", b"p", 3)]
    _, out = run([*steps, ("L", b"l", 4), ("X", None, 50)])
    assert sum(isinstance(e, Joined) for e in out) == 1
    assert len(out) == 4  # every message is in exactly one emission after the first two


@pytest.mark.parametrize("ttl", [0, -1])
def test_ttl_must_be_positive(ttl: int) -> None:
    with pytest.raises(ConfigError):
        on_prediction(None, b"p", 0, 0, ttl)
    with pytest.raises(ConfigError):
        on_label(None, b"l", 0, 0, ttl)


def test_emission_kinds_are_counter_names() -> None:
    kinds = {
        cls.kind
        for cls in (
            Joined,
            DuplicateLabel,
            DuplicatePrediction,
            LateLabel,
            LatePrediction,
            ExpiredPrediction,
            OrphanLabel,
        )
    }
    assert len(kinds) == 7


ints = st.integers(-(2**63), 2**63 - 1)


@given(
    st.sampled_from(list(JoinState)), ints, ints, ints, st.binary(max_size=600),
    st.one_of(st.none(), st.binary(max_size=300)), st.booleans(),
)  # fmt: skip
def test_entry_bytes_round_trip(
    state: JoinState, deadline: int, time_ms: int, ttl: int, payload: bytes,
    origin: bytes | None, lean: bool,
) -> None:  # fmt: skip
    held = state < JoinState.JOINED
    entry = JoinEntry(state, deadline, time_ms, ttl, payload if held else b"",
                      lean=lean and state is W, origin=origin if held else None)  # fmt: skip
    data = entry.to_bytes()
    extra = 0 if entry.origin is None else len(entry.origin) + (1 if len(entry.origin) < 64 else 2)
    assert len(data) == JoinEntry.HEADER_BYTES + extra + len(entry.payload)
    assert data[0] >> 4 == (3 if entry.origin is not None else 1) + entry.lean
    assert JoinEntry.from_bytes(data) == entry
    assert entry.legacy_lean == (entry.lean and entry.origin is None)


GOOD = JoinEntry(W, 1, 2, 3, b"x").to_bytes()
WITH_ORIGIN = JoinEntry(W, 1, 2, 3, b"x", origin=b"\x02\x00").to_bytes()


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("empty", b""),
        ("short header", GOOD[:24]),
        ("unknown format", bytes([0x51]) + GOOD[1:]),
        ("format zero", bytes([0x01]) + GOOD[1:]),
        ("lean form outside WAITING_FOR_LABEL", bytes([0x22]) + GOOD[1:]),
        ("lean form with origin outside WAITING_FOR_LABEL", bytes([0x42]) + WITH_ORIGIN[1:]),
        ("unknown state", bytes([0x17]) + GOOD[1:]),
        ("state zero", bytes([0x10]) + GOOD[1:]),
        ("tombstone with payload", bytes([0x13]) + GOOD[1:]),
        ("tombstone with an origin", bytes([0x33]) + WITH_ORIGIN[1:]),
        ("origin block cut", WITH_ORIGIN[:26]),
        ("origin length cut", WITH_ORIGIN[:25] + b"\x80"),
    ],
)
def test_bad_entry_bytes(case: str, data: bytes) -> None:
    with pytest.raises(CodecError):
        JoinEntry.from_bytes(data)


SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"


LONG_NAMES = [
    "tenure_months", "monthly_charges", "total_charges", "num_support_calls", "contract",
    "payment_method", "has_partner", "paperless_billing", "avg_session_min", "days_idle",
]  # fmt: skip
SHORT_NAMES = [f"f{i}" for i in range(10)]
VALUES: list[Any] = [27, 70.35, 1889.5, 3, "month-to-month", "card", True, False, 12.5, 4]


def prediction(names: list[str] = LONG_NAMES) -> dict[str, Any]:
    return {
        "event_id": "0b7c1c1e-5f0e-4c6a-9d3e-1f2a3b4c5d6e",
        "model": "churn",
        "version": "v0007",
        "event_time_ms": 1_760_000_000_000,
        "predicted_at_ms": 1_760_000_000_012,
        "prediction": True,
        "scores": {"True": 0.81, "False": 0.19},
        "features": dict(zip(names, VALUES, strict=True)),
        "segment": {"region": "eu"},
        "latency_us": 180,
        "served_by": "driftline",
    }


def single_object(record: dict[str, Any]) -> bytes:
    schema = fastavro.parse_schema(json.loads((SCHEMAS / "prediction.v1.avsc").read_text()))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return b"\xc3\x01" + bytes(8) + body.getvalue()  # marker + 8-byte fingerprint + body


@pytest.mark.parametrize(
    ("names", "size"),
    [(SHORT_NAMES, 242), (LONG_NAMES, 354)],
    ids=["names f0..f9", "names of ~14 chars"],
)
def test_size_of_a_pending_prediction_with_10_features(names: list[str], size: int) -> None:
    # A uuid event_id, 2 class scores, 1 segment attribute and 10 mixed features. The
    # join adds its 25-byte header; the rest is the prediction as the scorer encoded it,
    # dominated by the feature names.
    payload = single_object(prediction(names))
    entry, _ = on_prediction(None, payload, 0, 0, 86_400_000)
    assert entry is not None
    assert len(entry.to_bytes()) == JoinEntry.HEADER_BYTES + len(payload) == size
    assert JoinEntry.HEADER_BYTES == 25


def test_tombstone_is_header_only() -> None:
    entry, _ = run([("P", b"p" * 300, 0), ("L", b"l", 1)])
    assert entry is not None
    assert len(entry.to_bytes()) == JoinEntry.HEADER_BYTES


LABEL = {"event_id": "0b7c1c1e-5f0e-4c6a-9d3e-1f2a3b4c5d6e", "model": "churn", "label": False}


def test_build_outcome() -> None:
    p = prediction()
    outcome = build_outcome(p, dict(LABEL, label_time_ms=p["event_time_ms"] + 3_600_000))
    assert outcome["label_delay_ms"] == 3_600_000
    assert outcome["label"] is False
    assert outcome["prediction"] is True
    assert outcome["features"] == p["features"]
    schema = fastavro.parse_schema(json.loads((SCHEMAS / "outcome.v1.avsc").read_text()))
    assert fastavro.validate(outcome, schema, strict=True)


def test_build_outcome_with_schema_defaults_left_out() -> None:
    p = {k: v for k, v in prediction().items() if k not in ("scores", "segment")}
    outcome = build_outcome(p, dict(LABEL, label_time_ms=p["event_time_ms"] - 5))
    assert (outcome["scores"], outcome["segment"], outcome["label_delay_ms"]) == ({}, {}, -5)


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"event_id": "other"}, "key_mismatch"), ({"model": "x"}, "model_mismatch")],
)
def test_build_outcome_refuses_a_label_of_another_event(
    change: dict[str, str], reason: str
) -> None:
    with pytest.raises(ValidationError) as info:
        build_outcome(prediction(), dict(LABEL, label_time_ms=0, **change))
    assert info.value.reason == reason
