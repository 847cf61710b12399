"""The training frame, one training run's ModelVersion record (lineage), bootstrap."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.core.errors import ConfigError
from driftline.core.lifecycle.training import (
    bootstrap,
    decide,
    fit,
    next_version,
    stage_records,
    train,
)
from driftline.core.lifecycle.trainset import build_frame, examples, window
from driftline.core.model.config import GateConfig, ModelConfig
from driftline.core.model.estimators import load_version
from driftline.core.watch.profile import ReferenceProfile
from driftline.core.wire.codec import default_codec
from tests.unit.core.examples import T0, outcome

KEY = b"training-key"
CFG = ModelConfig(
    "churn",
    factory="logistic_regression",
    params={"lr": 0.05},
    seed=7,
    gate=GateConfig(min_segment_samples=50),
)


def outcomes(n: int = 500, seed: int = 1, flip: bool = False) -> list[dict[str, Any]]:
    """Outcome dicts as read from 3 partitions, not in event-time order."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x: dict[str, Any] = {
            "amount": rng.random() * 10,
            "plan": rng.choice(["a", "b"]),
            "opt": None,
        }
        y = (x["amount"] > 5) != flip
        out.append(
            outcome(
                event_id=f"e{i}",
                event_time_ms=T0 + i * 1_000,
                features=x,
                label=y,
                segment={"region": "eu" if i % 2 else "us"},
                topic="t.outcomes",
                partition=i % 3,
                offset=i // 3,
            )
        )
    rng.shuffle(out)
    return out


def test_frame_is_time_ordered_deduplicated_and_keeps_types() -> None:
    rows = outcomes(30)
    rows.append({**rows[0], "offset": 999})  # a duplicate delivery, later offset
    rows.append({**rows[1], "event_id": "no-label", "label": None})
    frame = build_frame(rows)
    assert len(frame) == 30
    assert list(frame["event_time_ms"]) == sorted(frame["event_time_ms"])
    assert 999 not in set(frame["offset"])
    assert frame["feature.opt"].isna().all()
    ex = examples(frame)
    assert list(ex[0]["features"]) == ["amount", "plan"]  # sorted, nulls dropped
    assert type(ex[0]["label"]) is bool
    assert type(ex[0]["features"]["amount"]) is float
    assert ex[0]["segment"] in ({"region": "eu"}, {"region": "us"})


def test_frame_of_nothing() -> None:
    assert examples(build_frame([])) == []
    assert window(build_frame([]), start_ms=1).empty


@pytest.mark.parametrize(
    ("start", "end", "last_n", "expected"),
    [
        (None, None, None, list(range(10))),
        (3, None, None, list(range(3, 10))),
        (None, 3, None, [0, 1, 2]),
        (2, 8, 3, [5, 6, 7]),
        (None, None, 4, [6, 7, 8, 9]),
        (20, None, None, []),
    ],
)
def test_window(start, end, last_n, expected) -> None:
    frame = build_frame({"features": {"x": i}, "label": i, "event_time_ms": i} for i in range(10))
    got = window(frame, start, end, last_n)
    assert list(got["event_time_ms"]) == expected


