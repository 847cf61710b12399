"""The status page renderer (pure: status dict in, HTML out) and the monitor's memory
of recent snapshots, alerts and triggers that feeds it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from driftline.core.watch.monitor import Emit
from driftline.streams.monitors import Recent
from driftline.streams.statuspage import fmt_value, render
from driftline.streams.svgchart import line_chart, when

T0 = 1_700_000_000_000
VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "wbr", "source"}


def status(**over: object) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": "Driftline worker t-worker",
        "generated_at_ms": T0 + 60_000,
        "worker": {"app": "t-worker", "topic_prefix": "t.", "scored": 12345, "scorer_lag": 7,
                   "refresh_s": 5},
        "models": [
            {
                "model": "churn",
                "task": "classification",
                "champion": "v2-abc",
                "challenger": "v3-def",
                "versions": [
                    {"version": "v1-old", "stage": "archived", "created_at_ms": T0,
                     "stage_changed_at_ms": T0 + 5, "stage_changed_by": "trainer",
                     "stage_reason": "replaced by v2-abc", "factory": "logistic_regression",
                     "metrics": {"accuracy": 0.81}, "gate": None, "trigger_id": None},
                    {"version": "v2-abc", "stage": "champion", "created_at_ms": T0 + 1,
                     "stage_changed_at_ms": T0 + 5, "stage_changed_by": "trainer",
                     "stage_reason": "gate passed", "factory": "logistic_regression",
                     "metrics": {"accuracy": 0.93}, "gate": "passed", "trigger_id": "t-1"},
                    {"version": "v3-def", "stage": "challenger", "created_at_ms": T0 + 2,
                     "stage_changed_at_ms": T0 + 6, "stage_changed_by": "ana",
                     "stage_reason": "shadow", "factory": "hoeffding_tree",
                     "metrics": {"accuracy": 0.9}, "gate": "failed", "trigger_id": "t-2"},
                ],
                "served": [
                    {"version": "v2-abc", "role": "champion",
                     "windows": [{"window": "count:1000", "count": 1000,
                                  "metrics": {"accuracy": 0.8765, "log_loss": 0.41},
                                  "baseline": {"accuracy": 0.93}, "window_end_ms": T0,
                                  "emitted_at_ms": T0}],
                     "drift": {"psi.x1": 0.31, "ks.x1": 0.2, "psi.plan": 0.01},
                     "segments": [{"segment": "plan=pro", "window": "count:1000", "count": 400,
                                   "metrics": {"accuracy": 0.7}}]},
                    {"version": "v3-def", "role": "challenger", "windows": [], "drift": {},
                     "segments": []},
                ],
                "history": {
                    "metric": "accuracy",
                    "series": [{"version": "v2-abc",
                                "points": [[T0 + i * 1000, 0.9 - i / 100] for i in range(10)]}],
                    "baseline": 0.93,
                },
                "markers": [{"t": T0 + 4000, "kind": "alert", "label": "concept_drift"},
                            {"t": T0 + 5000, "kind": "trigger", "label": "concept_drift"}],
            }
        ],
        "incidents": [
            {"incident_id": "i2", "incident_key": "churn/performance_degradation",
             "model": "churn", "cause": "performance_degradation", "severity": "critical",
             "state": "firing", "opened_at_ms": T0 + 50_000, "resolved_at_ms": None,
             "duration_ms": None, "segments": ["all", "plan=pro"], "versions": ["v2-abc"],
             "message": "accuracy of churn v2-abc on all fell to 0.71", "resolution": None},
            {"incident_id": "i1", "incident_key": "churn/concept_drift", "model": "churn",
             "cause": "concept_drift", "severity": "warning", "state": "resolved",
             "opened_at_ms": T0, "resolved_at_ms": T0 + 125_000, "duration_ms": 125_000,
             "segments": ["all"], "versions": ["v1-old", "v2-abc"],
             "message": "adwin detected a change", "resolution": "Resolved after 2 min 5 s: ok"},
        ],
        "alerts": [{"alert_id": "a1", "model": "churn", "version": "v2-abc", "segment": None,
                    "kind": "concept_drift", "severity": "warning",
                    "message": "ADWIN <b>shrank</b> & said so", "created_at_ms": T0 + 4000}],
        "triggers": [{"trigger_id": "t-9", "model": "churn", "reasons": ["concept_drift"],
                      "champion_version": "v2-abc", "requested_by": "monitor",
                      "created_at_ms": T0 + 5000, "idempotency_key": "k"}],
    }  # fmt: skip
    doc.update(over)
    return doc


class _Balance(HTMLParser):
    """Checks that every opened (non-void) tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_page_shows_models_versions_metrics_drift_alerts_and_triggers() -> None:
    page = render(status())
    for text in (
        "churn", "champion <b>v2-abc</b>", "challenger <b>v3-def</b>", "v1-old", "archived",
        "0.8765", "0.9300", "count:1000 (n=1000)", "plan=pro", "psi", "0.3100",
        "concept_drift", "t-9", "scored 12,345", "scorer lag 7", "gate passed",
        "Recent alerts", "Recent retrain triggers",
    ):  # fmt: skip
        assert text in page, text
    assert page.index("x1") < page.index("plan</td>")  # the most drifted feature first


