"""One join step: tables of message sequences through the Joiner, with an in-memory store
that does what the join agent does with ``Step.entry`` / ``Step.keep``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from driftline.core.join import joiner as joiner_module
from driftline.core.join.joiner import DEAD_LETTER, LABEL, OUTCOME, PREDICTION, Joiner, Step
from driftline.core.join.keys import split_key
from driftline.core.join.leanentry import LeanPredictions, is_names_key
from driftline.core.join.rules import JoinEntry, JoinState
from driftline.core.wire import headers as h
from driftline.core.wire.codec import MARKER, default_codec
from driftline.core.wire.deadletter import Origin
from driftline.core.wire.envelope import MAX_LABEL_BYTES, MAX_PREDICTION_BYTES, LabelSpec
from tests.unit.core.examples import T0, feature_event, label, prediction
from tests.unit.core.join.joinsteps import apply

CODEC = default_codec()
TTL = 1_000
FLAG = LabelSpec("classification", frozenset({"boolean"}), ("False", "True"), "flag v1")
"""A model whose champion predicts booleans: its labels must be booleans."""
TASKS: dict[str, str | LabelSpec] = {
    "churn": "classification", "fraud": "classification", "price": "regression", "flag": FLAG,
}  # fmt: skip
TTLS = {"churn": TTL, "fraud": TTL, "price": 2 * TTL, "flag": TTL}
PREDICTIONS, LABELS = "t.predictions", "t.labels"
KEY = b"evt-0001"
RULE_KINDS = {
    "duplicate_label", "duplicate_prediction", "late_label", "late_prediction",
    "expired_prediction", "orphan_label",
}  # fmt: skip
LABEL_REFUSED = {"label_type_mismatch", "non_finite"}
"""Labels of a known model refused by its champion's task or class types."""
HEADERS = [("driftline-trace-id", b"0af7651916cd43dd8448eb211c80319c"), ("k", b"v"), ("n", None)]
"""Headers of every message a script sends (a trace id, an application's, a null one)."""


@dataclass(frozen=True)
class Send:
    """A message read from ``topic`` at processing time ``at`` (ms after T0)."""

    topic: str
    at: int
    value: bytes
    key: bytes | None


@dataclass(frozen=True)
class Sweep:
    """The agent's expiry timer at ``at``: every stored entry that is due."""

    at: int


def pred(at: int, key: bytes | None = KEY, **kw: Any) -> Send:
    """A Prediction; ``predicted_at_ms`` is unique per message so it can be traced."""
    record = prediction(predicted_at_ms=T0 + at, **kw)
    return Send(PREDICTIONS, at, CODEC.encode(PREDICTION, record), key)


def lab(at: int, key: bytes | None = KEY, **kw: Any) -> Send:
    """A Label; ``label_time_ms`` is unique per message so it can be traced."""
    record = label(label_time_ms=T0 + 5_000 + at, **kw)
    return Send(LABELS, at, CODEC.encode(LABEL, record), key)


def raw(topic: str, value: bytes, at: int = 0) -> Send:
    return Send(topic, at, value, KEY)


PRICE_P: dict[str, Any] = {"model": "price", "prediction": 3.5, "scores": {}}
LEAN = LeanPredictions.for_codec(CODEC)
FORMS = {"whole": False, "lean": True}


@pytest.fixture(autouse=True, params=list(FORMS))
def form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs twice: predictions held whole (no store lookup given to the
    joiner) and held lean (a lookup of the store, which keeps the names records)."""
    monkeypatch.setitem(FORMS, "current", FORMS[request.param])
    return str(request.param)


def held_prediction(entry: JoinEntry, key: bytes, store: dict[bytes, bytes]) -> bytes:
    """The held prediction's Avro bytes, whichever form holds it."""
    if not entry.lean:
        return entry.payload
    assert LEAN is not None
    names = store[LEAN.names_key(entry.payload)]
    return LEAN.prediction(entry.payload, key, names, entry.legacy_lean)