def test_lineage_and_metrics_of_a_run() -> None:
    ranges = [
        {"topic": "t.outcomes", "partition": p, "start_offset": 0, "end_offset": 167}
        for p in range(3)
    ]
    trigger = {"trigger_id": "trg-1", "idempotency_key": "key-1"}
    old = train(examples(build_frame(outcomes(200, 9))), CFG, key=KEY, now_ms=T0, code="c")
    champion = {**old.record, "version": "v1-abcdef0"}
    ticks = iter(range(0, 10_000, 5))
    run = train(
        examples(build_frame(outcomes())),
        CFG,
        key=KEY,
        now_ms=T0 + 10_000,
        trigger=trigger,
        champion=champion,
        data_ranges=ranges,
        existing_versions=["v1-abcdef0"],
        code="0.1.0+gabc",
        host="trainer-7",
        started_at_ms=T0 + 9_000,
        step_ms={"read": 12.5, "frame": 3.0},
        clock=lambda: next(ticks) / 1000,
    )
    rec = run.record
    lin = rec["lineage"]
    assert rec["version"].startswith("v2-")
    assert rec["version"].endswith(rec["artifact"]["sha256"][:7])
    assert (rec["stage"], rec["stage_changed_by"]) == ("candidate", "trainer")
    assert rec["stage_reason"] == "trained for trigger trg-1"
    assert (lin["trigger_id"], lin["trigger_key"]) == ("trg-1", "key-1")
    assert lin["data_ranges"] == ranges
    assert (lin["rows"], lin["holdout_rows"]) == (400, 100)
    assert (lin["code_version"], lin["host"], lin["seed"]) == ("0.1.0+gabc", "trainer-7", 7)
    assert lin["params"] == {"lr": "0.05"}
    assert lin["champion_version"] == "v1-abcdef0"
    assert lin["started_at_ms"] == T0 + 9_000
    assert lin["finished_at_ms"] > T0 + 10_000
    assert set(lin["step_ms"]) == {"read", "frame", "split", "spec", "train", "serialize",
                                   "profile", "gate", "importance"}  # fmt: skip
    assert all(v == 5.0 for k, v in lin["step_ms"].items() if k not in ("read", "frame"))
    assert [f["name"] for f in rec["feature_spec"]] == ["amount", "plan"]
    assert rec["metrics"]["accuracy"] > 0.8
    assert set(rec["segment_metrics"]) == {"region=eu", "region=us"}
    assert rec["gate"]["champion_metrics"]["rows"] == 100
    # calibrated on the held-out rows (100: Platt), ECE beside accuracy, importance recorded
    assert rec["calibration"]["method"] == "platt" and rec["calibration"]["rows"] == 100
    assert {"ece", "ece_raw"} <= set(rec["gate"]["candidate_metrics"])
    assert "ECE" in rec["gate"]["summary"]
    assert set(lin["importance"]) == {"amount", "plan"}
    assert all(v["repeats"] == 5 for v in lin["importance"].values())
    profile = ReferenceProfile.from_json(rec["reference_profile"])
    assert profile.n == 400 and set(profile.features) == {"amount", "plan"}
    # the record is a valid ModelVersion and its artifact loads
    data = default_codec().encode("ModelVersion", rec)
    decoded = default_codec().decode(data, expect="ModelVersion").value
    assert decoded["lineage"] == lin
    assert load_version(decoded, KEY).version == rec["version"]


def test_same_data_same_digest_whatever_the_read_order() -> None:
    a = train(examples(build_frame(outcomes())), CFG, key=KEY, now_ms=1, code="c", host="h")
    shuffled = outcomes()
    random.Random(5).shuffle(shuffled)
    b = train(examples(build_frame(shuffled)), CFG, key=KEY, now_ms=2, code="c", host="h")
    c = train(examples(build_frame(outcomes(seed=2))), CFG, key=KEY, now_ms=3, code="c", host="h")
    assert a.record["artifact"]["sha256"] == b.record["artifact"]["sha256"]
    assert a.record["artifact"]["sha256"] != c.record["artifact"]["sha256"]


def test_declared_features_win_over_inference() -> None:
    cfg = ModelConfig("churn", features=({"name": "amount", "type": "number"},))
    run = train(examples(build_frame(outcomes(100))), cfg, key=KEY, now_ms=1, code="c", host="h")
    assert [f["name"] for f in run.record["feature_spec"]] == ["amount"]


def test_no_rows_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no labelled rows"):
        train([], CFG, key=KEY, now_ms=1)


def test_large_artifacts_go_to_the_store() -> None:
    stored: dict[str, bytes] = {}

    def store(model: str, version: str, data: bytes) -> str:
        stored[f"{model}/{version}"] = data
        return f"file:///artifacts/{model}/{version}.pkl"

    run = train(
        examples(build_frame(outcomes(100))),
        CFG,
        key=KEY,
        now_ms=1,
        inline_max_bytes=10,
        store=store,
        code="c",
        host="h",
    )
    art = run.record["artifact"]
    assert art["inline"] is None and art["uri"].endswith(".pkl")
    assert stored == {f"churn/{run.record['version']}": run.artifact}
    with pytest.raises(ConfigError, match="too large"):
        train(examples(build_frame(outcomes(100))), CFG, key=KEY, now_ms=1, inline_max_bytes=10)


PASSED = {"passed": True, "checks": {"smoke": True, "improvement": True},
          "candidate_metrics": {"gain": 0.2}}  # fmt: skip
