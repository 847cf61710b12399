"""Scoring one feature event: decode, check, predict (champion, challenger in shadow), encode.

The champion and challenger are real versions (trained by ``training.bootstrap``, loaded
by ``models.load_version``); misbehaving models are small stubs of the Servable protocol.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from driftline.core.errors import CodecError, DriftlineError, ModelError, ValidationError
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model import scoring as scoring_module
from driftline.core.model.config import GateConfig, ModelConfig
from driftline.core.model.estimators import ServedModel, load_version
from driftline.core.model.scoring import FEATURE_EVENT, PREDICTION, Scored, Scoring, Servable
from driftline.core.model.validation import Spec
from driftline.core.wire.codec import MARKER, default_codec
from driftline.core.wire.envelope import MAX_EVENT_BYTES
from tests.unit.core.examples import T0, feature_event, label, same

CODEC = default_codec()
KEY = b"scoring-test-key"
NOW = T0 + 250
FEATURES = (
    {"name": "amount", "type": "number", "min": 0.0, "max": 10.0},
    {"name": "plan", "type": "category", "categories": ["a", "b"]},
    {"name": "visits", "type": "integer", "required": False},
    {"name": "premium", "type": "boolean", "required": False},
)
GOOD = {"amount": 7.5, "plan": "b", "visits": 3, "premium": None}
Output = Callable[[Mapping[str, Any]], tuple[Any, dict[str, float]]]


def train(seed: int, existing: tuple[str, ...] = ()) -> ServedModel:
    """A logistic regression trained on ``amount > 5`` and loaded from its signed record."""
    config = ModelConfig(
        "churn", factory="logistic_regression", params={"lr": 0.1}, seed=seed,
        features=FEATURES, gate=GateConfig(min_segment_samples=10, min_holdout_rows=50),
    )  # fmt: skip
    rng = random.Random(seed)
    rows = []
    for i in range(300):
        x: dict[str, Any] = {
            "amount": rng.random() * 10,
            "plan": rng.choice("ab"),
            "visits": rng.randrange(5),
            "premium": rng.random() < 0.5,
        }
        rows.append({"event_id": f"e{i}", "event_time_ms": T0 + i, "features": x,
                     "label": x["amount"] > 5})  # fmt: skip
    _, records = bootstrap(
        rows, config, key=KEY, by="test", reason="unit test", now_ms=T0, host="h", code="0",
        existing_versions=existing,
    )  # fmt: skip
    champion = records[-1]
    assert champion["stage"] == "champion"
    return load_version(champion, KEY)


@pytest.fixture(scope="module")
def champion() -> ServedModel:
    return train(seed=1)


@pytest.fixture(scope="module")
def challenger(champion: ServedModel) -> ServedModel:
    return train(seed=2, existing=(champion.version,))


@dataclass(frozen=True)
class Stub:
    """A model version whose output is ``output(features)``."""

    name: str
    version: str
    spec: Spec
    output: Output

    def predict_one(self, features: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        return self.output(features)


def boom(features: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
    raise RuntimeError("boom")


def stub(output: Output, version: str = "v9-stub") -> Stub:
    return Stub("churn", version, Spec.from_dicts(FEATURES), output)


def scoring(champ: Servable | None, chall: Servable | None = None) -> Scoring:
    return Scoring(CODEC, lambda model: (champ, chall), {"churn"}.__contains__)


def event(**overrides: Any) -> dict[str, Any]:
    return feature_event(**{"features": dict(GOOD), **overrides})


def encoded(**overrides: Any) -> bytes:
    return CODEC.encode(FEATURE_EVENT, event(**overrides))


def check_prediction(data: bytes, served: Servable, ev: Mapping[str, Any]) -> None:
    """The Prediction decodes and holds what ``served`` predicts for ``ev``."""
    decoded = CODEC.decode(data, expect=PREDICTION)
    p = decoded.value
    value, scores = served.predict_one(ev["features"])
    assert same(p["prediction"], value)
    assert p["scores"] == pytest.approx(scores)
    assert (p["model"], p["version"]) == (served.name, served.version)
    assert (p["event_id"], p["event_time_ms"]) == (ev["event_id"], ev["event_time_ms"])
    assert p["features"] == ev["features"]
    assert p["segment"] == ev["segment"]
    assert (p["predicted_at_ms"], p["served_by"]) == (NOW, "driftline")
    assert p["latency_us"] >= 0


@pytest.mark.parametrize(
    "features",
    [
        GOOD,
        {"amount": 0.0, "plan": "a"},  # optional features left out
        {"amount": 10, "plan": "a", "visits": None, "premium": True},  # int for a number
        {"amount": 2.5, "plan": "b", "visits": 0, "premium": False},
    ],
    ids=["good", "optional absent", "bound, int", "low"],
)
def test_good_event_is_scored_by_the_champion(
    champion: ServedModel, features: dict[str, Any]
) -> None:
    ev = event(features=features)
    scored = scoring(champion).score(CODEC.encode(FEATURE_EVENT, ev), b"evt-0001", NOW)
    assert (scored.model, scored.version, scored.event_time_ms) == (
        champion.name, champion.version, ev["event_time_ms"],
    )  # fmt: skip
    assert (scored.shadow, scored.shadow_error) == (None, None)
    check_prediction(scored.prediction, champion, ev)


@pytest.mark.parametrize(
    ("sent", "meant"),
    [
        ({"visits": 3.0, "premium": 1.0}, {"visits": 3, "premium": True}),
        ({"visits": 0.0, "premium": 0.0}, {"visits": 0, "premium": False}),
        ({"amount": 7.0, "visits": 4.0}, {"amount": 7.0, "visits": 4}),  # a number stays
    ],
    ids=["3.0 and 1.0", "0.0 and 0.0", "number stays"],
)
def test_ints_and_bools_written_as_doubles_are_scored_as_meant(
    champion: ServedModel, challenger: ServedModel, sent: dict[str, Any], meant: dict[str, Any]
) -> None:
    """Apache avro's Python DatumWriter writes the union's ints and bools as doubles: the
    scorer takes them as the int and bool they were, and the Predictions carry those (the
    challenger's, carried in the champion's Prediction, made on them too)."""
    as_sent = event(features={**GOOD, **sent})
    as_meant = event(features={**GOOD, **meant})
    scored = scoring(champion, challenger).score(CODEC.encode(FEATURE_EVENT, as_sent), K, NOW)
    check_prediction(scored.prediction, champion, as_meant)
    assert scored.shadow is not None and scored.shadow_error is None
    check_prediction(scored.shadow, challenger, as_meant)
    p = CODEC.decode(scored.prediction).value
    features = p["features"]
    assert [type(features[k]) for k in meant] == [type(v) for v in meant.values()]
    value, scores = challenger.predict_one(as_meant["features"])
    (carried,) = p["challengers"]
    assert (carried["version"], carried["prediction"]) == (challenger.version, value)
    assert carried["scores"] == pytest.approx(scores)


def test_the_model_learned_its_rule(champion: ServedModel) -> None:
    """A sanity check that the scores come from a trained model, not a constant."""
    high = champion.predict_one({"amount": 9.5, "plan": "a"})
    low = champion.predict_one({"amount": 0.5, "plan": "a"})
    assert (high[0], low[0]) == (True, False)


NAN = float("nan")

K = b"evt-0001"
V, C = ValidationError, CodecError


def bad(**features: Any) -> bytes:
    """A FeatureEvent whose features are GOOD with ``features`` changed."""
    return encoded(features={**GOOD, **features})


# (name, raw bytes, key, dead-letter reason, error class)
REFUSED: list[tuple[str, bytes, bytes | None, str, type[DriftlineError]]] = [
    ("undecodable", b"not avro", K, "undecodable", C),
    ("truncated", encoded()[:-4], K, "undecodable", C),
    ("unknown schema", MARKER + bytes(8) + b"\x00", K, "unknown_schema", C),
    ("a label", CODEC.encode("io.driftline.Label", label()), K, "wrong_record", C),
    ("empty event_id", encoded(event_id=""), b"", "invalid_event_id", V),
    ("long event_id", encoded(event_id="e" * 257), b"e" * 257, "invalid_event_id", V),
    ("no key", encoded(), None, "missing_key", V),
    ("other key", encoded(), b"evt-0002", "key_mismatch", V),
    ("unknown model", encoded(model="nope"), K, "unknown_model", V),
    ("missing feature", encoded(features={"plan": "a"}), K, "missing_feature", V),
    ("null required", bad(amount=None), K, "missing_feature", V),
    ("extra feature", bad(zip="10115"), K, "unexpected_feature", V),
    ("str for number", bad(amount="7"), K, "type_mismatch", V),
    ("bool for number", bad(amount=True), K, "type_mismatch", V),
    ("fraction for integer", bad(visits=3.5), K, "type_mismatch", V),
    ("2.0 for boolean", bad(premium=2.0), K, "type_mismatch", V),
    ("int for boolean", bad(premium=1), K, "type_mismatch", V),
    ("NaN", bad(amount=NAN), K, "non_finite", V),
    ("inf", bad(amount=math.inf), K, "non_finite", V),
    ("above max", bad(amount=10.5), K, "out_of_range", V),
    ("below min", bad(amount=-0.1), K, "out_of_range", V),
    ("unseen category", bad(plan="c"), K, "unseen_category", V),
    ("over the size limit", encoded(segment={"note": "n" * MAX_EVENT_BYTES}), K, "too_large", V),
]


@pytest.mark.parametrize(
    ("raw", "key", "reason", "error"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_event(
    champion: ServedModel, raw: bytes, key: bytes | None, reason: str, error: type[DriftlineError]
) -> None:
    with pytest.raises(error) as info:
        scoring(champion).score(raw, key, NOW)
    assert getattr(info.value, "reason", None) == reason


def test_every_documented_reason_is_covered() -> None:
    doc = " ".join((scoring_module.__doc__ or "").split())
    documented = doc.split("reason code: ")[1].split(".")[0].replace(",", " ").split()
    covered = {c[3] for c in REFUSED} | {c[2] for c in MODEL_FAILURES} | {"no_champion"}
    assert set(documented) == covered


def test_no_champion() -> None:
    with pytest.raises(ModelError) as info:
        scoring(None).score(encoded(), b"evt-0001", NOW)
    assert (info.value.reason, info.value.model) == ("no_champion", "churn")


MODEL_FAILURES: list[tuple[str, Output, str]] = [
    ("raises", boom, "model_error"),
    ("NaN score", lambda x: (True, {"True": NAN, "False": NAN}), "non_finite_output"),
    ("inf score", lambda x: (True, {"True": math.inf, "False": 0.0}), "non_finite_output"),
    ("NaN value", lambda x: (NAN, {}), "non_finite_output"),
    ("-inf value", lambda x: (-math.inf, {}), "non_finite_output"),
    ("huge scores", lambda x: ("0", {f"class-{i}": 1e-5 for i in range(60_000)}), "too_large"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("output", "reason"), [c[1:] for c in MODEL_FAILURES], ids=[c[0] for c in MODEL_FAILURES]
)
def test_champion_that_fails(output: Output, reason: str) -> None:
    bad = stub(output)
    with pytest.raises(ModelError) as info:
        scoring(bad).score(encoded(), b"evt-0001", NOW)
    err = info.value
    assert (err.reason, err.model, err.version) == (reason, bad.name, bad.version)
    if reason == "model_error":
        assert isinstance(err.__cause__, RuntimeError)


def test_challenger_scores_in_shadow(champion: ServedModel, challenger: ServedModel) -> None:
    assert challenger.version != champion.version
    ev = event()
    scored = scoring(champion, challenger).score(encoded(), b"evt-0001", NOW)
    assert scored.version == champion.version
    assert scored.shadow_error is None
    assert scored.shadow is not None
    check_prediction(scored.prediction, champion, ev)
    check_prediction(scored.shadow, challenger, ev)
    assert CODEC.decode(scored.shadow).value["version"] == challenger.version


def test_the_champions_prediction_carries_every_challengers(
    champion: ServedModel, challenger: ServedModel
) -> None:
    """Issue 23: a challenger in shadow got no outcome. Its prediction now travels in the
    champion's Prediction (v2), which the join copies into the Outcome."""
    second = stub(lambda x: ("b", {"a": 0.25, "b": 0.75}), version="v9-second")
    lineups: list[tuple[Any, int]] = [
        ([challenger, second], 2),
        ((challenger,), 1),
        (challenger, 1),
    ]
    for served, shadows in lineups:

        def lineup(model: str, c: Any = served) -> tuple[ServedModel, Any]:
            return champion, c

        scored = Scoring(CODEC, lineup, {"churn"}.__contains__).score(encoded(), b"evt-0001", NOW)
        p = CODEC.decode(scored.prediction, expect=PREDICTION).value
        expected = []
        for c in (challenger, second)[:shadows]:
            value, scores = c.predict_one(GOOD)
            expected.append({"version": c.version, "prediction": value, "scores": scores})
        assert same(p["challengers"], expected)
        assert [CODEC.decode(x).value["version"] for x in scored.shadows] == [
            c["version"] for c in expected
        ]
        assert all(CODEC.decode(x).value["challengers"] is None for x in scored.shadows)
        assert scored.shadow_errors == ()
    alone = scoring(champion).score(encoded(), b"evt-0001", NOW)
    assert CODEC.decode(alone.prediction).value["challengers"] is None and alone.shadows == ()
    empty = Scoring(CODEC, lambda m: (champion, []), {"churn"}.__contains__)
    scored = empty.score(encoded(), b"evt-0001", NOW)
    assert CODEC.decode(scored.prediction).value["challengers"] is None