def test_page_shows_estimated_beside_realized_its_error_and_importance() -> None:
    doc = status()
    model = doc["models"][0]
    model["versions"][1].update(
        calibration="isotonic",
        importance=[
            {"feature": "x1", "mean": 0.3, "std": 0.01},
            {"feature": "plan", "mean": 0.0, "std": 0.0},
        ],
    )
    served = model["served"][0]
    served["windows"].append({"window": "estimate:1000", "count": 1000, "baseline": {},
                              "metrics": {"estimated_accuracy": 0.612}, "window_end_ms": T0,
                              "emitted_at_ms": T0})  # fmt: skip
    served["estimate"] = {
        "metric": "accuracy", "window": "estimate:1000", "estimated": 0.612, "lower": 0.58,
        "upper": 0.64, "realized": 0.8765, "checked_estimated": 0.81, "checked_realized": 0.72,
        "error": -0.09, "mae": 0.031, "labelled_share": 0.5}  # fmt: skip
    page = render(doc)
    for text in (
        "Estimated performance: v2-abc", "estimated accuracy (estimate:1000, 95%)",
        "0.6120 [0.5800, 0.6400]", "0.8100 / 0.7200", '<span class="bad">-0.0900</span>',
        "0.0310", "50%", "<h3>Importance</h3>", "isotonic", "x1 0.3000 ± 0.0100, plan 0",
    ):  # fmt: skip
        assert text in page, text
    assert "estimate:1000 (n=1000)" not in page  # not a column of the rolling metrics
    assert page.index("x1 0.3") < page.index("plan 0")
    del served["estimate"], model["versions"][1]["importance"], model["versions"][1]["calibration"]
    bare = render(doc)
    assert "Estimated performance" not in bare and "<h3>Importance</h3>" not in bare


def test_page_names_every_challenger() -> None:
    doc = status()
    doc["models"][0]["challengers"] = ["v3-def", "v4-ghi"]
    assert "challengers <b>v3-def</b>, <b>v4-ghi</b>" in render(doc)


def test_page_is_self_contained_and_well_formed() -> None:
    page = render(status())
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    checker = _Balance()
    checker.feed(page)
    assert checker.errors == [] and checker.stack == []
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ET.fromstring(svg)  # every chart is well-formed XML
    assert '<meta http-equiv="refresh" content="5">' in page


def test_page_shows_incidents_with_their_lifecycle() -> None:
    page = render(status())
    section = page[page.index("<h2>Incidents</h2>") : page.index("<h2>Recent alerts</h2>")]
    firing, resolved = section.split("<tr>")[2:]
    for text in ('class="bad">firing', "performance_degradation", "critical", "10 s so far",
                 "all, plan=pro", "fell to 0.71"):  # fmt: skip
        assert text in firing, text
    for text in ("resolved", "concept_drift", "2 min 5 s<", "v1-old, v2-abc",
                 "Resolved after 2 min 5 s: ok", when(T0 + 125_000)):  # fmt: skip
        assert text in resolved, text
    assert "No incident since this worker started." in render(status(incidents=[]))