@dataclass
class Run:
    """What a script did: the kinds and outputs of each item, and the store after it."""

    kinds: list[list[str]] = field(default_factory=list)
    steps: list[list[tuple[Origin, Step]]] = field(default_factory=list)
    store: dict[bytes, bytes] = field(default_factory=dict)
    origins: dict[tuple[Any, ...], list[Origin]] = field(default_factory=dict)
    """Where each input message was read, by :func:`message_id`."""

    def entries(self) -> dict[bytes, JoinEntry]:
        """The join entries in the store (not the names records), by key."""
        return {k: JoinEntry.from_bytes(v) for k, v in self.store.items() if not is_names_key(k)}


def joiner() -> Joiner:
    return Joiner(CODEC, TASKS.get, TTLS.__getitem__, PREDICTIONS, LABELS, lean=FORMS["current"])


def run(script: list[Send | Sweep], j: Joiner | None = None, out: Run | None = None) -> Run:
    """Feed ``script`` to ``j`` (a fresh joiner) and the store of ``out`` (a fresh one)."""
    j = j or joiner()
    out = out or Run()
    for offset, item in enumerate(script):
        done: list[tuple[Origin, Step]] = []
        if isinstance(item, Sweep):
            for key, stored in list(out.store.items()):
                if is_names_key(key):
                    continue
                if JoinEntry.from_bytes(stored).deadline_ms <= item.at:
                    step = j.on_expire(0, key, stored, item.at, out.store.get)
                    apply(out.store, step)
                    done.append((Origin(PREDICTIONS, 0, -1, split_key(key)[1], None, []), step))
        else:
            origin = Origin(item.topic, 0, 100 + offset, item.key, T0 + item.at, list(HEADERS))
            out.origins.setdefault(message_id(item.value), []).append(origin)
            step = j.on_message(origin, item.value, item.at, out.store.get, legacy=True)
            apply(out.store, step)
            done.append((origin, step))
        out.steps.append(done)
        out.kinds.append([k for _, s in done for k in s.kinds])
    return out


E, W, WP, J, EP, OL = (
    None,
    JoinState.WAITING_FOR_LABEL,
    JoinState.WAITING_FOR_PREDICTION,
    JoinState.JOINED,
    JoinState.EXPIRED_PREDICTION,
    JoinState.ORPHANED_LABEL,
)

Held = JoinState | None | dict[str, JoinState]
"""The entries at the end: none, one (of any model) in this state, or by model."""

