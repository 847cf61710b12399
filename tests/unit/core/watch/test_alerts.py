"""AlertRules: what raises which alert, the messages, and the dedupe cooldown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from driftline.core.watch.alerts import AlertRules, degradations
from driftline.core.watch.concept_drift import DriftEvent
from driftline.core.watch.rates import Window

SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"
ALERT_SCHEMA = fastavro.parse_schema(json.loads((SCHEMAS / "alert.v1.avsc").read_text()))
MIN = 60_000


def snapshot(
    metrics: dict[str, float],
    baseline: dict[str, float],
    count: int = 1_000,
    segment: str = "all",
    version: str = "v3",
    **counts: int,
) -> dict[str, Any]:
    return {
        "model": "churn",
        "version": version,
        "segment": segment,
        "window": "count:1000",
        "window_start_ms": 0,
        "window_end_ms": 1,
        "emitted_at_ms": 2,
        "count": count,
        "metrics": metrics,
        "baseline": baseline,
        "counts": {"n": count, **counts},
    }


def feature_event(feature: str, statistic: float, kind: str = "feature_drift") -> DriftEvent:
    return DriftEvent(
        kind,
        "churn",
        "v3",
        "psi",
        10,
        n=5_000,
        feature=feature,
        statistic=statistic,
        threshold=0.2,
        p_value=1e-9,
    )


def valid(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for a in alerts:
        assert fastavro.validation.validate(a, ALERT_SCHEMA)
    return alerts


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"margin": 0}, "margin"),
        ({"relative_margin": 1.5}, "relative_margin"),
        ({"nan_rate": -0.1}, "nan_rate"),
        ({"min_count": 0}, "min_count"),
        ({"cooldown_ms": -1}, "cooldown_ms"),
        ({"critical_factor": 0.5}, "critical_factor"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlertRules(**kwargs)


@pytest.mark.parametrize(
    ("metrics", "baseline", "count", "want"),
    [
        ({"accuracy": 0.84}, {"accuracy": 0.90}, 1_000, ("warning", "accuracy")),
        ({"accuracy": 0.86}, {"accuracy": 0.90}, 1_000, None),  # within the margin
        ({"accuracy": 0.70}, {"accuracy": 0.90}, 1_000, ("critical", "accuracy")),  # 4x margin
        ({"accuracy": 0.70}, {"accuracy": 0.90}, 100, None),  # too few outcomes
        ({"accuracy": 0.70}, {}, 1_000, None),  # no baseline
        ({"rmse": 1.3}, {"rmse": 1.0}, 1_000, ("warning", "rmse")),  # 30% worse > 20%
        ({"rmse": 1.1}, {"rmse": 1.0}, 1_000, None),
        ({"log_loss": 0.9}, {"log_loss": 0.4}, 1_000, ("critical", "log_loss")),
        ({"f1": 0.5, "accuracy": 0.84}, {"f1": 0.8, "accuracy": 0.9}, 1_000, ("critical", "f1")),
    ],
)
def test_performance_degradation(metrics, baseline, count, want):
    alerts = valid(AlertRules().check_snapshot(snapshot(metrics, baseline, count), now_ms=0))
    got = [
        (a["severity"], a["evidence"]["metric"])
        for a in alerts
        if a["kind"] == "performance_degradation"
    ]
    assert got == ([] if want is None else [want])


@pytest.mark.parametrize(
    ("value", "baseline", "want"),
    [
        # (served accuracy, baseline with its held-out rows): healthy, recovering or degraded
        (0.94, {"accuracy": 0.96}, "healthy"),  # 0.02 below: within 0.025 whatever the rows
        (0.93, {"accuracy": 0.96}, "recovering"),  # 0.03: outside 0.025, rows unknown
        (0.93, {"accuracy": 0.96, "count": 10_000.0}, "recovering"),  # se 0.002: 0.027
        (0.93, {"accuracy": 0.96, "count": 100.0}, "healthy"),  # se 0.0196: capped at 0.0375
        (0.92, {"accuracy": 0.96, "count": 100.0}, "recovering"),  # 0.04: never past 0.0375
        (0.90, {"accuracy": 0.96, "count": 100.0}, "degraded"),  # 0.06: the alert, unchanged
        (0.85, {"accuracy": 0.88, "count": 10.0}, "healthy"),  # a tiny baseline: the cap
    ],
)
def test_clearing_margin_allows_for_the_baselines_own_error(
    value: float, baseline: dict[str, float], want: str
) -> None:
    rules = AlertRules(margin=0.05, min_count=100)
    snap = snapshot({"accuracy": value}, baseline)
    if rules.check_snapshot(snap, now_ms=0):
        got = "degraded"
    else:
        perf = [c for c in rules.checks_snapshot(snap) if c.kind == "performance_degradation"]
        got = "healthy" if perf[0].healthy else "recovering"
    assert got == want


def test_degradation_message_and_evidence_hold_the_numbers():
    [alert] = AlertRules().check_snapshot(
        snapshot({"rmse": 1.5, "mae": 1.0}, {"rmse": 1.0, "mae": 0.9}, segment="region=eu"), 0
    )
    assert alert["message"] == (
        "rmse of churn v3 on region=eu rose to 1.5 over count:1000 (1000 outcomes), 50% above "
        "its baseline 1 (margin 20%)."
    )
    assert alert["segment"] == "region=eu" and alert["version"] == "v3"
    assert alert["evidence"]["degraded_metrics"] == "rmse"
    assert alert["evidence"]["value"] == 1.5 and alert["evidence"]["worse_by"] == 0.5


def test_watch_limits_the_metrics():
    snap = snapshot({"accuracy": 0.5, "f1": 0.5}, {"accuracy": 0.9, "f1": 0.9})
    [alert] = AlertRules(watch=["f1"]).check_snapshot(snap, 0)
    assert alert["evidence"]["metric"] == "f1"
    assert [d.metric for d in degradations(snap, 0.05, 0.2, frozenset({"f1"}))] == ["f1"]


@pytest.mark.parametrize(
    ("nan", "inf", "segment", "want"),
    [
        (5, 0, "all", None),  # 0.5% <= 1%
        (8, 7, "all", "warning"),
        (30, 0, "all", "critical"),
        (30, 0, "region=eu", None),  # only judged on 'all'
    ],
)
def test_numerical_instability(nan, inf, segment, want):
    snap = snapshot({}, {}, segment=segment, nan=nan, inf=inf)
    alerts = valid(AlertRules().check_snapshot(snap, 0))
    got = [a["severity"] for a in alerts if a["kind"] == "numerical_instability"]
    assert got == ([] if want is None else [want])
    if want:
        assert f"({nan} NaN, {inf} infinite of 1000, count:1000)" in alerts[0]["message"]


def test_same_alert_is_deduped_within_the_cooldown():
    rules = AlertRules(cooldown_ms=10 * MIN)
    bad = snapshot({"accuracy": 0.7}, {"accuracy": 0.9})
    assert len(rules.check_snapshot(bad, 0)) == 1
    assert rules.check_snapshot(bad, 5 * MIN) == []
    assert (
        len(
            rules.check_snapshot(
                snapshot({"accuracy": 0.7}, {"accuracy": 0.9}, segment="region=eu"), 5 * MIN
            )
        )
        == 1
    )
    assert (
        len(
            rules.check_snapshot(
                snapshot({"accuracy": 0.7}, {"accuracy": 0.9}, version="v4"), 5 * MIN
            )
        )
        == 1
    )
    assert len(rules.check_snapshot(bad, 10 * MIN)) == 1
    assert rules.suppressed == 1


def test_dedupe_state_survives_a_round_trip():
    rules = AlertRules(cooldown_ms=10 * MIN)
    bad = snapshot({"accuracy": 0.7}, {"accuracy": 0.9})
    first = rules.check_snapshot(bad, 0)
    restored = AlertRules.from_dict(json.loads(json.dumps(rules.to_dict())))
    assert restored.check_snapshot(bad, MIN) == []
    assert restored.cooldown_ms == 10 * MIN
    again = AlertRules().check_snapshot(bad, 0)
    assert again[0]["alert_id"] == first[0]["alert_id"]  # deterministic ids


def test_concept_drift_alert():
    event = DriftEvent(
        "concept_drift",
        "churn",
        "v3",
        "adwin",
        10,
        n=8_000,
        statistic=0.31,
        reference=0.12,
        since_change=700,
        change_time_ms=5,
    )
    [alert] = valid(AlertRules().check_drift([event], now_ms=0))
    assert alert["message"] == (
        "adwin detected a change in the error of churn v3 after 8000 "
        "outcomes (mean error 0.12 -> 0.31); the change began about "
        "700 outcomes ago."
    )
    assert alert["evidence"]["since_change"] == 700


def test_feature_drift_alerts_once_per_kind_on_the_strongest():
    events = [
        feature_event("age", 0.25),
        feature_event("income", 0.9),
        feature_event("plan", 0.3),
        feature_event("__score__", 0.4, "prediction_drift"),
    ]
    alerts = valid(AlertRules().check_drift(events, now_ms=0))
    assert [a["kind"] for a in alerts] == ["feature_drift", "prediction_drift"]
    assert alerts[0]["message"].startswith(
        "3 of the features of churn v3 drifted from the training data, most income (psi 0.9 >= 0.2"
    )
    assert alerts[0]["evidence"]["features"] == "income,plan,age"
    assert alerts[0]["severity"] == "critical"  # 0.9 >= 2 x 0.2


T_WINDOW = 1_796_635_000_000  # 2026-12-07 09:16:40 UTC


def window(kind: str, hits: int, total: int, versions: tuple[tuple[str, int], ...] = (("v3", 0),),
           **kw: Any) -> Window:  # fmt: skip
    return Window(kind, T_WINDOW, T_WINDOW + 100_000, total, hits, versions, **kw)


# (failed, total, confidence, severity or None): the rate must be above the threshold
# (5%) and, at confidence 0.95, its Wilson lower bound too
SKEW = [
    (4, 100, 0.95, None),
    (6, 100, 0.5, "warning"),  # 6% > 5%: the rate alone
    (6, 100, 0.95, None),  # lower bound 3.2%: not surely above
    (12, 100, 0.95, "critical"),  # 12% >= 2 x 5%, lower bound 7.6%
    (80, 1_000, 0.95, "warning"),  # lower bound 6.7%
    (50, 60, 0.95, None),  # fewer than min_events
]


@pytest.mark.parametrize(("failed", "total", "confidence", "want"), SKEW)
def test_skew_rate(failed: int, total: int, confidence: float, want: str | None) -> None:
    w = window("skew_rate", failed, total, (("v3", total - failed),),
               reasons=(("missing_feature", failed - 1), ("type_mismatch", 1)))  # fmt: skip
    alerts = valid(AlertRules(confidence=confidence).check_skew("churn", w, 0))
    assert [a["severity"] for a in alerts] == ([] if want is None else [want])
    if want:
        a = alerts[0]
        assert a["version"] == "v3"
        assert (
            f"of the events of churn handled between 2026-12-07 09:16:40 and 09:18:20 UTC "
            f"were dead-lettered ({failed} of {total}, mostly missing_feature ({failed - 1}); "
            f"scored by v3 ({total - failed}))" in a["message"]
        )
        ev = a["evidence"]
        assert (ev["failed"], ev["total"], ev["reason.type_mismatch"]) == (failed, total, 1)
        assert (ev["window_start_ms"], ev["window_end_ms"]) == (T_WINDOW, T_WINDOW + 100_000)


EXPIRED = [
    (10, 100, (("v3", 100),), None, "v3"),
    (30, 100, (("v3", 100),), "warning", "v3"),  # 30%, lower bound 23.1% > 20%
    (25, 100, (("v3", 100),), None, "v3"),  # 25%, lower bound 18.2%: not surely above
    (210, 1_000, (("v3", 1_000),), None, "v3"),  # 21%: not surely above 20%
    (500, 1_000, (("v2", 600), ("v3", 400)), "critical", None),  # two versions: both named
]


@pytest.mark.parametrize(("expired", "total", "versions", "want", "version"), EXPIRED)
def test_expired_label_rate(
    expired: int, total: int, versions: tuple[tuple[str, int], ...], want: str | None,
    version: str | None,
) -> None:  # fmt: skip
    w = window("expired_label_rate", expired, total, versions)
    alerts = valid(AlertRules().check_expired("churn", w, 0))
    assert [a["severity"] for a in alerts] == ([] if want is None else [want])
    if want:
        a = alerts[0]
        assert a["version"] == version
        served = ", ".join(f"{v} ({n})" for v, n in versions)
        assert a["message"].startswith(
            f"{expired / total:.1%} of the predictions of churn that reached the join between "
            f"2026-12-07 09:16:40 and 09:18:20 UTC expired before their label arrived "
            f"({expired} of {total}; served by {served}), above the 20.0% threshold (at least"
        )
        assert a["evidence"]["versions"] == served


def test_confidence_must_be_at_least_a_half() -> None:
    with pytest.raises(ValueError, match="confidence"):
        AlertRules(confidence=0.4)
    assert AlertRules.from_dict(AlertRules(confidence=0.99).to_dict()).confidence == 0.99