def test_recent_keeps_each_incident_opened_and_where_it_stands() -> None:
    r = Recent(keep=2)
    for i in range(3):
        base = {"incident_id": f"i{i}", "kind": "skew_rate", "model": "m"}
        r.add(Emit("alerts", "m", {**base, "state": "firing", "severity": "warning"}))
        r.add(Emit("alerts", "m", {**base, "state": "firing", "severity": "critical"}))
    r.add(Emit("alerts", "m", {"incident_id": "i1", "kind": "skew_rate", "state": "resolved"}))
    r.add(Emit("alerts", "m", {"incident_id": "i3", "kind": "skew_rate", "state": "firing"}))
    # at most 2: the oldest resolved one made room first
    assert list(r.incidents) == ["i2", "i3"]
    assert r.incidents["i2"]["first"]["severity"] == "warning"
    assert r.incidents["i2"]["last"]["severity"] == "critical"


def test_text_from_records_is_escaped() -> None:
    page = render(status())
    assert "ADWIN &lt;b&gt;shrank&lt;/b&gt; &amp; said so" in page
    assert "<b>shrank</b>" not in page
    evil = status(models=[dict(status()["models"][0], model='"><script>x</script>')])
    assert "<script>x" not in render(evil)


def test_an_empty_worker_says_what_to_do() -> None:
    page = render({"generated_at_ms": T0, "models": [], "alerts": [], "triggers": []})
    assert "No model yet" in page
    assert "No alert since this worker started" in page
    assert "No retrain trigger since this worker started" in page


def test_a_model_without_outcomes_renders_placeholders() -> None:
    model = dict(status()["models"][0], served=[], history={"metric": "accuracy", "series": []},
                 markers=[], versions=[])  # fmt: skip
    page = render(status(models=[model]))
    assert "no data yet" in page
    assert "No version served yet" in page
    assert "No version in the registry" in page


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.912345, "0.9123"), (-0.5, "-0.5000"), (1234.5, "1234.5"), (7, "7"), (None, "-"),
     (True, "True"), ("<x>", "&lt;x&gt;")],
)  # fmt: skip
def test_fmt_value(value: object, text: str) -> None:
    assert fmt_value(value) == text


def test_when_is_utc() -> None:
    assert when(0) == "1970-01-01 00:00:00"
    assert when(None) == "-"


def _coords(svg: str) -> list[tuple[float, float]]:
    pts = re.search(r'points="([^"]+)"', svg)
    assert pts is not None
    return [tuple(map(float, p.split(","))) for p in pts.group(1).split()]  # type: ignore[misc]


def test_chart_scales_time_and_value_into_the_plot_area() -> None:
    svg = line_chart([("v1", [(0, 0.0), (500, 0.5), (1000, 1.0)])], width=400, height=200,
                     y_range=(0.0, 1.0))  # fmt: skip
    (x0, y0), (xm, ym), (x1, y1) = _coords(svg)
    assert x0 < xm < x1 and y0 > ym > y1  # later is right, higher is up
    assert xm == pytest.approx((x0 + x1) / 2) and ym == pytest.approx((y0 + y1) / 2)
    assert 0 <= x0 < x1 <= 400 and 0 <= y1 < y0 <= 200


def test_chart_clamps_values_outside_the_range() -> None:
    svg = line_chart([("v1", [(0, -5.0), (1, 5.0)])], y_range=(0.0, 1.0), height=200)
    (_, low), (_, high) = _coords(svg)
    inside = line_chart([("v1", [(0, 0.0), (1, 1.0)])], y_range=(0.0, 1.0), height=200)
    assert [low, high] == [y for _, y in _coords(inside)]


def test_chart_draws_baseline_markers_in_range_and_a_legend() -> None:
    svg = line_chart(
        [("v1", [(1000, 0.9), (2000, 0.8)]), ("v2", [(2000, 0.95)])],
        baseline=0.93,
        markers=[(500, "version", "before the data"), (1500, "alert", "concept_drift")],
    )
    ET.fromstring(svg)
    assert "validation baseline 0.9300" in svg
    assert "alert: concept_drift" in svg
    assert "before the data" not in svg and ">version<" not in svg  # out of range: dropped
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # v2 has one point
    assert ">v1<" in svg and ">v2<" in svg