def test_a_failing_challenger_is_left_out_and_the_others_kept(
    champion: ServedModel, challenger: ServedModel
) -> None:
    bad = stub(boom, version="v9-boom")
    s = Scoring(CODEC, lambda m: (champion, [bad, challenger]), {"churn"}.__contains__)
    scored = s.score(encoded(), b"evt-0001", NOW)
    p = CODEC.decode(scored.prediction).value
    assert [c["version"] for c in p["challengers"]] == [challenger.version]
    assert [e.version for e in scored.shadow_errors] == ["v9-boom"]
    assert len(scored.shadows) == 1


def test_challengers_that_would_make_the_prediction_too_large_are_left_out(
    champion: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each challenger's own Prediction fits, the champion's with both would not: the
    champion is served without them (a challenger never blocks serving)."""
    many = {f"class-{i}": 1.0 / 200 for i in range(200)}
    wide = [stub(lambda x: ("class-0", many), version=f"v9-wide-{i}") for i in (1, 2)]
    s = Scoring(CODEC, lambda m: (champion, wide), {"churn"}.__contains__)
    sizes = [len(x) for x in s.score(encoded(), b"evt-0001", NOW).shadows]
    monkeypatch.setattr(scoring_module, "MAX_PREDICTION_BYTES", max(sizes) + 500)
    scored = s.score(encoded(), b"evt-0001", NOW)
    assert CODEC.decode(scored.prediction).value["challengers"] is None
    assert len(scored.shadows) == 2
    (err,) = scored.shadow_errors
    assert (err.reason, err.version) == ("too_large", "v9-wide-1, v9-wide-2")
    assert "served without the challengers' predictions" in err.detail


def strict_spec_stub(served: ServedModel) -> Stub:
    """A challenger that needs a feature the events do not carry yet."""
    spec = Spec.from_dicts([*FEATURES, {"name": "tenure", "type": "integer"}])
    return Stub(served.name, "v9-strict", spec, served.predict_one)


SHADOW_FAILURES: list[tuple[str, Callable[[ServedModel], Servable], str]] = [
    ("raises", lambda s: stub(boom), "model_error"),
    ("NaN", lambda s: stub(lambda x: (True, {"True": NAN, "False": 0.5})), "non_finite_output"),
    ("stricter spec", strict_spec_stub, "missing_feature"),
    ("output Avro cannot hold", lambda s: stub(lambda x: ([1, 2], {})), "schema_mismatch"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "reason"), [c[1:] for c in SHADOW_FAILURES], ids=[c[0] for c in SHADOW_FAILURES]
)
def test_challenger_failure_never_blocks_the_champion(
    champion: ServedModel, make: Callable[[ServedModel], Servable], reason: str
) -> None:
    bad = make(champion)
    scored = scoring(champion, bad).score(encoded(), b"evt-0001", NOW)
    assert isinstance(scored, Scored)
    assert scored.shadow is None
    check_prediction(scored.prediction, champion, event())
    err = scored.shadow_error
    assert err is not None
    assert (err.reason, err.model, err.version) == (reason, "churn", bad.version)


def test_versions_are_looked_up_per_event(champion: ServedModel, challenger: ServedModel) -> None:
    """A swap of champion between two events takes effect on the next event."""
    served: list[tuple[Servable | None, Servable | None]] = [(champion, None)]
    s = Scoring(CODEC, lambda model: served[-1], {"churn"}.__contains__)
    first = s.score(encoded(), b"evt-0001", NOW)
    served.append((challenger, None))
    second = s.score(encoded(), b"evt-0001", NOW)
    assert (first.version, second.version) == (champion.version, challenger.version)