# (name, script, kinds of each item, the stored entries at the end)
CASES: list[tuple[str, list[Send | Sweep], list[list[str]], Held]] = [
    ("prediction first", [pred(0), lab(100)], [[], ["joined"]], J),
    ("label first", [lab(0), pred(100)], [[], ["joined"]], J),
    ("label just before deadline", [pred(0), lab(TTL - 1)], [[], ["joined"]], J),
    ("clocks disagree", [pred(0, event_time_ms=T0 + 9_000), lab(1)], [[], ["joined"]], J),
    ("regression", [pred(0, **PRICE_P), lab(9, model="price", label=4.25)], [[], ["joined"]], J),
    (
        "duplicate label after join",
        [pred(0), lab(10), lab(20)],
        [[], ["joined"], ["duplicate_label"]],
        J,
    ),
    (
        "duplicate label while held",
        [lab(0), lab(10), pred(20)],
        [[], ["duplicate_label"], ["joined"]],
        J,
    ),
    (
        "duplicate prediction while held",
        [pred(0), pred(10), lab(20)],
        [[], ["duplicate_prediction"], ["joined"]],
        J,
    ),
    (
        "duplicate prediction after join",
        [pred(0), lab(10), pred(20)],
        [[], ["joined"], ["duplicate_prediction"]],
        J,
    ),
    (
        "label after expiry",
        [pred(0), Sweep(TTL), lab(TTL + 10)],
        [[], ["expired_prediction"], ["late_label"]],
        EP,
    ),
    (
        "label after deadline, before the sweep",
        [pred(0), lab(TTL + 10)],
        [[], ["expired_prediction", "late_label"]],
        EP,
    ),
    ("orphan label", [lab(0), Sweep(TTL)], [[], ["orphan_label"]], OL),
    (
        "prediction after its label was orphaned",
        [lab(0), Sweep(TTL), pred(TTL + 1)],
        [[], ["orphan_label"], ["late_prediction"]],
        OL,
    ),
    ("sweep before the deadline", [pred(0), Sweep(TTL - 1)], [[], []], W),
    ("tombstone swept away", [pred(0), lab(10), Sweep(10 + TTL)], [[], ["joined"], []], E),
    (
        "expired tombstone swept away",
        [lab(0), Sweep(TTL), Sweep(2 * TTL)],
        [[], ["orphan_label"], []],
        E,
    ),
    ("per-model TTL", [pred(0, **PRICE_P), Sweep(TTL)], [[], []], W),
    ("prediction for unknown model", [pred(0, model="nope")], [["unknown_model"]], E),
    ("label for unknown model", [pred(0), lab(5, model="nope")], [[], ["unknown_model"]], W),
    (
        "float label, classification",
        [pred(0), lab(5, label=1.5)],
        [[], ["label_type_mismatch"]],
        W,
    ),
    ("null label", [lab(0, label=None)], [["label_type_mismatch"]], E),
    (
        "str label, regression",
        [pred(0, **PRICE_P), lab(5, model="price", label="high")],
        [[], ["label_type_mismatch"]],
        W,
    ),
    (
        "bool label, regression",
        [lab(0, model="price", label=True)],
        [["label_type_mismatch"]],
        E,
    ),
    (
        "int label, boolean model",
        [pred(0, model="flag"), lab(5, model="flag", label=1)],
        [[], ["label_type_mismatch"]],
        W,
    ),
    (
        "str label, boolean model",
        [pred(0, model="flag"), lab(5, model="flag", label="True")],
        [[], ["label_type_mismatch"]],
        W,
    ),
    (
        "bool label, boolean model",
        [pred(0, model="flag"), lab(5, model="flag", label=True)],
        [[], ["joined"]],
        J,
    ),
    (
        "NaN label, regression",
        [lab(0, model="price", label=float("nan"))],
        [["non_finite"]],
        E,
    ),
    ("undecodable bytes", [raw(LABELS, b"not avro at all")], [["undecodable"]], E),
    (
        "label over its size limit, then the prediction",
        [lab(0, label="x" * MAX_LABEL_BYTES), pred(5)],
        [["too_large"], []],
        W,
    ),
    (
        "prediction over its size limit, then the label",
        [pred(0, segment={"note": "n" * MAX_PREDICTION_BYTES}), lab(5)],
        [["too_large"], []],
        WP,
    ),
    ("truncated body", [raw(PREDICTIONS, pred(0).value[:-3])], [["undecodable"]], E),
    ("unknown fingerprint", [raw(LABELS, MARKER + bytes(8) + b"\x00")], [["unknown_schema"]], E),
    (
        "feature event on the predictions topic",
        [raw(PREDICTIONS, CODEC.encode("io.driftline.FeatureEvent", feature_event()))],
        [["wrong_record"]],
        E,
    ),
    ("key mismatch", [pred(0), lab(5, key=b"evt-0002")], [[], ["key_mismatch"]], W),
    ("missing key", [pred(0, key=None)], [["missing_key"]], E),
    ("empty event_id", [pred(0, key=b"", event_id="")], [["invalid_event_id"]], E),
    (
        "a label of another model does not meet the prediction",
        [pred(0), lab(10, model="fraud"), lab(20)],
        [[], [], ["joined"]],
        {"churn": J, "fraud": WP},
    ),
    (
        "a prediction of another model does not meet the label",
        [lab(0), pred(10, model="fraud"), pred(20)],
        [[], [], ["joined"]],
        {"churn": J, "fraud": W},
    ),
    (
        "another model's label does not save a prediction from expiry",
        [pred(0), lab(10, model="fraud"), Sweep(TTL)],
        [[], [], ["expired_prediction"]],
        {"churn": EP, "fraud": WP},
    ),
    (
        "two models score one event, each joins its own label",
        [pred(0), pred(1, model="fraud"), lab(2, model="fraud"), lab(3)],
        [[], [], ["joined"], ["joined"]],
        {"churn": J, "fraud": J},
    ),
    (
        "a duplicate is per model",
        [pred(0), pred(1, model="fraud"), pred(2), lab(3, model="fraud"), lab(4, model="fraud")],
        [[], [], ["duplicate_prediction"], ["joined"], ["duplicate_label"]],
        {"churn": W, "fraud": J},
    ),
    (
        "two models' labels wait for their own predictions and are orphaned apart",
        [lab(0), lab(5, model="fraud"), Sweep(TTL), Sweep(TTL + 5)],
        [[], [], ["orphan_label"], ["orphan_label"]],
        {"churn": OL, "fraud": OL},
    ),
]


