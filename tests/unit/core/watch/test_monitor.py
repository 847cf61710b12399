"""ModelMonitor: version switches, concept drift to one retrain trigger, rate alerts, and
records that encode as the published schemas."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from driftline.core.join.joiner import LABEL, PREDICTION, Joiner
from driftline.core.join.keys import entry_key
from driftline.core.join.rules import JoinEntry, JoinState
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import DriftConfig, GateConfig, ModelConfig
from driftline.core.watch.monitor import KEEP_VERSIONS, Emit, ModelMonitor
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import Origin, dead_letter
from tests.unit.core.examples import T0, label, outcome, prediction

CODEC = default_codec()
KEY = b"monitor-test-key"
RECORDS = {
    "metrics": "io.driftline.MetricSnapshot",
    "alerts": "io.driftline.Alert",
    "retrain": "io.driftline.RetrainTrigger",
}
BASELINE = {"accuracy": 0.9}
STEP_MS = 1_000  # one outcome per second of event and processing time
TICK_EVERY = 100


def features(rng: random.Random) -> dict[str, Any]:
    return {"amount": rng.random() * 10, "plan": rng.choice("ab")}


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    """A real champion record (its reference profile is what the monitor loads)."""
    return train_champion()


def train_champion() -> dict[str, Any]:
    """The record :func:`trained` gives (for other modules' fixtures)."""
    rng = random.Random(5)
    rows = []
    for i in range(300):
        x = features(rng)
        rows.append({"event_time_ms": T0 + i, "features": x, "label": x["amount"] > 5})
    config = ModelConfig(
        "churn",
        factory="logistic_regression",
        gate=GateConfig(min_segment_samples=10, min_holdout_rows=50),  # 60 held out
    )
    _, records = bootstrap(
        rows, config, key=KEY, by="test", reason="unit test", now_ms=T0, host="h", code="0"
    )
    return records[-1]


def champion(trained: dict[str, Any], version: str, **kw: Any) -> dict[str, Any]:
    """The trained champion record as ``version``, with a known baseline."""
    record = {**trained, "version": version, "metrics": dict(BASELINE), "segment_metrics": {}}
    return {**record, "stage": "champion", **kw}


def outcomes(
    n: int, version: str, error: Callable[[int], float], *, start: int = 0, seed: int = 0
) -> list[dict[str, Any]]:
    """``n`` outcomes of ``version`` (no challenger); outcome i is wrong with probability
    ``error(i)``."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        y = rng.random() < 0.5
        yp = y != (rng.random() < error(i))
        p = 0.8 if yp else 0.2
        out.append(
            outcome(
                event_id=f"e{i}",
                version=version,
                event_time_ms=T0 + i * STEP_MS,
                prediction=yp,
                label=y,
                scores={"True": p, "False": 1 - p},
                segment={"region": "eu" if i % 2 else "us"},
                features=features(rng),
                challengers=[],
            )
        )
    return out


def drive(
    mon: ModelMonitor, rows: Iterable[dict[str, Any]], tick_every: int = TICK_EVERY
) -> list[Emit]:
    """Feed outcomes as the monitor agent does, ticking every ``tick_every`` of them."""
    emits: list[Emit] = []
    for i, o in enumerate(rows, 1):
        now = o["event_time_ms"] + 500
        emits += mon.observe_outcome(o, now)
        if i % tick_every == 0:
            emits += mon.tick(now)
    return emits


def check_encodes(emits: list[Emit]) -> None:
    """Every emitted dict is a valid record of its topic's schema."""
    for e in emits:
        assert e.model == "churn"
        decoded = CODEC.decode(CODEC.encode(RECORDS[e.topic], e.value), expect=RECORDS[e.topic])
        assert decoded.name == RECORDS[e.topic]
        assert decoded.value == e.value


def of(emits: list[Emit], topic: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [e.value for e in emits if e.topic == topic and kind in (None, e.value.get("kind"))]


def const(rate: float) -> Callable[[int], float]:
    return lambda i: rate


def jump(at: int, before: float, after: float) -> Callable[[int], float]:
    return lambda i: before if i < at else after


# -- version switch -------------------------------------------------------------------------


def test_version_switch(trained: dict[str, Any]) -> None:
    mon = ModelMonitor(ModelConfig("churn"))
    v1 = champion(trained, "v1-aaaaaaa")
    seg_base = {"region=eu": {"accuracy": 0.75}}
    v2 = champion(trained, "v2-bbbbbbb", metrics={"accuracy": 0.8}, segment_metrics=seg_base)
    mon.on_version(v1, T0)
    emits = drive(mon, outcomes(300, v1["version"], const(0.1)))
    before = mon.detector
    assert before is not None
    assert before.n == 300

    mon.on_version({**v2, "stage": "candidate"}, T0)  # not a switch yet
    assert mon.champion_version == v1["version"]
    mon.on_version(v2, T0 + 300 * STEP_MS)
    assert mon.champion_version == v2["version"]
    assert mon.policy.state["champion"] == v2["version"]
    assert mon.detector is not before
    assert mon.detector is not None
    assert (mon.detector.version, mon.detector.n) == (v2["version"], 0)
    assert mon.features is not None
    assert mon.features.version == v2["version"]
    assert mon.features.count == 0
    switched = mon.detector
    mon.on_version(v2, T0 + 300 * STEP_MS)  # the same champion again: nothing resets
    assert mon.detector is switched

    # New outcomes of v2, and late outcomes of v1 (all wrong) still in flight.
    emits += drive(mon, outcomes(200, v2["version"], const(0.1), start=300), tick_every=10**9)
    emits += drive(mon, outcomes(50, v1["version"], const(1.0), start=500), tick_every=10**9)
    assert mon.detector.n == 200  # only the champion's outcomes feed its detector
    tick = mon.tick(T0 + 600 * STEP_MS)
    emits += tick
    snaps = {(s["version"], s["segment"], s["window"]): s for s in of(tick, "metrics")}
    count_window = f"count:{mon.window_size}"
    assert snaps[(v2["version"], "all", count_window)]["count"] == 200
    assert snaps[(v1["version"], "all", count_window)]["count"] == 350
    rows = v2["gate"]["candidate_metrics"]["rows"]  # 'all' says on how many rows, as segments do
    for (version, segment, _), snap in snaps.items():
        # an old version is tracked but not judged: no baseline
        mine = seg_base.get(segment, {**v2["metrics"], "count": rows})
        expected = mine if version == v2["version"] else {}
        assert snap["baseline"] == expected, (version, segment)
    assert v1["version"] not in {a["version"] for a in of(emits, "alerts")}
    check_encodes(emits)


def test_old_versions_are_dropped_first(trained: dict[str, Any]) -> None:
    mon = ModelMonitor(ModelConfig("churn"))
    mon.on_version(champion(trained, "v2"), T0)
    order = ["v1", "v2", "v3", "v4", "v5"]
    for k, version in enumerate(order):
        drive(mon, outcomes(5, version, const(0.1), start=5 * k))
    assert len(mon.trackers) == KEEP_VERSIONS
    kept_others = [v for v in order if v != "v2"][-(KEEP_VERSIONS - 1) :]
    assert sorted(mon.trackers) == sorted(["v2", *kept_others])


# -- concept drift and the retrain policy ---------------------------------------------------

DRIFT_AT = 2_000

STREAMS: list[tuple[str, Callable[[int], float], int, dict[str, Any], int]] = [
    ("stationary", const(0.1), 20_000, {}, 0),
    ("sudden drift", jump(DRIFT_AT, 0.1, 0.6), 10_000, {"on_degradation": False}, 1),
    ("sudden drift, degradation on", jump(DRIFT_AT, 0.1, 0.6), 10_000, {}, 1),
]


@pytest.mark.parametrize(
    ("error", "n", "retrain", "triggers"), [s[1:] for s in STREAMS], ids=[s[0] for s in STREAMS]
)
def test_concept_drift_retrains_once(
    trained: dict[str, Any],
    error: Callable[[int], float],
    n: int,
    retrain: dict[str, Any],
    triggers: int,
) -> None:
    mon = ModelMonitor(ModelConfig("churn", retrain=retrain))
    record = champion(trained, "v1-aaaaaaa")
    mon.on_version(record, T0)
    emits = drive(mon, outcomes(n, record["version"], error, seed=11))
    check_encodes(emits)

    drift = of(emits, "alerts", "concept_drift")
    fired = of(emits, "retrain")
    assert len(fired) == triggers
    if not triggers:
        assert drift == []
        assert of(emits, "alerts", "performance_degradation") == []
        return
    assert drift
    assert all(a["version"] == record["version"] for a in drift)
    assert min(a["evidence"]["n"] for a in drift) > DRIFT_AT  # no alarm before the change
    (trigger,) = fired
    assert trigger["champion_version"] == record["version"]
    assert mon.policy.state["inflight"]["trigger_id"] == trigger["trigger_id"]
    # ticks went on long after the trigger, with the drift still there
    assert n * STEP_MS + T0 - trigger["created_at_ms"] > 50 * TICK_EVERY * STEP_MS
    assert "concept_drift" in trigger["reasons"]
    if retrain.get("on_degradation") is False:
        assert trigger["reasons"] == ["concept_drift"]
    ev = trigger["evidence"]
    # The change point counts the outcomes seen when the drift was detected, so the
    # trigger waits for min_rows outcomes after it and trains on exactly those.
    change_at = ev["concept_drift.n"] - ev["concept_drift.since_change"]
    assert ev["post_change_rows"] == ev["outcomes"] - change_at
    assert ev["post_change_rows"] >= mon.policy.config["min_rows"]
    assert trigger["last_n"] == ev["post_change_rows"]
    assert trigger["window_start_ms"] == ev["concept_drift.change_time_ms"]


# -- incidents --------------------------------------------------------------------------------

# (name, error per outcome, outcomes, incidents as (cause, state at the end))
INCIDENT_STREAMS: list[tuple[str, Callable[[int], float], int, list[tuple[str, str]]]] = [
    ("stationary", const(0.1), 6_000, []),
    ("a drift that recovers", lambda i: 0.45 if 2_000 <= i < 4_000 else 0.1, 9_000,
     [("concept_drift", "resolved"), ("performance_degradation", "resolved")]),
    ("a drift that stays", jump(2_000, 0.1, 0.45), 6_000,
     [("concept_drift", "firing"), ("performance_degradation", "firing")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "n", "want"),
    [r[1:] for r in INCIDENT_STREAMS],
    ids=[r[0] for r in INCIDENT_STREAMS],
)
def test_a_stream_through_the_monitor_raises_one_incident_per_cause(
    trained: dict[str, Any],
    error: Callable[[int], float],
    n: int,
    want: list[tuple[str, str]],
) -> None:
    """Every judgement of every tick (two segments, count and time windows, drift) goes
    through the incidents: one incident per cause, published when it opens, escalates
    (warning to critical) and resolves."""
    mon = ModelMonitor(ModelConfig("churn", retrain={"on_degradation": False}))
    record = champion(trained, "v1-aaaaaaa")
    mon.on_version(record, T0)
    emits = drive(mon, outcomes(n, record["version"], error, seed=3))
    check_encodes(emits)
    alerts = of(emits, "alerts")
    got: dict[str, list[str]] = {}
    for a in alerts:
        got.setdefault(a["kind"], []).append(a["state"])
    assert sorted((kind, states[-1]) for kind, states in got.items()) == want
    for kind, states in got.items():
        mine = [a for a in alerts if a["kind"] == kind]
        assert len({a["incident_id"] for a in mine}) == 1  # one incident
        assert states[0] == "firing" and states.count("resolved") <= 1
        assert len(states) <= 3  # opened, escalated at most once, resolved
    perf = [a for a in alerts if a["kind"] == "performance_degradation"]
    if perf:
        assert {"all", "region=eu", "region=us"} >= set(perf[-1]["segments"]) >= {"all"}
        assert len({a["incident_id"] for a in perf}) == 1
    for a in alerts:
        if a["state"] == "resolved":
            assert a["duration_ms"] == a["resolved_at_ms"] - a["opened_at_ms"] > 0
            # resolved on evidence from after the recovery (outcome 4,000 on)
            assert a["resolved_at_ms"] > T0 + 4_000 * STEP_MS
    assert {a["kind"] for a in alerts} == set(mon.incidents.open) | {
        k for k, states in got.items() if states[-1] == "resolved"
    }


def test_a_segment_is_judged_only_against_a_baseline_of_enough_rows(
    trained: dict[str, Any],
) -> None:
    """Both segments serve 10% below their validation accuracy; only the one whose
    baseline was measured on at least min_segment_samples held-out rows is judged:
    a segment alone opens its own incident (all is healthy)."""
    config = ModelConfig("churn", gate=GateConfig(min_segment_samples=200))
    mon = ModelMonitor(config)
    record = champion(trained, "v1-aaaaaaa", segment_metrics={
        "region=eu": {"accuracy": 0.99, "count": 150},
        "region=us": {"accuracy": 0.99, "count": 250},
    })  # fmt: skip
    mon.on_version(record, T0)
    emits = drive(mon, outcomes(3_000, record["version"], const(0.1), seed=4))
    check_encodes(emits)
    alerts = of(emits, "alerts")
    assert len({a["incident_id"] for a in alerts}) == 1  # (maybe escalated once)
    for a in alerts:
        assert (a["kind"], a["state"], a["segments"]) == (
            "performance_degradation", "firing", ["region=us"])  # fmt: skip


# -- rate alerts ----------------------------------------------------------------------------


def prediction_of(i: int, version: str) -> dict[str, Any]:
    rng = random.Random(i)
    return prediction(event_id=f"p{i}", version=version, features=features(rng), segment={})


JOINER = Joiner(CODEC, {"churn": "classification"}.get, lambda model: 1_000, "t.predictions",
                "t.labels")  # fmt: skip
HELD = {  # what a join expiry gives up: the state and the message it held
    "expired_prediction": (JoinState.WAITING_FOR_LABEL, PREDICTION, prediction()),
    "orphan_label": (JoinState.WAITING_FOR_PREDICTION, LABEL, label()),
}


def join_dead_letter(reason: str, i: int) -> tuple[dict[str, Any], tuple[str, int] | None]:
    """A join dead letter and its step's ``settled``; those of an expiry made by the
    joiner, as the agent's sweep does (the prediction arrived at T0, TTL 1 s)."""
    if reason in HELD:
        state, name, record = HELD[reason]
        if name == PREDICTION:
            record = {**record, "version": "v1-aaaaaaa"}
        held = CODEC.encode(name, {**record, "event_id": f"x{i}"})
        entry = JoinEntry(state, T0 + 1_000, T0, 1_000, held)
        key = entry_key("churn", f"x{i}".encode())
        step = JOINER.on_expire(0, key, entry.to_bytes(), T0 + 1_000, dict[bytes, bytes]().get)
        (out,) = step.outputs
        return CODEC.decode(out.value).value, step.settled
    letter, _ = dead_letter(
        Origin("t.labels", 0, i, f"x{i}".encode(), T0, []), stage="join", reason=reason,
        detail="d", raw=b"", model="churn", now_ms=T0,
    )  # fmt: skip
    return letter, None


# (name, events scored, scorer dead letters, outcomes, join dead letters, alert kinds)
RATES: list[tuple[str, int, list[str], int, list[str], list[str]]] = [
    ("clean", 200, [], 200, [], []),
    ("skew at the threshold", 95, ["missing_feature"] * 5, 0, [], []),
    ("skew above", 80, ["missing_feature"] * 17 + ["type_mismatch"] * 3, 0, [], ["skew_rate"]),
    ("skew, too few events", 40, ["missing_feature"] * 10, 0, [], []),
    ("join letters are no skew", 90, [], 0, ["duplicate_label"] * 10, []),
    ("expired above", 0, [], 60, ["expired_prediction"] * 40, ["expired_label_rate"]),
    ("expired at the threshold", 0, [], 80, ["expired_prediction"] * 20, []),
    ("orphans are not expiries", 0, [], 70, ["orphan_label"] * 30, []),
    (
        "both",
        80,
        ["unseen_category"] * 20,
        60,
        ["expired_prediction"] * 40,
        ["expired_label_rate", "skew_rate"],
    ),
]


@pytest.mark.parametrize(
    ("n_scored", "failed", "n_out", "join", "kinds"),
    [r[1:] for r in RATES],
    ids=[r[0] for r in RATES],
)
def test_rate_alerts(
    trained: dict[str, Any],
    n_scored: int,
    failed: list[str],
    n_out: int,
    join: list[str],
    kinds: list[str],
) -> None:
    """Both sides of each rate come in together: the scorer's batch (scored and refused),
    the predictions that reached the join and what became of each."""
    mon = ModelMonitor(ModelConfig("churn", join_ttl_ms=1_000))
    record = champion(trained, "v1-aaaaaaa")
    v = record["version"]
    mon.on_version(record, T0)
    mon.observe_scorer_batch(T0, {v: n_scored} if n_scored else {}, Counter(failed))
    letters = [join_dead_letter(reason, i) for i, reason in enumerate(join)]
    assert all(d["model"] == "churn" and d["stage"] == "join" for d, _ in letters)
    expired = join.count("expired_prediction")
    for i in range(n_out + expired):
        mon.observe_prediction(prediction_of(i, v), arrived_ms=T0)
    for d, settled in letters:
        mon.observe_dead_letter(d, settled)
    emits: list[Emit] = []
    for o in outcomes(n_out, v, const(0.1)):
        emits += mon.observe_outcome(o, T0 + 500, settled=(v, T0))
    emits += mon.tick(T0 + 10**6)
    check_encodes(emits)
    rates = [a for a in of(emits, "alerts") if a["kind"] in ("skew_rate", "expired_label_rate")]
    assert sorted(a["kind"] for a in rates) == kinds
    for a in rates:
        assert a["version"] == v
        ev = a["evidence"]
        if a["kind"] == "skew_rate":
            assert (ev["failed"], ev["total"]) == (len(failed), len(failed) + n_scored)
            for reason in set(failed):
                assert ev[f"reason.{reason}"] == failed.count(reason)
        else:
            assert (ev["expired"], ev["total"]) == (expired, expired + n_out)
    snaps = {s["window"]: s for s in of(emits, "metrics") if s["version"] == "all"}
    if n_scored or failed:
        skew = snaps["scored:settled"]
        assert (skew["count"], skew["counts"]["hits"]) == (n_scored + len(failed), len(failed))
    if n_out or expired:
        exp = snaps["arrived:settled"]
        assert (exp["count"], exp["counts"]["hits"]) == (n_out + expired, expired)
        assert exp["counts"][f"events.{v}"] == n_out + expired


def is_retired(mon: ModelMonitor) -> bool:
    """``mon.retired``, read afresh: mypy keeps a property narrowed by an ``assert`` across
    the calls that change it, and would take what follows the next assert as unreachable."""
    return mon.retired


def test_a_retired_model_is_not_monitored_until_unretired(trained: dict[str, Any]) -> None:
    """Retired (champion and challenger moved to ``retired``): every event dead-lettered as
    model_retired, a schedule due, a degraded stream: no snapshot, alert or trigger.
    Unretired: monitored again, with fresh rates; model_retired letters never skew."""
    mon = ModelMonitor(ModelConfig("churn", retrain={"schedule_ms": 1_000, "min_rows": 1}))
    record = champion(trained, "v1-aaaaaaa")
    v = record["version"]
    mon.on_version(record, T0)
    mon.on_version(champion(trained, "v2-bbbbbbb", stage="challenger"), T0)
    assert not mon.retired and mon.tick(T0) == []  # the schedule starts counting
    mon.on_version(champion(trained, "v2-bbbbbbb", stage="retired"), T0 + 1)
    assert not mon.retired  # the champion still holds its slot
    mon.on_version({**record, "stage": "retired", "previous_stage": "champion"}, T0 + 2)
    assert is_retired(mon)
    mon.observe_scorer_batch(T0 + 3, {}, Counter({"model_retired": 500}))
    emits = drive(mon, outcomes(300, v, const(0.6)))  # labels of earlier predictions
    emits += mon.tick(T0 + 10**6)
    assert emits == [] and mon.request(T0 + 10**6, "ana") == []

    mon.on_version({**record, "stage": "champion", "previous_stage": "retired"}, T0 + 10**6)
    assert not mon.retired and mon.champion_version == v
    at = T0 + 2 * 10**6
    mon.observe_scorer_batch(at, {v: 200}, Counter({"model_retired": 300}))
    for i in range(100):
        mon.observe_prediction(prediction_of(i, v), arrived_ms=at)
    emits = [e for o in outcomes(100, v, const(0.1)) for e in mon.observe_outcome(
        {**o, "event_time_ms": at}, at + 500, settled=(v, at))]  # fmt: skip
    emits += mon.tick(at + 10**6)
    check_encodes(emits)
    assert {t["reasons"][0] for t in of(emits, "retrain")} == {"schedule"}
    snaps = {s["window"]: s for s in of(emits, "metrics") if s["version"] == "all"}
    skew = snaps["scored:settled"]  # the 300 model_retired letters are not in it
    assert (skew["count"], skew["counts"]["hits"]) == (200, 0)
    assert snaps["arrived:settled"]["count"] == 100  # nothing from the retired spell
    assert of(emits, "alerts", "skew_rate") == []


# -- what tick emits --------------------------------------------------------------------------


def test_tick_emits_snapshots_of_the_champion(trained: dict[str, Any]) -> None:
    mon = ModelMonitor(ModelConfig("churn"), window_size=50)
    record = champion(trained, "v1-aaaaaaa")
    mon.on_version(record, T0)
    assert of(mon.tick(T0), "metrics") == []  # nothing observed yet
    rows = outcomes(250, record["version"], const(0.1))
    for i, o in enumerate(rows):
        mon.observe_prediction(prediction_of(i, record["version"]))
        mon.observe_outcome(o, o["event_time_ms"])
    now = rows[-1]["event_time_ms"] + 1
    emits = mon.tick(now)
    check_encodes(emits)
    estimated = [s for s in of(emits, "metrics") if s["window"].startswith("estimate")]
    assert {(s["segment"], s["window"]) for s in estimated} == {("all", "estimate:50")}
    assert estimated[0]["baseline"] == record["metrics"]
    assert 0 < estimated[0]["metrics"]["estimated_accuracy"] <= 1
    snaps = [s for s in of(emits, "metrics") if not s["window"].startswith("estimate")]
    segments = {o["segment"]["region"] for o in rows}
    expected = {("all", w) for w in ("count:50", "time:300s")} | {
        (f"region={r}", w) for r in segments for w in ("count:50", "time:300s")
    }
    assert {(s["segment"], s["window"]) for s in snaps} == expected
    for s in snaps:
        assert (s["model"], s["version"], s["emitted_at_ms"]) == ("churn", record["version"], now)
        rows = record["gate"]["candidate_metrics"]["rows"]  # held-out rows of the baseline
        assert s["baseline"] == {**record["metrics"], "count": rows}
        assert s["count"] > 0
        assert "accuracy" in s["metrics"]
    (all_count,) = [s for s in snaps if s["segment"] == "all" and s["window"] == "count:50"]
    assert all_count["count"] == 50
    assert any(k.startswith("psi.") for k in all_count["metrics"])  # feature drift values


def test_manual_request_emits_a_trigger(trained: dict[str, Any]) -> None:
    mon = ModelMonitor(ModelConfig("churn"))
    record = champion(trained, "v1-aaaaaaa")
    mon.on_version(record, T0)
    assert mon.request(T0 + 1, "ana") == []  # waits for min_rows (2,000) outcomes
    mon.policy.observe_outcomes(2_000, T0 + 1)
    emits = mon.tick(T0 + 1)
    check_encodes(emits)
    (trigger,) = of(emits, "retrain")
    assert (trigger["reasons"], trigger["requested_by"]) == (["manual"], "ana")
    assert trigger["champion_version"] == record["version"]
    assert mon.request(T0 + 2, "ana") == []  # in flight
    lineage = {**record["lineage"], "trigger_id": trigger["trigger_id"]}
    answer = champion(trained, "v2-bbbbbbb", stage="candidate", lineage=lineage)
    mon.on_version(answer, T0 + 3)  # the version that answers it clears it
    assert of(mon.request(T0 + 4, "ana"), "retrain") != []


def test_min_rows_fire_on_the_outcome_that_completes_them(trained: dict[str, Any]) -> None:
    """The wait for post-change rows ends on the outcome that completes them, not at the
    next timer tick (here: none at all)."""
    mon = ModelMonitor(ModelConfig("churn", retrain={"cooldown_ms": 0, "min_rows": 300}))
    record = champion(trained, "v1-aaaaaaa")
    mon.on_version(record, T0)
    emits: list[Emit] = []
    fed = 0
    for o in outcomes(6_000, record["version"], jump(3_000, 0.05, 0.5), seed=3):
        emits += mon.observe_outcome(o, o["event_time_ms"] + 500)
        fed += 1
        if of(emits, "retrain"):
            break
    (trigger,) = of(emits, "retrain")
    assert trigger["evidence"]["post_change_rows"] == 300
    assert trigger["evidence"]["outcomes"] == fed


# -- following the champion's task, a reloaded models file, excluded features ---------------


@pytest.fixture(scope="module")
def regressor() -> dict[str, Any]:
    """A real champion record of the same model re-bootstrapped as a regressor."""
    rng = random.Random(6)
    rows = []
    for i in range(300):
        x = features(rng)
        rows.append({"event_time_ms": T0 + i, "features": x, "label": x["amount"] * 2.0})
    config = ModelConfig("churn", task="regression",
                         gate=GateConfig(min_segment_samples=10, min_holdout_rows=50))  # fmt: skip
    _, records = bootstrap(
        rows, config, key=KEY, by="test", reason="unit test", now_ms=T0, host="h", code="0"
    )
    return {**records[-1], "version": "v2-regress"}


def regression_outcomes(n: int, version: str, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [
        outcome(event_id=f"r{i}", version=version, event_time_ms=T0 + i * STEP_MS,
                prediction=rng.random() * 20, label=rng.random() * 20, scores={},
                segment={}, features=features(rng))
        for i in range(start, start + n)
    ]  # fmt: skip


def test_a_champion_of_another_task_rebuilds_the_monitor(
    trained: dict[str, Any], regressor: dict[str, Any]
) -> None:
    """The trial: a model re-bootstrapped as a regressor was still monitored as a
    classifier (accuracy 0.0, no MAE) until the worker restarted."""
    mon = ModelMonitor(ModelConfig("churn", retrain={"min_rows": 300}))
    v1 = champion(trained, "v1-aaaaaaa")
    mon.on_version(v1, T0)
    drive(mon, outcomes(200, v1["version"], const(0.1)))
    assert (mon.task, mon.policy.config["watch"]) == ("classification", ["accuracy", "f1"])
    assert mon.classes == ("False", "True")

    mon.on_version(regressor, T0 + 200 * STEP_MS)
    assert mon.task == "regression" and mon.champion_version == "v2-regress"
    assert mon.policy.config["watch"] == ["mae", "rmse"]
    assert mon.policy.config["min_rows"] == 300  # the models file's settings stay
    assert mon.policy.state["champion"] == "v2-regress"
    assert mon.detector is not None and mon.detector.task == "regression"
    emits = drive(mon, regression_outcomes(300, "v2-regress", start=200), tick_every=10**9)
    # late outcomes of the classifier still arrive: tracked with their own task
    emits += drive(mon, outcomes(20, v1["version"], const(0.1), start=500), tick_every=10**9)
    emits += mon.tick(T0 + 600 * STEP_MS)
    check_encodes(emits)
    snaps = {(s["version"], s["window"]): s for s in of(emits, "metrics") if s["segment"] == "all"}
    count_window = f"count:{mon.window_size}"
    assert {"mae", "rmse"} <= set(snaps[("v2-regress", count_window)]["metrics"])
    assert "accuracy" not in snaps[("v2-regress", count_window)]["metrics"]
    assert "accuracy" in snaps[(v1["version"], count_window)]["metrics"]


def test_a_reloaded_models_file_keeps_what_still_applies(trained: dict[str, Any]) -> None:
    mon = ModelMonitor(ModelConfig("churn", retrain={"cooldown_ms": 0, "min_rows": 300}))
    record = champion(trained, "v1-aaaaaaa")
    mon.on_version(record, T0)
    drive(mon, outcomes(300, record["version"], const(0.1)))
    mon.request(T0 + 10**6, "ana")  # 300 rows: min_rows met
    inflight = mon.policy.state["inflight"]
    assert inflight is not None
    trackers, features = dict(mon.trackers), mon.features

    mon.reconfigure(ModelConfig("churn", retrain={"cooldown_ms": 5, "min_rows": 10}))
    assert mon.policy.config["min_rows"] == 10 and mon.policy.config["cooldown_ms"] == 5
    assert mon.policy.state["inflight"] == inflight  # the trigger in flight is not forgotten
    assert mon.trackers == trackers and mon.features is features

    mon.reconfigure(ModelConfig("churn", drift=DriftConfig(("amount",))))
    assert mon.features is not features and mon.features is not None
    assert "amount" in mon.features.exclude
    mon.reconfigure(ModelConfig("churn", positive_class="True"))
    assert mon.trackers == {}


def shifted_predictions(n: int, version: str, shift: float) -> list[dict[str, Any]]:
    rng = random.Random(9)
    out = []
    for i in range(n):
        x = features(rng)
        out.append(prediction(event_id=f"s{i}", version=version, segment={},
                              features={**x, "amount": x["amount"] + shift}))  # fmt: skip
    return out


EXCLUDES = [
    ((), True, {"feature_drift", "prediction_drift"}),
    (("amount",), False, {"prediction_drift"}),  # the shift still moves the predictions
    (("amount", "__prediction__", "__score__"), False, set()),
]


@pytest.mark.parametrize(("exclude", "alerted", "reasons"), EXCLUDES)
def test_an_excluded_feature_never_alerts_or_triggers(
    trained: dict[str, Any], exclude: tuple[str, ...], alerted: bool, reasons: set[str]
) -> None:
    """A feature that always drifts (a date, an id) drifts here by construction."""
    config = ModelConfig("churn", retrain={"cooldown_ms": 0, "drift_max_wait_ms": 1},
                         drift=DriftConfig(exclude))  # fmt: skip
    mon = ModelMonitor(config)
    record = champion(trained, "v1-aaaaaaa")
    mon.on_version(record, T0)
    for p in shifted_predictions(3_000, record["version"], shift=25.0):
        mon.observe_prediction(p)
    mon.policy.observe_outcomes(2_000, T0)  # the rows a trigger needs (min_rows)
    emits = mon.tick(T0 + 10**6) + mon.tick(T0 + 2 * 10**6)
    check_encodes(emits)
    drifted = {a["evidence"].get("feature") for a in of(emits, "alerts", "feature_drift")}
    triggers = of(emits, "retrain")
    assert mon.features is not None
    tested = {r.feature for r in mon.features.evaluate()}
    fired = {r for t in triggers for r in t["reasons"]}
    assert fired <= reasons and bool(fired) == bool(reasons)
    if alerted:
        assert "amount" in drifted and "amount" in tested and "feature_drift" in fired
    else:
        assert of(emits, "alerts", "feature_drift") == []
        assert "amount" not in tested and "plan" in tested


# -- estimated performance (CBPE) ---------------------------------------------------------------


def confident(i: int, version: str, p: float, t0: int = T0) -> dict[str, Any]:
    """A prediction whose calibrated confidence is ``p`` (identity: the record's map is
    dropped by ``champion(..., calibration=None)``)."""
    rng = random.Random(i)
    return prediction(event_id=f"e{i}", version=version, features=features(rng), segment={},
                      event_time_ms=t0 + i * STEP_MS, prediction=True,
                      scores={"True": p, "False": 1 - p})  # fmt: skip


@pytest.mark.parametrize(
    ("p_after", "alerts"),
    [(0.9, 0), (0.95, 0), (0.6, 1)],  # stationary, more confident, less confident
)
def test_estimated_degradation_alerts_before_any_label(
    trained: dict[str, Any], p_after: float, alerts: int
) -> None:
    retrain = {"on_estimated_degradation": True, "degradation_evaluations": 2, "min_rows": 5}
    config = ModelConfig("churn", retrain=retrain)
    mon = ModelMonitor(config, window_size=200)
    record = champion(trained, "v1-aaaaaaa", calibration=None)
    mon.on_version(record, T0)
    emits: list[Emit] = []
    for i in range(2_000):
        mon.observe_prediction(confident(i, record["version"], 0.9 if i < 1_000 else p_after))
        if i % 100 == 99:
            emits += mon.tick(T0 + i * STEP_MS)
    check_encodes(emits)
    found = of(emits, "alerts", "estimated_performance_degradation")
    assert len(found) == alerts
    assert not of(emits, "alerts", "performance_degradation")  # no label came
    # the retrain reason is pending; it fires once there are min_rows labelled rows
    pending = mon.policy.state["pending"]
    assert ("estimated_performance_degradation" in pending) == bool(alerts)
    if alerts:
        assert found[0]["evidence"]["upper"] < BASELINE["accuracy"]
        later: list[Emit] = []
        for i in range(2_000, 2_010):
            o = {**confident(i, "v1-aaaaaaa", 0.6), "label": True, "label_time_ms": 0}
            later += mon.observe_outcome(o, T0 + i * STEP_MS) + mon.tick(T0 + i * STEP_MS)
        (trigger,) = of(later, "retrain")
        assert "estimated_performance_degradation" in trigger["reasons"]


def test_the_estimator_error_is_published_when_labels_come(trained: dict[str, Any]) -> None:
    mon = ModelMonitor(ModelConfig("churn"), window_size=200)
    record = champion(trained, "v1-aaaaaaa", calibration=None)
    mon.on_version(record, T0)
    rng = random.Random(3)
    preds = [confident(i, record["version"], 0.8) for i in range(1_000)]
    for p in preds:
        mon.observe_prediction(p)
    assert not [s for s in of(mon.tick(T0), "metrics") if s["window"].startswith("estimate-check")]
    for p in preds:  # labels right 80% of the time: the calibration holds
        o = {**p, "label": rng.random() < 0.8, "label_time_ms": p["event_time_ms"] + 1}
        mon.observe_outcome(o, p["event_time_ms"])
    checks = [s for s in of(mon.tick(T0 + 10**6), "metrics")
              if s["window"] == "estimate-check:200"]  # fmt: skip
    assert len(checks) == 5
    for c in checks:
        m = c["metrics"]
        assert abs(m["estimation_error_accuracy"] - (m["realized_accuracy"] - 0.8)) < 1e-9
        assert m["estimation_mae_accuracy"] < 0.1


def test_feature_drift_on_an_unimportant_feature_is_info(trained: dict[str, Any]) -> None:
    lineage = {**trained["lineage"], "importance": {
        "amount": {"mean": 0.4, "std": 0.02, "repeats": 5},
        "plan": {"mean": 0.0, "std": 0.0, "repeats": 5},
    }}  # fmt: skip
    mon = ModelMonitor(ModelConfig("churn"), window_size=200)
    mon.on_version(champion(trained, "v1-aaaaaaa", lineage=lineage), T0)
    rng = random.Random(9)
    for i in range(3_000):  # "plan" moves to one category, "amount" stays
        x = {"amount": rng.random() * 10, "plan": "a"}
        mon.observe_prediction(prediction(event_id=f"d{i}", version="v1-aaaaaaa", features=x,
                                          segment={}))  # fmt: skip
    drift = of(mon.tick(T0 + 10**6), "alerts", "feature_drift")
    assert len(drift) == 1
    assert drift[0]["severity"] == "info"
    assert drift[0]["evidence"]["importance.plan"] == 0.0
    assert mon.summary()["drifting"][0]["feature"] == "plan"


def test_a_batch_of_predictions_counts_as_one_by_one(trained: dict[str, Any]) -> None:
    """observe_predictions (the worker's path, per batch) and observe_prediction give the
    same snapshots: the champion's feature drift and the expiry rate; another version's
    predictions count in the rate only."""
    record = champion(trained, "v1-aaaaaaa")
    preds = shifted_predictions(3_000, record["version"], shift=5.0)
    preds += [prediction_of(i, "v0-other") for i in range(200)]
    ticks = []
    for batched in (False, True):
        mon = ModelMonitor(ModelConfig("churn"))
        mon.on_version(record, T0)
        if batched:
            for i in range(0, len(preds), 700):
                mon.observe_predictions([(p, T0) for p in preds[i : i + 700]])
        else:
            for p in preds:
                mon.observe_prediction(p, T0)
        assert mon.features is not None
        ticks.append((mon.features.count, mon.tick(T0 + 10**6)))
    assert ticks[0] == ticks[1]
    assert ticks[0][0] == 3_000
