"""Property tests with the hostile-message generator (tests/hostile.py), without a broker:
the scorer step refuses only with a documented reason, the join step never raises and
puts every message in exactly one place, and a feature spec refuses only with
ValidationError."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.core.errors import DriftlineError, ValidationError
from driftline.core.join.joiner import DEAD_LETTER, OUTCOME, Joiner, Step
from driftline.core.join.leanentry import is_names_key
from driftline.core.join.rules import JoinEntry
from driftline.core.model import scoring as scoring_module
from driftline.core.model.scoring import Scored, Scoring
from driftline.core.model.validation import FEATURE_TYPES, FeatureSpec, Spec
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import Origin
from tests import hostile as H
from tests.unit.core.examples import prediction
from tests.unit.core.join import joinsteps

CODEC = default_codec()
SCORER_REASONS = frozenset(
    " ".join((scoring_module.__doc__ or "").split())
    .split("reason code: ")[1]
    .split(".")[0]
    .replace(",", " ")
    .split()
)
SPEC_REASONS = frozenset(
    {"missing_feature", "unexpected_feature", "type_mismatch", "non_finite", "out_of_range",
     "unseen_category"}
)  # fmt: skip
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Champion:
    """A served version with the churn spec whose model always answers."""

    name = H.MODEL
    version = "v1"
    spec = H.SPEC

    def predict_one(self, features: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        return True, {"True": 0.75, "False": 0.25}


SCORING = Scoring(
    CODEC,
    lambda model: (Champion(), None) if model == H.MODEL else (None, None),
    lambda model: model == H.MODEL,
)


def _score(raw: bytes, key: bytes | None) -> str:
    """``ok`` or the reason of the DriftlineError; any other exception fails the test."""
    try:
        scored = SCORING.score(raw, key, H.T0)
    except DriftlineError as exc:
        reason = getattr(exc, "reason", None)
        assert reason in SCORER_REASONS, (type(exc).__name__, exc)
        return str(reason)
    assert isinstance(scored, Scored)
    return "ok"


def test_the_documented_scorer_reasons_were_read() -> None:
    assert {"undecodable", "too_large", "unknown_model", "non_finite_output"} <= SCORER_REASONS


@given(st.binary(max_size=512), st.one_of(st.none(), st.binary(max_size=16)))
@FAST
def test_any_bytes_are_scored_or_refused_with_a_documented_reason(
    raw: bytes, key: bytes | None
) -> None:
    _score(raw, key)


@given(st.sampled_from(sorted(H.FEATURE_KINDS.keys() - H.RARE_FEATURES)), st.randoms())
@FAST
def test_every_hostile_feature_event_gets_its_reason(kind: str, rng: random.Random) -> None:
    bad = H.FEATURE_KINDS[kind](rng, rng.randrange(10**6))
    assert _score(bad.value or b"", bad.key) == bad.reason


@given(st.sampled_from(sorted(H.RARE_FEATURES)), st.integers(0, 2**32))
@settings(max_examples=10, deadline=None)
def test_big_hostile_feature_events_get_their_reason(kind: str, seed: int) -> None:
    rng = random.Random(seed)  # values up to ~1 MB: hypothesis draws only the seed
    bad = H.FEATURE_KINDS[kind](rng, seed)
    assert _score(bad.value or b"", bad.key) == bad.reason


@given(st.randoms())
@FAST
def test_good_events_are_scored(rng: random.Random) -> None:
    event = H.good_event(rng, f"g{rng.randrange(10**6)}")
    assert _score(CODEC.encode(H.FEATURE_EVENT, event), event["event_id"].encode()) == "ok"


# --- the join step ------------------------------------------------------------------------

TTL = 1_000
KEYS = [f"e{i}" for i in range(4)]
LABEL_KINDS = sorted(H.LABEL_KINDS.keys() - {"label_near_broker_limit"})  # raw cut: integration

ACTIONS = st.one_of(
    st.tuples(st.just("prediction"), st.sampled_from(KEYS), st.sampled_from([H.MODEL, "nope"])),
    st.tuples(st.just("label"), st.sampled_from(KEYS), st.sampled_from([True, False, 0.5])),
    st.tuples(st.just("hostile"), st.sampled_from(LABEL_KINDS), st.integers(0, 2**32)),
    st.tuples(st.just("bytes"), st.binary(max_size=64), st.sampled_from([None, *KEYS])),
    st.tuples(st.just("wait"), st.integers(1, 2 * TTL), st.just(None)),
)


def _message(action: tuple[Any, ...], i: int) -> tuple[bytes | None, bytes | None]:
    """(key, value) of one action; predictions and labels are unique by their times."""
    what, a, b = action
    if what == "prediction":
        record = prediction(event_id=a, model=b, predicted_at_ms=H.T0 + i, segment={})
        return a.encode(), CODEC.encode("io.driftline.Prediction", record)
    if what == "label":
        record = {"event_id": a, "model": H.MODEL, "label": b, "label_time_ms": H.T0 + i}
        return a.encode(), CODEC.encode(H.LABEL, record)
    if what == "hostile":
        bad = H.LABEL_KINDS[a](random.Random(b), i)
        return bad.key, bad.value
    return (None if b is None else b.encode()), a


@given(st.lists(ACTIONS, max_size=40))
@FAST
def test_the_join_step_never_raises_and_every_message_ends_in_one_place(
    actions: list[tuple[Any, ...]],
) -> None:
    joiner = Joiner(CODEC, {H.MODEL: "classification"}.get, lambda m: TTL, "t.predictions",
                    "t.labels")  # fmt: skip
    store: dict[bytes, bytes] = {}
    now = 0
    sent: Counter[bytes] = Counter()
    placed: Counter[bytes] = Counter()
    by_time: dict[tuple[str, int], bytes] = {}

    def place(outputs: list[Any]) -> None:
        for out in outputs:
            if out.topic == "outcomes":
                o = CODEC.decode(out.value, expect=OUTCOME).value
                placed[by_time[("p", o["predicted_at_ms"])]] += 1
                placed[by_time[("l", o["label_time_ms"])]] += 1
            else:
                placed[CODEC.decode(out.value, expect=DEAD_LETTER).value["raw"]] += 1

    def sweep() -> None:
        for key, stored in list(store.items()):
            if is_names_key(key):
                continue
            if JoinEntry.from_bytes(stored).deadline_ms <= now:
                apply(joiner.on_expire(0, key, stored, now, store.get))

    def apply(step: Step) -> None:
        place(step.outputs)
        joinsteps.apply(store, step)

    for i, action in enumerate(actions):
        if action[0] == "wait":
            now += action[1]
            sweep()
            continue
        key, value = _message(action, i)
        sent[value or b""] += 1
        if action[0] == "prediction":
            by_time[("p", H.T0 + i)] = value or b""
        elif action[0] == "label":
            by_time[("l", H.T0 + i)] = value or b""
        origin = Origin("t.labels", 0, i, key, None, [])
        step = joiner.on_message(origin, value, now, store.get)
        apply(step)
        if step.key is None:
            assert step.keep and step.entry is None
    for _ in range(3):  # held entries expire, then their tombstones
        now += 3 * TTL
        sweep()
    assert [k for k in store if not is_names_key(k)] == []
    assert placed == sent


# --- the feature spec ---------------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def feature_specs(draw: st.DrawFn) -> FeatureSpec:
    kind = draw(st.sampled_from(FEATURE_TYPES))
    name = draw(st.text(max_size=6))
    required = draw(st.booleans())
    lo = hi = None
    categories: tuple[str, ...] = ()
    if kind in ("number", "integer"):
        lo, hi = draw(st.one_of(st.none(), FINITE)), draw(st.one_of(st.none(), FINITE))
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
    elif kind == "category":
        categories = tuple(draw(st.lists(st.text(max_size=4), max_size=4, unique=True)))
    return FeatureSpec(name, kind, required, lo, hi, categories)


AVRO_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=8)
)


@st.composite
def specs_and_features(draw: st.DrawFn) -> tuple[Spec, dict[str, Any]]:
    features = draw(st.lists(feature_specs(), max_size=6, unique_by=lambda f: f.name))
    spec = Spec(tuple(features), allow_extra=draw(st.booleans()))
    names = st.one_of(st.sampled_from([f.name for f in features] or ["x"]), st.text(max_size=6))
    return spec, draw(st.dictionaries(names, AVRO_VALUES, max_size=8))


@given(specs_and_features())
@settings(max_examples=400, deadline=None)
def test_a_spec_refuses_any_feature_map_only_with_validation_error(
    case: tuple[Spec, dict[str, Any]],
) -> None:
    spec, features = case
    problems = spec.check_all(features)
    try:
        spec.check(features)
    except ValidationError as exc:
        assert exc.reason in SPEC_REASONS
        assert problems and problems[0].reason == exc.reason  # check stops at the first
    else:
        assert problems == []
        for f in spec.features:  # what passed is what the spec says
            v = features.get(f.name)
            if v is None:
                assert not f.required
            elif f.type in ("number", "integer"):
                assert not isinstance(v, bool) and isinstance(v, int | float)
                assert math.isfinite(v) and (f.min is None or v >= f.min)
                assert f.max is None or v <= f.max