def message_id(data: bytes) -> tuple[Any, ...]:
    """What identifies an input message (its bytes, for those that do not decode)."""
    try:
        decoded = CODEC.decode(data)
    except Exception:
        return ("raw", data)
    v = decoded.value
    if decoded.name == PREDICTION:
        return ("P", v["event_id"], v["model"], v["predicted_at_ms"])
    if decoded.name == LABEL:
        return ("L", v["event_id"], v["model"], v["label_time_ms"])
    return ("raw", data)


@pytest.mark.parametrize(
    ("script", "kinds", "held"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_join_step(script: list[Send | Sweep], kinds: list[list[str]], held: Held) -> None:
    result = run(script)
    assert result.kinds == kinds

    entries = result.entries()
    by_model = {split_key(k)[0]: e.state for k, e in entries.items()}
    assert all(split_key(k)[1] == KEY for k in entries)
    if held is None:
        assert by_model == {}
    elif isinstance(held, dict):
        assert by_model == held
    else:
        assert list(by_model.values()) == [held]
    for entry in entries.values():
        assert entry.lean == (FORMS["current"] and entry.state is W)
        assert (entry.origin is not None) == (entry.state in (W, WP))  # held: its origin

    # Every input message ends in exactly one place: an entry, an outcome or a dead letter.
    inputs = Counter(message_id(s.value) for s in script if isinstance(s, Send))
    places: Counter[tuple[Any, ...]] = Counter()
    for entry in entries.values():
        if entry.payload:
            places[message_id(held_prediction(entry, KEY, result.store))] += 1
    for item, done in zip(script, result.steps, strict=True):
        for origin, step in done:
            assert [o.topic for o in step.outputs] == [
                "outcomes" if k == "joined" else "deadletter" for k in step.kinds
            ]
            delays = []
            for out, kind in zip(step.outputs, step.kinds, strict=True):
                assert out.key == origin.key
                if kind == "joined":
                    outcome = check_outcome(out.value, out.headers, script)
                    delays.append(outcome["label_delay_ms"])
                    places[
                        ("P", outcome["event_id"], outcome["model"], outcome["predicted_at_ms"])
                    ] += 1
                    places[
                        ("L", outcome["event_id"], outcome["model"], outcome["label_time_ms"])
                    ] += 1
                else:
                    dead = check_dead_letter(out.value, out.headers, kind, result, now=item.at)
                    places[message_id(dead["raw"])] += 1
            assert step.label_delays_ms == delays
    assert places == inputs


def check_outcome(value: bytes, hdrs: list[tuple[str, bytes]], script: list[Any]) -> dict[str, Any]:
    """The Outcome decodes, says what its prediction and label said, and its headers agree."""
    decoded = CODEC.decode(value, expect=OUTCOME)
    o = decoded.value
    sent = [CODEC.decode(s.value).value for s in script if isinstance(s, Send)]
    (p,) = [v for v in sent if v.get("predicted_at_ms") == o["predicted_at_ms"]]
    (lb,) = [v for v in sent if "label_time_ms" in v and v["label_time_ms"] == o["label_time_ms"]]
    assert o["label_delay_ms"] == lb["label_time_ms"] - p["event_time_ms"]
    assert (o["event_id"], o["model"], o["version"]) == (p["event_id"], p["model"], p["version"])
    assert (o["prediction"], o["label"]) == (p["prediction"], lb["label"])
    assert (o["features"], o["segment"], o["scores"]) == (p["features"], p["segment"], p["scores"])
    assert h.parse(hdrs) == {
        h.CONTENT_TYPE: h.AVRO_SINGLE_OBJECT,
        h.SCHEMA: OUTCOME,
        h.EVENT_TIME: str(p["event_time_ms"]),
    }
    return o


def check_dead_letter(
    value: bytes, hdrs: list[tuple[str, bytes]], kind: str, result: Run, now: int
) -> dict[str, Any]:
    """The DeadLetter decodes with stage join, the kind as reason, and names the origin
    of the record it carries: topic, partition, offset, key, timestamp and headers (for
    an expired prediction or an orphan label too, given up by the sweep)."""
    dead = CODEC.decode(value, expect=DEAD_LETTER).value
    assert (dead["stage"], dead["reason"], dead["failed_at_ms"]) == ("join", kind, now)
    where = [
        (o.topic, o.partition, o.offset, o.key, o.timestamp_ms,
         [{"key": k, "value": v} for k, v in o.headers])
        for o in result.origins[message_id(dead["raw"])]
    ]  # fmt: skip
    assert (dead["source_topic"], dead["source_partition"], dead["source_offset"],
            dead["source_key"], dead["source_timestamp_ms"], dead["headers"]) in where  # fmt: skip
    assert dead["detail"]
    assert h.parse(hdrs)[h.REASON] == kind
    assert h.parse(hdrs)[h.DLQ_STAGE] == "join"
    assert h.parse(hdrs)[h.DLQ_TOPIC] == dead["source_topic"]
    assert h.parse(hdrs)[h.DLQ_OFFSET] == str(dead["source_offset"])
    if kind in RULE_KINDS or kind in LABEL_REFUSED:  # decoded, of a known model: named
        assert dead["model"] == CODEC.decode(dead["raw"]).value["model"]
    if kind.startswith("duplicate_"):  # which model holds the id, and how
        assert f"model {dead['model']!r} holds it" in dead["detail"]
    return dead


def test_every_kind_is_covered() -> None:
    """The table reaches every reason the joiner documents."""
    documented = {
        "undecodable", "too_large", "wrong_record", "key_mismatch", "unknown_model",
        "label_type_mismatch", "non_finite", "duplicate_label", "duplicate_prediction",
        "late_label", "late_prediction", "expired_prediction", "orphan_label",
    }  # fmt: skip
    doc = " ".join((joiner_module.__doc__ or "").split())
    assert all(reason in doc for reason in documented)
    seen = {k for _, _, kinds, _ in CASES for item in kinds for k in item}
    assert documented | {"joined"} <= seen


@pytest.mark.parametrize(
    ("script", "deadline"),
    [
        ([pred(0)], TTL),
        ([pred(0, **PRICE_P)], 2 * TTL),
        ([lab(7)], 7 + TTL),
        ([pred(0), lab(30)], 30 + TTL),  # the tombstone lives another TTL
        ([pred(0), Sweep(TTL + 5)], 2 * TTL + 5),
    ],
)
def test_stored_deadline(script: list[Send | Sweep], deadline: int) -> None:
    (entry,) = run(script).entries().values()
    assert entry.deadline_ms == deadline


V = prediction()["version"]


@pytest.mark.parametrize(
    ("script", "settled"),
    [
        ([pred(0), lab(100)], [None, (V, 0)]),  # held at 0: its TTL counts from then
        ([lab(0), pred(100)], [None, (V, 100)]),  # the prediction arrived and joined
        ([pred(0), Sweep(TTL)], [None, (V, 0)]),
        ([pred(0), lab(TTL + 5)], [None, (V, 0)]),  # expired on the label's arrival
        ([pred(0), pred(10), lab(20)], [None, None, (V, 0)]),  # a duplicate settles nothing
        (  # two models, one event: each settles its own prediction, at its own arrival
            [pred(0), pred(5, model="fraud", version="v7"), lab(10, model="fraud"), lab(20)],
            [None, None, ("v7", 5), (V, 0)],
        ),
        ([pred(0), lab(5, model="fraud"), Sweep(TTL)], [None, None, (V, 0)]),
    ],
    ids=[
        "prediction first",
        "label first",
        "swept",
        "expired by a label",
        "duplicate",
        "two models",
        "another model's label",
    ],
)
def test_settled_names_the_version_and_arrival_of_the_prediction(
    script: list[Send | Sweep], settled: list[tuple[str, int] | None]
) -> None:
    """``Step.settled``, which the monitor's expired-label rate buckets on (issue 22),
    for entries keyed by model and event_id, held whole or lean."""
    result = run(script)
    got = []
    for done in result.steps:
        fates = [s.settled for _, s in done if s.settled is not None]
        assert len(fates) <= 1
        got.append(fates[0] if fates else None)
    assert got == settled