def test_chart_without_points_says_so() -> None:
    svg = line_chart([("v1", [])], title="churn")
    ET.fromstring(svg)
    assert "no data yet" in svg


def test_chart_autoscales_without_a_range() -> None:
    svg = line_chart([("mae", [(0, 10.0), (1, 10.0)])])  # a flat line still gets a span
    ET.fromstring(svg)
    assert "nan" not in svg.lower()


# -- Recent: the monitor's memory --------------------------------------------------------


def snap(version: str, t: int, acc: float, segment: str = "all", window: str = "count:100"):
    return Emit("metrics", "churn", {
        "model": "churn", "version": version, "segment": segment, "window": window,
        "emitted_at_ms": t, "metrics": {"accuracy": acc}, "count": 100,
    })  # fmt: skip


def test_recent_keeps_latest_snapshots_and_a_bounded_history() -> None:
    r = Recent(points=3)
    for i in range(5):
        r.add(snap("v1", i, i / 10))
        r.add(snap("v1", i, 0.5, window="time:60s"))  # not charted
        r.add(snap("v1", i, 0.1, segment="plan=pro"))  # not charted
    assert [t for t, _ in r.history[("churn", "v1")]] == [2, 3, 4]
    assert r.snapshots[("churn", "v1", "all", "count:100")]["metrics"]["accuracy"] == 0.4
    assert set(r.snapshots) == {("churn", "v1", s, w) for s, w in
                                [("all", "count:100"), ("all", "time:60s"),
                                 ("plan=pro", "count:100")]}  # fmt: skip


def test_recent_forgets_the_oldest_versions_of_a_model() -> None:
    r = Recent(versions_per_model=2)
    for v in ("v1", "v2", "v3"):
        r.add(snap(v, 1, 0.9))
    r.add(Emit("metrics", "other", dict(snap("w1", 1, 0.9).value, model="other")))
    assert sorted(r.history) == [("churn", "v2"), ("churn", "v3"), ("other", "w1")]
    assert {k[:2] for k in r.snapshots} == set(r.history)


def test_recent_keeps_the_last_alerts_and_triggers() -> None:
    r = Recent(keep=2)
    for i in range(3):
        r.add(Emit("alerts", "churn", {"alert_id": f"a{i}"}))
        r.add(Emit("retrain", "churn", {"trigger_id": f"t{i}"}))
    assert [a["alert_id"] for a in r.alerts] == ["a1", "a2"]
    assert [t["trigger_id"] for t in r.triggers] == ["t1", "t2"]


@pytest.mark.parametrize(
    ("drift", "importance", "order"),
    [
        # without importance: the most drifted first
        ({"psi.a": 0.5, "psi.b": 0.2}, {}, ["a", "b"]),
        # a large drift on a feature the model ignores comes after a smaller one it feels
        ({"psi.a": 0.5, "psi.b": 0.2}, {"a": 0.0, "b": 0.3}, ["b", "a"]),
        ({"psi.a": 0.5, "psi.b": 0.2}, {"a": 0.1, "b": 0.2}, ["a", "b"]),  # 0.05 > 0.04
        # the model's output first; a feature without importance as if it had none
        ({"psi.a": 0.5, "psi.__score__": 0.1, "psi.c": 0.9}, {"a": 0.2}, ["__score__", "a", "c"]),
    ],
)  # fmt: skip
def test_drift_is_ranked_by_what_matters_to_the_model(
    drift: dict[str, float], importance: dict[str, float], order: list[str]
) -> None:
    doc = status()
    served = doc["models"][0]["served"][0]
    served.update(drift=drift, importance=importance)
    page = render(doc)
    section = page[page.index("<h3>Drift:") :]
    section = section[: section.index("</table>")]
    shown = re.findall(r"<tr><td[^>]*>([^<]+)</td>", section)
    assert shown == order
    assert ("importance" in section) == bool(importance)
    assert ("weighted by importance" in section) == bool(importance)