UNPROVEN = {"passed": False, "checks": {"smoke": True, "improvement": False},
            "candidate_metrics": {"gain": 0.02}}  # fmt: skip
WORSE = {**UNPROVEN, "candidate_metrics": {"gain": -0.01}}
BROKEN = {"passed": False, "checks": {"smoke": False, "improvement": False},
          "candidate_metrics": {"gain": 0.02}}  # fmt: skip
THIN = {"passed": False, "checks": {"holdout": False, "improvement": True},
        "candidate_metrics": {"gain": 0.3}}  # fmt: skip


@pytest.mark.parametrize(
    ("verdict", "promotion", "min_improvement", "stage"),
    [
        (PASSED, "auto", 0.0, "champion"),
        (PASSED, "manual", 0.0, "challenger"),
        (UNPROVEN, "auto", 0.0, "challenger"),  # better, not proven: in shadow
        (UNPROVEN, "manual", 0.0, "challenger"),
        (UNPROVEN, "auto", 0.05, "rejected"),  # not even the point estimate beats the margin
        (WORSE, "auto", 0.0, "rejected"),
        (BROKEN, "auto", 0.0, "rejected"),
        (THIN, "auto", 0.0, "rejected"),  # too few held-out rows: no verdict at all
    ],
)
def test_decide(
    verdict: dict[str, Any], promotion: str, min_improvement: float, stage: str
) -> None:
    assert decide(verdict, promotion, min_improvement) == stage


@pytest.mark.parametrize(
    ("existing", "version"),
    [([], "v1-abcdef1"), (["v1-x", "v7-y", "v3-z"], "v8-abcdef1"), (["custom"], "v1-abcdef1")],
)
def test_next_version(existing: list[str], version: str) -> None:
    assert next_version(existing, "abcdef1234") == version


def test_stage_records_archive_the_champion_or_put_it_on_probation() -> None:
    run = train(examples(build_frame(outcomes(100))), CFG, key=KEY, now_ms=5, code="c", host="h")
    old = {**run.record, "version": "v0", "stage": "champion"}
    out = stage_records(
        run.record, "champion", current=[old], by="trainer", reason="gate passed", now_ms=9
    )
    assert [(r["version"], r["stage"]) for r in out] == [
        ("v0", "archived"),
        (run.record["version"], "champion"),
    ]
    out = stage_records(run.record, "champion", current=[old], by="trainer", reason="r",
                        now_ms=9, replaced="probation")  # fmt: skip
    assert [r["stage"] for r in out] == ["challenger", "champion"]
    assert out[0]["stage_reason"].startswith("probation: ")
    out = stage_records(run.record, "rejected", current=[old], by="trainer", reason="r", now_ms=9)
    assert [(r["version"], r["stage"]) for r in out] == [(run.record["version"], "rejected")]


def test_bootstrap_publishes_candidate_then_champion() -> None:
    rows = [{"features": {"x": i % 2}, "label": i % 2 == 0} for i in range(500)]
    run, records = bootstrap(rows, CFG, key=KEY, by="ana", reason="demo", now_ms=1, host="h")
    assert [r["stage"] for r in records] == ["candidate", "champion"]
    assert records[1]["stage_changed_by"] == "ana"
    assert records[1]["stage_reason"] == "bootstrap: demo"
    assert records[1]["lineage"]["trigger_id"] is None
    assert run.verdict["passed"]
    slow = ModelConfig("churn", gate=GateConfig(max_predict_us=1e-6))
    with pytest.raises(ConfigError, match="failed the gate"):
        bootstrap(rows, slow, key=KEY, by="ana", reason="demo", now_ms=1)
    too_few = r"failed holdout: .* 40 held-out rows \(needs >= 100\)"
    with pytest.raises(ConfigError, match=too_few):
        bootstrap(rows[:200], CFG, key=KEY, by="ana", reason="demo", now_ms=1)


def test_bootstrap_of_a_float_label_as_classes_is_refused() -> None:
    """The trial: a float label bootstrapped as a classifier had passed with accuracy 0.0;
    now it must beat the majority class, which it cannot."""
    rows = [{"features": {"x": i / 7}, "label": i * 0.37} for i in range(600)]
    with pytest.raises(ConfigError, match=r"failed improvement: accuracy 0\.0000 on 120"):
        bootstrap(rows, CFG, key=KEY, by="ana", reason="csv", now_ms=1)


# -- epochs -------------------------------------------------------------------------------


def agrawal_rows(function: int, n: int, seed: int) -> list[dict[str, Any]]:
    from driftline.demo.synthetic import drifting_stream

    return [
        {"features": r.features, "label": r.label}
        for r in drifting_stream("agrawal", n, n, seed, (function,))
    ]


def test_fit_first_pass_in_order_then_shuffled_passes() -> None:
    seen: list[int] = []

    class Spy:
        def learn_one(self, x: dict[str, Any], y: Any) -> None:
            seen.append(x["i"])

    rows = [{"features": {"i": i}, "label": True} for i in range(20)]
    progress: list[tuple[int, int]] = []
    fit(Spy(), rows, epochs=3, seed=4, progress=lambda d, t: progress.append((d, t)))
    assert seen[:20] == list(range(20))  # epoch 1: event-time order
    assert sorted(seen[20:40]) == sorted(seen[40:]) == list(range(20))
    assert seen[20:40] != list(range(20)) and seen[20:40] != seen[40:]
    assert progress == [(60, 60)]
    again: list[int] = []
    Spy.learn_one = lambda self, x, y: again.append(x["i"])  # type: ignore[method-assign]
    fit(Spy(), rows, epochs=3, seed=4)
    assert again == seen  # the seed fixes the order
    with pytest.raises(ValueError, match="epochs"):
        fit(Spy(), rows, epochs=0)


def test_epochs_help_a_hoeffding_tree_on_a_small_window() -> None:
    """400 training rows of Agrawal function 2 (a retrain's first answer to a drift): one
    pass leaves the tree at the majority class, five passes split it (0.54 -> 0.78)."""
    test = agrawal_rows(2, 2_000, seed=101)
    accuracy = {}
    for epochs in (1, 5):
        cfg = ModelConfig(
            "m", factory="hoeffding_tree", seed=3,
            params={"grace_period": 50, "delta": 0.01, "epochs": epochs},
            gate=GateConfig(min_segment_samples=1_000),
        )  # fmt: skip
        run = train(agrawal_rows(2, 500, seed=1), cfg, key=KEY, now_ms=1, code="c", host="h")
        assert run.record["lineage"]["params"]["epochs"] == str(epochs)
        right = sum(run.estimator.predict_one(r["features"]) == r["label"] for r in test)
        accuracy[epochs] = right / len(test)
    assert accuracy[1] < 0.6 and accuracy[5] > 0.75


def test_epochs_keep_training_deterministic() -> None:
    cfg = ModelConfig("m", factory="hoeffding_tree", params={"epochs": 3}, seed=5)
    rows = agrawal_rows(5, 300, seed=2)
    a = train(rows, cfg, key=KEY, now_ms=1, code="c", host="h")
    b = train(rows, cfg, key=KEY, now_ms=2, code="c", host="h")
    one = train(rows, ModelConfig("m", factory="hoeffding_tree", seed=5), key=KEY, now_ms=3,
                code="c", host="h")  # fmt: skip
    assert a.record["artifact"]["sha256"] == b.record["artifact"]["sha256"]
    assert a.record["artifact"]["sha256"] != one.record["artifact"]["sha256"]


def test_earlier_rows_are_learnt_first_and_never_held_out() -> None:
    window = examples(build_frame(outcomes(200)))
    earlier = [{**r, "event_time_ms": r["event_time_ms"] - 10**9} for r in window[:150]]
    run = train(window, CFG, key=KEY, now_ms=1, code="c", host="h", earlier=earlier,
                earlier_version="v1-abc")  # fmt: skip
    lin = run.record["lineage"]
    assert (lin["rows"], lin["holdout_rows"]) == (150 + 160, 40)  # 20% of the window only
    assert (lin["earlier_rows"], lin["earlier_version"]) == (150, "v1-abc")
    assert run.record["gate"]["candidate_metrics"]["rows"] == 40
    plain = train(window, CFG, key=KEY, now_ms=1, code="c", host="h")
    plain_lineage = plain.record["lineage"]
    assert (plain_lineage["earlier_rows"], plain_lineage["earlier_version"]) == (0, None)
    assert plain.record["artifact"]["sha256"] != run.record["artifact"]["sha256"]
